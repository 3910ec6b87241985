
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the module's capped RESP reader
 * (ngx_http_apikey_redis_reader.c) on any bytes, fed in chunks of any
 * size, as a connection feeds what each read brings.  The first byte
 * picks the budget of a reply (the connection's 64 MB, or a small one so
 * that the refusals are reached), the second the chunk sizes.  Each
 * reply that comes out must hold no more than its caps and its budget,
 * and exactly what was charged to the budget; while a reply is being
 * read, what the process holds may not outgrow what was charged plus the
 * reader's copy of the input; server text escaped for a log must be one
 * printable line; everything is freed (LeakSanitizer checks each input).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <sanitizer/allocator_interface.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_conn.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static size_t ngx_http_apikey_fuzz_check(redisReply *rr, ngx_uint_t depth);


static const size_t  ngx_http_apikey_fuzz_caps[] = {
    NGX_HTTP_APIKEY_REDIS_REPLY_MAX,
    64,
    512,
    4096
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void         *reply;
    size_t        cap, budget, chunk, fed, base, used;
    ngx_uint_t    seed;
    redisReader  *reader;

    if (size < 2) {
        return 0;
    }

    cap = ngx_http_apikey_fuzz_caps[data[0] % 4];
    seed = data[1];
    data += 2;
    size -= 2;

    base = __sanitizer_get_current_allocated_bytes();

    budget = cap;

    reader = ngx_http_apikey_redis_reader_create(&budget);
    if (reader == NULL) {
        abort();
    }

    for (fed = 0; fed < size; fed += chunk) {

        /* 1 to 64 bytes, or the rest */

        chunk = (seed & 0x40) ? size - fed : (seed & 0x3f) + 1;
        chunk = ngx_min(chunk, size - fed);
        seed = seed * 33 + 7;

        if (redisReaderFeed(reader, (const char *) data + fed, chunk)
            != REDIS_OK)
        {
            abort();    /* only a failed allocation */
        }

        for ( ;; ) {
            if (redisReaderGetReply(reader, &reply) != REDIS_OK) {

                /* a reply over its caps, or no RESP: the connection closes */

                goto done;
            }

            if (reply == NULL) {
                break;
            }

            used = ngx_http_apikey_fuzz_check(reply, 0);

            if (used != cap - budget || used > cap) {
                abort();
            }

            ngx_http_apikey_redis_reply_free(reply);

            /* as the connection does after each reply */

            budget = cap;
        }

        /* a reply under way: what it made so far, and the input kept */

        used = __sanitizer_get_current_allocated_bytes() - base;

        if (used > (cap - budget) + 2 * (fed + chunk) + 4096) {
            abort();
        }
    }

done:

    redisReaderFree(reader);

    return 0;
}


/* the bytes a reply's objects take, as the budget counts them */

static size_t
ngx_http_apikey_fuzz_check(redisReply *rr, ngx_uint_t depth)
{
    u_char      *p, *last;
    size_t       i, used;
    u_char       text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];

    if (rr == NULL || depth > 8) {
        abort();
    }

    used = sizeof(redisReply);

    switch (rr->type) {

    case REDIS_REPLY_ARRAY:
        if (rr->elements > NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX
            || (rr->elements && rr->element == NULL))
        {
            abort();
        }

        used += rr->elements * sizeof(redisReply *);

        for (i = 0; i < rr->elements; i++) {
            used += ngx_http_apikey_fuzz_check(rr->element[i], depth + 1);
        }

        return used;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (rr->len > NGX_HTTP_APIKEY_REDIS_STRING_MAX || rr->str == NULL
            || rr->str[rr->len] != '\0')
        {
            abort();
        }

        last = ngx_http_apikey_redis_text(text, (u_char *) rr->str, rr->len);

        if (last < text || last > text + sizeof(text)) {
            abort();
        }

        for (p = text; p < last; p++) {
            if (*p < 0x20 || *p >= 0x7f) {
                abort();
            }
        }

        return used + rr->len + 1;

    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        if (rr->str != NULL || rr->element != NULL) {
            abort();
        }

        return used;

    default:
        abort();
    }
}
