
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


static ngx_int_t ngx_http_apikey_admin_send_unprocessable(
    ngx_http_request_t *r, ngx_http_apikey_admin_ctx_t *ctx);


/*
 * Sets the error the request will be answered with; returns NGX_DECLINED
 * so that validators can "return ngx_http_apikey_admin_error(...)".  The
 * detail must stay plain ASCII without quotes or backslashes: it goes
 * into the problem body as it is.
 */

ngx_int_t
ngx_http_apikey_admin_error(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_uint_t status, char *code,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;

    ctx->err.status = status;
    ctx->err.code.data = (u_char *) code;
    ctx->err.code.len = ngx_strlen(code);

    p = ngx_pnalloc(r->pool, 256);
    if (p == NULL) {
        ngx_str_set(&ctx->err.detail, "see the code");
        return NGX_DECLINED;
    }

    va_start(args, fmt);
    last = ngx_vslprintf(p, p + 256, fmt, args);
    va_end(args);

    ctx->err.detail.data = p;
    ctx->err.detail.len = last - p;

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_apikey_admin_send_error(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_str_t  value;

    if (ctx->err.status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&value, "Bearer");

        r->headers_out.www_authenticate =
            ngx_http_apikey_add_header(r, "WWW-Authenticate",
                                       sizeof("WWW-Authenticate") - 1, &value);

        if (r->headers_out.www_authenticate == NULL) {
            return NGX_ERROR;
        }
    }

    if (ctx->err.status == NGX_HTTP_APIKEY_ADMIN_UNPROCESSABLE) {
        return ngx_http_apikey_admin_send_unprocessable(r, ctx);
    }

    return ngx_http_apikey_send_problem(r, ctx->err.status, &ctx->err.code,
                                        &ctx->err.detail);
}


/*
 * 422 (RFC 9110), which ngx_http_apikey_send_problem() has no title for:
 * the same problem+json shape
 */

static ngx_int_t
ngx_http_apikey_admin_send_unprocessable(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_buf_t  *b;
    ngx_str_t   type;

    b = ngx_create_temp_buf(r->pool,
                            sizeof("{\"type\":\"about:blank\",\"title\":"
                                   "\"Unprocessable Content\",\"status\":422,"
                                   "\"code\":\"\",\"detail\":\"\"}") - 1
                            + ctx->err.code.len + ctx->err.detail.len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"type\":\"about:blank\",\"title\":"
                          "\"Unprocessable Content\",\"status\":422,"
                          "\"code\":\"%V\",\"detail\":\"%V\"}",
                          &ctx->err.code, &ctx->err.detail);

    ngx_str_set(&type, "application/problem+json");

    /* nginx has no reason phrase of its own for 422 */
    ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Content");

    return ngx_http_apikey_send_buf(r, NGX_HTTP_APIKEY_ADMIN_UNPROCESSABLE,
                                    &type, b);
}


/*
 * The answer when nginx ran out of memory (or a library it calls failed)
 * building one: 503 out_of_memory with Retry-After, as problem+json, for
 * a client to retry; NGX_ERROR when nothing can be sent any more.  A
 * change already made is not undone: with an Idempotency-Key the retry
 * learns its outcome.
 */

ngx_int_t
ngx_http_apikey_admin_no_memory(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_str_t  value;

    if (r->header_sent) {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "apikey admin: out of memory, answered 503");

    ctx->err.status = NGX_HTTP_SERVICE_UNAVAILABLE;
    ngx_str_set(&ctx->err.code, "out_of_memory");
    ngx_str_set(&ctx->err.detail, "the server ran out of memory: retry");

    ngx_str_set(&value, "1");

    if (ngx_http_apikey_add_header(r, "Retry-After", sizeof("Retry-After") - 1,
                                   &value)
        == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_admin_send_error(r, ctx);
}


ngx_int_t
ngx_http_apikey_admin_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_buf_t  *b;
    ngx_str_t   type;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;

    ngx_str_set(&type, "application/json");

    return ngx_http_apikey_send_buf(r, status, &type, b);
}


/*
 * the characters of UTF-8 text without C0, DEL or C1 control characters,
 * or NGX_ERROR
 */

ngx_int_t
ngx_http_apikey_admin_text_chars(u_char *p, size_t len)
{
    u_char     *last;
    uint32_t    u;
    ngx_int_t   chars;

    chars = 0;
    last = p + len;

    while (p < last) {
        u = (*p < 0x80) ? *p++ : ngx_utf8_decode(&p, last - p);

        if (u < 0x20 || (u >= 0x7f && u <= 0x9f) || u > 0x10ffff) {
            return NGX_ERROR;
        }

        chars++;
    }

    return chars;
}


/* organization, key id, token and environment names */

ngx_int_t
ngx_http_apikey_admin_valid_name(u_char *p, size_t len)
{
    u_char  *last;

    if (len == 0 || len > NGX_HTTP_APIKEY_ADMIN_SEGMENT_MAX) {
        return 0;
    }

    for (last = p + len; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')
              || *p == '.' || *p == '_' || *p == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/* "<N>r/s" or "<N>r/m", N from 1 to 1000000 */

ngx_int_t
ngx_http_apikey_admin_parse_rate(u_char *p, size_t len, ngx_uint_t *rate,
    ngx_uint_t *per)
{
    ngx_int_t  n;

    if (len < 4 || len > 10 || p[len - 3] != 'r' || p[len - 2] != '/') {
        return NGX_ERROR;
    }

    if (p[len - 1] == 's') {
        *per = 1;

    } else if (p[len - 1] == 'm') {
        *per = 60;

    } else {
        return NGX_ERROR;
    }

    n = ngx_atoi(p, len - 3);

    if (n < 1 || n > NGX_HTTP_APIKEY_ADMIN_RATE_MAX) {
        return NGX_ERROR;
    }

    *rate = n;

    return NGX_OK;
}


/* a number a script answered, as an integer or as text; 0 if neither */

int64_t
ngx_http_apikey_admin_int(redisReply *reply)
{
    ngx_int_t  n;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return reply->integer;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);
        return (n == NGX_ERROR) ? 0 : n;
    }

    return 0;
}
