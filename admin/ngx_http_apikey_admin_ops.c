
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_admin_scripts.h"




static ngx_uint_t ngx_http_apikey_admin_needs_index(
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf);
static ngx_int_t ngx_http_apikey_admin_reindex(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_main_conf_t *akmcf);
static ngx_int_t ngx_http_apikey_admin_reindexed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static void ngx_http_apikey_admin_cleanup(void *data);
static void ngx_http_apikey_admin_done(void *data, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_wait(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static void ngx_http_apikey_admin_waited(void *data, redisReply *reply);


#define ngx_http_apikey_admin_script(name)                                    \
    { ngx_string(#name),                                                      \
      { sizeof(ngx_http_apikey_admin_##name##_lua) - 1,                       \
        ngx_http_apikey_admin_##name##_lua },                                 \
      { 0 } }


/* in the order of the NGX_HTTP_APIKEY_ADMIN_* operations */

static ngx_http_apikey_script_t  ngx_http_apikey_admin_scripts[] = {
    ngx_http_apikey_admin_script(create),
    ngx_http_apikey_admin_script(list),
    ngx_http_apikey_admin_script(get),
    ngx_http_apikey_admin_script(update),
    ngx_http_apikey_admin_script(revoke),
    ngx_http_apikey_admin_script(restore),
    ngx_http_apikey_admin_script(rotate),
    ngx_http_apikey_admin_script(delete),
    ngx_http_apikey_admin_script(events),
    ngx_http_apikey_admin_script(usage),
    ngx_http_apikey_admin_script(reindex)
};

#define NGX_HTTP_APIKEY_ADMIN_REINDEX_SCRIPT  10

/* key records one rebuild call reads: under a millisecond of Redis */
#define NGX_HTTP_APIKEY_ADMIN_REINDEX_BUDGET  "25"


ngx_int_t
ngx_http_apikey_admin_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf)
{
    ngx_uint_t  i;

    for (i = 0; i < sizeof(ngx_http_apikey_admin_scripts)
                    / sizeof(ngx_http_apikey_script_t); i++)
    {
        if (ngx_http_apikey_redis_add_script(cf, rcf,
                                             &ngx_http_apikey_admin_scripts[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Sends the operation's script.  NGX_DONE: the reply handler finalizes
 * the request; anything else is for ngx_http_finalize_request().
 */

ngx_int_t
ngx_http_apikey_admin_run(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_cleanup_t  *cln;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_apikey_admin_cleanup;
    cln->data = ctx;

    ctx->script = &ngx_http_apikey_admin_scripts[ctx->operation];

    /* counted first: the reply handler may run before eval returns */

    r->main->count++;

    rc = ngx_http_apikey_admin_eval(r, ctx);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    r->main->count--;

    return ngx_http_apikey_admin_not_sent(r, ctx, rc);
}


ngx_int_t
ngx_http_apikey_admin_not_sent(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_int_t rc)
{
    if (rc == NGX_DECLINED) {
        ngx_http_apikey_admin_error(r, ctx,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the key store is unreachable");
        return ngx_http_apikey_admin_send_error(r, ctx);
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * Builds the script's arguments from ctx and sends it: NGX_OK (the reply
 * handler will run), NGX_DECLINED (Redis is down) or NGX_ERROR.
 */

ngx_int_t
ngx_http_apikey_admin_eval(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_int_t                          rc;
    ngx_msec_t                         timeout;
    ngx_http_apikey_redis_op_t        *op;
    ngx_http_apikey_main_conf_t       *akmcf;
    ngx_http_apikey_admin_args_t      *a;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_LIST && !ctx->walking
        && !ngx_http_apikey_admin_take_turn(ctx))
    {
        /* sent when its turn comes: the reply handler answers as usual */

        ctx->pending = 1;
        return NGX_OK;
    }

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_args_t));
    if (a == NULL) {
        ngx_http_apikey_admin_end_turn(ctx);
        return NGX_ERROR;
    }

    a->pool = r->pool;
    a->ns = &akmcf->redis.ns;

    if (!ctx->reindexed && ngx_http_apikey_admin_needs_index(ctx, alcf)) {
        return ngx_http_apikey_admin_reindex(r, ctx, a, akmcf);
    }

    if (ngx_http_apikey_admin_args(r, ctx, a) != NGX_OK) {
        ngx_http_apikey_admin_end_turn(ctx);
        return NGX_ERROR;
    }


    if (a->failed) {
        ngx_http_apikey_admin_end_turn(ctx);
        return NGX_ERROR;
    }

    /* a search walks a whole organization: allow at least a second */

    timeout = ngx_max(akmcf->redis.timeout, NGX_HTTP_APIKEY_ADMIN_TIMEOUT);

    ctx->pending = 1;

    rc = ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_ADMIN, ctx->script,
                                    a->nkeys, a->nargs, a->args, timeout,
                                    ngx_http_apikey_admin_done, ctx,
                                    r->connection->log, &op);

    if (rc != NGX_OK) {
        ctx->pending = 0;
        ngx_http_apikey_admin_end_turn(ctx);
        return rc;
    }

    if (ctx->pending) {
        ctx->op = op;
    }

    return NGX_OK;
}


/*
 * Whether the operation reads the organization's admin indexes: a
 * filtered list (at the start of its walk), and a change that counts
 * active keys against apikey_max_keys.  Those first bring the indexes in
 * step with the records (ngx_http_apikey_admin_reindex.lua), in slices.
 */

static ngx_uint_t
ngx_http_apikey_admin_needs_index(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_loc_conf_t *alcf)
{
    switch (ctx->operation) {

    case NGX_HTTP_APIKEY_ADMIN_LIST:
        return (ctx->in.search.len || ctx->in.status.len
                || ctx->in.env_filter.len)
               && ctx->cursor_score.len == 0;

    case NGX_HTTP_APIKEY_ADMIN_CREATE:
    case NGX_HTTP_APIKEY_ADMIN_UPDATE:
    case NGX_HTTP_APIKEY_ADMIN_RESTORE:
        return alcf->max_keys > 0;

    default:
        return 0;
    }
}


static ngx_int_t
ngx_http_apikey_admin_reindex(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a,
    ngx_http_apikey_main_conf_t *akmcf)
{
    ngx_int_t                    rc;
    ngx_str_t                    budget;
    ngx_http_apikey_redis_op_t  *op;

    ngx_str_set(&budget, NGX_HTTP_APIKEY_ADMIN_REINDEX_BUDGET);

    ngx_http_apikey_admin_reindex_args(ctx, a, &budget);

    if (a->failed) {
        ngx_http_apikey_admin_end_turn(ctx);
        return NGX_ERROR;
    }

    ctx->pending = 1;
    ctx->reindexing = 1;

    rc = ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_ADMIN,
                  &ngx_http_apikey_admin_scripts[
                                        NGX_HTTP_APIKEY_ADMIN_REINDEX_SCRIPT],
                  a->nkeys, a->nargs, a->args, akmcf->redis.timeout,
                  ngx_http_apikey_admin_done, ctx, r->connection->log, &op);

    if (rc != NGX_OK) {
        ctx->pending = 0;
        ctx->reindexing = 0;
        ngx_http_apikey_admin_end_turn(ctx);
        return rc;
    }

    if (ctx->pending) {
        ctx->op = op;
    }

    return NGX_OK;
}


/* a rebuild slice's reply: NGX_OK to go on (the next slice or the op) */

static ngx_int_t
ngx_http_apikey_admin_reindexed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    redisReply  **e;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        if (reply != NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: the index rebuild failed%s%*s",
                          reply->type == REDIS_REPLY_ERROR ? ": " : "",
                          reply->type == REDIS_REPLY_ERROR
                          ? (size_t) reply->len : (size_t) 0,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        }

        return NGX_DECLINED;
    }

    e = reply->element;

    if (reply->elements == 2 && e[0]->len == 4
        && ngx_strncmp(e[0]->str, "more", 4) == 0
        && e[1]->type == REDIS_REPLY_STRING && e[1]->len > 0
        && e[1]->len <= NGX_INT64_LEN)
    {
        ctx->reindex_cursor.data = ngx_pnalloc(r->pool, e[1]->len);
        if (ctx->reindex_cursor.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->reindex_cursor.data, e[1]->str, e[1]->len);
        ctx->reindex_cursor.len = e[1]->len;

        return NGX_OK;
    }

    ctx->reindexed = 1;

    return NGX_OK;
}



static void
ngx_http_apikey_admin_cleanup(void *data)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    if (ctx->op) {
        ngx_http_apikey_redis_detach(ctx->op);
        ctx->op = NULL;
    }

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ctx->queued = 0;
    }

    ngx_http_apikey_admin_end_turn(ctx);
}


static void
ngx_http_apikey_admin_done(void *data, redisReply *reply)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->op = NULL;
    ctx->pending = 0;

    ngx_http_set_log_request(c->log, r);

    ngx_http_apikey_admin_end_turn(ctx);

    if (ctx->reindexing) {
        ctx->reindexing = 0;

        rc = ngx_http_apikey_admin_reindexed(r, ctx, reply);

        if (rc == NGX_OK) {
            rc = ngx_http_apikey_admin_eval(r, ctx);

            if (rc == NGX_OK) {
                return;
            }
        }

        ngx_http_finalize_request(r, ngx_http_apikey_admin_not_sent(r, ctx,
                                          rc == NGX_DECLINED ? rc : NGX_ERROR));
        ngx_http_run_posted_requests(c);
        return;
    }

    if (ngx_http_apikey_admin_wait(r, ctx, reply) == NGX_OK) {
        return;
    }

    rc = ngx_http_apikey_admin_reply(r, ctx, reply);

    if (rc == NGX_AGAIN) {

        /* the walk goes on from the cursor */

        rc = ngx_http_apikey_admin_eval(r, ctx);

        if (rc == NGX_OK) {
            return;
        }

        rc = ngx_http_apikey_admin_not_sent(r, ctx, rc);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * Under Sentinel, a revocation, a rotation or a delete is answered once a
 * replica has it too (WAIT 1, bounded), so that a failover right after
 * cannot bring back a key the API said was gone: the script's reply is
 * kept meanwhile.  NGX_OK: WAIT was sent, ngx_http_apikey_admin_waited()
 * answers.
 */

static ngx_int_t
ngx_http_apikey_admin_wait(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t                     rc;
    ngx_http_apikey_redis_op_t   *op;
    ngx_http_apikey_main_conf_t  *akmcf;

    if (ctx->waited
        || reply == NULL
        || (ctx->operation != NGX_HTTP_APIKEY_ADMIN_REVOKE
            && ctx->operation != NGX_HTTP_APIKEY_ADMIN_ROTATE
            && ctx->operation != NGX_HTTP_APIKEY_ADMIN_DELETE)
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len != 2
        || ngx_strncmp(reply->element[0]->str, "ok", 2) != 0
        || ngx_http_apikey_redis_replicas() == 0)
    {
        return NGX_DECLINED;
    }

    ctx->saved = ngx_http_apikey_redis_copy(r->pool, reply);
    if (ctx->saved == NULL) {
        return NGX_DECLINED;
    }

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    ctx->waited = 1;
    ctx->pending = 1;

    rc = ngx_http_apikey_redis_wait(akmcf->redis.timeout,
                                    ngx_http_apikey_admin_waited, ctx,
                                    r->connection->log, &op);
    if (rc != NGX_OK) {
        ctx->pending = 0;
        return NGX_DECLINED;
    }

    if (ctx->pending) {
        ctx->op = op;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_admin_waited(void *data, redisReply *reply)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->op = NULL;
    ctx->pending = 0;

    ngx_http_set_log_request(c->log, r);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer < 1)
    {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "apikey admin: no replica confirmed the change of "
                      "key \"%V\" in time", &ctx->id);
    }

    rc = ngx_http_apikey_admin_reply(r, ctx, ctx->saved);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
