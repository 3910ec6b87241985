
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the admin API's answer to its scripts' results
 * (ngx_http_apikey_admin_result.c).  The first byte picks the operation,
 * the rest is RESP, read by the module's capped reader; the response is
 * caught where nginx's header and body filters would take it.  It must
 * be one of the API's statuses with a body that is one JSON object,
 * whose "key" member, the new raw key, is only in the answer to a create
 * or a rotation, and whose "token" member, a new management token, only in
 * the answer to its creation; or no response (an error the handler answers, a walk that
 * goes on, a delete's 204).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_redis_conn.h"
#include "fuzz_nginx.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static ngx_int_t ngx_http_apikey_fuzz_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_fuzz_body(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_uint_t  ngx_http_apikey_fuzz_status;
static ngx_str_t   ngx_http_apikey_fuzz_out;

static ngx_str_t   ngx_http_apikey_fuzz_raw =
    ngx_string("ak_RAWRAWRAWRAWRAWRAWRAWRAWRAWRAW0000");


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                            *json, *raw;
    ngx_int_t                          rc;
    ngx_uint_t                         op;
    redisReply                        *reply;
    ngx_pool_t                        *pool;
    ngx_http_request_t                *r;
    ngx_http_apikey_fuzz_in_t          in;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_apikey_script_t          *script;
    ngx_http_apikey_admin_ctx_t       *ctx;
    ngx_http_apikey_admin_token_t     *token;
    ngx_http_apikey_admin_loc_conf_t  *alcf;
    void                             **loc_conf;

    ngx_http_apikey_fuzz_init();

    if (size < 1) {
        return 0;
    }

    op = data[0] % (NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE + 1);

    in.pos = data + 1;
    in.last = data + size;

    reply = ngx_http_apikey_fuzz_reply(&in);
    if (reply == NULL) {
        return 0;
    }

    r = ngx_http_apikey_fuzz_request();
    pool = r->pool;

    clcf = ngx_pcalloc(pool, sizeof(ngx_http_core_loc_conf_t));
    alcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_admin_loc_conf_t));
    loc_conf = ngx_pcalloc(pool, 2 * sizeof(void *));
    ctx = ngx_pcalloc(pool, sizeof(ngx_http_apikey_admin_ctx_t));
    script = ngx_pcalloc(pool, sizeof(ngx_http_apikey_script_t));
    token = ngx_pcalloc(pool, sizeof(ngx_http_apikey_admin_token_t));

    if (clcf == NULL || alcf == NULL || loc_conf == NULL || ctx == NULL
        || script == NULL || token == NULL)
    {
        abort();
    }

    /* "location /admin/ { apikey_admin on; }" */

    ngx_http_core_module.ctx_index = 0;
    ngx_http_apikey_admin_module.ctx_index = 1;

    ngx_str_set(&clcf->name, "/admin/");
    loc_conf[0] = clcf;
    loc_conf[1] = alcf;
    r->loc_conf = loc_conf;

    ngx_str_set(&r->uri, "/admin/orgs/acme/keys");

    if (ngx_list_init(&r->headers_out.headers, pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        abort();
    }

    ngx_http_top_header_filter = ngx_http_apikey_fuzz_header;
    ngx_http_top_body_filter = ngx_http_apikey_fuzz_body;

    ngx_str_set(&script->name, "script");
    ngx_str_set(&token->name, "ci");

    ctx->request = r;
    ctx->operation = op;
    ctx->script = script;
    ctx->token = token;
    ngx_str_set(&ctx->org, "acme");
    ngx_str_set(&ctx->id, "k1");
    ctx->raw = ngx_http_apikey_fuzz_raw;

    ctx->in.page = 1;
    ctx->in.per_page = NGX_HTTP_APIKEY_ADMIN_PER_PAGE;
    ctx->in.span = 86400;
    ctx->in.from = 1700006400;
    ctx->in.to = ctx->in.from + 3 * 86400;
    ctx->in.buckets = 3;

    ngx_http_apikey_fuzz_status = 0;
    ngx_str_null(&ngx_http_apikey_fuzz_out);

    rc = ngx_http_apikey_admin_reply(r, ctx, reply);

    ngx_http_apikey_redis_reply_free(reply);

    if (ngx_http_apikey_fuzz_status == 0) {

        /* nothing sent: what the handler then finalizes with */

        if (rc != NGX_AGAIN && rc != NGX_HTTP_NO_CONTENT
            && rc != NGX_HTTP_INTERNAL_SERVER_ERROR && rc != NGX_ERROR)
        {
            abort();
        }

        ngx_destroy_pool(pool);
        return 0;
    }

    switch (ngx_http_apikey_fuzz_status) {

    case NGX_HTTP_OK:
    case NGX_HTTP_CREATED:
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_NOT_FOUND:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        break;

    default:
        abort();
    }

    json = json_loadb((char *) ngx_http_apikey_fuzz_out.data,
                      ngx_http_apikey_fuzz_out.len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                      NULL);

    if (json == NULL || !json_is_object(json)) {
        abort();
    }

    /*
     * the new key, as a member of its own: to its creation or rotation;
     * a new management token: to its creation
     */

    raw = json_object_get(json, "key");

    if (raw == NULL) {
        raw = json_object_get(json, "token");

        if (raw != NULL && op != NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE) {
            abort();
        }

    } else if (op != NGX_HTTP_APIKEY_ADMIN_CREATE
               && op != NGX_HTTP_APIKEY_ADMIN_ROTATE)
    {
        abort();
    }

    if (raw != NULL
        && (ngx_http_apikey_fuzz_status >= NGX_HTTP_BAD_REQUEST
            || !json_is_string(raw)
            || json_string_length(raw) != ngx_http_apikey_fuzz_raw.len
            || ngx_memcmp(json_string_value(raw), ngx_http_apikey_fuzz_raw.data,
                          ngx_http_apikey_fuzz_raw.len)
               != 0))
    {
        abort();
    }

    json_decref(json);

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_int_t
ngx_http_apikey_fuzz_header(ngx_http_request_t *r)
{
    if (r->header_sent) {
        abort();
    }

    r->header_sent = 1;
    ngx_http_apikey_fuzz_status = r->headers_out.status;

    return NGX_OK;
}


/* the body, whole: the admin API sends one buffer */

static ngx_int_t
ngx_http_apikey_fuzz_body(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t  *b;

    if (in == NULL || in->next != NULL || ngx_http_apikey_fuzz_out.data) {
        abort();
    }

    b = in->buf;

    ngx_http_apikey_fuzz_out.data = b->pos;
    ngx_http_apikey_fuzz_out.len = b->last - b->pos;

    if (r->headers_out.content_length_n != (off_t) (b->last - b->pos)) {
        abort();
    }

    return NGX_OK;
}
