
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


static ngx_int_t ngx_http_apikey_admin_query_value(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf,
    ngx_uint_t which, ngx_str_t *value);
static ngx_int_t ngx_http_apikey_admin_query_text(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *name, ngx_str_t *value);


static ngx_str_t  ngx_http_apikey_admin_query_names[] = {
    ngx_string("page"),
    ngx_string("per_page"),
    ngx_string("search"),
    ngx_string("status"),
    ngx_string("environment"),
    ngx_string("from"),
    ngx_string("to"),
    ngx_string("granularity"),
    ngx_string("name_prefix"),
    ngx_null_string
};


ngx_int_t
ngx_http_apikey_admin_parse_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf)
{
    u_char      *p, *last, *end, *eq, *d, *s, *q;
    ngx_str_t    name, value;
    ngx_uint_t   i, seen, allowed;

    ctx->in.page = 1;
    ctx->in.per_page = NGX_HTTP_APIKEY_ADMIN_PER_PAGE;

    /* events take only page and per_page, usage only from, to, granularity */

    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_LIST:
        allowed = 0x11f;
        break;

    case NGX_HTTP_APIKEY_ADMIN_USAGE:
        allowed = 0xe0;
        break;

    default:
        allowed = 0x03;
    }

    seen = 0;

    if (r->args.len == 0) {
        return NGX_OK;      /* r->args.data may be NULL */
    }

    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {

        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        eq = ngx_strlchr(p, end, '=');

        name.data = p;
        name.len = (eq ? eq : end) - p;

        value.len = 0;
        value.data = NULL;

        if (eq) {
            value.len = end - eq - 1;
            value.data = ngx_pnalloc(r->pool, value.len + 1);
            if (value.data == NULL) {
                return NGX_ERROR;
            }

            for (s = eq + 1, q = value.data; s < end; s++) {
                *q++ = (*s == '+') ? ' ' : *s;
            }

            d = value.data;
            s = value.data;
            ngx_unescape_uri(&d, &s, value.len, 0);
            value.len = d - value.data;
        }

        p = end + 1;

        if (name.len == 0 && value.len == 0) {
            continue;
        }

        for (i = 0; ngx_http_apikey_admin_query_names[i].len; i++) {
            if (name.len == ngx_http_apikey_admin_query_names[i].len
                && ngx_strncmp(name.data,
                               ngx_http_apikey_admin_query_names[i].data,
                               name.len)
                   == 0)
            {
                break;
            }
        }

        if (!(allowed & (1 << i))) {
            if (ngx_http_apikey_admin_valid_name(name.data, name.len)) {
                return ngx_http_apikey_admin_error(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "invalid_query",
                                                   "unknown query parameter "
                                                   "%V", &name);
            }

            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_query",
                                               "unknown query parameter");
        }

        if (seen & (1 << i)) {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_query",
                                               "query parameter %V given "
                                               "twice", &name);
        }

        seen |= 1 << i;

        if (ngx_http_apikey_admin_query_value(r, ctx, alcf, i, &value)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    /* name_prefix is answered from its own index, which knows names only */

    if (ctx->in.name_prefix.len
        && (ctx->in.search.len || ctx->in.status.len
            || ctx->in.env_filter.len))
    {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "name_prefix cannot be combined "
                                           "with search, status or "
                                           "environment");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_query_value(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf,
    ngx_uint_t which, ngx_str_t *value)
{
    ngx_int_t    n;
    ngx_str_t   *env;
    ngx_uint_t   i;

    switch (which) {

    case 0: /* page */
    case 1: /* per_page */

        n = NGX_ERROR;

        if (value->len && value->len <= 10 && value->data[0] != '0') {
            n = ngx_atoi(value->data, value->len);
        }

        if (which == 0) {
            if (n < 1 || n > NGX_HTTP_APIKEY_ADMIN_PAGE_MAX) {
                return ngx_http_apikey_admin_error(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "invalid_query",
                                                   "page must be an integer "
                                                   "from 1 to 1000000000");
            }

            ctx->in.page = n;
            return NGX_OK;
        }

        if (n < 1 || n > NGX_HTTP_APIKEY_ADMIN_PER_PAGE_MAX) {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_query",
                                               "per_page must be an integer "
                                               "from 1 to 100");
        }

        ctx->in.per_page = n;
        return NGX_OK;

    case 2: /* search */

        n = ngx_http_apikey_admin_query_text(r, ctx,
                                       &ngx_http_apikey_admin_query_names[2],
                                       value);
        if (n != NGX_OK) {
            return n;
        }

        ctx->in.search = *value;

        /* a whole raw key pasted here is searched by its display prefix */

        if (ngx_http_apikey_key_valid(value->data, value->len)) {
            ctx->in.search.len = NGX_HTTP_APIKEY_DISPLAY_LEN;
        }

        return NGX_OK;

    case 3: /* status */

        if ((value->len == 6
             && ngx_strncmp(value->data, "active", 6) == 0)
            || (value->len == 7
                && (ngx_strncmp(value->data, "revoked", 7) == 0
                    || ngx_strncmp(value->data, "expired", 7) == 0)))
        {
            ctx->in.status = *value;
            return NGX_OK;
        }

        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "status must be active, revoked "
                                           "or expired");

    case 4: /* environment */

        env = alcf->environments->elts;

        for (i = 0; i < alcf->environments->nelts; i++) {
            if (env[i].len == value->len
                && ngx_strncmp(env[i].data, value->data, value->len) == 0)
            {
                ctx->in.env_filter = *value;
                return NGX_OK;
            }
        }

        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "environment must be one of "
                                           "apikey_environments");

    case 8: /* name_prefix */

        n = ngx_http_apikey_admin_query_text(r, ctx,
                                       &ngx_http_apikey_admin_query_names[8],
                                       value);
        if (n != NGX_OK) {
            return n;
        }

        ctx->in.name_prefix = *value;
        return NGX_OK;

    default: /* from, to, granularity */
        return ngx_http_apikey_admin_usage_query(r, ctx, which - 5, value);
    }
}


/* a text to look for among names: UTF-8, no control characters */

static ngx_int_t
ngx_http_apikey_admin_query_text(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *name, ngx_str_t *value)
{
    ngx_int_t  chars;

    chars = ngx_http_apikey_admin_text_chars(value->data, value->len);

    if (chars == NGX_ERROR) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "%V must be UTF-8 text "
                                           "without control characters",
                                           name);
    }

    if (chars > NGX_HTTP_APIKEY_ADMIN_NAME_MAX) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "%V is longer than %d characters",
                                           name,
                                           NGX_HTTP_APIKEY_ADMIN_NAME_MAX);
    }

    return NGX_OK;
}
