
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


/*
 * Management tokens (SPEC section 6): tokens made through the admin API,
 * kept in Redis as their hash (docs/data-model.md, "Management tokens").
 * A request that carries one, "akm_" and the key format's checksum, is
 * looked up in Redis before anything else: a revoked or expired token is
 * refused by every instance from the next request on.
 */


typedef struct {
    ngx_http_apikey_admin_ctx_t          *ctx;
    ngx_http_apikey_admin_authorized_pt   handler;
} ngx_http_apikey_admin_lookup_t;


static void ngx_http_apikey_admin_token_found(void *data, redisReply *reply);
static ngx_http_apikey_admin_token_t *ngx_http_apikey_admin_token_of(
    ngx_http_request_t *r, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_token_orgs(ngx_pool_t *pool,
    json_t *list, ngx_http_apikey_admin_token_t *token);
static ngx_int_t ngx_http_apikey_admin_token_permissions(json_t *list,
    ngx_uint_t *bits);
static void ngx_http_apikey_admin_token_idem(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a);
static ngx_int_t ngx_http_apikey_admin_token_scope(ngx_http_request_t *r,
    ngx_http_apikey_admin_token_t *token, ngx_str_t *scope);
static void ngx_http_apikey_admin_token_cleanup(void *data);


/* the names of the permissions, bit i the i-th */

static ngx_str_t  ngx_http_apikey_admin_permission_names[] = {
    ngx_string("keys:read"),
    ngx_string("keys:write"),
    ngx_string("usage:read"),
    ngx_string("events:read"),
    ngx_string("orgs:write"),
    ngx_string("tokens:manage"),
    ngx_null_string
};


static ngx_str_t  ngx_http_apikey_admin_token_prefix =
    ngx_string(NGX_HTTP_APIKEY_ADMIN_TOKEN_PREFIX);


/* whether a bearer token has the shape and checksum of a management one */

ngx_int_t
ngx_http_apikey_admin_token_shape(ngx_str_t *bearer)
{
    size_t  n;

    n = ngx_http_apikey_admin_token_prefix.len;

    if (bearer->len != n + 1 + NGX_HTTP_APIKEY_BODY_LEN
        || ngx_strncmp(bearer->data, ngx_http_apikey_admin_token_prefix.data,
                       n)
           != 0
        || bearer->data[n] != '_'
        || !ngx_http_apikey_key_valid(bearer->data, bearer->len))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Sends the lookup of the token by its hash: NGX_OK (the handler will be
 * called, and the request finalized with what it returns), else the
 * answer for the request
 */

ngx_int_t
ngx_http_apikey_admin_token_lookup(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *bearer,
    ngx_http_apikey_script_t *script,
    ngx_http_apikey_admin_authorized_pt handler)
{
    u_char                              hash[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_int_t                           rc;
    ngx_http_cleanup_t                 *cln;
    ngx_http_apikey_main_conf_t        *akmcf;
    ngx_http_apikey_admin_args_t       *a;
    ngx_http_apikey_admin_lookup_t     *lookup;
    ngx_http_apikey_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_admin_module);
    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_args_t));
    lookup = ngx_palloc(r->pool, sizeof(ngx_http_apikey_admin_lookup_t));
    cln = ngx_http_cleanup_add(r, 0);

    if (a == NULL || lookup == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_apikey_admin_token_cleanup;
    cln->data = ctx;

    lookup->ctx = ctx;
    lookup->handler = handler;

    if (ngx_http_apikey_sha256_hex(hash, bearer->data, bearer->len) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->pool = r->pool;
    a->ns = &akmcf->redis.ns;

    ngx_http_apikey_admin_arg_key(a, "toksec:%*s",
                                  (size_t) NGX_HTTP_APIKEY_HASH_LEN, hash);
    a->nkeys = 1;
    ngx_http_apikey_admin_arg(a, a->ns);

    ngx_explicit_memzero(hash, sizeof(hash));

    if (a->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->sending = 1;
    ctx->lost = 0;

    rc = ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_ADMIN, script,
                                    a->nkeys, a->nargs, a->args,
                                    amcf->timeout,
                                    ngx_http_apikey_admin_token_found, lookup,
                                    r->connection->log, &ctx->op);

    ctx->sending = 0;

    if (rc == NGX_OK && !ctx->lost) {
        r->main->count++;
        return NGX_OK;
    }

    ctx->op = NULL;

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "store_unavailable",
                                "the key store is unreachable");

    return handler(r, ctx);
}


static void
ngx_http_apikey_admin_token_found(void *data, redisReply *reply)
{
    ngx_http_apikey_admin_lookup_t  *lookup = data;

    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_apikey_admin_ctx_t  *ctx;

    ctx = lookup->ctx;
    ctx->op = NULL;

    if (ctx->sending) {
        /* failed inline: ngx_http_apikey_admin_token_lookup() answers */
        ctx->lost = 1;
        return;
    }

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0)
    {
        if (reply != NULL) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "apikey admin: unexpected reply from the "
                          "tokens_auth script");
        }

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the key store did not answer");

    } else {
        ctx->token = ngx_http_apikey_admin_token_of(r, reply);
    }

    ngx_http_finalize_request(r, lookup->handler(r, ctx));
    ngx_http_run_posted_requests(c);
}


/*
 * The token of {"ok", id, name, orgs, permissions}; NULL when refused
 * (or the memory ran out: the token is not known to be good)
 */

static ngx_http_apikey_admin_token_t *
ngx_http_apikey_admin_token_of(ngx_http_request_t *r, redisReply *reply)
{
    json_t                         *orgs, *perms;
    ngx_int_t                       rc;
    redisReply                    **e;
    ngx_http_apikey_admin_token_t  *token;

    e = reply->element;

    if (reply->elements != 5
        || e[0]->type != REDIS_REPLY_STRING || e[0]->len != 2
        || ngx_strncmp(e[0]->str, "ok", 2) != 0
        || e[1]->type != REDIS_REPLY_STRING
        || e[2]->type != REDIS_REPLY_STRING
        || e[3]->type != REDIS_REPLY_STRING
        || e[4]->type != REDIS_REPLY_STRING)
    {
        return NULL;
    }

    token = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_token_t));
    if (token == NULL) {
        return NULL;
    }

    token->name.len = e[2]->len;
    token->name.data = ngx_pnalloc(r->pool, e[2]->len);
    if (token->name.data == NULL) {
        return NULL;
    }

    ngx_memcpy(token->name.data, e[2]->str, e[2]->len);

    token->id.len = e[1]->len;
    token->id.data = ngx_pnalloc(r->pool, e[1]->len);
    if (token->id.data == NULL) {
        return NULL;
    }

    ngx_memcpy(token->id.data, e[1]->str, e[1]->len);

    orgs = json_loadb(e[3]->str, e[3]->len, 0, NULL);
    perms = json_loadb(e[4]->str, e[4]->len, 0, NULL);

    rc = NGX_ERROR;

    if (orgs && perms
        && ngx_http_apikey_admin_token_orgs(r->pool, orgs, token) == NGX_OK)
    {
        rc = ngx_http_apikey_admin_token_permissions(perms,
                                                     &token->permissions);
    }

    json_decref(orgs);
    json_decref(perms);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: management token \"%V\" has a "
                      "malformed record", &token->name);
        return NULL;
    }

    return token;
}


/* ["*"]: all organizations (token->orgs NULL); else the names */

static ngx_int_t
ngx_http_apikey_admin_token_orgs(ngx_pool_t *pool, json_t *list,
    ngx_http_apikey_admin_token_t *token)
{
    size_t       i, n;
    json_t      *e;
    ngx_str_t   *org;
    const char  *s;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        return NGX_DECLINED;
    }

    n = json_array_size(list);
    e = json_array_get(list, 0);

    if (n == 1 && json_is_string(e) && ngx_strcmp(json_string_value(e), "*")
                                       == 0)
    {
        token->orgs = NULL;
        return NGX_OK;
    }

    token->orgs = ngx_array_create(pool, n, sizeof(ngx_str_t));
    if (token->orgs == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        e = json_array_get(list, i);

        if (!json_is_string(e)) {
            return NGX_DECLINED;
        }

        s = json_string_value(e);

        if (!ngx_http_apikey_admin_valid_name((u_char *) s,
                                              json_string_length(e)))
        {
            return NGX_DECLINED;
        }

        org = ngx_array_push(token->orgs);
        if (org == NULL) {
            return NGX_ERROR;
        }

        org->len = json_string_length(e);
        org->data = ngx_pnalloc(pool, org->len);
        if (org->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(org->data, s, org->len);
    }

    return NGX_OK;
}


/* the bits of a list of permission names; NGX_DECLINED: an unknown one */

static ngx_int_t
ngx_http_apikey_admin_token_permissions(json_t *list, ngx_uint_t *bits)
{
    size_t       i, len;
    json_t      *e;
    ngx_uint_t   k;
    const char  *s;

    if (!json_is_array(list)) {
        return NGX_DECLINED;
    }

    *bits = 0;

    for (i = 0; i < json_array_size(list); i++) {
        e = json_array_get(list, i);

        if (!json_is_string(e)) {
            return NGX_DECLINED;
        }

        s = json_string_value(e);
        len = json_string_length(e);

        for (k = 0; ngx_http_apikey_admin_permission_names[k].len; k++) {
            if (ngx_http_apikey_admin_permission_names[k].len == len
                && ngx_strncmp(ngx_http_apikey_admin_permission_names[k].data,
                               s, len)
                   == 0)
            {
                break;
            }
        }

        if (ngx_http_apikey_admin_permission_names[k].len == 0) {
            return NGX_DECLINED;
        }

        *bits |= (ngx_uint_t) 1 << k;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_admin_token_allows(ngx_http_apikey_admin_token_t *token,
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


/*
 * A new token's body, parsed (ngx_http_apikey_admin_json.c): orgs and
 * permissions given and known, an expiry within 2 years, and nothing the
 * caller's token does not hold itself (no escalation)
 */

ngx_int_t
ngx_http_apikey_admin_token_check(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    json_t                         *orgs, *perms;
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_str_t                      *org;
    ngx_http_apikey_admin_input_t  *in;
    ngx_http_apikey_admin_token_t   want;

    in = &ctx->in;

    if (!ngx_http_apikey_admin_given(in, ORGS)
        || !ngx_http_apikey_admin_given(in, PERMISSIONS))
    {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "orgs and permissions are "
                                           "required");
    }

    if (ngx_http_apikey_admin_given(in, EXPIRES_AT) && in->expires_at == 0) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "expires_at cannot be null: a "
                                           "management token expires");
    }

    if (ngx_http_apikey_admin_given(in, EXPIRES_IN)
        && in->expires_in > NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL_MAX)
    {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "expires_in is more than 2 years "
                                           "(%d s)",
                                           NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL_MAX);
    }

    ngx_memzero(&want, sizeof(ngx_http_apikey_admin_token_t));

    orgs = json_loadb((char *) in->orgs_json.data, in->orgs_json.len, 0,
                      NULL);
    perms = json_loadb((char *) in->permissions_json.data,
                       in->permissions_json.len, 0, NULL);

    if (orgs == NULL || perms == NULL) {
        json_decref(orgs);
        json_decref(perms);
        return NGX_ERROR;
    }

    rc = ngx_http_apikey_admin_token_orgs(r->pool, orgs, &want);

    json_decref(orgs);

    if (rc == NGX_DECLINED) {
        json_decref(perms);
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_field",
                                           "orgs must be organizations "
                                           "(1 to 64 of A-Z a-z 0-9 . _ -), "
                                           "or * alone");
    }

    if (rc == NGX_OK) {
        rc = ngx_http_apikey_admin_token_permissions(perms,
                                                     &want.permissions);
        if (rc == NGX_DECLINED) {
            (void) ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "invalid_field",
                                               "permissions must be of "
                                               "keys:read, keys:write, "
                                               "usage:read, events:read, "
                                               "orgs:write, tokens:manage");
        }
    }

    json_decref(perms);

    if (rc != NGX_OK) {
        return rc;
    }

    if (want.permissions & ~ctx->token->permissions) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                           "insufficient_permission",
                                           "a token can only make tokens "
                                           "with permissions it holds");
    }

    rc = (want.orgs == NULL && ctx->token->orgs != NULL) ? NGX_DECLINED
                                                         : NGX_OK;

    for (i = 0; rc == NGX_OK && want.orgs && i < want.orgs->nelts; i++) {
        org = want.orgs->elts;
        rc = ngx_http_apikey_admin_token_allows(ctx->token, &org[i]);
    }

    if (rc != NGX_OK) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                           "insufficient_permission",
                                           "a token can only make tokens "
                                           "for organizations it is allowed "
                                           "for");
    }

    return NGX_OK;
}


/* the token scripts' arguments, from ctx; a->failed is checked after */

ngx_int_t
ngx_http_apikey_admin_token_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a)
{
    ngx_str_t                       s, scope;
    ngx_http_apikey_admin_input_t  *in;

    in = &ctx->in;

    if (ngx_http_apikey_admin_token_scope(r, ctx->token, &scope) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE:
        if (ngx_http_apikey_admin_new_id(r, ctx, 't') != NGX_OK
            || ngx_http_apikey_admin_new_secret(r, ctx,
                                         &ngx_http_apikey_admin_token_prefix)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_apikey_admin_arg_key(a, "tok:%V", &ctx->id);
        ngx_http_apikey_admin_arg_key(a, "toksec:%*s",
                                      (size_t) NGX_HTTP_APIKEY_HASH_LEN,
                                      ctx->hash);
        ngx_http_apikey_admin_arg_key(a, "tokens");
        a->nkeys = 3;
        ngx_http_apikey_admin_token_idem(ctx, a);
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &ctx->id);
        ngx_http_apikey_admin_arg(a, &in->name);
        ngx_http_apikey_admin_arg(a, &in->orgs_json);
        ngx_http_apikey_admin_arg(a, &in->permissions_json);
        s.data = ctx->raw.data;
        s.len = NGX_HTTP_APIKEY_DISPLAY_LEN;
        ngx_http_apikey_admin_arg(a, &s);
        ngx_http_apikey_admin_arg_num(a, in->expires_at);
        ngx_http_apikey_admin_arg_num(a,
                                   ngx_http_apikey_admin_given(in, EXPIRES_IN)
                                   ? in->expires_in
                                   : NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL);
        ngx_http_apikey_admin_arg_num(a, NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL_MAX);
        ngx_http_apikey_admin_arg(a, &ctx->token->name);
        break;

    case NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST:
        ngx_http_apikey_admin_arg_key(a, "tokens");
        a->nkeys = 1;
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg_num(a, (int64_t) (in->page - 1)
                                         * in->per_page);
        ngx_http_apikey_admin_arg_num(a, in->per_page);
        ngx_http_apikey_admin_arg(a, &scope);
        return NGX_OK;

    case NGX_HTTP_APIKEY_ADMIN_TOKEN_GET:
        ngx_http_apikey_admin_arg_key(a, "tok:%V", &ctx->id);
        a->nkeys = 1;
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &scope);
        return NGX_OK;

    default: /* NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE */
        ngx_http_apikey_admin_arg_key(a, "tok:%V", &ctx->id);
        a->nkeys = 1;
        ngx_http_apikey_admin_token_idem(ctx, a);
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &scope);
        break;
    }

    /* last, for once() of the library: "" "" without an Idempotency-Key */

    ngx_http_apikey_admin_arg(a, &ctx->idem_fp);
    ngx_http_apikey_admin_arg(a, &ctx->sealed);

    return NGX_OK;
}


/* the last of a change's KEYS, with an Idempotency-Key: its record */

static void
ngx_http_apikey_admin_token_idem(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a)
{
    if (ctx->idem_id.len) {
        ngx_http_apikey_admin_arg_key(a, "idem:%V", &ctx->idem_id);
        a->nkeys++;
    }
}


/* the organizations a token allows, as the scripts read them */

static ngx_int_t
ngx_http_apikey_admin_token_scope(ngx_http_request_t *r,
    ngx_http_apikey_admin_token_t *token, ngx_str_t *scope)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *org;
    ngx_uint_t   i;

    if (token->orgs == NULL) {
        ngx_str_set(scope, "*");
        return NGX_OK;
    }

    org = token->orgs->elts;
    len = 2;

    for (i = 0; i < token->orgs->nelts; i++) {
        len += org[i].len + 3;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    scope->data = p;

    *p++ = '[';

    for (i = 0; i < token->orgs->nelts; i++) {
        p = ngx_sprintf(p, "%s\"%V\"", i ? "," : "", &org[i]);
    }

    *p++ = ']';

    scope->len = p - scope->data;

    return NGX_OK;
}


static void
ngx_http_apikey_admin_token_cleanup(void *data)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    if (ctx->op) {
        ngx_http_apikey_redis_detach(ctx->op);
        ctx->op = NULL;
    }
}
