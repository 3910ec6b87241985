
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_tally.h"


/*
 * What a check's answer says, from wherever it comes: the gate script's
 * reply (ngx_http_apikey_gate.lua), the replica of apikey_cache, a lease
 * of apikey_rate_lease; and the rate numbers of the headers.
 */


static void ngx_http_apikey_sibling(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_cache_conf_t *ccf);
static ngx_int_t ngx_http_apikey_parse_gate(ngx_http_apikey_ctx_t *ctx,
    u_char *data, size_t len);
static ngx_int_t ngx_http_apikey_seconds(double us);


ngx_int_t
ngx_http_apikey_read_reply(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    redisReply *reply)
{
    u_char                       *p;
    double                        held;
    int64_t                       ahead;
    redisReply                  **e;
    ngx_http_apikey_main_conf_t  *akmcf;

    if (reply == NULL) {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return NGX_OK;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redis gate script failed: %*s",
                      (size_t) reply->len, reply->str);
        ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_REPLY]);
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return NGX_OK;
    }

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1 || reply->elements > 4
        || e[0]->type != REDIS_REPLY_INTEGER
        || e[0]->integer < NGX_HTTP_APIKEY_OK
        || e[0]->integer > NGX_HTTP_APIKEY_LIMITED)
    {
        goto unexpected;
    }

    ctx->result = (ngx_uint_t) e[0]->integer;

    if (reply->elements == 1) {
        if (ctx->result != NGX_HTTP_APIKEY_INVALID) {
            goto unexpected;
        }

        return NGX_OK;
    }

    if (e[1]->type != REDIS_REPLY_STRING
        || (reply->elements >= 3 && e[2]->type != REDIS_REPLY_INTEGER)
        || (reply->elements == 4
            && (e[3]->type != REDIS_REPLY_INTEGER || e[3]->integer < 1
                || e[3]->integer > (long long) ctx->lease.want)))
    {
        goto unexpected;
    }

    /* the identity is kept for variables and logs: out of hiredis's reply */

    p = ngx_pnalloc(r->pool, e[1]->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, e[1]->str, e[1]->len);

    if (ngx_http_apikey_parse_gate(ctx, p, e[1]->len) != NGX_OK) {
        goto unexpected;
    }

    if (reply->elements >= 3) {
        ahead = e[2]->integer;

        if (reply->elements == 4) {
            ctx->leased = (ngx_uint_t) e[3]->integer;
        }

        if (ctx->leased > 1 && ctx->rate > 0) {

            /* the tokens leased past this request's count as the bucket's */

            held = (ctx->leased - 1) * (double) ctx->per * 1000000
                   / ctx->rate;

            ahead = (held < (double) ahead) ? ahead - (int64_t) held : 0;
        }

        ngx_http_apikey_bucket(ctx, ahead);

        if (ctx->hash != NULL) {
            akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);
            ngx_http_apikey_cache_note(&akmcf->cache, ctx->bin,
                                       ctx->start + e[2]->integer);

            if (ctx->lease.sibling
                && ctx->result == NGX_HTTP_APIKEY_LIMITED)
            {
                ngx_http_apikey_sibling(ctx, &akmcf->cache);
            }
        }
    }

    return NGX_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "unexpected reply of the redis gate script");
    ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_REPLY]);

    ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;

    return NGX_OK;
}


/*
 * A check sent while its instance asked for the key's lease found the
 * bucket empty, maybe emptied by that lease: it passes with a token of
 * the lease if the instance has one by now.  Redis counted nothing of it
 * (ngx_http_apikey_gate.lua): the lease or the tally counts what it is
 * answered.
 */

static void
ngx_http_apikey_sibling(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_cache_conf_t *ccf)
{
    int64_t    ahead;
    ngx_int_t  rc;

    rc = ngx_http_apikey_lease_take(ccf, ctx->bin, &ahead);

    if (rc == NGX_OK) {

        /* counted with the lease */

        ctx->result = NGX_HTTP_APIKEY_OK;
        ctx->retry_after = 0;
        ngx_http_apikey_bucket(ctx, ahead);
        return;
    }

    if (rc == NGX_AGAIN && !ctx->resent) {
        ctx->resend = 1;
        ctx->resent = 1;
        return;
    }

    ngx_http_apikey_tally_add(ctx->hash, NGX_HTTP_APIKEY_TALLY_LIMITED);
}


/*
 * The replica's answer (apikey_cache), as the gate script would give it:
 * NGX_OK with ctx->result and what the script would have told, or
 * NGX_DECLINED, ctx untouched, when Redis must answer.  Online it
 * answers everything but a key whose bucket may hold a token; offline,
 * with Redis unreachable, everything, from the instance's own buckets.
 * What Redis would have recorded of the check (use, last use) goes to the
 * worker's tally.
 */

ngx_int_t
ngx_http_apikey_local(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    ngx_uint_t offline)
{
    int64_t                       ahead, leased;
    ngx_int_t                     rc;
    ngx_str_t                     g;
    ngx_uint_t                    result, limited, counted;
    ngx_http_apikey_ctx_t         local;
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    rc = ngx_http_apikey_cache_find(&akmcf->cache, r->pool, ctx->bin,
                                    offline, &result, &g, &leased);
    if (rc != NGX_OK) {
        return rc;
    }

    if (result == NGX_HTTP_APIKEY_INVALID) {
        ctx->result = result;
        ngx_http_apikey_metric_add(replica_hits);
        return NGX_OK;
    }

    local = *ctx;

    /* g is the replica's copy, in the request's pool */

    if (ngx_http_apikey_parse_gate(&local, g.data, g.len) != NGX_OK) {
        rc = NGX_DECLINED;
        goto unspend;
    }

    local.result = result;
    counted = 0;

    /* the environment and the scopes, as after a redirect */

    ngx_http_apikey_recheck(&local, local.conf);

    if (local.result == NGX_HTTP_APIKEY_OK && local.rate > 0) {

        if (leased >= 0) {

            /* find() took a token of the instance's lease */

            ahead = leased;
            leased = -1;
            counted = 1;

        } else {
            rc = ngx_http_apikey_cache_take(&akmcf->cache, ctx->bin, offline,
                                            &limited, &ahead, &ctx->lease);
            if (rc != NGX_OK) {
                return rc;
            }

            if (limited) {
                local.result = NGX_HTTP_APIKEY_LIMITED;
            }

            counted = ctx->lease.spent;
        }

        ngx_http_apikey_bucket(&local, ahead);
    }

    if (leased >= 0) {
        ngx_http_apikey_lease_unspend(&akmcf->cache, ctx->bin);
    }

    *ctx = local;

    ngx_http_apikey_metric_add(replica_hits);

    if (counted) {

        /* a leased token: the lease counts it */

        return NGX_OK;
    }

    /* what the gate script would have recorded: use, last use */

    ngx_http_apikey_tally_add(ctx->hash,
                              (ctx->result == NGX_HTTP_APIKEY_OK)
                              ? NGX_HTTP_APIKEY_TALLY_ALLOWED
                              : (ctx->result == NGX_HTTP_APIKEY_LIMITED)
                                ? NGX_HTTP_APIKEY_TALLY_LIMITED
                                : NGX_HTTP_APIKEY_TALLY_REFUSED);

    return NGX_OK;

unspend:

    if (leased >= 0) {
        ngx_http_apikey_lease_unspend(&akmcf->cache, ctx->bin);
    }

    return rc;
}


/*
 * The secret's "g" field (docs/data-model.md): a line of check values
 * ending with the environment and the scopes, then id, org, prefix and
 * name, one per line; parsed in place (ctx points into data, which must
 * live as long as the request).
 */

static ngx_int_t
ngx_http_apikey_parse_gate(ngx_http_apikey_ctx_t *ctx, u_char *data,
    size_t len)
{
    u_char      *p, *last, *q;
    ngx_int_t    n[3];
    ngx_str_t   *lines[4];
    ngx_uint_t   i;

    lines[0] = &ctx->id;
    lines[1] = &ctx->org;
    lines[2] = &ctx->prefix;
    lines[3] = &ctx->name;

    p = data;
    last = p + len;

    /* rev exp grace rate per burst: nginx needs the last three */

    for (i = 0; i < 6; i++) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            return NGX_DECLINED;
        }

        if (i >= 3) {
            n[i - 3] = ngx_atoi(p, q - p);
            if (n[i - 3] == NGX_ERROR) {
                return NGX_DECLINED;
            }
        }

        p = q + 1;
    }

    ctx->rate = n[0];
    ctx->per = n[1];
    ctx->burst_size = n[2];

    q = ngx_strlchr(p, last, '\n');
    if (q == NULL) {
        return NGX_DECLINED;
    }

    ctx->environment.data = p;

    p = ngx_strlchr(p, q, ' ');

    if (p == NULL) {
        ctx->environment.len = q - ctx->environment.data;

    } else {
        ctx->environment.len = p - ctx->environment.data;
        ctx->scopes.data = p + 1;
        ctx->scopes.len = q - p - 1;
    }

    for (i = 0; i < 4; i++) {
        p = q + 1;

        if (p > last) {
            return NGX_DECLINED;
        }

        q = (i < 3) ? ngx_strlchr(p, last, '\n') : last;
        if (q == NULL) {
            return NGX_DECLINED;
        }

        lines[i]->data = p;
        lines[i]->len = q - p;
    }

    return NGX_OK;
}


/*
 * The rate headers from the key's limit and how far (microseconds) the
 * bucket's theoretical arrival time is ahead of now: the bucket holds
 * burst - ahead / step tokens (docs/data-model.md).
 */

void
ngx_http_apikey_bucket(ngx_http_apikey_ctx_t *ctx, int64_t ahead)
{
    double  step, tokens;

    if (ctx->rate <= 0 || ctx->per <= 0 || ctx->burst_size <= 0) {
        return;
    }

    if (ahead < 0) {
        ahead = 0;
    }

    step = (double) ctx->per * 1000000 / ctx->rate;
    tokens = ctx->burst_size - ahead / step;

    ctx->burst = ctx->burst_size;
    ctx->remaining = (tokens > 0) ? (ngx_int_t) (tokens + 0.001) : 0;
    ctx->reset = (ngx_int_t) ((ahead + 999999) / 1000000);
    ctx->window = ngx_http_apikey_seconds(ctx->burst_size * step);

    /* one more token once ahead has come down to burst - remaining - 1 */

    ctx->next = (ctx->remaining < ctx->burst_size)
                ? ngx_http_apikey_seconds(
                      ahead - (ctx->burst_size - ctx->remaining - 1) * step)
                : 0;

    if (ctx->result == NGX_HTTP_APIKEY_LIMITED) {
        if (ctx->next < 1) {
            ctx->next = 1;
        }

        ctx->retry_after = ctx->next;
    }
}


/* whole seconds, rounded up, of a non-negative number of microseconds */

static ngx_int_t
ngx_http_apikey_seconds(double us)
{
    ngx_int_t  s;

    us = us / 1000000 - 1e-9;

    if (us <= 0) {
        return 0;
    }

    s = (ngx_int_t) us;

    return (s < us) ? s + 1 : s;
}
