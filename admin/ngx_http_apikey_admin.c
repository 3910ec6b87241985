
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>

#include "ngx_http_apikey_admin.h"


#define NGX_HTTP_APIKEY_ADMIN_TOKENS_FILE_MAX  1048576
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_MAX        4096


typedef struct {
    ngx_flag_t                      scripts;   /* registered this cycle */
} ngx_http_apikey_admin_main_conf_t;


/*
 * A route is an OpenAPI path template of docs/openapi.yaml: "{org}" and
 * "{id}" match one segment of ^[A-Za-z0-9._-]{1,64}$, anything else
 * matches itself.
 */

typedef struct {
    ngx_str_t                       path;
    ngx_uint_t                      method;
    ngx_str_t                       method_name;
    ngx_uint_t                      operation;
} ngx_http_apikey_admin_route_t;


static ngx_int_t ngx_http_apikey_admin_handler(ngx_http_request_t *r);
static void ngx_http_apikey_admin_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_reject(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_http_apikey_admin_token_t *ngx_http_apikey_admin_auth(
    ngx_http_request_t *r, ngx_http_apikey_admin_loc_conf_t *alcf);
static ngx_int_t ngx_http_apikey_admin_org_allowed(
    ngx_http_apikey_admin_token_t *token, ngx_str_t *org);
static ngx_int_t ngx_http_apikey_admin_route(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_match(ngx_str_t *path, u_char *p,
    u_char *last, ngx_str_t *org, ngx_str_t *id);
static ngx_int_t ngx_http_apikey_admin_parse_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf);
static ngx_int_t ngx_http_apikey_admin_query_value(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf,
    ngx_uint_t which, ngx_str_t *value);
static ngx_int_t ngx_http_apikey_admin_valid_id(ngx_str_t *id);
static ngx_int_t ngx_http_apikey_admin_json_type(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_read_body(ngx_http_request_t *r,
    ngx_str_t *body);

static void *ngx_http_apikey_admin_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_token_line(ngx_conf_t *cf,
    ngx_array_t *tokens, u_char *p, u_char *last);
static char *ngx_http_apikey_admin_environments(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_admin_default_rate(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_admin_check_ttl(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_apikey_admin_prefix_post =
    ngx_http_apikey_admin_check_prefix;

static ngx_conf_post_handler_pt  ngx_http_apikey_admin_ttl_post =
    ngx_http_apikey_admin_check_ttl;

static ngx_conf_num_bounds_t  ngx_http_apikey_admin_max_keys_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000000
};


static ngx_command_t  ngx_http_apikey_admin_commands[] = {

    { ngx_string("apikey_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_apikey_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_admin_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_admin_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, prefix),
      &ngx_http_apikey_admin_prefix_post },

    { ngx_string("apikey_environments"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_admin_environments,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_default_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_apikey_admin_default_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_max_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, max_keys),
      &ngx_http_apikey_admin_max_keys_bounds },

    { ngx_string("apikey_default_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, default_ttl),
      &ngx_http_apikey_admin_ttl_post },

    { ngx_string("apikey_max_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, max_ttl),
      &ngx_http_apikey_admin_ttl_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_admin_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_apikey_admin_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_admin_create_loc_conf, /* create location configuration */
    ngx_http_apikey_admin_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_admin_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_admin_module_ctx,     /* module context */
    ngx_http_apikey_admin_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_apikey_admin_route_t  ngx_http_apikey_admin_routes[] = {

    { ngx_string("/orgs/{org}/keys"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_LIST },

    { ngx_string("/orgs/{org}/keys"), NGX_HTTP_POST, ngx_string("POST"),
      NGX_HTTP_APIKEY_ADMIN_CREATE },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_GET },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_PATCH,
      ngx_string("PATCH"), NGX_HTTP_APIKEY_ADMIN_UPDATE },

    { ngx_string("/orgs/{org}/keys/{id}"), NGX_HTTP_DELETE,
      ngx_string("DELETE"), NGX_HTTP_APIKEY_ADMIN_DELETE },

    { ngx_string("/orgs/{org}/keys/{id}/revoke"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_REVOKE },

    { ngx_string("/orgs/{org}/keys/{id}/restore"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_RESTORE },

    { ngx_string("/orgs/{org}/keys/{id}/rotate"), NGX_HTTP_POST,
      ngx_string("POST"), NGX_HTTP_APIKEY_ADMIN_ROTATE },

    { ngx_string("/orgs/{org}/events"), NGX_HTTP_GET, ngx_string("GET"),
      NGX_HTTP_APIKEY_ADMIN_EVENTS },

    { ngx_null_string, 0, ngx_null_string, 0 }
};


static ngx_str_t  ngx_http_apikey_admin_query_names[] = {
    ngx_string("page"),
    ngx_string("per_page"),
    ngx_string("search"),
    ngx_string("status"),
    ngx_string("environment"),
    ngx_null_string
};


static ngx_str_t  ngx_http_apikey_admin_default_envs[] = {
    ngx_string("production"),
    ngx_string("preview")
};

static ngx_array_t  ngx_http_apikey_admin_default_environments = {
    ngx_http_apikey_admin_default_envs, 2, sizeof(ngx_str_t), 2, NULL
};


static ngx_int_t
ngx_http_apikey_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_str_t                          value;
    ngx_http_apikey_admin_ctx_t       *ctx;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_apikey_admin_module);

    ngx_str_set(&value, "no-store");

    if (ngx_http_apikey_add_header(r, "Cache-Control",
                                   sizeof("Cache-Control") - 1, &value)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->token = ngx_http_apikey_admin_auth(r, alcf);

    if (ctx->token == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey admin: missing or unknown token");

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

    if (ngx_http_apikey_admin_org_allowed(ctx->token, &ctx->org) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey admin: token \"%V\" is not allowed for "
                      "organization \"%V\"", &ctx->token->name, &ctx->org);

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                    "forbidden_org",
                                    "this token is not allowed for the "
                                    "organization");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    /*
     * only "k_" and 22 base62 can exist: anything else (a raw key pasted
     * by mistake) is not looked up, so it does not reach Redis
     */

    if (ctx->id.len && ngx_http_apikey_admin_valid_id(&ctx->id) != NGX_OK) {
        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                    "key_not_found",
                                    "no such key in this organization");
        return ngx_http_apikey_admin_reject(r, ctx);
    }

    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_LIST:
    case NGX_HTTP_APIKEY_ADMIN_EVENTS:
    case NGX_HTTP_APIKEY_ADMIN_GET:
    case NGX_HTTP_APIKEY_ADMIN_DELETE:

        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        if ((ctx->operation == NGX_HTTP_APIKEY_ADMIN_LIST
             || ctx->operation == NGX_HTTP_APIKEY_ADMIN_EVENTS)
            && ngx_http_apikey_admin_parse_query(r, ctx, alcf) != NGX_OK)
        {
            if (ctx->err.status == 0) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_apikey_admin_send_error(r, ctx);
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

    if (ngx_http_apikey_admin_parse_body(r, ctx, body.data, body.len)
        != NGX_OK)
    {
        if (ctx->err.status == 0) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

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

    return ngx_http_apikey_send_problem(r, ctx->err.status, &ctx->err.code,
                                        &ctx->err.detail);
}


ngx_int_t
ngx_http_apikey_admin_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
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


static ngx_http_apikey_admin_token_t *
ngx_http_apikey_admin_auth(ngx_http_request_t *r,
    ngx_http_apikey_admin_loc_conf_t *alcf)
{
    u_char                         *p, *last;
    u_char                          hash[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_uint_t                      i;
    ngx_table_elt_t                *h;
    ngx_http_apikey_admin_token_t  *token, *found;

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
ngx_http_apikey_admin_org_allowed(ngx_http_apikey_admin_token_t *token,
    ngx_str_t *org)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (token->orgs == NULL) {
        return NGX_OK;
    }

    s = token->orgs->elts;

    for (i = 0; i < token->orgs->nelts; i++) {
        if (s[i].len == org->len
            && ngx_strncmp(s[i].data, org->data, org->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
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
        p = ngx_strnstr(p, "/orgs/", last - p);

        if (p == NULL) {
            p = last;
        }
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
ngx_http_apikey_admin_parse_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf)
{
    u_char      *p, *last, *end, *eq, *d, *s, *q;
    ngx_str_t    name, value;
    ngx_uint_t   i, seen, allowed;

    ctx->in.page = 1;
    ctx->in.per_page = NGX_HTTP_APIKEY_ADMIN_PER_PAGE;

    /* events take only page and per_page */

    allowed = (ctx->operation == NGX_HTTP_APIKEY_ADMIN_LIST) ? 0x1f : 0x03;
    seen = 0;

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

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_query_value(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf,
    ngx_uint_t which, ngx_str_t *value)
{
    u_char      *p, *last;
    uint32_t     u;
    ngx_int_t    n;
    ngx_str_t   *env;
    ngx_uint_t   i, chars;

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

        chars = 0;
        p = value->data;
        last = p + value->len;

        while (p < last) {
            if (*p < 0x80) {
                u = *p++;

            } else {
                u = ngx_utf8_decode(&p, last - p);
            }

            if (u < 0x20 || (u >= 0x7f && u <= 0x9f) || u > 0x10ffff) {
                return ngx_http_apikey_admin_error(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "invalid_query",
                                                   "search must be UTF-8 "
                                                   "text without control "
                                                   "characters");
            }

            chars++;
        }

        if (chars > NGX_HTTP_APIKEY_ADMIN_NAME_MAX) {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_query",
                                               "search is longer than %d "
                                               "characters",
                                               NGX_HTTP_APIKEY_ADMIN_NAME_MAX);
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

    default: /* environment */

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
    }
}


static ngx_int_t
ngx_http_apikey_admin_valid_id(ngx_str_t *id)
{
    u_char  *p, *last;

    if (id->len != NGX_HTTP_APIKEY_ADMIN_ID_LEN
        || id->data[0] != 'k' || id->data[1] != '_')
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


static void *
ngx_http_apikey_admin_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_admin_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_admin_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->scripts = 0;
     */

    return amcf;
}


static void *
ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_admin_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_admin_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable = 0;
     *     conf->prefix = { 0, NULL };
     */

    conf->tokens = NGX_CONF_UNSET_PTR;
    conf->environments = NGX_CONF_UNSET_PTR;
    conf->rate = NGX_CONF_UNSET_UINT;
    conf->per = NGX_CONF_UNSET_UINT;
    conf->burst = NGX_CONF_UNSET_UINT;
    conf->max_keys = NGX_CONF_UNSET;
    conf->default_ttl = NGX_CONF_UNSET;
    conf->max_ttl = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_apikey_admin_loc_conf_t *prev = parent;
    ngx_http_apikey_admin_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->tokens, prev->tokens, NULL);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "ak");
    ngx_conf_merge_ptr_value(conf->environments, prev->environments,
                             &ngx_http_apikey_admin_default_environments);
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 5);
    ngx_conf_merge_uint_value(conf->per, prev->per, 1);
    ngx_conf_merge_uint_value(conf->burst, prev->burst, 5);
    ngx_conf_merge_value(conf->max_keys, prev->max_keys, 0);
    ngx_conf_merge_sec_value(conf->default_ttl, prev->default_ttl, 0);
    ngx_conf_merge_sec_value(conf->max_ttl, prev->max_ttl, 0);

    if (conf->max_ttl && conf->default_ttl > conf->max_ttl) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_default_ttl\" is longer than "
                           "\"apikey_max_ttl\"");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->tokens == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_admin\" requires \"apikey_admin_tokens\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_apikey_require_redis(cf, "apikey_admin");
}


static char *
ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_apikey_main_conf_t        *akmcf;
    ngx_http_apikey_admin_main_conf_t  *amcf;

    if (alcf->enable) {
        return "is duplicate";
    }

    alcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_apikey_admin_handler;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_apikey_admin_module);

    if (!amcf->scripts) {
        akmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

        if (ngx_http_apikey_admin_add_scripts(cf, &akmcf->redis) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        amcf->scripts = 1;
    }

    return NGX_CONF_OK;
}


/* a file of "name:sha256hex:orgs" lines; "#" starts a comment line */

static char *
ngx_http_apikey_admin_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    u_char           *buf, *p, *last, *eol;
    char             *rv;
    ssize_t           n;
    ngx_str_t        *value;
    ngx_uint_t        line;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (alcf->tokens != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = value[1];
    file.log = cf->log;

    file.fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &value[1]);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &value[1]);
        goto failed;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_APIKEY_ADMIN_TOKENS_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%V\" is larger than 1 MiB",
                           &value[1]);
        goto failed;
    }

    buf = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, ngx_file_size(&fi), 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    alcf->tokens = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_apikey_admin_token_t));
    if (alcf->tokens == NULL) {
        goto failed;
    }

    p = buf;
    last = buf + n;

    for (line = 1; p < last; line++) {

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        if (ngx_http_apikey_admin_token_line(cf, alcf->tokens, p, eol)
            != NGX_CONF_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "in token file \"%V\", line %ui",
                               &value[1], line);
            goto failed;
        }

        p = eol + 1;
    }

    if (alcf->tokens->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%V\" has no tokens", &value[1]);
        goto failed;
    }

    rv = NGX_CONF_OK;

failed:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &value[1]);
    }

    return rv;
}


static char *
ngx_http_apikey_admin_token_line(ngx_conf_t *cf, ngx_array_t *tokens,
    u_char *p, u_char *last)
{
    u_char                         *c1, *c2, *q, *comma;
    ngx_str_t                      *org;
    ngx_uint_t                      i;
    ngx_http_apikey_admin_token_t  *t, *token;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == '\r' || last[-1] == ' '
                        || last[-1] == '\t'))
    {
        last--;
    }

    if (p == last || *p == '#') {
        return NGX_CONF_OK;
    }

    c1 = ngx_strlchr(p, last, ':');
    c2 = c1 ? ngx_strlchr(c1 + 1, last, ':') : NULL;

    if (c2 == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token line is \"name:sha256hex:orgs\"");
        return NGX_CONF_ERROR;
    }

    if (!ngx_http_apikey_admin_valid_name(p, c1 - p)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token name is 1 to 64 of A-Z a-z 0-9 . _ -");
        return NGX_CONF_ERROR;
    }

    if (c2 - c1 - 1 != NGX_HTTP_APIKEY_HASH_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token hash is 64 hexadecimal digits");
        return NGX_CONF_ERROR;
    }

    t = ngx_array_push(tokens);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    t->name.len = c1 - p;
    t->name.data = ngx_pnalloc(cf->pool, t->name.len);
    if (t->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(t->name.data, p, t->name.len);

    for (i = 0, q = c1 + 1; i < NGX_HTTP_APIKEY_HASH_LEN; i++, q++) {
        if (*q >= '0' && *q <= '9') {
            t->hash[i] = *q;

        } else if ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'f') {
            t->hash[i] = *q | 0x20;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a token hash is 64 hexadecimal digits");
            return NGX_CONF_ERROR;
        }
    }

    token = tokens->elts;

    for (i = 0; i < tokens->nelts - 1; i++) {
        if (token[i].name.len == t->name.len
            && ngx_strncmp(token[i].name.data, t->name.data, t->name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate token name \"%V\"", &t->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_memcmp(token[i].hash, t->hash, NGX_HTTP_APIKEY_HASH_LEN)
            == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "token \"%V\" has the hash of token \"%V\"",
                               &t->name, &token[i].name);
            return NGX_CONF_ERROR;
        }
    }

    p = c2 + 1;

    if (last - p == 1 && *p == '*') {
        t->orgs = NULL;
        return NGX_CONF_OK;
    }

    t->orgs = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (t->orgs == NULL) {
        return NGX_CONF_ERROR;
    }

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (!ngx_http_apikey_admin_valid_name(p, comma - p)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the organizations of token \"%V\" are \"*\" "
                               "or a comma list of names of 1 to 64 of "
                               "A-Z a-z 0-9 . _ -", &t->name);
            return NGX_CONF_ERROR;
        }

        org = ngx_array_push(t->orgs);
        if (org == NULL) {
            return NGX_CONF_ERROR;
        }

        org->len = comma - p;
        org->data = ngx_pnalloc(cf->pool, org->len);
        if (org->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(org->data, p, org->len);

        if (comma == last) {
            return NGX_CONF_OK;
        }

        p = comma + 1;
    }
}


static char *
ngx_http_apikey_admin_environments(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *env;
    ngx_uint_t   i, j;

    if (alcf->environments != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alcf->environments = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (alcf->environments == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (!ngx_http_apikey_admin_valid_name(value[i].data, value[i].len)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid environment \"%V\": 1 to 64 of "
                               "A-Z a-z 0-9 . _ -", &value[i]);
            return NGX_CONF_ERROR;
        }

        for (j = 1; j < i; j++) {
            if (value[j].len == value[i].len
                && ngx_strncmp(value[j].data, value[i].data, value[i].len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate environment \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        env = ngx_array_push(alcf->environments);
        if (env == NULL) {
            return NGX_CONF_ERROR;
        }

        *env = value[i];
    }

    return NGX_CONF_OK;
}


/* apikey_default_rate 5r/s [burst=5]; */

static char *
ngx_http_apikey_admin_default_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_int_t    burst;
    ngx_str_t   *value;
    ngx_uint_t   rate, per;

    if (alcf->rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_apikey_admin_parse_rate(value[1].data, value[1].len, &rate,
                                         &per)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\": \"<N>r/s\" or \"<N>r/m\", "
                           "N from 1 to 1000000", &value[1]);
        return NGX_CONF_ERROR;
    }

    burst = (rate + per - 1) / per;

    if (cf->args->nelts == 3) {

        if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        burst = ngx_atoi(value[2].data + 6, value[2].len - 6);

        if (burst < 1 || burst > NGX_HTTP_APIKEY_ADMIN_RATE_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid burst \"%V\": 1 to 1000000",
                               &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    alcf->rate = rate;
    alcf->per = per;
    alcf->burst = burst;

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (!ngx_http_apikey_prefix_valid(prefix->data, prefix->len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key prefix \"%V\": [a-z][a-z0-9]{0,15}",
                           prefix);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_ttl(ngx_conf_t *cf, void *post, void *data)
{
    time_t  *tp = data;

    if (*tp <= 0 || *tp > NGX_HTTP_APIKEY_ADMIN_TTL_MAX) {
        return "must be from 1s to 100y";
    }

    return NGX_CONF_OK;
}
