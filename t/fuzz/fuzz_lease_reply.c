
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the leases of apikey_rate_lease (ngx_http_apikey_bucket.c)
 * as the gate drives them, on a real zone.  One key, with a limit and a
 * lease time from the input, is in the replica (with a previous secret in
 * rotation grace); then a sequence of: checks answered by the instance
 * (ngx_http_apikey_local(), online and offline), which ask Redis for a
 * lease or as its siblings; replies to those asks (well formed
 * {code, g, ahead[, n, at]} with any numbers, or any RESP) read by
 * ngx_http_apikey_read_reply() and what ngx_http_apikey_done() does
 * after it; lost replies; changes of the record; refills.
 *
 * Asserted: every result is one of the gate's codes and its rate numbers
 * are sane; a lease asked for is of 2 tokens up to the burst; and the
 * instance, online, never lets through more leased tokens than the
 * replies it accepted granted (the limit stays exact from above).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_redis_conn.h"
#include "fuzz_nginx.h"


#define NGX_HTTP_APIKEY_FUZZ_PENDING  8


typedef struct {
    ngx_pool_t                    *pool;
    ngx_http_request_t            *r;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_conf_t  *ccf;
    ngx_http_apikey_loc_conf_t    *akcf;
    ngx_str_t                      g;
    uint32_t                       burst;
    u_char                         bin[32];   /* the bucket's secret */
    ngx_http_apikey_ctx_t         *pending[NGX_HTTP_APIKEY_FUZZ_PENDING];
    ngx_uint_t                     npending;
    uint64_t                       granted;   /* leased tokens, past own */
    uint64_t                       spent;     /* leased tokens let through */
} ngx_http_apikey_fuzz_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void ngx_http_apikey_fuzz_record(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in);
static void ngx_http_apikey_fuzz_check(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in);
static void ngx_http_apikey_fuzz_answer(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in, ngx_uint_t lost);
static redisReply *ngx_http_apikey_fuzz_made(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in);
static uint32_t ngx_http_apikey_fuzz_u32(ngx_http_apikey_fuzz_in_t *in);


/* the key's current secret and a previous one in grace, as hex */

static u_char  ngx_http_apikey_fuzz_hexes[2][65] = {
    "3333333333333333333333333333333333333333333333333333333333333333",
    "4444444444444444444444444444444444444444444444444444444444444444"
};

static ngx_str_t  ngx_http_apikey_fuzz_numbers[] = {
    ngx_string("0"), ngx_string("1"), ngx_string("999"),
    ngx_string("200000"), ngx_string("1000000"), ngx_string("60000000"),
    ngx_string("1000000000000"), ngx_string("9007199254740992"),
    ngx_string("9007199254740993"), ngx_string("9223372036854775807"),
    ngx_string("-1"), ngx_string("-9223372036854775808")
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_uint_t                    op;
    ngx_http_apikey_fuzz_t        fz;
    ngx_http_apikey_fuzz_in_t     in;
    ngx_http_apikey_main_conf_t  *akmcf;

    ngx_http_apikey_fuzz_init();

    in.pos = data;
    in.last = data + size;

    ngx_memzero(&fz, sizeof(ngx_http_apikey_fuzz_t));

    fz.r = ngx_http_apikey_fuzz_request();
    fz.pool = fz.r->pool;
    fz.akcf = ngx_http_apikey_fuzz_loc_conf(fz.pool);

    akmcf = ngx_http_get_module_main_conf(fz.r, ngx_http_apikey_module);
    fz.ccf = &akmcf->cache;

    fz.ccf->max_stale = 600000;
    fz.ccf->timeout = 100;
    fz.ccf->lease = 100 + 100 * (ngx_http_apikey_fuzz_byte(&in) % 50);

    fz.cache = ngx_http_apikey_fuzz_zone(fz.pool, fz.ccf, 16 * ngx_pagesize);

    if (ngx_http_apikey_cache_unhex(fz.bin, ngx_http_apikey_fuzz_hexes[0], 64)
        != NGX_OK)
    {
        abort();
    }

    ngx_http_apikey_cache_begin_load(fz.cache);
    ngx_http_apikey_fuzz_record(&fz, &in);
    ngx_http_apikey_cache_end_load(fz.cache, (u_char *) "0-1", 3,
                                   &ngx_http_apikey_fuzz_log);

    while (in.pos < in.last) {

        /* the replica follows Redis */

        fz.cache->sh->synced = ngx_http_apikey_cache_msec();

        op = ngx_http_apikey_fuzz_byte(&in);

        switch (op % 8) {

        case 0:
        case 1:
        case 2:
            ngx_http_apikey_fuzz_check(&fz, &in);
            break;

        case 3:
        case 4:
            ngx_http_apikey_fuzz_answer(&fz, &in, 0);
            break;

        case 5:
            ngx_http_apikey_fuzz_answer(&fz, &in, 1);
            break;

        case 6:
            ngx_http_apikey_fuzz_record(&fz, &in);
            break;

        default:
            ngx_http_apikey_bucket_refill(fz.ccf, fz.bin);
            break;
        }

        if (fz.spent > fz.granted) {
            abort();
        }
    }

    ngx_http_apikey_fuzz_zone_free(fz.ccf);
    ngx_destroy_pool(fz.pool);

    return 0;
}


/* the key's record as Redis has it now: its limit from the input */

static void
ngx_http_apikey_fuzz_record(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in)
{
    u_char      *p;
    uint32_t     rate, per, burst;
    ngx_str_t    hex, c, none;
    ngx_uint_t   b;

    b = ngx_http_apikey_fuzz_byte(in);

    rate = 1 + (ngx_http_apikey_fuzz_byte(in) << 8)
           + ngx_http_apikey_fuzz_byte(in);
    rate = (b & 1) ? rate * 15 : rate % 64;
    per = (b & 2) ? 60 : 1;
    burst = 1 + ((ngx_http_apikey_fuzz_byte(in) << 8)
                 + ngx_http_apikey_fuzz_byte(in)) % ((b & 4) ? 65536 : 32);

    if (b & 8) {

        /* any limit the replica takes: no key has it, a server may */

        per = ngx_http_apikey_fuzz_u32(in);
        burst = ngx_http_apikey_fuzz_u32(in);
    }

    p = ngx_pnalloc(fz->pool, 128);
    if (p == NULL) {
        abort();
    }

    fz->g.data = p;
    fz->g.len = ngx_sprintf(p, "0 0 0 %uD %uD %uD production a:b\n"
                               "id\norg\npre\nname", rate, per, burst)
                - p;
    fz->burst = burst;

    hex.data = ngx_http_apikey_fuzz_hexes[0];
    hex.len = 64;
    none.len = 0;

    (void) ngx_http_apikey_cache_apply(fz->cache, &hex, &fz->g, &none,
                                       UINT64_MAX, 0);

    hex.data = ngx_http_apikey_fuzz_hexes[1];
    c.data = ngx_http_apikey_fuzz_hexes[0];
    c.len = 64;

    (void) ngx_http_apikey_cache_apply(fz->cache, &hex, &fz->g, &c,
                                       UINT64_MAX, 0);
}


/* a request's check, which the instance answers or leaves to Redis */

static void
ngx_http_apikey_fuzz_check(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in)
{
    ngx_int_t               rc;
    ngx_uint_t              b, offline;
    ngx_http_apikey_ctx_t  *ctx;

    b = ngx_http_apikey_fuzz_byte(in);
    offline = (b & 2);

    ctx = ngx_pcalloc(fz->pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = fz->r;
    ctx->conf = fz->akcf;
    ctx->burst = -1;
    ctx->hash = ngx_http_apikey_fuzz_hexes[b & 1];

    if (ngx_http_apikey_cache_unhex(ctx->bin, ctx->hash, 64) != NGX_OK) {
        abort();
    }

    rc = ngx_http_apikey_local(fz->r, ctx, offline);

    if (rc == NGX_OK) {
        ngx_http_apikey_fuzz_sane(ctx);

        /* online, only a leased token lets a check with a limit through */

        if (!offline && ctx->result == NGX_HTTP_APIKEY_OK && ctx->rate > 0) {
            fz->spent++;
        }

        return;
    }

    if (rc != NGX_DECLINED) {
        abort();
    }

    if (ctx->lease.want
        && (ctx->lease.want < 2 || ctx->lease.want > fz->burst
            || ctx->lease.sibling))
    {
        abort();
    }

    if (offline) {
        return;     /* the fail mode answers */
    }

    if (fz->npending == NGX_HTTP_APIKEY_FUZZ_PENDING) {

        /* the oldest asks no more: its reply was lost */

        fz->npending--;
        (void) ngx_http_apikey_read_reply(fz->r, fz->pending[0], NULL);
        ngx_memmove(&fz->pending[0], &fz->pending[1],
                    fz->npending * sizeof(ngx_http_apikey_ctx_t *));
    }

    fz->pending[fz->npending++] = ctx;
}


/* Redis's reply to a check that asked (or none: the reply was lost) */

static void
ngx_http_apikey_fuzz_answer(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in, ngx_uint_t lost)
{
    ngx_int_t               rc;
    ngx_uint_t              i, code;
    redisReply             *reply;
    ngx_http_apikey_ctx_t  *ctx;

    if (fz->npending == 0) {
        return;
    }

    i = ngx_http_apikey_fuzz_byte(in) % fz->npending;
    ctx = fz->pending[i];

    fz->npending--;
    ngx_memmove(&fz->pending[i], &fz->pending[i + 1],
                (fz->npending - i) * sizeof(ngx_http_apikey_ctx_t *));

    reply = lost ? NULL : ngx_http_apikey_fuzz_made(fz, in);

    code = (reply != NULL && reply->type == REDIS_REPLY_ARRAY
            && reply->elements && reply->element[0]->type
                                  == REDIS_REPLY_INTEGER)
           ? (ngx_uint_t) reply->element[0]->integer : (ngx_uint_t) -1;

    rc = ngx_http_apikey_read_reply(fz->r, ctx, reply);

    ngx_http_apikey_redis_reply_free(reply);

    if (rc != NGX_OK) {
        abort();
    }

    if (ctx->leased > ctx->lease.want) {
        abort();
    }

    if (ctx->leased > 1) {
        fz->granted += ctx->leased - 1;
    }

    if (code == NGX_HTTP_APIKEY_LIMITED && ctx->result == NGX_HTTP_APIKEY_OK) {

        /* a sibling that Redis refused, let through with a leased token */

        fz->spent++;
    }

    ngx_http_apikey_fuzz_sane(ctx);

    /* then as ngx_http_apikey_done(): once more, or the instance answers */

    if (ctx->resend) {
        ctx->resend = 0;

        if (fz->npending < NGX_HTTP_APIKEY_FUZZ_PENDING) {
            fz->pending[fz->npending++] = ctx;
        }

        return;
    }

    if (ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE) {
        rc = ngx_http_apikey_local(fz->r, ctx, 1);

        if (rc == NGX_ERROR) {
            abort();
        }

        if (rc == NGX_OK) {
            ngx_http_apikey_fuzz_sane(ctx);
        }
    }
}


/*
 * A reply: {code, g, ahead, n, at} cut to 1 to 5 elements, with numbers
 * in and out of range, the key's g or bytes of the input; or any RESP
 */

static redisReply *
ngx_http_apikey_fuzz_made(ngx_http_apikey_fuzz_t *fz,
    ngx_http_apikey_fuzz_in_t *in)
{
    u_char                     *p, *buf;
    ngx_str_t                   g, *ahead, *at;
    ngx_uint_t                  b, n, elements, code;
    ngx_http_apikey_fuzz_in_t   made;

    b = ngx_http_apikey_fuzz_byte(in);

    if (b & 0x80) {
        return ngx_http_apikey_fuzz_reply(in);
    }

    code = b % 8;
    elements = 1 + (b >> 3) % 5;

    ahead = &ngx_http_apikey_fuzz_numbers[ngx_http_apikey_fuzz_byte(in) % 12];
    n = ngx_http_apikey_fuzz_byte(in);
    at = &ngx_http_apikey_fuzz_numbers[ngx_http_apikey_fuzz_byte(in) % 12];

    g = (b & 0x40) ? ngx_http_apikey_fuzz_bytes(in,
                                          ngx_http_apikey_fuzz_byte(in) % 64)
                   : fz->g;

    buf = ngx_pnalloc(fz->pool, g.len + 5 * (NGX_INT64_LEN + 8));
    if (buf == NULL) {
        abort();
    }

    p = ngx_sprintf(buf, "*%ui\r\n:%ui\r\n", elements, code);

    if (elements > 1) {
        p = ngx_sprintf(p, "$%uz\r\n%V\r\n", g.len, &g);
    }

    if (elements > 2) {
        p = ngx_sprintf(p, ":%V\r\n", ahead);
    }

    if (elements > 3) {
        p = ngx_sprintf(p, ":%ui\r\n", n);
    }

    if (elements > 4) {
        p = ngx_sprintf(p, ":%V\r\n", at);
    }

    made.pos = buf;
    made.last = p;

    return ngx_http_apikey_fuzz_reply(&made);
}


static uint32_t
ngx_http_apikey_fuzz_u32(ngx_http_apikey_fuzz_in_t *in)
{
    uint32_t    n;
    ngx_uint_t  i;

    n = 0;

    for (i = 0; i < 4; i++) {
        n = (n << 8) | ngx_http_apikey_fuzz_byte(in);
    }

    return n;
}
