
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"


static ngx_int_t ngx_http_apikey_header_filter(ngx_http_request_t *r);
static u_char *ngx_http_apikey_itoa(u_char *p, int64_t n);


ngx_http_apikey_result_t  ngx_http_apikey_results[] = {
    { ngx_string("ok"), 0, ngx_null_string, ngx_null_string },
    { ngx_string("invalid"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("invalid_api_key"),
      ngx_string("The API key is not valid.") },
    { ngx_string("revoked"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("revoked_api_key"),
      ngx_string("The API key has been revoked.") },
    { ngx_string("expired"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("expired_api_key"),
      ngx_string("The API key has expired.") },
    { ngx_string("forbidden"), NGX_HTTP_FORBIDDEN,
      ngx_string("environment_mismatch"),
      ngx_string("The API key belongs to another environment.") },
    { ngx_string("forbidden"), NGX_HTTP_FORBIDDEN,
      ngx_string("insufficient_scope"),
      ngx_string("The API key lacks a scope this resource requires.") },
    { ngx_string("limited"), NGX_HTTP_TOO_MANY_REQUESTS,
      ngx_string("rate_limited"),
      ngx_string("The API key's rate limit is exhausted; retry later.") },
    { ngx_string("missing"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("missing_api_key"),
      ngx_string("The request carries no API key.") },
    { ngx_string("unavailable"), NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("auth_unavailable"),
      ngx_string("The API key cannot be checked right now.") },
    { ngx_string("unverified"), 0, ngx_null_string, ngx_null_string },
    { ngx_string("preflight"), 0, ngx_null_string, ngx_null_string }
};


static ngx_http_apikey_result_t  ngx_http_apikey_quota_result = {
    ngx_string("limited"), NGX_HTTP_TOO_MANY_REQUESTS,
    ngx_string("quota_exceeded"),
    ngx_string("The API key's quota for this period is used up; "
               "retry when it resets.")
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


ngx_int_t
ngx_http_apikey_refuse(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    u_char                    *p;
    ngx_int_t                  rc, seconds;
    ngx_str_t                  value, *id, *prefix;
    ngx_table_elt_t           *h;
    ngx_http_apikey_result_t  *res;

    static ngx_str_t  empty = ngx_string("");
    static ngx_str_t  bearer = ngx_string("Bearer");
    static ngx_str_t  bearer_invalid =
                                ngx_string("Bearer error=\"invalid_token\"");

    res = ctx->quota_out ? &ngx_http_apikey_quota_result
                         : &ngx_http_apikey_results[ctx->result];

    id = ctx->id.len ? &ctx->id : &empty;
    prefix = ctx->prefix.len ? &ctx->prefix : &empty;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "apikey refused: %V%s%V%s%V", &res->code,
                  id->len ? ", key id " : "", id,
                  prefix->len ? ", prefix " : "", prefix);

    /*
     * the final status answers an "Expect: 100-continue": discarding the
     * body must not invite the client to send it first
     */

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (res->http_status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_http_apikey_add_header(r, "WWW-Authenticate",
                                       sizeof("WWW-Authenticate") - 1,
                                       &ctx->conf->www_authenticate);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* what auth_request passes on from a subrequest's 401 */

        r->headers_out.www_authenticate = h;

        if (ctx->conf->bearer) {
            value = ctx->bearer ? bearer_invalid : bearer;

            if (ngx_http_apikey_add_header(r, "WWW-Authenticate",
                                           sizeof("WWW-Authenticate") - 1,
                                           &value)
                == NULL)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    seconds = (ctx->result == NGX_HTTP_APIKEY_LIMITED) ? ctx->retry_after
              : (ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE) ? 1 : 0;

    if (seconds) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.data = p;
        value.len = ngx_http_apikey_itoa(p, seconds) - p;

        if (ngx_http_apikey_add_header(r, "Retry-After",
                                       sizeof("Retry-After") - 1, &value)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_apikey_send_problem(r, res->http_status, &res->code,
                                      &res->detail);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_http_apikey_send_problem(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *detail)
{
    size_t      len;
    ngx_buf_t  *b;
    ngx_str_t   title, type;

    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(&title, "Bad Request");
        break;
    case NGX_HTTP_UNAUTHORIZED:
        ngx_str_set(&title, "Unauthorized");
        break;
    case NGX_HTTP_FORBIDDEN:
        ngx_str_set(&title, "Forbidden");
        break;
    case NGX_HTTP_NOT_FOUND:
        ngx_str_set(&title, "Not Found");
        break;
    case NGX_HTTP_NOT_ALLOWED:
        ngx_str_set(&title, "Method Not Allowed");
        break;
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_str_set(&title, "Content Too Large");
        break;
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        ngx_str_set(&title, "Unsupported Media Type");
        break;
    case NGX_HTTP_TOO_MANY_REQUESTS:
        ngx_str_set(&title, "Too Many Requests");
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&title, "Service Unavailable");
        break;
    default:
        ngx_str_set(&title, "Error");
    }

    /* code, title and detail are ours: plain ASCII with nothing to escape */

    len = sizeof("{\"type\":\"about:blank\",\"title\":\"\",\"status\":,"
                 "\"code\":\"\",\"detail\":\"\"}") - 1
          + title.len + NGX_INT_T_LEN + code->len + detail->len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"type\":\"about:blank\",\"title\":\"%V\","
                          "\"status\":%ui,\"code\":\"%V\",\"detail\":\"%V\"}",
                          &title, status, code, detail);

    ngx_str_set(&type, "application/problem+json");

    return ngx_http_apikey_send_buf(r, status, &type, b);
}


ngx_int_t
ngx_http_apikey_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_table_elt_t *
ngx_http_apikey_add_header(ngx_http_request_t *r, const char *name,
    size_t len, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.len = len;
    h->key.data = (u_char *) name;
    h->value = *value;

    return h;
}


static ngx_int_t
ngx_http_apikey_header_filter(ngx_http_request_t *r)
{
    u_char                    *p;
    ngx_str_t                  v[5];
    ngx_uint_t                 i, n, first, last, close;
    ngx_http_apikey_ctx_t     *ctx;
    ngx_http_apikey_policy_t   pol[NGX_HTTP_APIKEY_POLICIES], *c;

    static ngx_str_t  names[] = {
        ngx_string("RateLimit-Policy"),
        ngx_string("RateLimit"),
        ngx_string("RateLimit-Limit"),
        ngx_string("RateLimit-Remaining"),
        ngx_string("RateLimit-Reset")
    };

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL
        || ctx->rate_sent
        || (ctx->burst < 0 && ctx->quota_used < 0 && ctx->org_rate == 0
            && ctx->org_quota == 0)
        || (ctx->result != NGX_HTTP_APIKEY_OK
            && ctx->result != NGX_HTTP_APIKEY_LIMITED))
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->rate_sent = 1;

    /* draft: the first two headers, legacy: the last three */

    first = (ctx->conf->rate_headers & NGX_HTTP_APIKEY_HEADERS_DRAFT) ? 0 : 2;
    last = (ctx->conf->rate_headers & NGX_HTTP_APIKEY_HEADERS_LEGACY) ? 5 : 2;

    if (first >= last) {
        return ngx_http_next_header_filter(r);
    }

    n = ngx_http_apikey_policies(ctx, pol);

    /*
     * RateLimit and the legacy headers: the policy closest to refusing,
     * the one with the fewest left (of two as close, the one that refills
     * later)
     */

    close = 0;

    for (i = 1; i < n; i++) {
        if (pol[i].remaining < pol[close].remaining
            || (pol[i].remaining == pol[close].remaining
                && pol[i].next > pol[close].next))
        {
            close = i;
        }
    }

    c = &pol[close];

    /* every gatekept response pays for these: no ngx_sprintf() */

    p = ngx_pnalloc(r->pool, NGX_HTTP_APIKEY_POLICIES
                             * (sizeof("\"org-month\";q=;w=, ") - 1
                                + 2 * NGX_INT_T_LEN)
                             + sizeof("\"org-month\";r=;t=") - 1
                             + 5 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v[0].data = p;

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ','; *p++ = ' ';
        }

        *p++ = '"';
        p = ngx_cpymem(p, pol[i].name.data, pol[i].name.len);
        p = ngx_cpymem(p, "\";q=", sizeof("\";q=") - 1);
        p = ngx_http_apikey_itoa(p, pol[i].quota);
        p = ngx_cpymem(p, ";w=", sizeof(";w=") - 1);
        p = ngx_http_apikey_itoa(p, pol[i].window);
    }

    v[0].len = p - v[0].data;

    v[1].data = p;
    *p++ = '"';
    p = ngx_cpymem(p, c->name.data, c->name.len);
    p = ngx_cpymem(p, "\";r=", sizeof("\";r=") - 1);
    p = ngx_http_apikey_itoa(p, c->remaining);
    p = ngx_cpymem(p, ";t=", sizeof(";t=") - 1);
    p = ngx_http_apikey_itoa(p, c->next);
    v[1].len = p - v[1].data;

    v[2].data = p;
    p = ngx_http_apikey_itoa(p, c->quota);
    v[2].len = p - v[2].data;
    v[3].data = p;
    p = ngx_http_apikey_itoa(p, c->remaining);
    v[3].len = p - v[3].data;
    v[4].data = p;
    p = ngx_http_apikey_itoa(p, c->reset);
    v[4].len = p - v[4].data;

    for (i = first; i < last; i++) {
        if (ngx_http_apikey_add_header(r, (char *) names[i].data,
                                       names[i].len, &v[i])
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static u_char *
ngx_http_apikey_itoa(u_char *p, int64_t n)
{
    u_char   buf[NGX_INT_T_LEN], *q;

    if (n < 0) {
        *p++ = '-';
        n = -n;
    }

    q = buf + NGX_INT_T_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, buf + NGX_INT_T_LEN - q);
}

ngx_int_t
ngx_http_apikey_reply_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_apikey_header_filter;

    return NGX_OK;
}
