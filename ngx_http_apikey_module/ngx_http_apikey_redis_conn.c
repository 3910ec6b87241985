
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis_conn.h"
#include "ngx_http_apikey_metrics.h"


static void ngx_http_apikey_redis_handshake(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_apikey_redis_role(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_uint_t ngx_http_apikey_redis_not_primary(
    ngx_http_apikey_redis_t *rd, redisReply *rr);
static void ngx_http_apikey_redis_finish(ngx_http_apikey_redis_op_t *op,
    redisReply *rr);
static void ngx_http_apikey_redis_lost(ngx_http_apikey_redis_t *rd,
    const redisAsyncContext *ac, const char *reason, ngx_uint_t failure);
static void ngx_http_apikey_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_apikey_redis_on_disconnect(const redisAsyncContext *ac,
    int status);


static ngx_uint_t  ngx_http_apikey_redis_last_sent;


ngx_uint_t
ngx_http_apikey_redis_sent(void)
{
    return ngx_http_apikey_redis_last_sent;
}


ngx_uint_t
ngx_http_apikey_redis_conn_ready(ngx_http_apikey_redis_t *rd)
{
    if (rd->conf == NULL) {
        return 0;
    }

    if (rd->ac == NULL) {
        return !rd->failed
               && (rd->reconnect.timer_set || rd->discovering || rd->idle);
    }

    return rd->state == NGX_HTTP_APIKEY_REDIS_READY || !rd->failed;
}


void
ngx_http_apikey_redis_connect(ngx_http_apikey_redis_t *rd)
{
    size_t                          n;
    ngx_uint_t                      i;
    const char                     *argv[3];
    redisAsyncContext              *ac;
    ngx_http_apikey_script_t      **s;
    ngx_http_apikey_redis_conf_t   *rcf;
    size_t                          argvlen[3];
    u_char                          db[NGX_INT_T_LEN];

    rcf = rd->conf;
    rd->idle = 0;

    if (rd->connected) {
        ngx_http_apikey_metric_add(reconnects);
    }

    if (rcf->sentinel_name.len) {

        if (!ngx_http_apikey_redis_primary_addr.known) {
            rd->discovering = 1;
            ngx_http_apikey_sentinel_discover();
            return;
        }

        ac = redisAsyncConnect(
                         (const char *) ngx_http_apikey_redis_primary_addr.host,
                         ngx_http_apikey_redis_primary_addr.port);

    } else if (rcf->path.len) {
        ac = redisAsyncConnectUnix((const char *) rcf->path.data);

    } else {
        ac = redisAsyncConnect((const char *) rcf->host.data, rcf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "redis connection to %V failed: out of memory",
                      &rcf->address);
        goto failed;
    }

    if (ac->err) {
        rd->ac = ac;
        rd->state = NGX_HTTP_APIKEY_REDIS_CONNECTING;
        ngx_http_apikey_redis_reset(rd, ac->errstr, 1);
        return;
    }

    if (ngx_http_apikey_redis_attach(ac, rd->log) != NGX_OK) {
        redisAsyncFree(ac);
        goto failed;
    }

    ac->data = rd;

    redisAsyncSetConnectCallback(ac, ngx_http_apikey_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_apikey_redis_on_disconnect);

    rd->ac = ac;
    rd->state = NGX_HTTP_APIKEY_REDIS_CONNECTING;

    /*
     * The handshake goes out first on the connection: whatever requests
     * queue behind it run after AUTH and SELECT.  Its last reply (PING)
     * makes the connection ready.
     */

    if (rcf->password.len) {
        n = 0;
        argv[n] = "AUTH";
        argvlen[n++] = sizeof("AUTH") - 1;

        if (rcf->user.len) {
            argv[n] = (const char *) rcf->user.data;
            argvlen[n++] = rcf->user.len;
        }

        argv[n] = (const char *) rcf->password.data;
        argvlen[n++] = rcf->password.len;

        redisAsyncCommandArgv(ac, ngx_http_apikey_redis_handshake, "AUTH",
                              (int) n, argv, argvlen);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = sizeof("SELECT") - 1;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", rcf->db) - db;

        redisAsyncCommandArgv(ac, ngx_http_apikey_redis_handshake, "SELECT",
                              2, argv, argvlen);
    }

    if (rcf->sentinel_name.len) {
        argv[0] = "ROLE";
        argvlen[0] = sizeof("ROLE") - 1;

        redisAsyncCommandArgv(ac, ngx_http_apikey_redis_role, NULL,
                              1, argv, argvlen);
    }

    s = rcf->scripts.elts;

    for (i = 0; i < rcf->scripts.nelts; i++) {
        argv[0] = "SCRIPT";
        argvlen[0] = sizeof("SCRIPT") - 1;
        argv[1] = "LOAD";
        argvlen[1] = sizeof("LOAD") - 1;
        argv[2] = (const char *) s[i]->body.data;
        argvlen[2] = s[i]->body.len;

        redisAsyncCommandArgv(ac, ngx_http_apikey_redis_handshake,
                              "SCRIPT LOAD", 3, argv, argvlen);
    }

    argv[0] = "PING";
    argvlen[0] = sizeof("PING") - 1;

    if (redisAsyncCommandArgv(ac, ngx_http_apikey_redis_handshake, NULL,
                              1, argv, argvlen)
        != REDIS_OK)
    {
        ngx_http_apikey_redis_reset(rd, "cannot send the handshake", 1);
        return;
    }

    ngx_add_timer(&rd->connect_timer, rcf->timeout);

    /* what waited for this connection goes out behind the handshake */

    ngx_http_apikey_redis_send_waiting(&rd->resend);

    return;

failed:

    rd->state = NGX_HTTP_APIKEY_REDIS_DOWN;
    rd->failed = 1;

    if (!rd->exiting && !ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(&rd->reconnect, NGX_HTTP_APIKEY_REDIS_RETRY);
    }

    ngx_http_apikey_redis_send_waiting(&rd->resend);
}


static void
ngx_http_apikey_redis_handshake(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_uint_t                level;
    redisReply               *rr;
    ngx_http_apikey_redis_t  *rd;

    rd = ac->data;
    rr = reply;

    if (ac != rd->ac) {
        return;
    }

    if (rr == NULL) {
        ngx_http_apikey_redis_lost(rd, ac, ac->errstr[0]
                                           ? ac->errstr
                                           : "connection closed",
                                   1);
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        level = rd->failed ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, rd->log, 0,
                      "redis %s on %V failed: %*s", (char *) privdata,
                      &rd->conf->address, (size_t) rr->len, rr->str);

        rd->failed = 1;
        ngx_http_apikey_redis_reset(rd, "handshake failed", 1);
        return;
    }

    if (privdata != NULL) {
        return;
    }

    /* PING answered: the connection is ready */

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    rd->state = NGX_HTTP_APIKEY_REDIS_READY;
    rd->last_reply = ngx_current_msec;
    rd->connected = 1;

    if (rd->failed) {
        rd->failed = 0;
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "redis connection to %V restored", &rd->conf->address);
    }
}


/* ROLE, with Sentinel: a server that is no primary is never used */

static void
ngx_http_apikey_redis_role(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply               *rr;
    ngx_http_apikey_redis_t  *rd;

    rd = ac->data;
    rr = reply;

    if (ac != rd->ac || rr == NULL) {
        return;     /* the handshake's last reply handles a lost connection */
    }

    if (rr->type == REDIS_REPLY_ARRAY
        && rr->elements == 3
        && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[0]->len == sizeof("master") - 1
        && ngx_strncmp(rr->element[0]->str, "master", 6) == 0)
    {
        rd->replicas = (rr->element[2]->type == REDIS_REPLY_ARRAY)
                       ? rr->element[2]->elements : 0;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "redis at %s:%d is no primary of \"%V\" (ROLE %*s)",
                  ngx_http_apikey_redis_primary_addr.host,
                  (int) ngx_http_apikey_redis_primary_addr.port,
                  &rd->conf->sentinel_name,
                  (size_t) (rr->type == REDIS_REPLY_ARRAY && rr->elements
                            && rr->element[0]->type == REDIS_REPLY_STRING
                            ? rr->element[0]->len : 0),
                  rr->type == REDIS_REPLY_ARRAY && rr->elements
                  ? rr->element[0]->str : "");

    ngx_http_apikey_redis_reset(rd, "not the primary", 1);
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


void
ngx_http_apikey_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                  *rr;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    op = privdata;
    rd = op->rd;
    rr = reply;

    if (ac == rd->ac) {
        rd->last_reply = ngx_current_msec;
    }

    if (ngx_http_apikey_redis_not_primary(rd, rr) && ac == rd->ac)
    {
        /*
         * a failover made this server a replica, or it is loading: find
         * the primary again, and send the command there
         */

        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis at %s:%d answered as no primary of \"%V\"",
                      ngx_http_apikey_redis_primary_addr.host,
                      (int) ngx_http_apikey_redis_primary_addr.port,
                      &rd->conf->sentinel_name);

        ngx_http_apikey_metric_add(failovers);
        ngx_http_apikey_redis_reset(rd, "not the primary", 0);
        rr = NULL;
    }

    if (rr == NULL
        && op->handler != NULL
        && op->resend
        && !op->resent
        && !rd->exiting)
    {
        /*
         * the connection is gone with the command: send it again on the
         * next one, once (a check Redis ran before the drop may so take a
         * second token, never let one more request through)
         */

        op->resent = 1;
        op->queued = 1;
        ngx_queue_insert_tail(&rd->waiting, &op->queue);

        if (!rd->resend.posted) {
            ngx_post_event(&rd->resend, &ngx_posted_events);
        }

        return;
    }

    if (rr != NULL
        && op->handler != NULL
        && !op->retried
        && rr->type == REDIS_REPLY_ERROR
        && ngx_strncmp(rr->str, "NOSCRIPT", 8) == 0)
    {
        /* the script cache was flushed: send the body once */

        op->retried = 1;
        op->argv[0] = "EVAL";
        op->argvlen[0] = sizeof("EVAL") - 1;
        op->argv[1] = (const char *) op->script->body.data;
        op->argvlen[1] = op->script->body.len;

        if (redisAsyncCommandArgv(ac, ngx_http_apikey_redis_reply, op,
                                  op->argc, op->argv, op->argvlen)
            == REDIS_OK)
        {
            return;
        }

        rr = NULL;
    }

    ngx_http_apikey_redis_finish(op, rr);
}


void
ngx_http_apikey_redis_op_timeout(ngx_event_t *ev)
{
    void                              *data;
    ngx_uint_t                         sent;
    ngx_http_apikey_redis_t           *rd;
    ngx_http_apikey_redis_op_t        *op;
    ngx_http_apikey_redis_handler_pt   handler;

    op = ev->data;
    rd = op->rd;

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        op->queued = 0;
        ngx_http_apikey_redis_finish(op, NULL);
        return;
    }

    handler = op->handler;
    data = op->data;
    sent = op->sent;
    op->handler = NULL;

    ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_TIMEOUT]);

    /*
     * A slow reply fails its own request only (hiredis frees op when the
     * reply comes).  A Redis from which nothing at all arrived for the
     * timeout is treated as a broken connection: everything waiting on it
     * fails now instead of each request waiting out its own timeout, and
     * a fresh connection is tried in the background.
     */

    if (rd->ac != NULL
        && ngx_current_msec - rd->last_reply >= rd->conf->timeout)
    {
        ngx_http_apikey_redis_reset(rd, "command timed out", 1);

    } else {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis command on %V timed out",
                      &rd->conf->address);
    }

    if (handler) {
        ngx_http_apikey_redis_last_sent = sent;
        handler(data, NULL);
    }
}


void
ngx_http_apikey_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_redis_reset(ev->data, "connect timed out", 1);
}


void
ngx_http_apikey_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_apikey_redis_t  *rd = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit || rd->exiting) {
        return;
    }

    ngx_http_apikey_redis_connect(rd);
}


/*
 * Sends the operations that waited for a connection, once one is being
 * made; fails them when the last attempt failed.  Runs as a posted event
 * too, after hiredis has finished with a connection that went away.
 */

void
ngx_http_apikey_redis_send_waiting(ngx_event_t *ev)
{
    ngx_queue_t                 *q;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = ev->data;

    while (!ngx_queue_empty(&rd->waiting)) {

        if (rd->ac == NULL && ngx_http_apikey_redis_conn_ready(rd)) {
            return;     /* the reconnect timer will send them */
        }

        q = ngx_queue_head(&rd->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);
        op->queued = 0;

        if (rd->ac != NULL
            && ngx_http_apikey_redis_conn_ready(rd)
            && redisAsyncFormattedCommand(rd->ac, ngx_http_apikey_redis_reply,
                                          op, (const char *) op->cmd, op->len)
               == REDIS_OK)
        {
            op->sent = 1;
            continue;
        }

        ngx_http_apikey_redis_finish(op, NULL);
    }
}


/*
 * answers an operation that no connection holds (any more) with the reply
 * or, with NULL, as failed, and frees it
 */

static void
ngx_http_apikey_redis_finish(ngx_http_apikey_redis_op_t *op, redisReply *rr)
{
    void                              *data;
    ngx_uint_t                         exiting;
    ngx_http_apikey_redis_handler_pt   handler;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    handler = op->handler;
    data = op->data;
    exiting = op->rd->exiting;
    ngx_http_apikey_redis_last_sent = op->sent;

    ngx_free(op);

    if (handler != NULL && !exiting) {
        handler(data, rr);
    }
}


/*
 * The connection is gone: forget it.  A working connection that dropped
 * (a killed client, a restart, a failover) is made again at once, and
 * requests wait for it; after a failed attempt (or a silent Redis) they
 * get the fail mode's answer and attempts go on in the background.
 */

static void
ngx_http_apikey_redis_lost(ngx_http_apikey_redis_t *rd,
    const redisAsyncContext *ac, const char *reason, ngx_uint_t failure)
{
    ngx_uint_t  level;
    ngx_msec_t  delay;

    if (rd == NULL || ac != rd->ac) {
        return;
    }

    if (rd->state != NGX_HTTP_APIKEY_REDIS_READY) {
        failure = 1;
    }

    rd->ac = NULL;
    rd->state = NGX_HTTP_APIKEY_REDIS_DOWN;
    /* with Sentinel, ask again where the primary is */

    ngx_http_apikey_redis_primary_addr.known = 0;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (failure) {

        /* one error per outage; the retries that follow are informational */

        ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_CONNECTION]);

        level = rd->failed ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, rd->log, 0,
                      "redis connection to %V failed: %s",
                      &rd->conf->address, reason);

        rd->failed = 1;
        delay = NGX_HTTP_APIKEY_REDIS_RETRY;

    } else {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis connection to %V lost: %s, reconnecting",
                      &rd->conf->address, reason);

        delay = 0;
    }

    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    ngx_add_timer(&rd->reconnect, delay);

    if (!ngx_queue_empty(&rd->waiting) && !rd->resend.posted) {
        ngx_post_event(&rd->resend, &ngx_posted_events);
    }
}


/* we give up on the current connection: free it and try again later */

void
ngx_http_apikey_redis_reset(ngx_http_apikey_redis_t *rd, const char *reason,
    ngx_uint_t failure)
{
    redisAsyncContext  *ac;

    ac = rd->ac;

    if (ac == NULL) {
        return;
    }

    ngx_http_apikey_redis_lost(rd, ac, reason, failure);

    redisAsyncFree(ac);
}


static void
ngx_http_apikey_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        ngx_http_apikey_redis_lost(ac->data, ac, ac->errstr, 1);
    }
}


static void
ngx_http_apikey_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_apikey_redis_lost(ac->data, ac, ac->errstr[0]
                                             ? ac->errstr
                                             : "connection closed",
                               0);
}
