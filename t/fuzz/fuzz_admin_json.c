
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the admin API's strict parsing of request bodies, for
 * every operation that takes one.  The answer is accepted, or refused with
 * a status and a code of SPEC section 5; never anything else.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static ngx_log_t  ngx_http_apikey_fuzz_log;

static ngx_str_t  ngx_http_apikey_fuzz_envs[] = {
    ngx_string("production"),
    ngx_string("preview")
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                            *body;
    ngx_int_t                          rc;
    ngx_uint_t                         i;
    ngx_pool_t                        *pool;
    ngx_array_t                        envs;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_apikey_admin_ctx_t       *ctx;
    ngx_http_apikey_admin_loc_conf_t  *alcf;
    void                              *loc_conf[1];

    static ngx_uint_t  operations[] = {
        NGX_HTTP_APIKEY_ADMIN_CREATE,
        NGX_HTTP_APIKEY_ADMIN_UPDATE,
        NGX_HTTP_APIKEY_ADMIN_ROTATE,
        NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE
    };

    pool = ngx_create_pool(4096, &ngx_http_apikey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    ngx_http_apikey_admin_module.ctx_index = 0;

    alcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_admin_loc_conf_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    body = ngx_pnalloc(pool, size + 1);

    if (alcf == NULL || r == NULL || c == NULL || body == NULL) {
        abort();
    }

    envs.elts = ngx_http_apikey_fuzz_envs;
    envs.nelts = 2;
    envs.size = sizeof(ngx_str_t);
    envs.nalloc = 2;
    envs.pool = NULL;

    alcf->environments = &envs;
    alcf->max_ttl = 86400 * 365;
    alcf->rate = 5;
    alcf->per = 1;
    alcf->burst = 5;

    loc_conf[0] = alcf;

    c->log = &ngx_http_apikey_fuzz_log;
    r->connection = c;
    r->pool = pool;
    r->loc_conf = loc_conf;

    for (i = 0; i < sizeof(operations) / sizeof(operations[0]); i++) {
        ctx = ngx_pcalloc(pool, sizeof(ngx_http_apikey_admin_ctx_t));
        if (ctx == NULL) {
            abort();
        }

        ctx->request = r;
        ctx->operation = operations[i];

        /* the parser may keep pointers into the body: a copy of its own */

        if (size) {
            ngx_memcpy(body, data, size);
        }

        rc = ngx_http_apikey_admin_parse_body(r, ctx, body, size);

        if (rc == NGX_OK) {
            continue;
        }

        if (ctx->err.status != NGX_HTTP_BAD_REQUEST || ctx->err.code.len == 0)
        {
            abort();
        }
    }

    ngx_destroy_pool(pool);

    return 0;
}
