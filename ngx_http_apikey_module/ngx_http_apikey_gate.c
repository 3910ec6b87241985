
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_tally.h"
#include "ngx_http_apikey_gate_scripts.h"


static ngx_int_t ngx_http_apikey_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_subrequest_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_hide_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_check(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_uint_t ngx_http_apikey_preflight(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_look(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_uint_t ngx_http_apikey_find_key(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_send(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static void ngx_http_apikey_done(void *data, redisReply *reply);
static ngx_int_t ngx_http_apikey_decide(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_hide(ngx_http_request_t *r,
    ngx_table_elt_t *h);
static ngx_int_t ngx_http_apikey_unhide(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static void ngx_http_apikey_forget_vars(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *akcf);


static ngx_http_apikey_script_t  ngx_http_apikey_gate_script = {
    ngx_string("gate"),
    { sizeof(ngx_http_apikey_gate_lua) - 1, ngx_http_apikey_gate_lua },
    { 0 }
};


static ngx_int_t
ngx_http_apikey_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t       *ctx, *mctx;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!akcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx != NULL && ctx->checked) {

        /* resumed after the reply, or after an internal redirect */

        if (ctx->state == NGX_HTTP_APIKEY_PENDING) {
            return NGX_AGAIN;
        }

        if (ctx->conf != akcf) {
            ngx_http_apikey_recheck(ctx, akcf);
        }

        return ngx_http_apikey_decide(r, ctx);
    }

    if (ctx == NULL) {
        ctx = ngx_http_apikey_ctx_create(r, akcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->checked = 1;

    if (ngx_http_apikey_metrics) {
        ctx->entered = ngx_http_apikey_metrics_now();
    }

    if (r != r->main) {
        mctx = ngx_http_apikey_get_ctx(r->main);

        if (mctx != NULL && mctx->checked
            && mctx->state == NGX_HTTP_APIKEY_DONE)
        {
            /*
             * the main request went through the gatekeeper: the
             * subrequest reuses its verdict, held to this location's
             * settings as after a redirect, and takes no second token
             */

            *ctx = *mctx;
            ctx->request = r;
            ctx->item = NULL;
            ctx->header = NULL;
            ctx->rate_sent = 0;

            ngx_http_apikey_recheck(ctx, akcf);

            return ngx_http_apikey_decide(r, ctx);
        }
    }

    /* the client's method: auth_request makes its subrequests GETs */

    if (akcf->preflight == NGX_HTTP_APIKEY_PREFLIGHT_PASS
        && r->main->method == NGX_HTTP_OPTIONS
        && ngx_http_apikey_preflight(r))
    {
        ctx->conf = akcf;
        ctx->result = NGX_HTTP_APIKEY_PREFLIGHT;
        return ngx_http_apikey_decide(r, ctx);
    }

    if (ctx->looked && ctx->conf != akcf
        && ngx_http_apikey_unhide(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->conf = akcf;

    return ngx_http_apikey_check(r, ctx);
}


/*
 * apikey_hide_header: in the rewrite phases, before the rewrite module's
 * directives run (a module loaded later runs first in a phase), the key
 * leaves the request's headers, so that "set $k $http_x_api_key" copies
 * nothing; the check finds it in the request's context.  At the server
 * level by the server's settings, again by the location's once it is
 * known, which puts the header back where the location does not check
 * or hide it.
 */

static ngx_int_t
ngx_http_apikey_hide_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *akcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    akcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx != NULL && ctx->checked) {
        return NGX_DECLINED;
    }

    if (!akcf->enable || !akcf->hide_header) {

        if (ctx != NULL && ctx->looked
            && ngx_http_apikey_unhide(r, ctx) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    if (ctx == NULL) {
        ctx = ngx_http_apikey_ctx_create(r, akcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ctx->looked && ctx->conf == akcf) {
        return NGX_DECLINED;

    } else if (ctx->looked && ngx_http_apikey_unhide(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->conf = akcf;

    if (ngx_http_apikey_look(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* finds the key, and takes it out of the headers when the location hides */

static ngx_int_t
ngx_http_apikey_look(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    ctx->found = ngx_http_apikey_find_key(r, ctx, &ctx->key);
    ctx->looked = 1;

    if (ctx->header == NULL || !ctx->conf->hide_header || ctx->hidden) {
        return NGX_OK;
    }

    ctx->hidden = 1;

    ngx_http_apikey_forget_vars(r, ctx->conf);

    return ngx_http_apikey_hide(r, ctx->header);
}


/* $http_x_api_key read before the key was hidden, or while it was */

static void
ngx_http_apikey_forget_vars(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *akcf)
{
    ngx_uint_t  i;

    for (i = 0; i < 2; i++) {
        if (akcf->vars[i] >= 0) {
            r->variables[akcf->vars[i]].valid = 0;
            r->variables[akcf->vars[i]].not_found = 0;
        }
    }
}


/* puts a hidden key back, and forgets where it was */

static ngx_int_t
ngx_http_apikey_unhide(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    ctx->looked = 0;

    if (!ctx->hidden || ctx->header == NULL) {
        ctx->header = NULL;
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = *ctx->header;

    if (h->key.len == sizeof("Authorization") - 1
        && ngx_strncasecmp(h->key.data, (u_char *) "Authorization",
                           sizeof("Authorization") - 1)
           == 0)
    {
        r->headers_in.authorization = h;
    }

    ctx->hidden = 0;
    ctx->header = NULL;

    ngx_http_apikey_forget_vars(r, ctx->conf);

    return NGX_OK;
}


/* sends the check of the request's key to Redis, or decides without it */

static ngx_int_t
ngx_http_apikey_check(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_http_apikey_main_conf_t  *akmcf;

    if (!ctx->looked) {
        ctx->found = ngx_http_apikey_find_key(r, ctx, &ctx->key);
        ctx->looked = 1;
    }

    ctx->result = ctx->found;

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return ngx_http_apikey_decide(r, ctx);
    }

    if (!ngx_http_apikey_key_valid(ctx->key.data, ctx->key.len)) {
        ctx->result = NGX_HTTP_APIKEY_INVALID;
        return ngx_http_apikey_decide(r, ctx);
    }

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    /* NS{<hash>}: only the hash of the key ever leaves nginx */

    ctx->secret.len = akmcf->redis.ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;
    ctx->secret.data = ngx_pnalloc(r->pool, ctx->secret.len);
    if (ctx->secret.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(ctx->secret.data, akmcf->redis.ns.data,
                   akmcf->redis.ns.len);
    *p++ = '{';

    if (ngx_http_apikey_sha256(ctx->bin, p, ctx->key.data, ctx->key.len)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "SHA-256 failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p[NGX_HTTP_APIKEY_HASH_LEN] = '}';
    ctx->hash = p;

    if (akmcf->cache.shm_zone != NULL) {
        rc = ngx_http_apikey_local(r, ctx, 0);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_OK) {
            return ngx_http_apikey_decide(r, ctx);
        }

        ctx->start = ngx_http_apikey_cache_now();
    }

    rc = ngx_http_apikey_send(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {

        /* Redis is known down: the replica answers for max_stale */

        if (ngx_http_apikey_read_reply(r, ctx, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (akmcf->cache.shm_zone != NULL
            && ngx_http_apikey_local(r, ctx, 1) == NGX_ERROR)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_apikey_decide(r, ctx);
    }

    ctx->state = NGX_HTTP_APIKEY_PENDING;

    /* notice a client that leaves while Redis answers */

    if (r == r->main) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_AGAIN;
}


/* the request's check, to Redis, with what its late reply must know */

static ngx_int_t
ngx_http_apikey_send(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_str_t                      args[4];
    ngx_http_apikey_tally_note_t  *note;
    ngx_http_apikey_main_conf_t   *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    args[0] = ctx->secret;
    args[1] = ctx->conf->environment;
    args[2] = ctx->conf->scopes;
    args[3].len = 0;

    if (ctx->lease.want || ctx->lease.sibling) {
        args[3].data = ngx_pnalloc(r->pool,
                                   4 * NGX_INT32_LEN + NGX_INT64_LEN + 5);
        if (args[3].data == NULL) {
            return NGX_ERROR;
        }

        args[3].len = ngx_sprintf(args[3].data, "%uD %uD %L %uD/%uD/%uD",
                                  ctx->lease.want, ctx->lease.back,
                                  ctx->lease.taken, ctx->lease.rate,
                                  ctx->lease.per, ctx->lease.burst)
                      - args[3].data;
    }

    rc = ngx_http_apikey_redis_batch(&ngx_http_apikey_gate_script, 4, args,
                                     akmcf->redis.timeout,
                                     ngx_http_apikey_done, ctx,
                                     ngx_http_apikey_tally_late, &ctx->item);

    if (rc != NGX_OK) {
        return rc;
    }

    note = ngx_http_apikey_redis_batch_note(ctx->item);

    ngx_memcpy(note->hex, ctx->hash, NGX_HTTP_APIKEY_HASH_LEN);
    note->sibling = (ctx->lease.sibling != 0);

    return NGX_OK;
}


/*
 * Subrequests (auth_request, SSI, mirror) skip the access phase: they
 * are checked here, in the preaccess phase, where a pass lets the phase's
 * other handlers run.
 */

static ngx_int_t
ngx_http_apikey_subrequest_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    rc = ngx_http_apikey_handler(r);

    return (rc == NGX_OK) ? NGX_DECLINED : rc;
}


/* a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method */

static ngx_uint_t
ngx_http_apikey_preflight(ngx_http_request_t *r)
{
    ngx_uint_t  n;

    static ngx_str_t  origin = ngx_string("origin");
    static ngx_str_t  method = ngx_string("access-control-request-method");

    return ngx_http_apikey_header_in(r, &origin, &n) != NULL
           && ngx_http_apikey_header_in(r, &method, &n) != NULL;
}


static ngx_uint_t
ngx_http_apikey_find_key(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_uint_t                   n;
    ngx_table_elt_t             *h, *found;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ctx->conf;

    found = ngx_http_apikey_header_in(r, &akcf->header_lc, &n);

    if (n > 1) {
        return NGX_HTTP_APIKEY_INVALID;
    }

    ctx->bearer = 0;

    if (found && found->value.len) {
        ctx->header = found;
        *key = found->value;
        return NGX_HTTP_APIKEY_OK;
    }

    h = r->headers_in.authorization;

    if (akcf->bearer && h != NULL
        && h->value.len > sizeof("Bearer ") - 1
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           == 0)
    {
        key->data = h->value.data + sizeof("Bearer ") - 1;
        key->len = h->value.len - (sizeof("Bearer ") - 1);

        while (key->len && *key->data == ' ') {
            key->data++;
            key->len--;
        }

        if (key->len) {
            ctx->header = h;
            ctx->bearer = 1;
            return NGX_HTTP_APIKEY_OK;
        }
    }

    return NGX_HTTP_APIKEY_MISSING;
}


static void
ngx_http_apikey_done(void *data, redisReply *reply)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_apikey_main_conf_t  *akmcf;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ctx->item = NULL;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    rc = ngx_http_apikey_read_reply(r, ctx, reply);

    if (rc == NGX_OK && ctx->resend) {
        ctx->resend = 0;

        /*
         * a sibling found the bucket empty while the lease that emptied
         * it was not granted yet, at another worker: once more, with the
         * time that takes
         */

        rc = ngx_http_apikey_send(r, ctx);

        if (rc == NGX_OK) {
            ctx->state = NGX_HTTP_APIKEY_PENDING;
            return;
        }

        rc = NGX_OK;
        ngx_http_apikey_tally_add(ctx->hash, NGX_HTTP_APIKEY_TALLY_LIMITED);
    }

    if (rc == NGX_OK
        && ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE
        && akmcf->cache.shm_zone != NULL)
    {
        /* Redis too slow or unreachable: the instance's own answer */

        rc = ngx_http_apikey_local(r, ctx, 1);

        if (rc == NGX_DECLINED) {
            rc = NGX_OK;
        }
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "apikey result:%ui id:\"%V\"", ctx->result, &ctx->id);

    if (r == r->main) {
        r->read_event_handler = ngx_http_block_reading;
    }

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_apikey_gate_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *akmcf)
{
    if (ngx_http_apikey_redis_batch_init(cycle) != NGX_OK
        || ngx_http_apikey_tally_init(cycle, &akmcf->redis,
                                      &ngx_http_apikey_gate_script)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_bucket_init_worker(cycle, &akmcf->cache);
}


static ngx_int_t
ngx_http_apikey_decide(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    ngx_http_apikey_result_t    *res;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ctx->conf;

    if (ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE
        && akcf->fail_mode == NGX_HTTP_APIKEY_FAIL_OPEN)
    {
        ctx->result = NGX_HTTP_APIKEY_UNVERIFIED;
    }

    res = &ngx_http_apikey_results[ctx->result];

    /* the first decision counts: a redirect or a subrequest is no check */

    if (!ctx->counted && ngx_http_apikey_metrics) {
        ngx_http_apikey_metric_add(checks[ctx->result]);
        ngx_http_apikey_metrics_gate(ngx_http_apikey_metrics_now()
                                     - ctx->entered);
    }

    ctx->counted = 1;

    if (res->http_status == 0) {

        if (akcf->hide_header && ctx->header && !ctx->hidden) {
            ctx->hidden = 1;

            if (ngx_http_apikey_hide(r, ctx->header) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            /*
             * a subrequest's headers are a copy of the main request's:
             * with auth_request the main request goes upstream too
             */

            if (r != r->main
                && ngx_http_apikey_hide(r->main, ctx->header) != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return NGX_OK;
    }

    return ngx_http_apikey_refuse(r, ctx);
}


/*
 * Takes the key's header out of the request so that no upstream sees it.
 * The list is rebuilt without it: pointers from r->headers_in into the old
 * parts stay valid, and the key's own header loses its pointer.
 */

static ngx_int_t
ngx_http_apikey_hide(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_uint_t        i;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *e, *n;

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    e = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            e = part->elts;
            i = 0;
        }

        if (&e[i] == h) {
            continue;
        }

        n = ngx_list_push(&r->headers_in.headers);
        if (n == NULL) {
            return NGX_ERROR;
        }

        *n = e[i];
    }

    if (r->headers_in.authorization == h) {
        r->headers_in.authorization = NULL;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_gate_init(ngx_conf_t *cf, ngx_http_apikey_main_conf_t *akmcf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_hide_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_hide_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_subrequest_handler;

    return ngx_http_apikey_redis_add_script(cf, &akmcf->redis,
                                            &ngx_http_apikey_gate_script);
}
