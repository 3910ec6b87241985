
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the gatekeeper's reading of a gate script reply.  The
 * bytes are RESP, as Redis would send them, turned into a reply by
 * hiredis's own reader, then read as ngx_http_apikey_done() reads one.
 * Whatever the reply, the result must be one of the gate's codes, and the
 * strings it took from the reply must lie within the request's copy.
 */


#include "ngx_http_apikey_gate.c"

#include <hiredis/read.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static int ngx_http_apikey_fuzz_huge(const uint8_t *data, size_t size);


static ngx_log_t  ngx_http_apikey_fuzz_log;


/*
 * an array or bulk header over 1 MiB (or 1M elements) anywhere: hiredis
 * finds headers after a bulk's payload too, not only after a newline
 */

static int
ngx_http_apikey_fuzz_huge(const uint8_t *data, size_t size)
{
    size_t    i;
    uint64_t  n;

    for (i = 0; i < size; i++) {

        if (data[i] != '*' && data[i] != '$') {
            continue;
        }

        for (n = 0, i++; i < size && data[i] >= '0' && data[i] <= '9'; i++) {
            n = n * 10 + (data[i] - '0');

            if (n > 1024 * 1024) {
                return 1;
            }
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                        *reply;
    redisReader                 *reader;
    ngx_pool_t                  *pool;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *akcf;

    /*
     * hiredis allocates what an array or string header announces before
     * the data comes: headers beyond what Redis could send for a batch
     * are not the module's concern
     */

    if (ngx_http_apikey_fuzz_huge(data, size)) {
        return 0;
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        return 0;
    }

    reply = NULL;

    if (redisReaderFeed(reader, (const char *) data, size) != REDIS_OK
        || redisReaderGetReply(reader, &reply) != REDIS_OK
        || reply == NULL)
    {
        redisReaderFree(reader);
        return 0;
    }

    pool = ngx_create_pool(4096, &ngx_http_apikey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    ctx = ngx_pcalloc(pool, sizeof(ngx_http_apikey_ctx_t));
    akcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_loc_conf_t));

    if (r == NULL || c == NULL || ctx == NULL || akcf == NULL) {
        abort();
    }

    c->log = &ngx_http_apikey_fuzz_log;
    r->connection = c;
    r->pool = pool;

    ctx->request = r;
    ctx->conf = akcf;
    ctx->burst = -1;

    /* a check that asked for a lease: replies of three and four elements */

    ctx->lease.want = 100;

    if (ngx_http_apikey_read_reply(r, ctx, reply) != NGX_OK) {
        abort();    /* only an allocation failure may stop it */
    }

    if (ctx->result > NGX_HTTP_APIKEY_UNAVAILABLE
        || (ctx->burst >= 0 && (ctx->remaining < 0 || ctx->next < 0)))
    {
        abort();
    }

    freeReplyObject(reply);
    redisReaderFree(reader);
    ngx_destroy_pool(pool);

    return 0;
}
