
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_link.h"
#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_metrics.h"


/*
 * The calls made on a worker's links to Redis (the gatekeeper's, the
 * admin API's and the replica's, ngx_http_apikey_redis_link.c): EVALSHA,
 * EVAL after NOSCRIPT, other commands as they are, a timer per call, the
 * queue of calls waiting for a connection, or for fewer calls in flight.
 *
 * A call is answered once (its handler), with the reply or, when the
 * timeout passes first or Redis is unreachable, with NULL.  A call that
 * may be sent again (ngx_http_apikey_redis_resend()) goes to the next
 * connection when the one it went out on drops, and is kept after a NULL
 * answer until its reply comes (or NGX_HTTP_APIKEY_REDIS_KEEP passes):
 * that reply goes to its "late" handler, so that what Redis did is known
 * (the gate script makes such calls idempotent, docs/data-model.md).
 *
 * A slow Redis is not a broken one: a call that times out fails alone,
 * and the connection is given up only when nothing at all came back for
 * NGX_HTTP_APIKEY_REDIS_SILENCE while calls waited.
 */


#define NGX_HTTP_APIKEY_REDIS_INFLIGHT   32      /* calls on a connection */
#define NGX_HTTP_APIKEY_REDIS_SILENCE    1000    /* ms, at least */
#define NGX_HTTP_APIKEY_REDIS_KEEP       30000   /* ms */
#define NGX_HTTP_APIKEY_REDIS_RESENDS    3


/*
 * A call lives in the heap, not in a request's pool: its connection
 * holds it until the reply even when the request is gone.  It keeps its
 * command as written (EVALSHA), to write it again on a new connection,
 * and its arguments for EVAL after NOSCRIPT.
 */

struct ngx_http_apikey_redis_op_s {
    ngx_http_apikey_redis_cmd_t        cmd;
    ngx_http_apikey_redis_t           *rd;
    ngx_http_apikey_redis_handler_pt   handler;
    ngx_http_apikey_redis_handler_pt   late;
    void                              *data;
    ngx_event_t                        timer;
    ngx_queue_t                        queue;     /* in rd->waiting */
    ngx_msec_t                         timeout;
    ngx_msec_t                         answered_at;
    ngx_http_apikey_script_t          *script;
    u_char                            *bytes;
    size_t                             len;
    int                                argc;
    const char                       **argv;
    size_t                            *argvlen;
    ngx_uint_t                         resends;
    unsigned                           queued:1;
    unsigned                           on_wire:1;
    unsigned                           answered:1;
    unsigned                           sent:1;    /* may have run */
    unsigned                           retried:1; /* EVAL, or no script */
    unsigned                           resend:1;
};


static ngx_http_apikey_redis_op_t *ngx_http_apikey_redis_op_new(
    ngx_http_apikey_redis_t *rd, size_t size,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_msec_t timeout,
    ngx_log_t *log);
static ngx_int_t ngx_http_apikey_redis_send(ngx_http_apikey_redis_op_t *op);
static ngx_int_t ngx_http_apikey_redis_write(ngx_http_apikey_redis_op_t *op);
static void ngx_http_apikey_redis_op_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_apikey_redis_op_timeout(ngx_event_t *ev);
static void ngx_http_apikey_redis_answer(ngx_http_apikey_redis_op_t *op,
    redisReply *reply);
static void ngx_http_apikey_redis_finish(ngx_http_apikey_redis_op_t *op,
    redisReply *reply);
static void ngx_http_apikey_redis_maybe_free(ngx_http_apikey_redis_op_t *op);
static void ngx_http_apikey_redis_drop(ngx_http_apikey_redis_op_t *op);
static void ngx_http_apikey_redis_send_waiting(ngx_event_t *ev);
static ngx_uint_t ngx_http_apikey_redis_not_primary(
    ngx_http_apikey_redis_t *rd, redisReply *rr);


static ngx_uint_t  ngx_http_apikey_redis_sent_now;


ngx_int_t
ngx_http_apikey_redis_add_script(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script)
{
    ngx_http_apikey_script_t  **s;

    if (ngx_http_apikey_sha1_hex(script->sha1, script->body.data,
                                 script->body.len)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "SHA-1 of the \"%V\" script failed", &script->name);
        return NGX_ERROR;
    }

    if (rcf->scripts.elts == NULL) {
        if (ngx_array_init(&rcf->scripts, cf->pool, 8,
                           sizeof(ngx_http_apikey_script_t *))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    s = ngx_array_push(&rcf->scripts);
    if (s == NULL) {
        return NGX_ERROR;
    }

    *s = script;

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_redis_eval(ngx_uint_t conn, ngx_http_apikey_script_t *script,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **opp)
{
    u_char                      *p, *cmd;
    size_t                       size, n;
    ngx_uint_t                   i;
    u_char                       numkeys[NGX_INT_T_LEN];
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = &ngx_http_apikey_redis[conn];

    /*
     * Calls queue behind the very first connect of a worker; once Redis
     * failed, they get the fail mode's answer until a connection is ready.
     */

    if (!ngx_http_apikey_redis_link_ready(rd)) {
        return NGX_DECLINED;
    }

    if (nargs + 3 > NGX_HTTP_APIKEY_REDIS_MAX_ARGS || nkeys > nargs) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "too many redis arguments");
        return NGX_ERROR;
    }

    /*
     * The command is written in RESP here, once; argv points into it for
     * the EVAL after NOSCRIPT.
     */

    size = sizeof(ngx_http_apikey_redis_op_t)
           + (nargs + 3) * (sizeof(char *) + sizeof(size_t))
           + (nargs + 4) * (sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN)
           + sizeof("EVALSHA") - 1 + sizeof(script->sha1);

    for (i = 0; i < nargs; i++) {
        size += args[i].len;
    }

    op = ngx_http_apikey_redis_op_new(rd, size, handler, data, timeout, log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->script = script;
    op->argc = (int) nargs + 3;
    op->argv = (const char **) (op + 1);
    op->argvlen = (size_t *) (op->argv + op->argc);

    cmd = (u_char *) (op->argvlen + op->argc);

    p = ngx_sprintf(cmd, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n", op->argc);
    p = ngx_cpymem(p, script->sha1, sizeof(script->sha1));

    op->argv[0] = "EVALSHA";
    op->argvlen[0] = sizeof("EVALSHA") - 1;
    op->argv[1] = (const char *) script->sha1;
    op->argvlen[1] = sizeof(script->sha1);

    n = ngx_sprintf(numkeys, "%ui", nkeys) - numkeys;

    p = ngx_sprintf(p, "\r\n$%uz\r\n", n);
    op->argv[2] = (const char *) p;
    op->argvlen[2] = n;
    p = ngx_cpymem(p, numkeys, n);
    *p++ = '\r'; *p++ = '\n';

    for (i = 0; i < nargs; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", args[i].len);
        op->argv[i + 3] = (const char *) p;
        op->argvlen[i + 3] = args[i].len;

        if (args[i].len) {      /* an empty one may have no data at all */
            p = ngx_cpymem(p, args[i].data, args[i].len);
        }

        *p++ = '\r'; *p++ = '\n';
    }

    op->bytes = cmd;
    op->len = p - cmd;

    ngx_http_apikey_metric_add(calls[conn]);

    if (ngx_http_apikey_redis_send(op) != NGX_OK) {
        ngx_free(op);
        return NGX_ERROR;
    }

    *opp = op;

    return NGX_OK;
}


/* a command of bulk strings, as they are: no script to send again */

ngx_int_t
ngx_http_apikey_redis_command(ngx_uint_t conn, ngx_uint_t nargs,
    ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **opp)
{
    u_char                      *p;
    size_t                       size;
    ngx_uint_t                   i;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = &ngx_http_apikey_redis[conn];

    if (!ngx_http_apikey_redis_link_ready(rd)) {
        return NGX_DECLINED;
    }

    size = sizeof(ngx_http_apikey_redis_op_t)
           + (nargs + 1) * (sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN);

    for (i = 0; i < nargs; i++) {
        size += args[i].len;
    }

    op = ngx_http_apikey_redis_op_new(rd, size, handler, data, timeout, log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->retried = 1;

    op->bytes = (u_char *) (op + 1);

    p = ngx_sprintf(op->bytes, "*%ui\r\n", nargs);

    for (i = 0; i < nargs; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", args[i].len);

        if (args[i].len) {
            p = ngx_cpymem(p, args[i].data, args[i].len);
        }

        *p++ = '\r'; *p++ = '\n';
    }

    op->len = p - op->bytes;

    if (ngx_http_apikey_redis_send(op) != NGX_OK) {
        ngx_free(op);
        return NGX_ERROR;
    }

    *opp = op;

    return NGX_OK;
}


/*
 * WAIT 1 on the admin API's connection: after a change, until one replica
 * has it, for at most half the timeout; the handler gets the number of
 * replicas that acknowledged, as a reply
 */

ngx_int_t
ngx_http_apikey_redis_wait(ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **opp)
{
    u_char     ms[NGX_INT_T_LEN];
    ngx_str_t  args[3];

    ngx_str_set(&args[0], "WAIT");
    ngx_str_set(&args[1], "1");

    args[2].data = ms;
    args[2].len = ngx_sprintf(ms, "%M", timeout / 2 ? timeout / 2 : 1) - ms;

    return ngx_http_apikey_redis_command(NGX_HTTP_APIKEY_REDIS_ADMIN, 3, args,
                                         timeout, handler, data, log, opp);
}


/* a call of size bytes, its command to follow it */

static ngx_http_apikey_redis_op_t *
ngx_http_apikey_redis_op_new(ngx_http_apikey_redis_t *rd, size_t size,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_msec_t timeout,
    ngx_log_t *log)
{
    ngx_http_apikey_redis_op_t  *op;

    op = ngx_alloc(size, log);
    if (op == NULL) {
        return NULL;
    }

    ngx_memzero(op, sizeof(ngx_http_apikey_redis_op_t));

    op->rd = rd;
    op->handler = handler;
    op->data = data;
    op->timeout = timeout;

    return op;
}


/* a new call: on its connection, or queued for the one to come */

static ngx_int_t
ngx_http_apikey_redis_send(ngx_http_apikey_redis_op_t *op)
{
    ngx_http_apikey_redis_t  *rd;

    rd = op->rd;

    op->cmd.handler = ngx_http_apikey_redis_op_reply;

    op->timer.handler = ngx_http_apikey_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = rd->log;

    if (ngx_queue_empty(&rd->waiting)
        && rd->state == NGX_HTTP_APIKEY_REDIS_READY
        && rd->conn.ncmds < NGX_HTTP_APIKEY_REDIS_INFLIGHT)
    {
        if (ngx_http_apikey_redis_write(op) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        op->queued = 1;
        ngx_queue_insert_tail(&rd->waiting, &op->queue);
    }

    ngx_add_timer(&op->timer, op->timeout);

    if (rd->idle) {
        ngx_http_apikey_redis_link_connect(rd);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_redis_write(ngx_http_apikey_redis_op_t *op)
{
    ngx_int_t                 rc;
    ngx_http_apikey_redis_t  *rd;

    rd = op->rd;

    if (op->retried && op->script != NULL) {
        rc = ngx_http_apikey_redis_conn_argv(&rd->conn, op->argc, op->argv,
                                             op->argvlen, &op->cmd);

    } else {
        rc = ngx_http_apikey_redis_conn_send(&rd->conn, op->bytes, op->len,
                                             &op->cmd);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    op->on_wire = 1;

    return NGX_OK;
}


/* the reply to a call, or NULL: its connection is gone */

static void
ngx_http_apikey_redis_op_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_apikey_redis_op_t *op = (ngx_http_apikey_redis_op_t *) cmd;

    ngx_http_apikey_redis_t  *rd;

    rd = op->rd;
    op->on_wire = 0;

    if (reply == NULL) {
        op->sent |= ngx_http_apikey_redis_conn_sent(&rd->conn, cmd);

    } else {
        rd->last_reply = ngx_current_msec;
        rd->stalled = 0;
    }

    if (!ngx_queue_empty(&rd->waiting) && !rd->resend.posted) {
        ngx_post_event(&rd->resend, &ngx_posted_events);
    }

    if (rd->freeing) {

        /* the worker ends: only what the call holds is let go */

        ngx_http_apikey_redis_drop(op);
        return;
    }

    if (op->handler == NULL && op->late == NULL) {
        ngx_http_apikey_redis_maybe_free(op);
        return;
    }

    if (reply != NULL
        && !op->retried
        && reply->type == REDIS_REPLY_ERROR
        && reply->len >= 8
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the script cache was flushed, or is a new server's: EVAL once */

        op->retried = 1;
        op->argv[0] = "EVAL";
        op->argvlen[0] = sizeof("EVAL") - 1;
        op->argv[1] = (const char *) op->script->body.data;
        op->argvlen[1] = op->script->body.len;

        if (ngx_http_apikey_redis_conn_is_open(&rd->conn)
            && ngx_http_apikey_redis_write(op) == NGX_OK)
        {
            return;
        }

        reply = NULL;
    }

    if (ngx_http_apikey_redis_not_primary(rd, reply)) {

        /*
         * a failover made this server a replica, or it is loading: find
         * the primary again, and send the call there
         */

        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis %s connection: the server is no primary of "
                      "\"%V\" any more", rd->name, &rd->conf->sentinel_name);

        ngx_http_apikey_metric_add(failovers);
        ngx_http_apikey_redis_link_reset(rd, "not the primary", 0);
        reply = NULL;
    }

    if (reply == NULL
        && op->resend
        && op->resends < NGX_HTTP_APIKEY_REDIS_RESENDS
        && !rd->quitting)
    {
        /*
         * the connection is gone with the call: send it again on the next
         * one, in the order the calls were first sent
         */

        op->resends++;
        op->queued = 1;
        ngx_queue_insert_after(rd->resent, &op->queue);
        rd->resent = &op->queue;

        if (!rd->resend.posted) {
            ngx_post_event(&rd->resend, &ngx_posted_events);
        }

        return;
    }

    ngx_http_apikey_redis_finish(op, reply);
}


static void
ngx_http_apikey_redis_op_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_redis_op_t *op = ev->data;

    ngx_http_apikey_redis_t           *rd;
    ngx_http_apikey_redis_handler_pt   late;

    rd = op->rd;

    if (!op->answered) {

        ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_TIMEOUT]);

        if (!rd->stalled && rd->state == NGX_HTTP_APIKEY_REDIS_READY) {
            rd->stalled = 1;
            ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                          "redis %s connection: a call to %V timed out",
                          rd->name, &rd->conf->address);
        }

        if (op->queued && !op->sent) {

            /* it never went out: nothing to learn of it */

            ngx_queue_remove(&op->queue);
            op->queued = 0;
            op->late = NULL;
            ngx_http_apikey_redis_finish(op, NULL);
            goto silence;
        }

        op->sent |= op->on_wire;

        ngx_http_apikey_redis_answer(op, NULL);

        if (op->late == NULL) {
            ngx_http_apikey_redis_maybe_free(op);
            goto silence;
        }

        /* kept for its reply, looked at once a timeout */

        op->answered_at = ngx_current_msec;
        ngx_add_timer(&op->timer, op->timeout);
        goto silence;
    }

    /* a worker that shuts down waits for such a reply a timeout at most */

    if (ngx_current_msec - op->answered_at < NGX_HTTP_APIKEY_REDIS_KEEP
        && !ngx_exiting)
    {
        ngx_add_timer(&op->timer, op->timeout);
        goto silence;
    }

    /* its reply never came: what Redis did is not known */

    late = op->late;
    op->late = NULL;

    if (late) {
        late(op->data, NULL);
    }

    ngx_http_apikey_redis_maybe_free(op);

silence:

    /*
     * nothing at all came back for long while calls waited: the
     * connection is broken (op may be gone by now)
     */

    if (rd->state == NGX_HTTP_APIKEY_REDIS_READY
        && rd->conn.ncmds > 0
        && ngx_current_msec - rd->last_reply
           >= ngx_max(NGX_HTTP_APIKEY_REDIS_SILENCE, 10 * rd->conf->timeout))
    {
        ngx_http_apikey_redis_link_reset(rd, "no reply came for long", 1);
    }
}


/* the call's one answer; its reply, if it still comes, is dropped */

static void
ngx_http_apikey_redis_answer(ngx_http_apikey_redis_op_t *op,
    redisReply *reply)
{
    ngx_http_apikey_redis_handler_pt  handler;

    op->answered = 1;

    handler = op->handler;
    op->handler = NULL;

    if (handler == NULL || op->rd->freeing) {
        return;
    }

    ngx_http_apikey_redis_sent_now = (reply == NULL && op->sent);

    handler(op->data, reply);

    ngx_http_apikey_redis_sent_now = 0;
}


/* the call is done: answered, or its late handler told, then freed */

static void
ngx_http_apikey_redis_finish(ngx_http_apikey_redis_op_t *op,
    redisReply *reply)
{
    ngx_http_apikey_redis_handler_pt  late;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (!op->answered) {
        late = op->late;
        op->late = NULL;

        ngx_http_apikey_redis_answer(op, reply);

        /*
         * it may have run, and no reply will come: the handler kept what
         * the late handler would have been told, which frees it
         */

        if (reply == NULL && op->sent && late && !op->rd->freeing) {
            late(op->data, NULL);
        }

    } else if (op->late) {
        late = op->late;
        op->late = NULL;

        if (!op->rd->freeing) {
            late(op->data, reply);
        }
    }

    ngx_http_apikey_redis_maybe_free(op);
}


/*
 * Frees a call nobody waits for any more, unless a connection still
 * holds it (then its reply, or the connection's end, frees it).
 */

static void
ngx_http_apikey_redis_maybe_free(ngx_http_apikey_redis_op_t *op)
{
    if (op->handler != NULL || op->late != NULL) {
        return;
    }

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        op->queued = 0;
    }

    if (op->on_wire) {
        return;
    }

    ngx_free(op);
}


/*
 * A call the worker lets go as it ends: its late handler, if any, is told
 * that no reply comes, so that what it keeps for the call is freed; its
 * handler is not called (no request is left to answer).
 */

static void
ngx_http_apikey_redis_drop(ngx_http_apikey_redis_op_t *op)
{
    ngx_http_apikey_redis_handler_pt  late;

    late = op->late;

    op->handler = NULL;
    op->late = NULL;

    if (late) {
        late(op->data, NULL);
    }

    ngx_http_apikey_redis_maybe_free(op);
}


void
ngx_http_apikey_redis_detach(ngx_http_apikey_redis_op_t *op)
{
    op->handler = NULL;
    op->late = NULL;
    op->answered = 1;

    ngx_http_apikey_redis_maybe_free(op);
}


void
ngx_http_apikey_redis_resend(ngx_http_apikey_redis_op_t *op,
    ngx_http_apikey_redis_handler_pt late)
{
    op->resend = 1;
    op->late = late;
}


void
ngx_http_apikey_redis_blocking(ngx_http_apikey_redis_op_t *op)
{
    op->timer.cancelable = 1;
}


ngx_uint_t
ngx_http_apikey_redis_sent(void)
{
    return ngx_http_apikey_redis_sent_now;
}


/*
 * Sends the calls that waited (for a connection, or for fewer calls in
 * flight), in order; when the last attempt failed, answers those never
 * sent at once, and keeps those whose reply is still wanted.
 */

static void
ngx_http_apikey_redis_send_waiting(ngx_event_t *ev)
{
    ngx_queue_t                  failed, *q, *next;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = ev->data;

    while (!ngx_queue_empty(&rd->waiting)
           && rd->state == NGX_HTTP_APIKEY_REDIS_READY
           && rd->conn.ncmds < NGX_HTTP_APIKEY_REDIS_INFLIGHT)
    {
        q = ngx_queue_head(&rd->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);
        op->queued = 0;

        if (ngx_http_apikey_redis_write(op) != NGX_OK) {
            ngx_http_apikey_redis_finish(op, NULL);
        }
    }

    if (ngx_http_apikey_redis_link_ready(rd)) {
        return;
    }

    /*
     * a handler may detach other calls: those to answer are taken out of
     * the queue first
     */

    ngx_queue_init(&failed);

    for (q = ngx_queue_head(&rd->waiting);
         q != ngx_queue_sentinel(&rd->waiting);
         q = next)
    {
        next = ngx_queue_next(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);

        if (op->answered) {
            continue;
        }

        if (op->late && op->sent) {

            /* answered now, and kept for the reply a later connection gets */

            op->answered_at = ngx_current_msec;
            ngx_queue_remove(q);
            ngx_queue_insert_tail(&failed, q);
            continue;
        }

        ngx_queue_remove(q);
        op->queued = 0;
        op->late = NULL;
        ngx_queue_insert_tail(&failed, q);
    }

    while (!ngx_queue_empty(&failed)) {
        q = ngx_queue_head(&failed);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);

        if (op->queued) {
            ngx_queue_insert_tail(&rd->waiting, q);
            ngx_http_apikey_redis_answer(op, NULL);
            continue;
        }

        ngx_http_apikey_redis_answer(op, NULL);
        ngx_http_apikey_redis_maybe_free(op);
    }
}


/*
 * READONLY or LOADING, in a reply or in an element of a batch's reply:
 * with Sentinel, the server is no longer (or not yet) the primary
 */

static ngx_uint_t
ngx_http_apikey_redis_not_primary(ngx_http_apikey_redis_t *rd, redisReply *rr)
{
    size_t       i;
    redisReply  *e;

    if (rr == NULL || rd->conf->sentinel_name.len == 0) {
        return 0;
    }

    for (i = 0; i < (rr->type == REDIS_REPLY_ARRAY ? rr->elements : 1); i++) {
        e = (rr->type == REDIS_REPLY_ARRAY) ? rr->element[i] : rr;

        if (e->type == REDIS_REPLY_ERROR
            && ((e->len >= 8 && ngx_strncmp(e->str, "READONLY", 8) == 0)
                || (e->len >= 7 && ngx_strncmp(e->str, "LOADING", 7) == 0)))
        {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_http_apikey_redis_ready(void)
{
    return ngx_http_apikey_redis_link_ready(
                             &ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE]);
}


size_t
ngx_http_apikey_redis_server(ngx_uint_t conn, u_char *buf)
{
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis[conn];

    if (rd->identified) {
        return ngx_cpymem(buf, rd->run_id, 40) - buf;
    }

    return ngx_sprintf(buf, "#%ui", rd->conn.generation) - buf;
}


ngx_uint_t
ngx_http_apikey_redis_replicas(void)
{
    return ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE].replicas;
}


ngx_int_t
ngx_http_apikey_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_redis_exit_pt exiting)
{
    ngx_http_apikey_redis_link_init(cycle, rcf,
                                    ngx_http_apikey_redis_send_waiting,
                                    exiting);

    return NGX_OK;
}


void
ngx_http_apikey_redis_exit_worker(void)
{
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    if (ngx_http_apikey_redis[0].conf == NULL) {
        return;
    }

    /* the calls on the connections are freed as they close */

    ngx_http_apikey_redis_link_exit();

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        rd = &ngx_http_apikey_redis[i];

        while (!ngx_queue_empty(&rd->waiting)) {
            q = ngx_queue_head(&rd->waiting);
            ngx_queue_remove(q);

            op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);
            op->queued = 0;

            ngx_http_apikey_redis_drop(op);
        }
    }
}


/* a deep copy of a reply in a pool, to read after the handler returned */

redisReply *
ngx_http_apikey_redis_copy(ngx_pool_t *pool, redisReply *rr)
{
    size_t       i;
    redisReply  *c;

    c = ngx_pcalloc(pool, sizeof(redisReply));
    if (c == NULL) {
        return NULL;
    }

    c->type = rr->type;
    c->integer = rr->integer;

    if (rr->str != NULL) {
        c->len = rr->len;
        c->str = ngx_pnalloc(pool, rr->len + 1);
        if (c->str == NULL) {
            return NULL;
        }

        ngx_memcpy(c->str, rr->str, rr->len);
        c->str[rr->len] = '\0';
    }

    if (rr->elements) {
        c->element = ngx_palloc(pool, rr->elements * sizeof(redisReply *));
        if (c->element == NULL) {
            return NULL;
        }

        for (i = 0; i < rr->elements; i++) {
            c->element[i] = ngx_http_apikey_redis_copy(pool, rr->element[i]);
            if (c->element[i] == NULL) {
                return NULL;
            }
        }

        c->elements = rr->elements;
    }

    return c;
}
