
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


#define NGX_HTTP_APIKEY_ADMIN_ON(op)  (1 << (op))

#define NGX_HTTP_APIKEY_ADMIN_ORG                                             \
    NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE)

#define NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE                                   \
    (NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_CREATE)                   \
     | NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_UPDATE))

#define NGX_HTTP_APIKEY_ADMIN_TOKEN                                           \
    NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE)


typedef struct ngx_http_apikey_admin_field_s  ngx_http_apikey_admin_field_t;

typedef ngx_int_t (*ngx_http_apikey_admin_field_pt)(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);


/*
 * A body field: where it may be given, its validator, and what the
 * validator needs: where in ctx->in the value goes, its bounds (of
 * characters for text, of the number for integers), and the rule the
 * detail of a 400 states
 */

struct ngx_http_apikey_admin_field_s {
    ngx_str_t                        name;
    ngx_uint_t                       operations;
    ngx_http_apikey_admin_field_pt   handler;
    ngx_uint_t                       given;   /* ..._ADMIN_GIVEN_* */
    size_t                           offset;
    int64_t                          min;
    int64_t                          max;
    ngx_uint_t                       newlines;     /* text: tab, newlines */
    const char                      *rule;
};


static ngx_int_t ngx_http_apikey_admin_field(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, const char *name, json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_text(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_integer(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_environment(
    ngx_http_request_t *r, ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_field_t *f, json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_list(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_rate_limit(
    ngx_http_request_t *r, ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_field_t *f, json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_expires_at(
    ngx_http_request_t *r, ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_field_t *f, json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_meta(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_uint_t ngx_http_apikey_admin_meta_text(json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_max_keys(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_int_t ngx_http_apikey_admin_field_quota(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value);
static ngx_int_t ngx_http_apikey_admin_invalid(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f);
static ngx_str_t *ngx_http_apikey_admin_printable(ngx_http_request_t *r,
    const char *name);


#define ngx_http_apikey_admin_in(name)                                        \
    offsetof(ngx_http_apikey_admin_input_t, name)

#define ngx_http_apikey_admin_n(n)   ngx_http_apikey_admin_n_(n)
#define ngx_http_apikey_admin_n_(n)  #n


static ngx_http_apikey_admin_field_t  ngx_http_apikey_admin_fields[] = {

    { ngx_string("name"),
      NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE | NGX_HTTP_APIKEY_ADMIN_TOKEN,
      ngx_http_apikey_admin_field_text, NGX_HTTP_APIKEY_ADMIN_GIVEN_NAME,
      ngx_http_apikey_admin_in(name), 1, NGX_HTTP_APIKEY_ADMIN_NAME_MAX, 0,
      "name must be a string of 1 to "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_NAME_MAX)
      " characters without control characters" },

    { ngx_string("description"), NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE,
      ngx_http_apikey_admin_field_text,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_DESCRIPTION,
      ngx_http_apikey_admin_in(description), 0,
      NGX_HTTP_APIKEY_ADMIN_DESCRIPTION_MAX, 1,
      "description must be a string of at most "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_DESCRIPTION_MAX)
      " characters without control characters other than tab and "
      "newline" },

    { ngx_string("environment"),
      NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_CREATE),
      ngx_http_apikey_admin_field_environment,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_ENVIRONMENT, 0, 0, 0, 0,
      "environment must be one of apikey_environments" },

    { ngx_string("scopes"), NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE,
      ngx_http_apikey_admin_field_list, NGX_HTTP_APIKEY_ADMIN_GIVEN_SCOPES,
      ngx_http_apikey_admin_in(scopes_json), 0,
      NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX, 0,
      "scopes must be an array of at most "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX)
      " distinct strings of 1 to "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_SCOPE_MAX)
      " of a-z 0-9 : . _ -" },

    { ngx_string("rate_limit"),
      NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE | NGX_HTTP_APIKEY_ADMIN_ORG,
      ngx_http_apikey_admin_field_rate_limit, NGX_HTTP_APIKEY_ADMIN_GIVEN_RATE,
      0, 0, 0, 0, NULL },

    { ngx_string("expires_at"),
      NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE | NGX_HTTP_APIKEY_ADMIN_TOKEN,
      ngx_http_apikey_admin_field_expires_at,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_EXPIRES_AT, 0, 0, 0, 0,
      "expires_at must be an RFC 3339 time such as 2030-01-31T12:00:00Z, "
      "or null" },

    { ngx_string("expires_in"),
      NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_CREATE)
      | NGX_HTTP_APIKEY_ADMIN_TOKEN,
      ngx_http_apikey_admin_field_integer,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_EXPIRES_IN,
      ngx_http_apikey_admin_in(expires_in), NGX_HTTP_APIKEY_ADMIN_TTL_MIN,
      NGX_HTTP_APIKEY_ADMIN_TTL_MAX, 0,
      "expires_in must be an integer number of seconds, "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_TTL_MIN) " or more" },

    { ngx_string("meta"), NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE,
      ngx_http_apikey_admin_field_meta, NGX_HTTP_APIKEY_ADMIN_GIVEN_META,
      0, 0, 0, 0,
      "meta must be a JSON object of at most "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_META_MAX)
      " bytes (as compact JSON) whose names are 1 to 32 of a-z 0-9 _ and "
      "whose strings hold no control characters" },

    { ngx_string("quota"),
      NGX_HTTP_APIKEY_ADMIN_CREATE_UPDATE | NGX_HTTP_APIKEY_ADMIN_ORG,
      ngx_http_apikey_admin_field_quota, NGX_HTTP_APIKEY_ADMIN_GIVEN_QUOTA,
      0, 0, 0, 0,
      "quota must be null or an object with limit, an integer from 1 to "
      "1000000000000, and period, day or month; used and resets_at "
      "cannot be set" },

    { ngx_string("max_keys"), NGX_HTTP_APIKEY_ADMIN_ORG,
      ngx_http_apikey_admin_field_max_keys,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_MAX_KEYS,
      0, 0, 1000000000, 0,
      "max_keys must be an integer from 0 (no limit) to 1000000000, or "
      "null for apikey_max_keys" },

    { ngx_string("grace_seconds"),
      NGX_HTTP_APIKEY_ADMIN_ON(NGX_HTTP_APIKEY_ADMIN_ROTATE),
      ngx_http_apikey_admin_field_integer, 0,
      ngx_http_apikey_admin_in(grace), 0, NGX_HTTP_APIKEY_ADMIN_GRACE_MAX, 0,
      "grace_seconds must be an integer from 0 to "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_GRACE_MAX) },

    /* a management token's: checked further where it is made */

    { ngx_string("orgs"), NGX_HTTP_APIKEY_ADMIN_TOKEN,
      ngx_http_apikey_admin_field_list, NGX_HTTP_APIKEY_ADMIN_GIVEN_ORGS,
      ngx_http_apikey_admin_in(orgs_json), 1,
      NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX, 0,
      "orgs must be a non-empty array of at most "
      ngx_http_apikey_admin_n(NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX)
      " distinct organizations (1 to 64 of A-Z a-z 0-9 . _ -), or * alone" },

    { ngx_string("permissions"), NGX_HTTP_APIKEY_ADMIN_TOKEN,
      ngx_http_apikey_admin_field_list,
      NGX_HTTP_APIKEY_ADMIN_GIVEN_PERMISSIONS,
      ngx_http_apikey_admin_in(permissions_json), 1,
      NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX, 0,
      "permissions must be a non-empty array of distinct permissions: "
      "keys:read, keys:write, usage:read, events:read, orgs:write, "
      "tokens:manage" },

    /* the rest of the key and token objects: known, never set by a client */

    { ngx_string("token"), 0, NULL, 0, 0, 0, 0, 0, NULL },

    { ngx_string("id"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("org"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("prefix"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("status"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("created_at"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("created_by"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("updated_at"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("last_used_at"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("revoked_at"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("key"), 0, NULL, 0, 0, 0, 0, 0, NULL },
    { ngx_string("previous_key_expires_at"), 0, NULL, 0, 0, 0, 0, 0, NULL },

    { ngx_null_string, 0, NULL, 0, 0, 0, 0, 0, NULL }
};


/*
 * Parses and validates a request body into ctx->in.  An empty body is an
 * empty object.  NGX_DECLINED: ctx->err says why.
 */

ngx_int_t
ngx_http_apikey_admin_parse_body(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char *p, size_t len)
{
    json_t                            *root, *value;
    ngx_int_t                          rc;
    const char                        *key;
    json_error_t                       error;
    ngx_http_apikey_admin_input_t     *in;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);
    in = &ctx->in;

    if (len == 0) {
        root = json_object();
        if (root == NULL) {
            return NGX_ERROR;
        }

    } else {
        root = json_loadb((const char *) p, len, JSON_REJECT_DUPLICATES,
                          &error);

        if (root == NULL) {

            switch (json_error_code(&error)) {

            case json_error_out_of_memory:
                return NGX_ERROR;

            case json_error_numeric_overflow:
                return ngx_http_apikey_admin_error(r, ctx,
                           NGX_HTTP_BAD_REQUEST, "invalid_field",
                           "a number is out of range (line %d, column %d)",
                           error.line, error.column);

            case json_error_duplicate_key:
                return ngx_http_apikey_admin_error(r, ctx,
                           NGX_HTTP_BAD_REQUEST, "invalid_json",
                           "duplicate object key (line %d, column %d)",
                           error.line, error.column);

            case json_error_invalid_utf8:
                return ngx_http_apikey_admin_error(r, ctx,
                           NGX_HTTP_BAD_REQUEST, "invalid_json",
                           "the body is not valid UTF-8");

            case json_error_stack_overflow:
                return ngx_http_apikey_admin_error(r, ctx,
                           NGX_HTTP_BAD_REQUEST, "invalid_json",
                           "the body is nested too deeply");

            default:
                return ngx_http_apikey_admin_error(r, ctx,
                           NGX_HTTP_BAD_REQUEST, "invalid_json",
                           "malformed JSON (line %d, column %d)",
                           error.line, error.column);
            }
        }
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_json",
                                           "the body must be a JSON object");
    }

    rc = NGX_OK;

    json_object_foreach(root, key, value) {
        rc = ngx_http_apikey_admin_field(r, ctx, key, value);

        if (rc != NGX_OK) {
            break;
        }
    }

    json_decref(root);

    if (rc != NGX_OK) {
        return rc;
    }

    if ((ctx->operation == NGX_HTTP_APIKEY_ADMIN_CREATE
         || ctx->operation == NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE)
        && !ngx_http_apikey_admin_given(in, NAME)) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "name is required");
    }

    if (ngx_http_apikey_admin_given(in, EXPIRES_AT)
        && ngx_http_apikey_admin_given(in, EXPIRES_IN))
    {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "give expires_at or expires_in, "
                                           "not both");
    }

    if (alcf->max_ttl && !ngx_http_apikey_admin_token_op(ctx)) {

        if (ngx_http_apikey_admin_given(in, EXPIRES_AT)
            && in->expires_at == 0)
        {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_field",
                                               "expires_at cannot be null: "
                                               "apikey_max_ttl is %T s",
                                               alcf->max_ttl);
        }

        if (ngx_http_apikey_admin_given(in, EXPIRES_IN)
            && in->expires_in > alcf->max_ttl)
        {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_field",
                                               "expires_in is past "
                                               "apikey_max_ttl (%T s)",
                                               alcf->max_ttl);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_field(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, const char *name, json_t *value)
{
    size_t                          len;
    ngx_int_t                       rc;
    ngx_http_apikey_admin_field_t  *f;

    len = ngx_strlen(name);

    for (f = ngx_http_apikey_admin_fields; f->name.len; f++) {
        if (f->name.len == len
            && ngx_strncmp(f->name.data, name, len) == 0)
        {
            break;
        }
    }

    if (f->name.len == 0) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "unknown_field",
                                           "unknown field %V",
                                           ngx_http_apikey_admin_printable(
                                                                 r, name));
    }

    if (!(f->operations & NGX_HTTP_APIKEY_ADMIN_ON(ctx->operation))) {

        if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_UPDATE
            && f->name.len == 10
            && ngx_strncmp(f->name.data, "expires_in", 10) == 0)
        {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_field",
                                               "expires_in cannot be "
                                               "changed: give expires_at");
        }

        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "%V cannot be set here", &f->name);
    }

    rc = f->handler(r, ctx, f, value);

    if (rc == NGX_OK) {
        ctx->in.given |= f->given;
    }

    return rc;
}


/* a 400 stating the field's rule */

static ngx_int_t
ngx_http_apikey_admin_invalid(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f)
{
    return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                       "invalid_field", "%s", f->rule);
}


/*
 * A JSON string of min to max Unicode characters (jansson has checked
 * that it is UTF-8) without C0, DEL or C1 control characters (tab and
 * newlines only with f->newlines), copied into r->pool at f->offset of
 * ctx->in; NGX_ERROR when the copy fails
 */

static ngx_int_t
ngx_http_apikey_admin_field_text(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    u_char      *p, *last;
    size_t       len;
    ngx_str_t   *dst;
    ngx_uint_t   chars;

    if (!json_is_string(value)) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    p = (u_char *) json_string_value(value);
    len = json_string_length(value);
    last = p + len;
    chars = 0;

    for ( /* void */ ; p < last; p++) {

        if ((*p & 0xc0) != 0x80) {
            chars++;
        }

        if (*p < 0x20) {
            if (!f->newlines
                || (*p != '\t' && *p != '\n' && *p != '\r'))
            {
                return ngx_http_apikey_admin_invalid(r, ctx, f);
            }
        }

        if (*p == 0x7f
            || (*p == 0xc2 && p + 1 < last && p[1] >= 0x80 && p[1] <= 0x9f))
        {
            return ngx_http_apikey_admin_invalid(r, ctx, f);
        }
    }

    if ((int64_t) chars < f->min || (int64_t) chars > f->max) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    dst = (ngx_str_t *) ((u_char *) &ctx->in + f->offset);

    dst->data = ngx_pnalloc(r->pool, len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, json_string_value(value), len);
    dst->len = len;

    return NGX_OK;
}


/* an integer from f->min to f->max, a time_t at f->offset of ctx->in */

static ngx_int_t
ngx_http_apikey_admin_field_integer(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    json_int_t  n;

    if (!json_is_integer(value)) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    n = json_integer_value(value);

    if (n < f->min || n > f->max) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    *(time_t *) ((u_char *) &ctx->in + f->offset) = (time_t) n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_field_environment(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    size_t                             len;
    ngx_str_t                         *env;
    ngx_uint_t                         i;
    const char                        *s;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    if (json_is_string(value)) {
        s = json_string_value(value);
        len = json_string_length(value);
        env = alcf->environments->elts;

        for (i = 0; i < alcf->environments->nelts; i++) {
            if (env[i].len == len && ngx_strncmp(env[i].data, s, len) == 0) {
                ctx->in.environment = env[i];
                return NGX_OK;
            }
        }
    }

    return ngx_http_apikey_admin_invalid(r, ctx, f);
}


/*
 * An array of f->min to f->max distinct strings of 1 to 64 characters,
 * kept at f->offset of ctx->in as a JSON array: scopes of a-z 0-9 : . _ -,
 * a token's lists also of A-Z and "*" (their meaning is checked where the
 * token is made)
 */

static ngx_int_t
ngx_http_apikey_admin_field_list(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    u_char       *js, c;
    size_t        i, j, n, len, total;
    json_t       *e;
    ngx_str_t    *dst;
    ngx_uint_t    upper;
    const char   *s, *t;

    upper = (f->given != NGX_HTTP_APIKEY_ADMIN_GIVEN_SCOPES);

    if (!json_is_array(value)
        || (int64_t) json_array_size(value) < f->min
        || (int64_t) json_array_size(value) > f->max)
    {
        goto invalid;
    }

    n = json_array_size(value);
    total = 0;

    for (i = 0; i < n; i++) {
        e = json_array_get(value, i);

        if (!json_is_string(e)) {
            goto invalid;
        }

        s = json_string_value(e);
        len = json_string_length(e);

        if (len == 0 || len > NGX_HTTP_APIKEY_ADMIN_SCOPE_MAX) {
            goto invalid;
        }

        for (j = 0; j < len; j++) {
            c = s[j];

            if (upper && ((c >= 'A' && c <= 'Z') || c == '*')) {
                continue;
            }

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || c == ':' || c == '.' || c == '_' || c == '-'))
            {
                goto invalid;
            }
        }

        for (j = 0; j < i; j++) {
            t = json_string_value(json_array_get(value, j));

            if (ngx_strcmp(s, t) == 0) {
                return ngx_http_apikey_admin_error(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "invalid_field",
                                                   "%V must not repeat a "
                                                   "value", &f->name);
            }
        }

        total += len;
    }

    /* ["a","b"]: plain characters, nothing to escape */

    dst = (ngx_str_t *) ((u_char *) &ctx->in + f->offset);

    js = ngx_pnalloc(r->pool, 2 + total + 3 * n);
    if (js == NULL) {
        return NGX_ERROR;
    }

    dst->data = js;

    *js++ = '[';

    for (i = 0; i < n; i++) {
        e = json_array_get(value, i);

        if (i) {
            *js++ = ',';
        }

        *js++ = '"';
        js = ngx_cpymem(js, json_string_value(e), json_string_length(e));
        *js++ = '"';
    }

    *js++ = ']';

    dst->len = js - dst->data;

    return NGX_OK;

invalid:

    return ngx_http_apikey_admin_invalid(r, ctx, f);
}


/*
 * meta: an object whose names are [a-z0-9_]{1,32}, kept as compact JSON
 * of at most NGX_HTTP_APIKEY_ADMIN_META_MAX bytes in the key's record and
 * the gatekeeper's "g"; no string in it holds a control character, so
 * that $apikey_meta_NAME can go into a header as it is
 */

static ngx_int_t
ngx_http_apikey_admin_field_meta(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    char         *js;
    size_t        len, i;
    json_t       *v;
    const char   *name;

    if (!json_is_object(value)) {
        goto invalid;
    }

    json_object_foreach(value, name, v) {
        len = ngx_strlen(name);

        if (len == 0 || len > 32) {
            goto invalid;
        }

        for (i = 0; i < len; i++) {
            if (!((name[i] >= 'a' && name[i] <= 'z')
                  || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
            {
                goto invalid;
            }
        }

        if (!ngx_http_apikey_admin_meta_text(v)) {
            goto invalid;
        }
    }

    js = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (js == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(js);

    if (len > NGX_HTTP_APIKEY_ADMIN_META_MAX) {
        free(js);
        goto invalid;
    }

    ctx->in.meta.data = ngx_pnalloc(r->pool, len);
    if (ctx->in.meta.data == NULL) {
        free(js);
        return NGX_ERROR;
    }

    ctx->in.meta.len = ngx_cpymem(ctx->in.meta.data, js, len)
                       - ctx->in.meta.data;
    free(js);

    return NGX_OK;

invalid:

    return ngx_http_apikey_admin_invalid(r, ctx, f);
}


/* no C0, DEL or C1 control character in any string or name of a value */

static ngx_uint_t
ngx_http_apikey_admin_meta_text(json_t *value)
{
    size_t       i;
    json_t      *v;
    const char  *name;

    if (json_is_array(value)) {
        for (i = 0; i < json_array_size(value); i++) {
            if (!ngx_http_apikey_admin_meta_text(json_array_get(value, i))) {
                return 0;
            }
        }

        return 1;
    }

    if (json_is_object(value)) {
        json_object_foreach(value, name, v) {
            if (!ngx_http_apikey_admin_meta_text(v)
                || ngx_http_apikey_admin_text_chars((u_char *) name,
                                                    ngx_strlen(name))
                   == NGX_ERROR)
            {
                return 0;
            }
        }

        return 1;
    }

    if (!json_is_string(value)) {
        return 1;
    }

    name = json_string_value(value);

    return ngx_http_apikey_admin_text_chars((u_char *) name,
                                            json_string_length(value))
           != NGX_ERROR;
}


/*
 * quota: {"limit": 1..10^12, "period": "day" | "month"} or null, passed
 * to the scripts as "<limit> <d|m>" ("" for none); what the key object
 * shows of it besides, used and resets_at, is read-only
 */

static ngx_int_t
ngx_http_apikey_admin_field_quota(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    u_char      *p;
    json_t      *v, *limit, *period;
    json_int_t   n;
    const char  *key, *per;

    if (json_is_null(value)) {
        ngx_str_set(&ctx->in.quota, "");
        return NGX_OK;
    }

    if (!json_is_object(value)) {
        goto invalid;
    }

    limit = NULL;
    period = NULL;

    json_object_foreach(value, key, v) {
        if (ngx_strcmp(key, "limit") == 0) {
            limit = v;

        } else if (ngx_strcmp(key, "period") == 0) {
            period = v;

        } else if (ngx_strcmp(key, "used") != 0
                   && ngx_strcmp(key, "resets_at") != 0)
        {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "unknown_field",
                                               "unknown field quota.%V",
                                               ngx_http_apikey_admin_printable(
                                                                   r, key));
        } else {
            goto invalid;
        }
    }

    n = json_is_integer(limit) ? json_integer_value(limit) : 0;
    per = json_is_string(period) ? json_string_value(period) : "";

    if (n < 1 || n > NGX_HTTP_APIKEY_ADMIN_QUOTA_MAX
        || (ngx_strcmp(per, "day") != 0 && ngx_strcmp(per, "month") != 0))
    {
        goto invalid;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->in.quota.data = p;
    ctx->in.quota.len = ngx_sprintf(p, "%L %c", (int64_t) n, per[0]) - p;

    return NGX_OK;

invalid:

    return ngx_http_apikey_admin_invalid(r, ctx, f);
}


/* max_keys: 0 (no limit) to f->max, or null for apikey_max_keys */

static ngx_int_t
ngx_http_apikey_admin_field_max_keys(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    json_int_t  n;

    if (json_is_null(value)) {
        ctx->in.max_keys = -1;
        return NGX_OK;
    }

    n = json_is_integer(value) ? json_integer_value(value) : -1;

    if (n < f->min || n > f->max) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    ctx->in.max_keys = (ngx_int_t) n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_field_rate_limit(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    json_t         *v, *rate, *burst;
    json_int_t      b;
    const char     *key;
    ngx_http_apikey_admin_input_t  *in;

    in = &ctx->in;

    if (json_is_null(value)) {
        in->rate = 0;
        in->per = 0;
        in->burst = 0;
        return NGX_OK;
    }

    if (!json_is_object(value)) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "rate_limit must be an object or "
                                           "null");
    }

    rate = NULL;
    burst = NULL;

    json_object_foreach(value, key, v) {
        if (ngx_strcmp(key, "rate") == 0) {
            rate = v;

        } else if (ngx_strcmp(key, "burst") == 0) {
            burst = v;

        } else {
            return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "unknown_field",
                                               "unknown field rate_limit.%V",
                                               ngx_http_apikey_admin_printable(
                                                                   r, key));
        }
    }

    if (rate == NULL || !json_is_string(rate)
        || ngx_http_apikey_admin_parse_rate((u_char *) json_string_value(rate),
                                            json_string_length(rate),
                                            &in->rate, &in->per)
           != NGX_OK)
    {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "rate_limit.rate must be "
                                           "<N>r/s or <N>r/m with N from 1 "
                                           "to %d",
                                           NGX_HTTP_APIKEY_ADMIN_RATE_MAX);
    }

    if (burst == NULL) {
        in->burst = (in->rate + in->per - 1) / in->per;
        return NGX_OK;
    }

    b = json_is_integer(burst) ? json_integer_value(burst) : 0;

    if (b < 1 || b > NGX_HTTP_APIKEY_ADMIN_RATE_MAX) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "rate_limit.burst must be an "
                                           "integer from 1 to %d",
                                           NGX_HTTP_APIKEY_ADMIN_RATE_MAX);
    }

    in->burst = (ngx_uint_t) b;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_field_expires_at(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_field_t *f,
    json_t *value)
{
    time_t  t;

    if (json_is_null(value)) {
        ctx->in.expires_at = 0;
        return NGX_OK;
    }

    t = NGX_ERROR;

    if (json_is_string(value)) {
        t = ngx_http_apikey_admin_parse_time(
                                       (u_char *) json_string_value(value),
                                       json_string_length(value));
    }

    if (t <= 0) {
        return ngx_http_apikey_admin_invalid(r, ctx, f);
    }

    ctx->in.expires_at = t;

    return NGX_OK;
}


/* a client's field name for a detail: only if it is plain */

static ngx_str_t *
ngx_http_apikey_admin_printable(ngx_http_request_t *r, const char *name)
{
    ngx_str_t  *s;

    static ngx_str_t  hidden = ngx_string("(not shown)");

    s = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (s == NULL) {
        return &hidden;
    }

    s->data = (u_char *) name;
    s->len = ngx_strlen(name);

    if (!ngx_http_apikey_admin_valid_name(s->data, s->len)) {
        return &hidden;
    }

    return s;
}
