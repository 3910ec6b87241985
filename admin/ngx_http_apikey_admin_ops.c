
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_admin_scripts.h"


/* what the call in Redis is */

#define NGX_HTTP_APIKEY_ADMIN_CALL     0      /* the operation's script */
#define NGX_HTTP_APIKEY_ADMIN_INDEX    1      /* a slice of the rebuild */
#define NGX_HTTP_APIKEY_ADMIN_WAIT     2      /* WAIT after a change */


static ngx_int_t ngx_http_apikey_admin_send(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_call(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_redis_op_t **op);
static void ngx_http_apikey_admin_done(void *data, redisReply *reply);
static void ngx_http_apikey_admin_resume(ngx_http_apikey_admin_ctx_t *ctx);
static void ngx_http_apikey_admin_go_on(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_apikey_admin_answer(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_not_sent(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_int_t rc);
static ngx_uint_t ngx_http_apikey_admin_is(redisReply *reply,
    const char *code);
static ngx_int_t ngx_http_apikey_admin_reindexed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_uint_t ngx_http_apikey_admin_must_wait(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static void ngx_http_apikey_admin_cleanup(void *data);


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
    ngx_http_apikey_admin_script(tokens_create),
    ngx_http_apikey_admin_script(tokens_list),
    ngx_http_apikey_admin_script(tokens_get),
    ngx_http_apikey_admin_script(tokens_revoke),
    ngx_http_apikey_admin_script(org),
    ngx_http_apikey_admin_script(org),
    ngx_http_apikey_admin_script(reindex),
    ngx_http_apikey_admin_script(tokens_auth),
    ngx_http_apikey_admin_script(notices)
};

/* key records one rebuild call reads: under a millisecond of Redis */
#define NGX_HTTP_APIKEY_ADMIN_REINDEX_BUDGET  "25"

/* rebuilds a request waits for before it gives up */
#define NGX_HTTP_APIKEY_ADMIN_REINDEX_ROUNDS  3


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


/* a script that is no operation's (NGX_HTTP_APIKEY_ADMIN_*_SCRIPT) */

ngx_http_apikey_script_t *
ngx_http_apikey_admin_script_of(ngx_uint_t n)
{
    return &ngx_http_apikey_admin_scripts[n];
}


/*
 * Sends the operation's first call.  NGX_DONE: the reply handler
 * finalizes the request; anything else is for ngx_http_finalize_request().
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
    ctx->resume = ngx_http_apikey_admin_resume;
    ctx->step = NGX_HTTP_APIKEY_ADMIN_CALL;

    rc = ngx_http_apikey_admin_send(r, ctx);

    if (rc == NGX_OK) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_apikey_admin_not_sent(r, ctx, rc);
}


/*
 * Sends the call of ctx->step, or queues a list's slice for its turn:
 * NGX_OK (the reply handler, or ctx->resume, will run), NGX_DECLINED
 * (not sent, or lost on the way: ctx->unknown says whether it may have
 * reached Redis) or NGX_ERROR.  The reply handler never answers the
 * request from inside this call, whatever the connection does, and no op
 * is kept that the handler already had or that was not sent.
 */

static ngx_int_t
ngx_http_apikey_admin_send(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_apikey_redis_op_t  *op;

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_LIST && !ctx->walking
        && !ngx_http_apikey_admin_take_turn(ctx))
    {
        return NGX_OK;
    }

    ctx->sending = 1;
    ctx->lost = 0;
    ctx->unknown = 0;

    rc = ngx_http_apikey_admin_call(r, ctx, &op);

    ctx->sending = 0;

    if (rc == NGX_OK && ctx->lost) {
        rc = NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        ngx_http_apikey_admin_end_turn(ctx);
        return rc;
    }

    ctx->op = op;

    return NGX_OK;
}


/* the call itself, as ngx_http_apikey_redis_eval() returns */

static ngx_int_t
ngx_http_apikey_admin_call(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_redis_op_t **op)
{
    ngx_str_t                           budget;
    ngx_http_apikey_script_t           *script;
    ngx_http_apikey_main_conf_t        *akmcf;
    ngx_http_apikey_admin_args_t       *a;
    ngx_http_apikey_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_admin_module);

    if (ctx->step == NGX_HTTP_APIKEY_ADMIN_WAIT) {
        return ngx_http_apikey_redis_wait(amcf->timeout,
                                          ngx_http_apikey_admin_done, ctx,
                                          r->connection->log, op);
    }

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_args_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    a->pool = r->pool;
    a->ns = &akmcf->redis.ns;

    if (ctx->step == NGX_HTTP_APIKEY_ADMIN_INDEX) {
        ngx_str_set(&budget, NGX_HTTP_APIKEY_ADMIN_REINDEX_BUDGET);
        ngx_http_apikey_admin_reindex_args(ctx, a, &budget);
        script = &ngx_http_apikey_admin_scripts[
                                        NGX_HTTP_APIKEY_ADMIN_REINDEX_SCRIPT];

    } else {
        if ((ngx_http_apikey_admin_token_op(ctx)
             ? ngx_http_apikey_admin_token_args(r, ctx, a)
             : ngx_http_apikey_admin_args(r, ctx, a))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        script = ctx->script;
    }

    if (a->failed) {
        return NGX_ERROR;
    }

    return ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_ADMIN, script,
                                      a->nkeys, a->nargs, a->args,
                                      amcf->timeout,
                                      ngx_http_apikey_admin_done, ctx,
                                      r->connection->log, op);
}


static void
ngx_http_apikey_admin_done(void *data, redisReply *reply)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    ngx_http_request_t  *r;

    ctx->op = NULL;

    if (ctx->sending) {

        /*
         * a connection that failed inline: no reply can come this way,
         * and ngx_http_apikey_admin_send() answers
         */

        ctx->lost = 1;
        ctx->unknown = (reply != NULL || ngx_http_apikey_redis_sent());
        return;
    }

    r = ctx->request;

    ngx_http_set_log_request(r->connection->log, r);

    ngx_http_apikey_admin_end_turn(ctx);

    ctx->unknown = (reply == NULL && ngx_http_apikey_redis_sent());

    ngx_http_apikey_admin_go_on(r, ctx,
                                ngx_http_apikey_admin_answer(r, ctx, reply));
}


/* a list's turn came (ngx_http_apikey_admin_walk.c) */

static void
ngx_http_apikey_admin_resume(ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_set_log_request(r->connection->log, r);

    ngx_http_apikey_admin_go_on(r, ctx, NGX_AGAIN);
}


/*
 * NGX_AGAIN: the next call of ctx->step goes out; else rc is the answer
 * and the request is finalized
 */

static void
ngx_http_apikey_admin_go_on(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    while (rc == NGX_AGAIN) {
        rc = ngx_http_apikey_admin_send(r, ctx);

        if (rc == NGX_OK) {
            return;
        }

        /* a WAIT that could not be sent: the change is not known to stand */

        rc = (ctx->step == NGX_HTTP_APIKEY_ADMIN_WAIT)
             ? ngx_http_apikey_admin_answer(r, ctx, NULL)
             : ngx_http_apikey_admin_not_sent(r, ctx, rc);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* a call's reply: NGX_AGAIN for the next call, else the answer */

static ngx_int_t
ngx_http_apikey_admin_answer(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    switch (ctx->step) {

    case NGX_HTTP_APIKEY_ADMIN_INDEX:
        return ngx_http_apikey_admin_reindexed(r, ctx, reply);

    case NGX_HTTP_APIKEY_ADMIN_WAIT:

        if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
            || reply->integer < 1)
        {
            /*
             * the change stands on a primary no replica confirmed: a
             * failover now (this server may already be the old primary
             * of one) would lose it, so its outcome is not known
             */

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: no replica confirmed the change of "
                          "key \"%V\" in time: its outcome is unknown",
                          &ctx->id);

            ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "outcome_unknown",
                                        "the change was made on the primary "
                                        "but no replica confirmed it, so a "
                                        "failover may lose it: retry with "
                                        "the same Idempotency-Key to learn "
                                        "whether it stands");

            return ngx_http_apikey_admin_send_error(r, ctx);
        }

        return ngx_http_apikey_admin_reply(r, ctx, ctx->saved);

    default: /* NGX_HTTP_APIKEY_ADMIN_CALL */

        if (reply == NULL) {
            return ngx_http_apikey_admin_not_sent(r, ctx, NGX_DECLINED);
        }

        /*
         * the script needs the organization's admin indexes and found
         * them out of step or being rebuilt: it changed nothing; the
         * rebuild goes first, then the call again
         */

        if (ngx_http_apikey_admin_is(reply, "reindex")) {

            if (ctx->rounds++ == NGX_HTTP_APIKEY_ADMIN_REINDEX_ROUNDS) {
                ngx_http_apikey_admin_error(r, ctx,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "store_unavailable",
                                            "the indexes of the "
                                            "organization are being "
                                            "rebuilt: retry");
                return ngx_http_apikey_admin_send_error(r, ctx);
            }

            ctx->step = NGX_HTTP_APIKEY_ADMIN_INDEX;
            return NGX_AGAIN;
        }

        /* {"ok", "", now, key, ends, gates} of a change */

        if (ngx_http_apikey_admin_changes(ctx)
            && ngx_http_apikey_admin_is(reply, "ok")
            && reply->elements > 6)
        {
            ngx_http_apikey_admin_replica(r, reply->element[5],
                                          reply->element[6]);
        }

        if (ngx_http_apikey_admin_must_wait(ctx, reply)) {
            ctx->saved = ngx_http_apikey_redis_copy(r->pool, reply);

            if (ctx->saved != NULL) {
                ctx->step = NGX_HTTP_APIKEY_ADMIN_WAIT;
                return NGX_AGAIN;
            }
        }

        return ngx_http_apikey_admin_reply(r, ctx, reply);
    }
}


/*
 * The answer to a call that was not sent, or whose reply did not come:
 * 503 outcome_unknown for a change that may have reached Redis (a retry
 * with the same Idempotency-Key tells what happened), else 503
 * store_unavailable
 */

static ngx_int_t
ngx_http_apikey_admin_not_sent(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_int_t rc)
{
    if (rc != NGX_DECLINED) {
        return ngx_http_apikey_admin_no_memory(r, ctx);
    }

    if (ctx->unknown && ctx->step == NGX_HTTP_APIKEY_ADMIN_CALL
        && ngx_http_apikey_admin_changes(ctx))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "apikey admin: the outcome of %V %V/%V is unknown: "
                      "the key store did not answer after the call was sent",
                      &ctx->script->name, &ctx->org, &ctx->id);

        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "outcome_unknown",
                                    "the change may or may not have been "
                                    "made: retry with the same "
                                    "Idempotency-Key to learn which");

    } else {
        ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "store_unavailable",
                                    "the key store is unreachable");
    }

    return ngx_http_apikey_admin_send_error(r, ctx);
}


/* whether a script's reply is {code, ...} */

static ngx_uint_t
ngx_http_apikey_admin_is(redisReply *reply, const char *code)
{
    size_t  len;

    len = ngx_strlen(code);

    return reply->type == REDIS_REPLY_ARRAY
           && reply->elements > 0
           && reply->element[0]->type == REDIS_REPLY_STRING
           && reply->element[0]->len == len
           && ngx_strncmp(reply->element[0]->str, code, len) == 0;
}


/*
 * A rebuild slice's reply: NGX_AGAIN for the next slice, or the call
 * again once the rebuild is done; else the answer
 */

static ngx_int_t
ngx_http_apikey_admin_reindexed(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    if (ngx_http_apikey_admin_is(reply, "done")) {
        ctx->step = NGX_HTTP_APIKEY_ADMIN_CALL;
        return NGX_AGAIN;
    }

    if (ngx_http_apikey_admin_is(reply, "more")) {
        return NGX_AGAIN;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "apikey admin: the index rebuild failed: %*s",
                      (size_t) reply->len, reply->str);

    } else if (reply != NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: unexpected reply from the reindex "
                      "script");
    }

    return ngx_http_apikey_admin_not_sent(r, ctx, NGX_DECLINED);
}


/*
 * Under Sentinel, a revocation, a rotation or a delete is answered once a
 * replica has it too (WAIT 1, bounded), so that a failover right after
 * cannot bring back a key the API said was gone: the script's reply is
 * kept meanwhile.
 */

static ngx_uint_t
ngx_http_apikey_admin_must_wait(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    return (ctx->operation == NGX_HTTP_APIKEY_ADMIN_REVOKE
            || ctx->operation == NGX_HTTP_APIKEY_ADMIN_ROTATE
            || ctx->operation == NGX_HTTP_APIKEY_ADMIN_DELETE)
           && ngx_http_apikey_admin_is(reply, "ok")
           && ngx_http_apikey_redis_replicas() > 0;
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
