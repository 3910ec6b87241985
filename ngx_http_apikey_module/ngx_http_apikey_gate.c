
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
static ngx_int_t ngx_http_apikey_check(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_uint_t ngx_http_apikey_preflight(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_apikey_header_in(ngx_http_request_t *r,
    ngx_str_t *name, ngx_uint_t *n);
static ngx_int_t ngx_http_apikey_find_key(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_send(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static void ngx_http_apikey_done(void *data, redisReply *reply);
static ngx_uint_t ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope,
    size_t len);
static ngx_int_t ngx_http_apikey_decide(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_hide(ngx_http_request_t *r,
    ngx_table_elt_t *h);
static void ngx_http_apikey_cleanup(void *data);


static ngx_http_apikey_script_t  ngx_http_apikey_gate_script = {
    ngx_string("gate"),
    { sizeof(ngx_http_apikey_gate_lua) - 1, ngx_http_apikey_gate_lua },
    { 0 }
};


static ngx_int_t
ngx_http_apikey_handler(ngx_http_request_t *r)
{
    ngx_http_cleanup_t          *cln;
    ngx_http_apikey_ctx_t       *ctx, *mctx;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!akcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx != NULL) {

        /* resumed after the reply, or after an internal redirect */

        if (ctx->state == NGX_HTTP_APIKEY_PENDING) {
            return NGX_AGAIN;
        }

        if (ctx->conf != akcf) {
            ngx_http_apikey_recheck(ctx, akcf);
        }

        return ngx_http_apikey_decide(r, ctx);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ctx->item = NULL;
     *     ctx->header = NULL;
     *     ctx->id = { 0, NULL };  (and the other strings)
     *     ctx->hidden = 0;
     *     ctx->rate_sent = 0;
     */

    ctx->request = r;
    ctx->conf = akcf;
    ctx->burst = -1;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_apikey_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);

    if (r != r->main) {
        mctx = ngx_http_apikey_get_ctx(r->main);

        if (mctx != NULL && mctx->state == NGX_HTTP_APIKEY_DONE) {

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
        ctx->result = NGX_HTTP_APIKEY_PREFLIGHT;
        return ngx_http_apikey_decide(r, ctx);
    }

    return ngx_http_apikey_check(r, ctx);
}


/* sends the check of the request's key to Redis, or decides without it */

static ngx_int_t
ngx_http_apikey_check(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     key, args[1];
    ngx_http_apikey_main_conf_t  *akmcf;

    ctx->result = ngx_http_apikey_find_key(r, ctx, &key);

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return ngx_http_apikey_decide(r, ctx);
    }

    if (!ngx_http_apikey_key_valid(key.data, key.len)) {
        ctx->result = NGX_HTTP_APIKEY_INVALID;
        return ngx_http_apikey_decide(r, ctx);
    }

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    /* NS{<hash>}: only the hash of the key ever leaves nginx */

    args[0].len = akmcf->redis.ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;
    args[0].data = ngx_pnalloc(r->pool, args[0].len);
    if (args[0].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(args[0].data, akmcf->redis.ns.data, akmcf->redis.ns.len);
    *p++ = '{';

    if (ngx_http_apikey_sha256(ctx->bin, p, key.data, key.len) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "SHA-256 failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p[NGX_HTTP_APIKEY_HASH_LEN] = '}';

    if (akmcf->cache.shm_zone != NULL) {
        ctx->hash = p;

        rc = ngx_http_apikey_local(r, ctx, 0);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_OK) {
            return ngx_http_apikey_decide(r, ctx);
        }

        ctx->start = ngx_http_apikey_cache_now();
    }

    rc = ngx_http_apikey_send(r, ctx, &args[0]);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {

        /* Redis is known down: the replica answers for max_stale */

        if (ctx->lease.want) {
            ngx_http_apikey_lease_grant(&akmcf->cache, ctx->bin,
                                        &ctx->lease, 0);
        }

        if (ctx->hash == NULL
            || (rc = ngx_http_apikey_local(r, ctx, 1)) == NGX_DECLINED)
        {
            ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;

        } else if (rc == NGX_ERROR) {
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


/* the request's check, to Redis: key is NS{<hash>} */

static ngx_int_t
ngx_http_apikey_send(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_str_t                     args[4];
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    args[0] = *key;
    args[1] = ctx->conf->environment;
    args[2] = ctx->conf->scopes;
    args[3].len = 0;

    if (ctx->lease.want || ctx->lease.sibling) {
        args[3].data = ngx_pnalloc(r->pool, 5 * NGX_INT32_LEN + 4);
        if (args[3].data == NULL) {
            return NGX_ERROR;
        }

        args[3].len = ngx_sprintf(args[3].data, "%uD %uD %uD/%uD/%uD",
                                  ctx->lease.want, ctx->lease.back,
                                  ctx->lease.rate, ctx->lease.per,
                                  ctx->lease.burst)
                      - args[3].data;
    }

    return ngx_http_apikey_redis_batch(&ngx_http_apikey_gate_script, 4, args,
                                       akmcf->redis.timeout,
                                       ngx_http_apikey_done, ctx, &ctx->item);
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


/* the last request header of a lowercase name, and how many there are */

static ngx_table_elt_t *
ngx_http_apikey_header_in(ngx_http_request_t *r, ngx_str_t *name,
    ngx_uint_t *n)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    *n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncmp(h[i].lowcase_key, name->data, name->len) == 0)
        {
            found = &h[i];
            (*n)++;
        }
    }

    return found;
}


static ngx_int_t
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
    ngx_str_t                     key;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_apikey_main_conf_t  *akmcf;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ctx->item = NULL;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    rc = ngx_http_apikey_read_reply(r, ctx, reply);

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (ctx->lease.want) {
        ngx_http_apikey_lease_grant(&akmcf->cache, ctx->bin, &ctx->lease,
                                    ctx->leased);
    }

    if (rc == NGX_OK && ctx->resend) {
        ctx->resend = 0;

        /*
         * a sibling found the bucket empty while the lease that emptied
         * it was not granted yet, at another worker: once more, with the
         * time that takes
         */

        key.len = akmcf->redis.ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;
        key.data = ctx->hash - akmcf->redis.ns.len - 1;

        rc = ngx_http_apikey_send(r, ctx, &key);

        if (rc == NGX_OK) {
            ctx->state = NGX_HTTP_APIKEY_PENDING;
            return;
        }

        rc = NGX_OK;
        ngx_http_apikey_tally_add(ctx->hash, NGX_HTTP_APIKEY_TALLY_LIMITED);
    }

    if (rc != NGX_OK
        || (ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE && ctx->hash != NULL
            && ngx_http_apikey_local(r, ctx, 1) == NGX_ERROR))
    {
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
    if (akmcf->cache.shm_zone == NULL) {
        return NGX_OK;
    }

    if (ngx_http_apikey_tally_init(cycle, &akmcf->redis,
                                   &ngx_http_apikey_gate_script)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_lease_init_worker(cycle, &akmcf->cache);
}


/*
 * After an internal redirect the key is not checked again, but the new
 * location may ask for another environment or more scopes: hold the key
 * to them with what the first check learnt.
 */

void
ngx_http_apikey_recheck(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *akcf)
{
    u_char  *p, *last, *q;

    ctx->conf = akcf;

    if (ctx->result == NGX_HTTP_APIKEY_UNVERIFIED
        && akcf->fail_mode == NGX_HTTP_APIKEY_FAIL_CLOSED)
    {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return;
    }

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return;
    }

    if (akcf->environment.len
        && (akcf->environment.len != ctx->environment.len
            || ngx_strncmp(akcf->environment.data, ctx->environment.data,
                           akcf->environment.len)
               != 0))
    {
        ctx->result = NGX_HTTP_APIKEY_ENVIRONMENT;
        return;
    }

    p = akcf->scopes.data;
    last = p + akcf->scopes.len;

    while (p < last) {
        if (*p == ' ') {
            p++;
            continue;
        }

        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if (!ngx_http_apikey_has_scope(&ctx->scopes, p, q - p)) {
            ctx->result = NGX_HTTP_APIKEY_SCOPE;
            return;
        }

        p = q;
    }
}


static ngx_uint_t
ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope, size_t len)
{
    u_char  *p, *last, *q;

    if (scopes->len == 0) {
        return 0;
    }

    p = scopes->data;
    last = p + scopes->len;

    while (p < last) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if ((size_t) (q - p) == len && ngx_strncmp(p, scope, len) == 0) {
            return 1;
        }

        p = q + 1;
    }

    return 0;
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

    if (!ctx->counted) {
        ctx->counted = 1;
        ngx_http_apikey_metric_add(checks[ctx->result]);
    }

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


ngx_http_apikey_ctx_t *
ngx_http_apikey_get_ctx(ngx_http_request_t *r)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx != NULL) {
        return ctx;
    }

    /*
     * an internal redirect clears module contexts, but the check was made
     * and paid for: find it again through the request cleanup
     */

    for (cln = r->main->cleanup; cln; cln = cln->next) {
        if (cln->handler != ngx_http_apikey_cleanup) {
            continue;
        }

        /* cleanups are the main request's, subrequests' ones too */

        ctx = cln->data;

        if (ctx->request == r) {
            ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_apikey_cleanup(void *data)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    if (ctx->item) {
        ngx_http_apikey_redis_batch_detach(ctx->item);
        ctx->item = NULL;
    }
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

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_subrequest_handler;

    return ngx_http_apikey_redis_add_script(cf, &akmcf->redis,
                                            &ngx_http_apikey_gate_script);
}
