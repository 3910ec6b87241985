
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the gatekeeper's reading of a gate script reply.  The
 * bytes are RESP, as Redis would send them, turned into a reply by the
 * module's capped reader, then read by ngx_http_apikey_read_reply() for a
 * check that asked for a lease of 100 tokens.  Whatever the reply, the
 * result must be one of the gate's codes, the rate numbers sane, and the
 * strings the check took from the reply must lie within the request's
 * copy of it: they are read after the reply is freed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_redis_conn.h"
#include "fuzz_nginx.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void ngx_http_apikey_fuzz_within(ngx_str_t *s, u_char *g, size_t len,
    redisReply *e);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *g;
    size_t                        glen;
    ngx_uint_t                    i, n;
    redisReply                   *reply, *e;
    ngx_pool_t                   *pool;
    ngx_http_request_t           *r;
    ngx_http_apikey_ctx_t        *ctx;
    ngx_http_apikey_fuzz_in_t     in;
    ngx_http_apikey_loc_conf_t   *akcf;
    ngx_str_t                    *strs[7];

    ngx_http_apikey_fuzz_init();

    in.pos = data;
    in.last = data + size;

    reply = ngx_http_apikey_fuzz_reply(&in);
    if (reply == NULL) {
        return 0;
    }

    r = ngx_http_apikey_fuzz_request();
    pool = r->pool;

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    akcf = ngx_http_apikey_fuzz_loc_conf(pool);

    ctx->request = r;
    ctx->conf = akcf;
    ctx->burst = -1;

    /* a check that asked for a lease: replies of five elements too */

    ctx->lease.want = 100;

    /* the g the reply carries, as it was, and where the reply holds it */

    e = (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2
         && reply->element[1]->type == REDIS_REPLY_STRING)
        ? reply->element[1] : NULL;

    glen = e ? e->len : 0;
    g = ngx_pnalloc(pool, glen + 1);
    if (g == NULL) {
        abort();
    }

    if (e) {
        ngx_memcpy(g, e->str, glen);
    }

    if (ngx_http_apikey_read_reply(r, ctx, reply) != NGX_OK) {
        abort();    /* only an allocation failure may stop it */
    }

    strs[0] = &ctx->id;
    strs[1] = &ctx->org;
    strs[2] = &ctx->prefix;
    strs[3] = &ctx->name;
    strs[4] = &ctx->environment;
    strs[5] = &ctx->scopes;
    strs[6] = &ctx->meta;

    /* a key without meta has the constant {} */

    n = 7;

    if (ctx->meta.len == 2 && ngx_strncmp(ctx->meta.data, "{}", 2) == 0) {
        n = 6;
    }

    for (i = 0; i < n; i++) {
        ngx_http_apikey_fuzz_within(strs[i], g, glen, e);
    }

    ngx_http_apikey_redis_reply_free(reply);

    /* read after the reply is gone: AddressSanitizer sees a stray one */

    for (i = 0; i < n; i++) {
        if (strs[i]->len
            && memmem(g, glen, strs[i]->data, strs[i]->len) == NULL)
        {
            abort();
        }
    }

    if (ctx->leased > ctx->lease.want) {
        abort();
    }

    ngx_http_apikey_fuzz_sane(ctx);

    ngx_destroy_pool(pool);

    return 0;
}


/* a string the check took: none, or in the copy, never in the reply */

static void
ngx_http_apikey_fuzz_within(ngx_str_t *s, u_char *g, size_t len,
    redisReply *e)
{
    if (s->len == 0) {
        return;
    }

    if (e != NULL
        && s->data >= (u_char *) e->str && s->data <= (u_char *) e->str + len)
    {
        abort();
    }

    if (s->len > len) {
        abort();
    }
}
