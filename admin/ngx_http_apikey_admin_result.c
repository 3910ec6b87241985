
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


static ngx_int_t ngx_http_apikey_admin_answer_reply(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static void ngx_http_apikey_admin_free_data(void *data);
static ngx_int_t ngx_http_apikey_admin_location(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *location);
static ngx_int_t ngx_http_apikey_admin_send_key(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_replayed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply, ngx_str_t *id);
static ngx_int_t ngx_http_apikey_admin_send_list(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_send_events(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_send_page(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, json_t *data, json_int_t total);
static ngx_int_t ngx_http_apikey_admin_send_tokens(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_fields(redisReply *reply,
    ngx_str_t *f, size_t min, size_t n);
static ngx_uint_t ngx_http_apikey_admin_plain(redisReply *reply);


/* every answer built below that runs out of memory is a 503 */

ngx_int_t
ngx_http_apikey_admin_reply(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t  rc;

    rc = ngx_http_apikey_admin_answer_reply(r, ctx, reply);

    if (rc == NGX_ERROR) {
        return ngx_http_apikey_admin_no_memory(r, ctx);
    }

    return rc;
}


static ngx_int_t
ngx_http_apikey_admin_answer_reply(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t     rc;
    ngx_str_t     code;
    ngx_uint_t    status;
    redisReply  **e;
    u_char        text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];

    if (reply == NULL) {
        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the key store did not answer");
        return ngx_http_apikey_admin_send_error(r, ctx);
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "apikey admin: redis error: %*s",
                      ngx_http_apikey_redis_text(text, (u_char *) reply->str,
                                                 reply->len) - text,
                      text);

        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the key store failed");
        return ngx_http_apikey_admin_send_error(r, ctx);
    }

    e = reply->element;

    /* a code and a detail go into a problem body as they are */

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || !ngx_http_apikey_admin_plain(e[0])
        || !ngx_http_apikey_admin_plain(e[1]))
    {
        goto invalid;
    }

    code.data = (u_char *) e[0]->str;
    code.len = e[0]->len;

    if (code.len != 2 || ngx_strncmp(code.data, "ok", 2) != 0) {

        if ((code.len == 13
             && ngx_strncmp(code.data, "key_not_found", 13) == 0)
            || (code.len == 15
                && ngx_strncmp(code.data, "token_not_found", 15) == 0))
        {
            status = NGX_HTTP_NOT_FOUND;

        } else if (code.len == sizeof("idempotency_key_reused") - 1
                   && ngx_strncmp(code.data, "idempotency_key_reused",
                                  code.len)
                      == 0)
        {
            status = NGX_HTTP_APIKEY_ADMIN_UNPROCESSABLE;

        } else if (code.len == 8
                   && ngx_strncmp(code.data, "conflict", 8) == 0)
        {
            /* a random id or secret already taken: 2^-128, but not 0 */

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: the %V script found its new key id "
                          "or secret in use", &ctx->script->name);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            status = NGX_HTTP_BAD_REQUEST;
        }

        ctx->err.status = status;
        ctx->err.code.len = code.len;
        ctx->err.code.data = ngx_pstrdup(r->pool, &code);

        ctx->err.detail.len = e[1]->len;
        ctx->err.detail.data = ngx_pnalloc(r->pool, e[1]->len);

        if (ctx->err.code.data == NULL || ctx->err.detail.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->err.detail.data, e[1]->str, e[1]->len);

        return ngx_http_apikey_admin_send_error(r, ctx);
    }

    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_DELETE:
        return NGX_HTTP_NO_CONTENT;

    case NGX_HTTP_APIKEY_ADMIN_LIST:
        if ((reply->elements != 5 && reply->elements != 7)
            || e[4]->type != REDIS_REPLY_ARRAY)
        {
            goto invalid;
        }

        return ngx_http_apikey_admin_send_list(r, ctx, reply);

    case NGX_HTTP_APIKEY_ADMIN_EVENTS:
        if (reply->elements != 4 || e[3]->type != REDIS_REPLY_ARRAY) {
            goto invalid;
        }

        return ngx_http_apikey_admin_send_events(r, ctx, reply);

    case NGX_HTTP_APIKEY_ADMIN_USAGE:
        if (reply->elements != 3 || e[2]->type != REDIS_REPLY_ARRAY) {
            goto invalid;
        }

        return ngx_http_apikey_admin_send_usage(r, ctx, e[2]);

    case NGX_HTTP_APIKEY_ADMIN_ORG_GET:
    case NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE:
        if (reply->elements != 4 || e[3]->type != REDIS_REPLY_ARRAY) {
            goto invalid;
        }

        rc = ngx_http_apikey_admin_send_org(r, ctx, reply);

        if (rc == NGX_DECLINED) {
            goto invalid;
        }

        return rc;

    case NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST:
        if (reply->elements != 5 || e[4]->type != REDIS_REPLY_ARRAY) {
            goto invalid;
        }

        return ngx_http_apikey_admin_send_tokens(r, ctx, reply);

    default:
        if (reply->elements < 4 || e[3]->type != REDIS_REPLY_ARRAY) {
            goto invalid;
        }

        return ngx_http_apikey_admin_send_key(r, ctx, reply);
    }

invalid:

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "apikey admin: unexpected reply from the %V script",
                  &ctx->script->name);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * The new key's URL: the admin location's own path, then
 * "orgs/<org>/keys/<id>", never the request line (which may name another
 * host, "//evil.example/...", or carry a "#").  A regular expression or
 * exact location has no path of its own: the request's path up to its
 * "/orgs/", normalised by nginx, escaped, with a single leading slash.
 */

static ngx_int_t
ngx_http_apikey_admin_location(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *location)
{
    u_char                    *p, *base;
    size_t                     len;
    ngx_str_t                  path;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!clcf->exact_match && !clcf->named && !clcf->noname
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        )
    {
        path = clcf->name;

    } else {
        path.data = r->uri.data;
        p = ngx_strnstr(r->uri.data, "/orgs/", r->uri.len);
        path.len = p ? (size_t) (p - r->uri.data) : 0;
    }

    while (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    if (path.len && path.data[path.len - 1] == '/') {
        path.len--;
    }

    len = 1 + path.len
          + 2 * ngx_escape_uri(NULL, path.data, path.len, NGX_ESCAPE_URI)
          + sizeof("/orgs//keys/") - 1 + ctx->org.len + ctx->id.len;

    base = ngx_pnalloc(r->pool, len);
    if (base == NULL) {
        return NGX_ERROR;
    }

    p = base;
    *p++ = '/';

    if (path.len) {
        p = (u_char *) ngx_escape_uri(p, path.data, path.len, NGX_ESCAPE_URI);
        *p++ = '/';
    }

    p = ngx_sprintf(p, "orgs/%V/keys/%V", &ctx->org, &ctx->id);

    location->data = base;
    location->len = p - base;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_send_key(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    json_t      *json;
    time_t       now, prev;
    ngx_str_t    f[NGX_HTTP_APIKEY_ADMIN_F_N], *raw, location;
    ngx_int_t    rc;
    ngx_uint_t   status, replay, token;

    /* a management token's answer is shaped as a key's */

    token = ngx_http_apikey_admin_token_op(ctx);

    if (ngx_http_apikey_admin_fields(reply->element[3], f,
                                     token ? NGX_HTTP_APIKEY_ADMIN_T_N
                                           : NGX_HTTP_APIKEY_ADMIN_F_META,
                                     token ? NGX_HTTP_APIKEY_ADMIN_T_N
                                           : NGX_HTTP_APIKEY_ADMIN_F_N)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: unexpected key from the %V script",
                      &ctx->script->name);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_apikey_admin_replayed(r, ctx, reply,
                                        &f[NGX_HTTP_APIKEY_ADMIN_F_ID]);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the outcome kept for this "
                                    "Idempotency-Key cannot be read");
        return ngx_http_apikey_admin_send_error(r, ctx);
    }

    replay = (rc == NGX_DONE);

    now = (time_t) ngx_http_apikey_admin_int(reply->element[2]);

    json = token ? ngx_http_apikey_admin_token_json(f, now)
                 : ngx_http_apikey_admin_key_json(f, now);
    if (json == NULL) {
        return NGX_ERROR;
    }

    raw = NULL;
    status = NGX_HTTP_OK;

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE) {
        raw = &ctx->raw;
        status = NGX_HTTP_CREATED;
    }

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_ROTATE) {
        prev = 0;

        if (reply->elements > 4) {
            prev = (time_t) ngx_http_apikey_admin_int(reply->element[4]);
        }

        if (json_object_set_new(json, "previous_key_expires_at",
                                ngx_http_apikey_admin_time_json(prev))
            != 0)
        {
            json_decref(json);
            return NGX_ERROR;
        }

        raw = &ctx->raw;
    }

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_CREATE) {
        raw = &ctx->raw;
        status = NGX_HTTP_CREATED;

        if (ngx_http_apikey_admin_location(r, ctx, &location) != NGX_OK
            || ngx_http_apikey_add_header(r, "Location",
                                          sizeof("Location") - 1, &location)
               == NULL)
        {
            json_decref(json);
            return NGX_ERROR;
        }
    }

    rc = ngx_http_apikey_admin_dump_as(r, json, token ? "token" : "key", raw,
                                       &ctx->out);

    json_decref(json);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "apikey admin: %V %V/%V by \"%V\"%s",
                  &ctx->script->name, &ctx->org,
                  &f[NGX_HTTP_APIKEY_ADMIN_F_ID], &ctx->token->name,
                  replay ? ", replayed for its Idempotency-Key" : "");

    return ngx_http_apikey_admin_send_json(r, status, &ctx->out);
}


/*
 * A retry's answer (once() in the scripts' library): {"ok", "", now, key,
 * ends, gates, "replay", the first call's sealed raw key}.  NGX_DONE for
 * a retry, with ctx->id the first call's key and, for create and rotate,
 * ctx->raw its raw key; NGX_OK for a first call; NGX_DECLINED when the
 * raw key does not open; NGX_ERROR.
 */

static ngx_int_t
ngx_http_apikey_admin_replayed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply, ngx_str_t *id)
{
    redisReply  **e;

    e = reply->element;

    if (reply->elements < 8
        || e[6]->type != REDIS_REPLY_STRING
        || e[6]->len != sizeof("replay") - 1
        || ngx_strncmp(e[6]->str, "replay", 6) != 0
        || e[7]->type != REDIS_REPLY_STRING)
    {
        return NGX_OK;
    }

    ctx->id.data = ngx_pstrdup(r->pool, id);
    if (ctx->id.data == NULL) {
        return NGX_ERROR;
    }

    ctx->id.len = id->len;

    if (ctx->operation != NGX_HTTP_APIKEY_ADMIN_CREATE
        && ctx->operation != NGX_HTTP_APIKEY_ADMIN_ROTATE
        && ctx->operation != NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE)
    {
        return NGX_DONE;
    }

    if (ngx_http_apikey_admin_unseal(r, ctx, (u_char *) e[7]->str, e[7]->len)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "apikey admin: the raw key kept for the Idempotency-Key "
                  "of %V %V/%V does not open", &ctx->script->name,
                  &ctx->org, &ctx->id);

    return NGX_DECLINED;
}


/*
 * Adds a list reply's keys to ctx->data; NGX_AGAIN when the walk goes on,
 * else sends the page.
 */

static ngx_int_t
ngx_http_apikey_admin_send_list(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    json_t              *key;
    time_t               now;
    size_t               i;
    ngx_str_t            f[NGX_HTTP_APIKEY_ADMIN_F_N];
    redisReply          *list, **e;
    ngx_pool_cleanup_t  *cln;

    e = reply->element;
    now = (time_t) ngx_http_apikey_admin_int(e[2]);
    list = e[4];

    if (ctx->data == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        ctx->data = json_array();
        if (ctx->data == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_apikey_admin_free_data;
        cln->data = ctx;
    }

    for (i = 0; i < list->elements; i++) {

        if (ngx_http_apikey_admin_fields(list->element[i], f,
                                         NGX_HTTP_APIKEY_ADMIN_F_META,
                                         NGX_HTTP_APIKEY_ADMIN_F_N)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "apikey admin: unexpected key from the list "
                          "script");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        key = ngx_http_apikey_admin_key_json(f, now);

        if (json_array_append_new(ctx->data, key) != 0) {
            return NGX_ERROR;
        }
    }

    ctx->seen = ngx_http_apikey_admin_int(e[3]);

    if (reply->elements == 7
        && e[5]->type == REDIS_REPLY_STRING && e[5]->len
        && e[6]->type == REDIS_REPLY_STRING)
    {
        ctx->cursor_score.len = e[5]->len;
        ctx->cursor_score.data = ngx_pnalloc(r->pool, e[5]->len);
        ctx->cursor_member.len = e[6]->len;
        ctx->cursor_member.data = ngx_pnalloc(r->pool, e[6]->len + 1);

        if (ctx->cursor_score.data == NULL
            || ctx->cursor_member.data == NULL)
        {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->cursor_score.data, e[5]->str, e[5]->len);
        ngx_memcpy(ctx->cursor_member.data, e[6]->str, e[6]->len);

        return NGX_AGAIN;
    }

    return ngx_http_apikey_admin_send_page(r, ctx, ctx->data, ctx->seen);
}


/* a page of management tokens: {"ok", "", now, total, {token, ...}} */

static ngx_int_t
ngx_http_apikey_admin_send_tokens(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    json_t      *data;
    time_t       now;
    size_t       i;
    ngx_int_t    rc;
    ngx_str_t    f[NGX_HTTP_APIKEY_ADMIN_T_N];
    redisReply  *list;

    now = (time_t) ngx_http_apikey_admin_int(reply->element[2]);
    list = reply->element[4];

    data = json_array();
    if (data == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < list->elements; i++) {

        if (ngx_http_apikey_admin_fields(list->element[i], f,
                                         NGX_HTTP_APIKEY_ADMIN_T_N,
                                         NGX_HTTP_APIKEY_ADMIN_T_N)
            != NGX_OK)
        {
            json_decref(data);
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "apikey admin: unexpected token from the "
                          "tokens_list script");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (json_array_append_new(data,
                                  ngx_http_apikey_admin_token_json(f, now))
            != 0)
        {
            json_decref(data);
            return NGX_ERROR;
        }
    }

    rc = ngx_http_apikey_admin_send_page(r, ctx, data,
                                 ngx_http_apikey_admin_int(reply->element[3]));

    json_decref(data);

    return rc;
}


static void
ngx_http_apikey_admin_free_data(void *data)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    json_decref(ctx->data);
}


static ngx_int_t
ngx_http_apikey_admin_send_events(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    json_t      *data, *event;
    size_t       i;
    ngx_int_t    rc;
    redisReply  *list, *e;

    list = reply->element[3];

    data = json_array();
    if (data == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        event = ngx_http_apikey_admin_event_json((u_char *) e->str, e->len);

        if (event == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: skipped a malformed event of "
                          "organization \"%V\"", &ctx->org);
            continue;
        }

        if (json_array_append_new(data, event) != 0) {
            json_decref(data);
            return NGX_ERROR;
        }
    }

    rc = ngx_http_apikey_admin_send_page(r, ctx, data,
                                 ngx_http_apikey_admin_int(reply->element[2]));

    json_decref(data);

    return rc;
}


/* {"data":[...],"page":P,"per_page":N,"total_count":T}, for lists */

static ngx_int_t
ngx_http_apikey_admin_send_page(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, json_t *data, json_int_t total)
{
    json_t  *json;

    json = json_object();

    if (json == NULL
        || json_object_set(json, "data", data) != 0
        || json_object_set_new(json, "page", json_integer(ctx->in.page)) != 0
        || json_object_set_new(json, "per_page",
                               json_integer(ctx->in.per_page))
           != 0
        || json_object_set_new(json, "total_count", json_integer(total))
           != 0)
    {
        json_decref(json);
        return NGX_ERROR;
    }

    return ngx_http_apikey_admin_send_object(r, json);
}


/*
 * The min to n fields of a key or token, the first its id; nil and
 * missing fields are { 0, NULL } (an answer kept for an Idempotency-Key
 * before meta has no meta, one before quotas no quota)
 */

static ngx_int_t
ngx_http_apikey_admin_fields(redisReply *reply, ngx_str_t *f, size_t min,
    size_t n)
{
    size_t       i;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements < min || reply->elements > n)
    {
        return NGX_ERROR;
    }

    for (i = reply->elements; i < n; i++) {
        f[i].data = NULL;
        f[i].len = 0;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            f[i].data = (u_char *) e->str;
            f[i].len = e->len;

        } else if (e->type == REDIS_REPLY_NIL) {
            f[i].data = NULL;
            f[i].len = 0;

        } else {
            return NGX_ERROR;
        }
    }

    /* the id goes into logs as it is */

    if (f[NGX_HTTP_APIKEY_ADMIN_F_ID].data == NULL
        || !ngx_http_apikey_admin_valid_name(f[NGX_HTTP_APIKEY_ADMIN_F_ID].data,
                                             f[NGX_HTTP_APIKEY_ADMIN_F_ID].len))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a string of printable ASCII with no quote or backslash */

static ngx_uint_t
ngx_http_apikey_admin_plain(redisReply *reply)
{
    size_t  i;
    u_char  c;

    if (reply->type != REDIS_REPLY_STRING) {
        return 0;
    }

    for (i = 0; i < reply->len; i++) {
        c = reply->str[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }

    return 1;
}
