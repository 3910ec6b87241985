
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/rand.h>

#include "ngx_http_apikey_admin.h"


static ngx_int_t ngx_http_apikey_admin_create_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a);
static void ngx_http_apikey_admin_key_names(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a, ngx_uint_t secret);
static void ngx_http_apikey_admin_key_args(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a);
static void ngx_http_apikey_admin_arg_given(ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_admin_input_t *in);
static void ngx_http_apikey_admin_arg_org(ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_admin_input_t *in, ngx_uint_t update);
static void ngx_http_apikey_admin_arg_org(ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_admin_input_t *in, ngx_uint_t update);
static void ngx_http_apikey_admin_arg_fmt(ngx_http_apikey_admin_args_t *a,
    const char *fmt, ...);
static void ngx_http_apikey_admin_arg_vfmt(ngx_http_apikey_admin_args_t *a,
    ngx_str_t *prefix, const char *fmt, va_list args);
static void ngx_http_apikey_admin_wipe(void *data);


/* the operation's script arguments, from ctx; a->failed is checked after */

ngx_int_t
ngx_http_apikey_admin_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a)
{
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    switch (ctx->operation) {
    case NGX_HTTP_APIKEY_ADMIN_CREATE:
        if (ngx_http_apikey_admin_create_args(r, ctx, a) != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_APIKEY_ADMIN_LIST:
        ngx_http_apikey_admin_arg_key(a, "org:%V:keys", &ctx->org);
        ngx_http_apikey_admin_arg_key(a, "org:%V:idx", &ctx->org);
        ngx_http_apikey_admin_arg_key(a, "org:%V:active", &ctx->org);
        ngx_http_apikey_admin_arg_key(a, "org:%V:rebuild", &ctx->org);
        a->nkeys = 4;
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg_num(a, (int64_t) (ctx->in.page - 1)
                                         * ctx->in.per_page);
        ngx_http_apikey_admin_arg_num(a, ctx->in.per_page);
        ngx_http_apikey_admin_arg(a, &ctx->in.search);
        ngx_http_apikey_admin_arg(a, &ctx->in.status);
        ngx_http_apikey_admin_arg(a, &ctx->in.env_filter);
        ngx_http_apikey_admin_arg(a, &ctx->cursor_score);
        ngx_http_apikey_admin_arg(a, &ctx->cursor_member);
        ngx_http_apikey_admin_arg_num(a, ctx->seen);
        ngx_http_apikey_admin_arg_num(a, NGX_HTTP_APIKEY_ADMIN_WALK);
        ngx_http_apikey_admin_arg(a, &ctx->in.name_prefix);
        break;

    case NGX_HTTP_APIKEY_ADMIN_GET:
        ngx_http_apikey_admin_arg_key(a, "key:%V", &ctx->id);
        a->nkeys = 1;
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &ctx->org);
        break;

    case NGX_HTTP_APIKEY_ADMIN_UPDATE:
        ngx_http_apikey_admin_key_args(ctx, a);
        ngx_http_apikey_admin_arg_num(a, alcf->max_keys);
        ngx_http_apikey_admin_arg_num(a, alcf->max_ttl);
        ngx_http_apikey_admin_arg_given(a, &ctx->in);
        ngx_http_apikey_admin_arg(a, &ctx->in.name);
        ngx_http_apikey_admin_arg(a, &ctx->in.description);
        ngx_http_apikey_admin_arg(a, &ctx->in.scopes_json);
        ngx_http_apikey_admin_arg_num(a, ctx->in.rate);
        ngx_http_apikey_admin_arg_num(a, ctx->in.per);
        ngx_http_apikey_admin_arg_num(a, ctx->in.burst);
        ngx_http_apikey_admin_arg_num(a, ctx->in.expires_at);
        ngx_http_apikey_admin_arg(a, &ctx->in.meta);
        ngx_http_apikey_admin_arg(a, &ctx->in.quota);
        break;

    case NGX_HTTP_APIKEY_ADMIN_RESTORE:
        ngx_http_apikey_admin_key_args(ctx, a);
        ngx_http_apikey_admin_arg_num(a, alcf->max_keys);
        break;

    case NGX_HTTP_APIKEY_ADMIN_ROTATE:
        if (ngx_http_apikey_admin_new_secret(r, ctx, &alcf->prefix)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_apikey_admin_key_names(ctx, a, 1);
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &ctx->org);
        ngx_http_apikey_admin_arg(a, &ctx->token->name);
        ngx_http_apikey_admin_arg_fmt(a, "%*s",
                                      (size_t) NGX_HTTP_APIKEY_DISPLAY_LEN,
                                      ctx->raw.data);
        ngx_http_apikey_admin_arg_num(a, ctx->in.grace);
        ngx_http_apikey_admin_arg_fmt(a, "%*s",
                                      (size_t) NGX_HTTP_APIKEY_HASH_LEN,
                                      ctx->hash);
        break;

    case NGX_HTTP_APIKEY_ADMIN_ORG_GET:
    case NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE:
        ngx_http_apikey_admin_key_args(ctx, a);
        ngx_http_apikey_admin_arg_org(a, &ctx->in,
                                ctx->operation
                                == NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE);
        break;

    case NGX_HTTP_APIKEY_ADMIN_EVENTS:
        ngx_http_apikey_admin_arg_key(a, "org:%V:events", &ctx->org);
        a->nkeys = 1;
        ngx_http_apikey_admin_arg_num(a, (int64_t) (ctx->in.page - 1)
                                         * ctx->in.per_page);
        ngx_http_apikey_admin_arg_num(a, ctx->in.per_page);
        break;

    case NGX_HTTP_APIKEY_ADMIN_USAGE:
        ngx_http_apikey_admin_arg_key(a, "key:%V", &ctx->id);
        a->nkeys = 1;
        ngx_http_apikey_admin_arg(a, a->ns);
        ngx_http_apikey_admin_arg(a, &ctx->org);
        ngx_http_apikey_admin_arg_num(a, ctx->in.from / 86400);
        ngx_http_apikey_admin_arg_num(a, (ctx->in.from - 1
                                          + (time_t) ctx->in.buckets
                                            * ctx->in.span)
                                         / 86400);
        ngx_http_apikey_admin_arg_fmt(a, "%s", (ctx->in.span == 3600)
                                               ? "hour" : "day");
        break;

    default: /* revoke, delete */
        ngx_http_apikey_admin_key_args(ctx, a);
        break;
    }

    /* last, for once() of the library: "" "" without an Idempotency-Key */

    if (ngx_http_apikey_admin_changes(ctx)) {
        ngx_http_apikey_admin_arg(a, &ctx->idem_fp);
        ngx_http_apikey_admin_arg(a, &ctx->sealed);
    }

    return NGX_OK;
}


void
ngx_http_apikey_admin_reindex_args(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a, ngx_str_t *budget)
{
    ngx_http_apikey_admin_arg_key(a, "org:%V:keys", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:idx", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:active", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:rebuild", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:idx:new", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:active:new", &ctx->org);
    a->nkeys = 6;
    ngx_http_apikey_admin_arg(a, a->ns);
    ngx_http_apikey_admin_arg(a, budget);
}

/*
 * The KEYS of the scripts that change a key, in the order they expect:
 * the record, the org's sorted set, index, active set, event log, the
 * state of an index rebuild and the indexes it builds and, for create and
 * rotate, the new secret's hash.
 */

static void
ngx_http_apikey_admin_key_names(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a, ngx_uint_t secret)
{
    ngx_http_apikey_admin_arg_key(a, "key:%V", &ctx->id);
    ngx_http_apikey_admin_arg_key(a, "org:%V:keys", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:idx", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:active", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:events", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:rebuild", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:idx:new", &ctx->org);
    ngx_http_apikey_admin_arg_key(a, "org:%V:active:new", &ctx->org);
    a->nkeys = 8;

    if (secret) {
        ngx_http_apikey_admin_arg_key(a, "{%*s}",
                                      (size_t) NGX_HTTP_APIKEY_HASH_LEN,
                                      ctx->hash);
        a->nkeys = 9;
    }

    if (ctx->idem_id.len) {
        ngx_http_apikey_admin_arg_key(a, "idem:%V", &ctx->idem_id);
        a->nkeys++;
    }
}


static void
ngx_http_apikey_admin_key_args(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a)
{
    ngx_http_apikey_admin_key_names(ctx, a, 0);
    ngx_http_apikey_admin_arg(a, a->ns);
    ngx_http_apikey_admin_arg(a, &ctx->org);
    ngx_http_apikey_admin_arg(a, &ctx->token->name);
}


static ngx_int_t
ngx_http_apikey_admin_create_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a)
{
    ngx_str_t                           prefix, *env;
    time_t                              expires_in;
    ngx_http_apikey_admin_input_t      *in;
    ngx_http_apikey_admin_loc_conf_t   *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);
    in = &ctx->in;

    if (ngx_http_apikey_admin_new_id(r, ctx, 'k') != NGX_OK
        || ngx_http_apikey_admin_new_secret(r, ctx, &alcf->prefix) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!ngx_http_apikey_admin_given(in, ENVIRONMENT)) {
        env = alcf->environments->elts;
        in->environment = env[0];
    }

    if (!ngx_http_apikey_admin_given(in, SCOPES)) {
        ngx_str_set(&in->scopes_json, "[]");
    }

    if (!ngx_http_apikey_admin_given(in, RATE)) {
        in->rate = alcf->rate;
        in->per = alcf->per;
        in->burst = alcf->burst;
    }

    expires_in = 0;

    if (ngx_http_apikey_admin_given(in, EXPIRES_IN)) {
        expires_in = in->expires_in;

    } else if (!ngx_http_apikey_admin_given(in, EXPIRES_AT)) {
        expires_in = alcf->default_ttl ? alcf->default_ttl : alcf->max_ttl;
    }

    prefix.data = ctx->raw.data;
    prefix.len = NGX_HTTP_APIKEY_DISPLAY_LEN;

    ngx_http_apikey_admin_key_names(ctx, a, 1);

    ngx_http_apikey_admin_arg(a, a->ns);
    ngx_http_apikey_admin_arg(a, &ctx->org);
    ngx_http_apikey_admin_arg(a, &ctx->id);
    ngx_http_apikey_admin_arg(a, &in->name);
    ngx_http_apikey_admin_arg(a, &in->description);
    ngx_http_apikey_admin_arg(a, &prefix);
    ngx_http_apikey_admin_arg(a, &in->environment);
    ngx_http_apikey_admin_arg(a, &in->scopes_json);
    ngx_http_apikey_admin_arg_num(a, in->rate);
    ngx_http_apikey_admin_arg_num(a, in->per);
    ngx_http_apikey_admin_arg_num(a, in->burst);
    ngx_http_apikey_admin_arg_num(a, in->expires_at);
    ngx_http_apikey_admin_arg_num(a, expires_in);
    ngx_http_apikey_admin_arg_num(a, alcf->max_ttl);
    ngx_http_apikey_admin_arg_num(a, alcf->max_keys);
    ngx_http_apikey_admin_arg(a, &ctx->token->name);

    prefix.data = ctx->hash;
    prefix.len = NGX_HTTP_APIKEY_HASH_LEN;
    ngx_http_apikey_admin_arg(a, &prefix);
    ngx_http_apikey_admin_arg(a, &in->meta);
    ngx_http_apikey_admin_arg(a, &in->quota);

    return NGX_OK;
}


/* a new id in ctx->id: "<letter>_" and 22 base62 (128 random bits) */

ngx_int_t
ngx_http_apikey_admin_new_id(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char letter)
{
    u_char  *id;
    u_char   rnd[16];

    id = ngx_pnalloc(r->pool, NGX_HTTP_APIKEY_ADMIN_ID_LEN);
    if (id == NULL) {
        return NGX_ERROR;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: RAND_bytes() failed");
        return NGX_ERROR;
    }

    id[0] = letter;
    id[1] = '_';
    ngx_http_apikey_base62(id + 2, NGX_HTTP_APIKEY_ADMIN_ID_LEN - 2, rnd,
                           sizeof(rnd));

    ctx->id.data = id;
    ctx->id.len = NGX_HTTP_APIKEY_ADMIN_ID_LEN;

    return NGX_OK;
}


/*
 * A new raw key (or management token) of the prefix, its hash and, with
 * an Idempotency-Key, the raw key sealed for the record.  The raw key and
 * the response that will carry it are wiped when the request's pool goes.
 */

ngx_int_t
ngx_http_apikey_admin_new_secret(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *prefix)
{
    size_t               len;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    ctx->raw.data = ngx_pnalloc(r->pool, NGX_HTTP_APIKEY_KEY_MAX);
    if (ctx->raw.data == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_apikey_admin_wipe;
    cln->data = ctx;

    if (ngx_http_apikey_key_generate(ctx->raw.data, &len, prefix->data,
                                     prefix->len)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: key generation failed");
        return NGX_ERROR;
    }

    ctx->raw.len = len;

    if (ngx_http_apikey_sha256_hex(ctx->hash, ctx->raw.data, ctx->raw.len)
        != 0)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_admin_seal(r, ctx);
}


/* the fields an update gives, as its script reads them: "n" name ... */

static void
ngx_http_apikey_admin_arg_given(ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_admin_input_t *in)
{
    ngx_str_t   s;
    ngx_uint_t  i;

    static u_char      letters[] = "ndsremq";
    static ngx_uint_t  fields[] = {
        NGX_HTTP_APIKEY_ADMIN_GIVEN_NAME,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_DESCRIPTION,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_SCOPES,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_RATE,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_EXPIRES_AT,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_META,
        NGX_HTTP_APIKEY_ADMIN_GIVEN_QUOTA
    };

    s.data = ngx_pnalloc(a->pool, sizeof(letters));
    if (s.data == NULL) {
        a->failed = 1;
        return;
    }

    s.len = 0;

    for (i = 0; i < sizeof(letters) - 1; i++) {
        if (in->given & fields[i]) {
            s.data[s.len++] = letters[i];
        }
    }

    ngx_http_apikey_admin_arg(a, &s);
}


/*
 * An organization's settings as its script reads them: the fields given
 * ("" to read; "r" rate limit, "q" quota, "k" max_keys), rate, per,
 * burst, quota and max_keys ("" to fall back)
 */

static void
ngx_http_apikey_admin_arg_org(ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_admin_input_t *in, ngx_uint_t update)
{
    u_char     *p;
    ngx_str_t   s;

    p = ngx_pnalloc(a->pool, 3);
    if (p == NULL) {
        a->failed = 1;
        return;
    }

    s.data = p;

    if (update) {
        if (ngx_http_apikey_admin_given(in, RATE)) {
            *p++ = 'r';
        }

        if (ngx_http_apikey_admin_given(in, QUOTA)) {
            *p++ = 'q';
        }

        if (ngx_http_apikey_admin_given(in, MAX_KEYS)) {
            *p++ = 'k';
        }
    }

    s.len = p - s.data;

    ngx_http_apikey_admin_arg(a, &s);
    ngx_http_apikey_admin_arg_num(a, in->rate);
    ngx_http_apikey_admin_arg_num(a, in->per);
    ngx_http_apikey_admin_arg_num(a, in->burst);
    ngx_http_apikey_admin_arg(a, &in->quota);

    if (in->max_keys >= 0 && ngx_http_apikey_admin_given(in, MAX_KEYS)) {
        ngx_http_apikey_admin_arg_num(a, in->max_keys);

    } else {
        ngx_str_set(&s, "");
        ngx_http_apikey_admin_arg(a, &s);
    }
}


void
ngx_http_apikey_admin_arg(ngx_http_apikey_admin_args_t *a, ngx_str_t *value)
{
    if (a->nargs == NGX_HTTP_APIKEY_ADMIN_MAX_ARGS) {
        a->failed = 1;
        return;
    }

    a->args[a->nargs++] = *value;
}


void
ngx_http_apikey_admin_arg_num(ngx_http_apikey_admin_args_t *a, int64_t n)
{
    u_char     *p;
    ngx_str_t   s;

    p = ngx_pnalloc(a->pool, NGX_INT64_LEN);
    if (p == NULL) {
        a->failed = 1;
        return;
    }

    s.data = p;
    s.len = ngx_sprintf(p, "%L", n) - p;

    ngx_http_apikey_admin_arg(a, &s);
}


/* a Redis key: the namespace, then the formatted rest */

void
ngx_http_apikey_admin_arg_key(ngx_http_apikey_admin_args_t *a,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_http_apikey_admin_arg_vfmt(a, a->ns, fmt, args);
    va_end(args);
}


static void
ngx_http_apikey_admin_arg_fmt(ngx_http_apikey_admin_args_t *a,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_http_apikey_admin_arg_vfmt(a, NULL, fmt, args);
    va_end(args);
}


static void
ngx_http_apikey_admin_arg_vfmt(ngx_http_apikey_admin_args_t *a,
    ngx_str_t *prefix, const char *fmt, va_list args)
{
    u_char     *p, *last;
    size_t      len;
    ngx_str_t   s;

    len = (prefix ? prefix->len : 0) + 256;

    p = ngx_pnalloc(a->pool, len);
    if (p == NULL) {
        a->failed = 1;
        return;
    }

    s.data = p;

    if (prefix) {
        p = ngx_cpymem(p, prefix->data, prefix->len);
    }

    last = ngx_vslprintf(p, s.data + len, fmt, args);

    s.len = last - s.data;

    ngx_http_apikey_admin_arg(a, &s);
}


static void
ngx_http_apikey_admin_wipe(void *data)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    ngx_explicit_memzero(ctx->raw.data, NGX_HTTP_APIKEY_KEY_MAX);
    ngx_explicit_memzero(ctx->hash, NGX_HTTP_APIKEY_HASH_LEN);

    if (ctx->out.data) {
        ngx_explicit_memzero(ctx->out.data, ctx->out.len);
    }
}
