
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_metrics.h"


#define NGX_HTTP_APIKEY_ADMIN_TOKEN_MAX  4096


/*
 * A route is an OpenAPI path template of docs/openapi.yaml: "{org}" and
 * "{id}" match one segment of ^[A-Za-z0-9._-]{1,64}$, anything else
 * matches itself.  A token needs the route's permission.
 */

typedef struct {
    ngx_str_t                       path;
    ngx_uint_t                      method;
    ngx_str_t                       method_name;
    ngx_uint_t                      operation;
    ngx_uint_t                      permission;
} ngx_http_apikey_admin_route_t;


static void ngx_http_apikey_admin_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_reject(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_http_apikey_admin_token_t *ngx_http_apikey_admin_auth(
    ngx_http_request_t *r, ngx_http_apikey_admin_loc_conf_t *alcf,
    ngx_str_t *bearer);
static ngx_int_t ngx_http_apikey_admin_authorized(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_route(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_match(ngx_str_t *path, u_char *p,
    u_char *last, ngx_str_t *org, ngx_str_t *id);
static ngx_int_t ngx_http_apikey_admin_valid_id(ngx_str_t *id,
    u_char letter);
static ngx_int_t ngx_http_apikey_admin_json_type(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_read_body(ngx_http_request_t *r,
    ngx_str_t *body);


#define NGX_HTTP_APIKEY_ADMIN_KR  NGX_HTTP_APIKEY_ADMIN_P_KEYS_READ
#define NGX_HTTP_APIKEY_ADMIN_KW  NGX_HTTP_APIKEY_ADMIN_P_KEYS_WRITE
#define NGX_HTTP_APIKEY_ADMIN_TM  NGX_HTTP_APIKEY_ADMIN_P_TOKENS_MANAGE


static ngx_http_apikey_admin_route_t  ngx_http_apikey_admin_routes[] = {

    { ngx_string("/orgs/{org}/keys"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_LIST, NGX_HTTP_APIKEY_ADMIN_KR },

    { ngx_string("/orgs/{org}/keys"), NGX_HTTP_POST, ngx_string("POST"),
      NGX_HTTP_APIKEY_ADMIN_CREATE, NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_GET, NGX_HTTP_APIKEY_ADMIN_KR },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_PATCH,
      ngx_string("PATCH"), NGX_HTTP_APIKEY_ADMIN_UPDATE,
      NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_DELETE,
      ngx_string("DELETE"), NGX_HTTP_APIKEY_ADMIN_DELETE,
      NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}/revoke"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_REVOKE,
      NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}/restore"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_RESTORE,
      NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}/rotate"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_ROTATE,
      NGX_HTTP_APIKEY_ADMIN_KW },

    { ngx_string("/orgs/{org}/keys/{id}/usage"), NGX_HTTP_GET,
      ngx_string("GET"), NGX_HTTP_APIKEY_ADMIN_USAGE,
      NGX_HTTP_APIKEY_ADMIN_P_USAGE_READ },

    { ngx_string("/orgs/{org}/events"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_EVENTS, NGX_HTTP_APIKEY_ADMIN_P_EVENTS_READ },

    { ngx_string("/orgs/{org}"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_ORG_GET, NGX_HTTP_APIKEY_ADMIN_KR },

    { ngx_string("/orgs/{org}"), NGX_HTTP_PATCH, ngx_string("PATCH"),
      NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE, NGX_HTTP_APIKEY_ADMIN_P_ORGS_WRITE },

    { ngx_string("/tokens"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST, NGX_HTTP_APIKEY_ADMIN_TM },

    { ngx_string("/tokens"), NGX_HTTP_POST, ngx_string("POST"),
      NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE, NGX_HTTP_APIKEY_ADMIN_TM },

    { ngx_string("/tokens/{id}"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_TOKEN_GET, NGX_HTTP_APIKEY_ADMIN_TM },

    { ngx_string("/tokens/{id}/revoke"), NGX_HTTP_POST, ngx_string("POST"),
      NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE, NGX_HTTP_APIKEY_ADMIN_TM },

    { ngx_null_string, 0, ngx_null_string, 0, 0 }
};


ngx_int_t
ngx_http_apikey_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_str_t                          value, bearer;
    ngx_http_apikey_admin_ctx_t       *ctx;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    /* the console's files take no token: they come before the API */

    if (alcf->console) {
        rc = ngx_http_apikey_admin_console_handler(r);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_apikey_admin_module);

    if (ngx_http_apikey_metrics) {
        ctx->started = ngx_http_apikey_metrics_now();
    }

    ngx_str_set(&value, "no-store");

    if (ngx_http_apikey_add_header(r, "Cache-Control",
                                   sizeof("Cache-Control") - 1, &value)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->token = ngx_http_apikey_admin_auth(r, alcf, &bearer);

    /* a management token is looked up in Redis first */

    if (ctx->token == NULL
        && ngx_http_apikey_admin_token_shape(&bearer) == NGX_OK)
    {
        rc = ngx_http_apikey_admin_token_lookup(r, ctx, &bearer,
                          ngx_http_apikey_admin_script_of(
                                        NGX_HTTP_APIKEY_ADMIN_AUTH_SCRIPT),
                          ngx_http_apikey_admin_authorized);

        return (rc == NGX_OK) ? NGX_DONE : rc;
    }

    return ngx_http_apikey_admin_authorized(r, ctx);
}


/*
 * The rest of the handler once the token is known (ctx->token, NULL if
 * none is valid), or the lookup failed (ctx->err): NGX_DONE, or an answer
 * for ngx_http_finalize_request()
 */

static ngx_int_t
ngx_http_apikey_admin_authorized(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_int_t                          rc;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    if (ctx->err.status) {
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if (ctx->token == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey admin: missing, unknown, expired or revoked "
                      "token");

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                    "unauthorized",
                                    "a valid admin bearer token is "
                                    "required");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    rc = ngx_http_apikey_admin_route(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if (ctx->org.len
        && ngx_http_apikey_admin_token_allows(ctx->token, &ctx->org)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey admin: token \"%V\" is not allowed for "
                      "organization \"%V\"", &ctx->token->name, &ctx->org);

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                    "forbidden_org",
                                    "this token is not allowed for the "
                                    "organization");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if ((ctx->token->permissions & ctx->permission) != ctx->permission) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey admin: token \"%V\" lacks the permission of "
                      "the route", &ctx->token->name);

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                    "insufficient_permission",
                                    "this token does not hold the "
                                    "permission this route needs");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    /*
     * only "k_" ("t_" for a token) and 22 base62 can exist: anything else
     * (a raw key pasted by mistake) is not looked up, so it does not
     * reach Redis
     */

    if (ctx->id.len && ngx_http_apikey_admin_token_op(ctx)
        && ngx_http_apikey_admin_valid_id(&ctx->id, 't') != NGX_OK)
    {
        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                    "token_not_found",
                                    "no such management token");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if (ctx->id.len && !ngx_http_apikey_admin_token_op(ctx)
        && ngx_http_apikey_admin_valid_id(&ctx->id, 'k') != NGX_OK)
    {
        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                    "key_not_found",
                                    "no such key in this organization");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if (r->method == NGX_HTTP_POST
        && ngx_http_apikey_admin_idem_header(r, ctx) != NGX_OK)
    {
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_LIST:
    case NGX_HTTP_APIKEY_ADMIN_EVENTS:
    case NGX_HTTP_APIKEY_ADMIN_USAGE:
    case NGX_HTTP_APIKEY_ADMIN_GET:
    case NGX_HTTP_APIKEY_ADMIN_DELETE:
    case NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST:
    case NGX_HTTP_APIKEY_ADMIN_TOKEN_GET:
    case NGX_HTTP_APIKEY_ADMIN_ORG_GET:

        if ((ctx->operation == NGX_HTTP_APIKEY_ADMIN_LIST
             || ctx->operation == NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST
             || ctx->operation == NGX_HTTP_APIKEY_ADMIN_EVENTS
             || ctx->operation == NGX_HTTP_APIKEY_ADMIN_USAGE)
            && (ngx_http_apikey_admin_parse_query(r, ctx, alcf) != NGX_OK
                || (ctx->operation == NGX_HTTP_APIKEY_ADMIN_USAGE
                    && ngx_http_apikey_admin_usage_range(r, ctx) != NGX_OK)))
        {
            if (ctx->err.status == 0) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_apikey_admin_reject(r, ctx);
        }

        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_apikey_admin_run(r, ctx);

    default:
        break;
    }

    if (r->headers_in.content_length_n > NGX_HTTP_APIKEY_ADMIN_BODY_MAX) {
        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "body_too_large",
                                    "the body is larger than 64 KiB");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    if ((r->headers_in.content_length_n > 0 || r->headers_in.chunked)
        && ngx_http_apikey_admin_json_type(r) != NGX_OK)
    {
        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                    "unsupported_media_type",
                                    "the body must be application/json");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_apikey_admin_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_apikey_admin_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     body;
    ngx_http_apikey_admin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_admin_module);

    rc = ngx_http_apikey_admin_read_body(r, &body);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "body_too_large",
                                    "the body is larger than 64 KiB");
        ngx_http_finalize_request(r, ngx_http_apikey_admin_send_error(r, ctx));
        return;
    }

    rc = ngx_http_apikey_admin_parse_body(r, ctx, body.data, body.len);

    if (rc == NGX_OK
        && ctx->operation == NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE)
    {
        rc = ngx_http_apikey_admin_token_check(r, ctx);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_apikey_admin_idem_prepare(r, ctx, &body);
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, ngx_http_apikey_admin_no_memory(r, ctx));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ngx_http_apikey_admin_send_error(r, ctx));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_apikey_admin_run(r, ctx));
}


static ngx_int_t
ngx_http_apikey_admin_reject(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_int_t  rc;

    /*
     * the final status answers an "Expect: 100-continue": discarding the
     * body must not invite the client to send it first
     */

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_apikey_admin_send_error(r, ctx);
}


/*
 * The file's token the request carries, if any; "bearer" is what it
 * carries (empty if nothing usable), for a management token's lookup
 */

static ngx_http_apikey_admin_token_t *
ngx_http_apikey_admin_auth(ngx_http_request_t *r,
    ngx_http_apikey_admin_loc_conf_t *alcf, ngx_str_t *bearer)
{
    u_char                         *p, *last;
    u_char                          hash[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_uint_t                      i;
    ngx_table_elt_t                *h;
    ngx_http_apikey_admin_token_t  *token, *found;

    ngx_str_null(bearer);

    h = r->headers_in.authorization;

    if (h == NULL || alcf->tokens == NULL) {
        return NULL;
    }

    p = h->value.data;
    last = p + h->value.len;

    if (last - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7) != 0) {
        return NULL;
    }

    for (p += 7; p < last && *p == ' '; p++) { /* void */ }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last || last - p > NGX_HTTP_APIKEY_ADMIN_TOKEN_MAX) {
        return NULL;
    }

    bearer->data = p;
    bearer->len = last - p;

    if (ngx_http_apikey_sha256_hex(hash, p, last - p) != 0) {
        return NULL;
    }

    /* no early exit: every stored hash is compared */

    found = NULL;
    token = alcf->tokens->elts;

    for (i = 0; i < alcf->tokens->nelts; i++) {
        if (CRYPTO_memcmp(hash, token[i].hash, NGX_HTTP_APIKEY_HASH_LEN)
            == 0)
        {
            found = &token[i];
        }
    }

    ngx_explicit_memzero(hash, sizeof(hash));

    return found;
}


static ngx_int_t
ngx_http_apikey_admin_route(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char                         *p, *last, *a;
    ngx_uint_t                      found;
    ngx_str_t                       allow;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_apikey_admin_route_t  *route;
    u_char                          buf[64];

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    last = p + r->uri.len;

    /*
     * the path relative to a prefix location; in other locations it
     * starts at the first "/orgs/"
     */

    if (!clcf->exact_match && !clcf->named && !clcf->noname
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && r->uri.len >= clcf->name.len
        && ngx_strncmp(p, clcf->name.data, clcf->name.len) == 0)
    {
        p += clcf->name.len;

        if (clcf->name.len && clcf->name.data[clcf->name.len - 1] == '/') {
            p--;
        }

    } else {
        a = ngx_strnstr(p, "/orgs/", last - p);

        if (a == NULL) {
            a = ngx_strnstr(p, "/tokens", last - p);
        }

        p = a ? a : last;
    }

    found = 0;
    a = buf;

    for (route = ngx_http_apikey_admin_routes; route->path.len; route++) {

        if (ngx_http_apikey_admin_match(&route->path, p, last, &ctx->org,
                                        &ctx->id)
            != NGX_OK)
        {
            continue;
        }

        if (r->method == route->method) {
            ctx->operation = route->operation;
            ctx->permission = route->permission;
            ctx->routed = 1;
            return NGX_OK;
        }

        a = ngx_sprintf(a, "%s%V", found ? ", " : "", &route->method_name);
        found = 1;
    }

    if (!found) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such route");
    }

    allow.len = a - buf;
    allow.data = ngx_pnalloc(r->pool, allow.len);
    if (allow.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(allow.data, buf, allow.len);

    if (ngx_http_apikey_add_header(r, "Allow", sizeof("Allow") - 1, &allow)
        == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "allowed methods: %V", &allow);
}


static ngx_int_t
ngx_http_apikey_admin_match(ngx_str_t *path, u_char *p, u_char *last,
    ngx_str_t *org, ngx_str_t *id)
{
    u_char     *t, *tlast, *ts, *s;
    ngx_str_t  *dst;

    t = path->data;
    tlast = t + path->len;

    while (t < tlast) {

        /* both at a "/" */

        if (p == last || *p != '/') {
            return NGX_DECLINED;
        }

        ts = ++t;
        s = ++p;

        while (t < tlast && *t != '/') {
            t++;
        }

        while (p < last && *p != '/') {
            p++;
        }

        if (*ts == '{') {
            if (!ngx_http_apikey_admin_valid_name(s, p - s)) {
                return NGX_DECLINED;
            }

            dst = (t - ts == 5 && ngx_strncmp(ts, "{org}", 5) == 0) ? org
                                                                     : id;
            dst->data = s;
            dst->len = p - s;
            continue;
        }

        if (t - ts != p - s || ngx_strncmp(ts, s, t - ts) != 0) {
            return NGX_DECLINED;
        }
    }

    return (p == last) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_apikey_admin_valid_id(ngx_str_t *id, u_char letter)
{
    u_char  *p, *last;

    if (id->len != NGX_HTTP_APIKEY_ADMIN_ID_LEN
        || id->data[0] != letter || id->data[1] != '_')
    {
        return NGX_DECLINED;
    }

    for (p = id->data + 2, last = id->data + id->len; p < last; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z')
              || (*p >= 'a' && *p <= 'z')))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* "application/json", any case, optionally with parameters */

static ngx_int_t
ngx_http_apikey_admin_json_type(ngx_http_request_t *r)
{
    u_char  *p, *last;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    p = r->headers_in.content_type->value.data;
    last = p + r->headers_in.content_type->value.len;

    if (last - p < 16
        || ngx_strncasecmp(p, (u_char *) "application/json", 16) != 0)
    {
        return NGX_DECLINED;
    }

    for (p += 16; p < last && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    return (p == last || *p == ';') ? NGX_OK : NGX_DECLINED;
}


/*
 * The body in one piece: from memory, or from the temporary file nginx
 * wrote it to when it was larger than client_body_buffer_size.
 * NGX_DECLINED: larger than 64 KiB (a chunked body).
 */

static ngx_int_t
ngx_http_apikey_admin_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_APIKEY_ADMIN_BODY_MAX) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (b->last > b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: reading the body from \"%V\" failed",
                          &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_admin_log_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_admin_ctx_t  *ctx;

    if (ngx_http_apikey_metrics == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_admin_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    ngx_http_apikey_metrics_admin(ctx->routed ? ctx->operation
                                              : NGX_HTTP_APIKEY_M_ROUTES,
                                  r->headers_out.status,
                                  ngx_http_apikey_metrics_now()
                                  - ctx->started);

    return NGX_OK;
}
