
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_key.h"


#define NGX_HTTP_APIKEY_REDIS_DOWN        0
#define NGX_HTTP_APIKEY_REDIS_CONNECTING  1
#define NGX_HTTP_APIKEY_REDIS_READY       2

#define NGX_HTTP_APIKEY_REDIS_RETRY       200


/*
 * An operation lives in the heap, not in a request pool: hiredis holds it
 * until the reply (or the connection's end) even when the request is gone.
 * It keeps the command as sent, to send it again on a new connection, and
 * its arguments for the EVAL after NOSCRIPT.  Between connections it
 * waits in the worker's queue of operations to send.
 */

struct ngx_http_apikey_redis_op_s {
    ngx_http_apikey_redis_handler_pt   handler;
    void                              *data;
    ngx_event_t                        timer;
    ngx_queue_t                        queue;
    ngx_http_apikey_script_t          *script;
    u_char                            *cmd;
    size_t                             len;
    int                                argc;
    const char                       **argv;
    size_t                            *argvlen;
    unsigned                           retried:1;
    unsigned                           resend:1;
    unsigned                           resent:1;
    unsigned                           queued:1;
};


typedef struct {
    ngx_http_apikey_redis_conf_t      *conf;
    redisAsyncContext                 *ac;
    ngx_uint_t                         state;
    ngx_event_t                        connect_timer;
    ngx_event_t                        reconnect;
    ngx_event_t                        resend;
    ngx_queue_t                        waiting;   /* ops to send */
    ngx_msec_t                         last_reply;
    ngx_log_t                         *log;

    /* with Sentinel: the primary it named */
    u_char                             host[NGX_SOCKADDR_STRLEN + 1];
    in_port_t                          port;
    ngx_uint_t                         replicas;

    unsigned                           failed:1;
    unsigned                           exiting:1;
    unsigned                           known:1;        /* host and port */
    unsigned                           discovering:1;
} ngx_http_apikey_redis_t;


static void ngx_http_apikey_redis_connect(void);
static void ngx_http_apikey_redis_role(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_uint_t ngx_http_apikey_redis_not_primary(redisReply *rr);
static void ngx_http_apikey_redis_handshake(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_apikey_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_apikey_redis_op_timeout(ngx_event_t *ev);
static void ngx_http_apikey_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_apikey_redis_reconnect(ngx_event_t *ev);
static void ngx_http_apikey_redis_send_waiting(ngx_event_t *ev);
static void ngx_http_apikey_redis_finish(ngx_http_apikey_redis_op_t *op,
    redisReply *rr);
static void ngx_http_apikey_redis_lost(const redisAsyncContext *ac,
    const char *reason, ngx_uint_t failure);
static void ngx_http_apikey_redis_reset(const char *reason,
    ngx_uint_t failure);
static void ngx_http_apikey_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_apikey_redis_on_disconnect(const redisAsyncContext *ac,
    int status);


static ngx_http_apikey_redis_t  ngx_http_apikey_redis;


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
ngx_http_apikey_redis_eval(ngx_http_apikey_script_t *script,
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

    rd = &ngx_http_apikey_redis;

    /*
     * Requests queue behind the very first connect of a worker; once Redis
     * failed, they get the fail mode's answer until a connection is ready.
     */

    if (!ngx_http_apikey_redis_ready()) {
        return NGX_DECLINED;
    }

    if (nargs + 3 > NGX_HTTP_APIKEY_REDIS_MAX_ARGS || nkeys > nargs) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "too many redis arguments");
        return NGX_ERROR;
    }

    /*
     * The command is written in RESP here, once, and handed to hiredis
     * as is; argv points into it for the EVAL after NOSCRIPT.
     */

    size = sizeof(ngx_http_apikey_redis_op_t)
           + (nargs + 3) * (sizeof(char *) + sizeof(size_t))
           + (nargs + 4) * (sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN)
           + sizeof("EVALSHA") - 1 + sizeof(script->sha1);

    for (i = 0; i < nargs; i++) {
        size += args[i].len;
    }

    op = ngx_alloc(size, log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(op, sizeof(ngx_http_apikey_redis_op_t));

    op->handler = handler;
    op->data = data;
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
        p = ngx_cpymem(p, args[i].data, args[i].len);
        *p++ = '\r'; *p++ = '\n';
    }

    op->cmd = cmd;
    op->len = p - cmd;

    op->timer.handler = ngx_http_apikey_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = rd->log;

    if (rd->ac == NULL) {

        /* a working connection dropped: wait for the new one */

        op->queued = 1;
        ngx_queue_insert_tail(&rd->waiting, &op->queue);

    } else if (redisAsyncFormattedCommand(rd->ac, ngx_http_apikey_redis_reply,
                                          op, (const char *) cmd, p - cmd)
               != REDIS_OK)
    {
        ngx_free(op);
        return NGX_DECLINED;
    }

    ngx_add_timer(&op->timer, timeout);

    *opp = op;

    return NGX_OK;
}


/*
 * Requests wait behind a connection that is being made, unless the last
 * attempt failed: then they get the fail mode's answer until one works.
 */

ngx_uint_t
ngx_http_apikey_redis_ready(void)
{
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    if (rd->conf == NULL) {
        return 0;
    }

    if (rd->ac == NULL) {
        return !rd->failed && (rd->reconnect.timer_set || rd->discovering);
    }

    return rd->state == NGX_HTTP_APIKEY_REDIS_READY || !rd->failed;
}


void
ngx_http_apikey_redis_detach(ngx_http_apikey_redis_op_t *op)
{
    op->handler = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        ngx_free(op);
    }
}


void
ngx_http_apikey_redis_resend(ngx_http_apikey_redis_op_t *op)
{
    op->resend = 1;
}


ngx_int_t
ngx_http_apikey_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf)
{
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    ngx_memzero(rd, sizeof(ngx_http_apikey_redis_t));

    rd->conf = rcf;
    rd->log = cycle->log;

    rd->connect_timer.handler = ngx_http_apikey_redis_connect_timeout;
    rd->connect_timer.log = cycle->log;
    rd->connect_timer.data = rd;
    rd->connect_timer.cancelable = 1;

    rd->reconnect.handler = ngx_http_apikey_redis_reconnect;
    rd->reconnect.log = cycle->log;
    rd->reconnect.data = rd;
    rd->reconnect.cancelable = 1;

    rd->resend.handler = ngx_http_apikey_redis_send_waiting;
    rd->resend.log = cycle->log;
    rd->resend.data = rd;

    ngx_queue_init(&rd->waiting);

    if (rcf->sentinel_name.len) {
        ngx_http_apikey_sentinel_init(rcf, cycle->log);
    }

    ngx_http_apikey_redis_connect();

    return NGX_OK;
}


void
ngx_http_apikey_redis_exit_worker(void)
{
    ngx_queue_t                 *q;
    redisAsyncContext           *ac;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = &ngx_http_apikey_redis;

    if (rd->conf == NULL) {
        return;
    }

    rd->exiting = 1;

    ngx_http_apikey_sentinel_exit();

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->resend.posted) {
        ngx_delete_posted_event(&rd->resend);
    }

    ac = rd->ac;
    rd->ac = NULL;
    rd->state = NGX_HTTP_APIKEY_REDIS_DOWN;

    if (ac) {
        redisAsyncFree(ac);
    }

    /* nobody is left to answer */

    while (!ngx_queue_empty(&rd->waiting)) {
        q = ngx_queue_head(&rd->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        ngx_free(op);
    }
}


static void
ngx_http_apikey_redis_connect(void)
{
    size_t                          n;
    ngx_uint_t                      i;
    const char                     *argv[3];
    redisAsyncContext              *ac;
    ngx_http_apikey_script_t      **s;
    ngx_http_apikey_redis_t        *rd;
    ngx_http_apikey_redis_conf_t   *rcf;
    size_t                          argvlen[3];
    u_char                          db[NGX_INT_T_LEN];

    rd = &ngx_http_apikey_redis;
    rcf = rd->conf;

    if (rcf->sentinel_name.len) {

        if (!rd->known) {
            rd->discovering = 1;
            ngx_http_apikey_sentinel_discover();
            return;
        }

        ac = redisAsyncConnect((const char *) rd->host, rd->port);

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
        ngx_http_apikey_redis_reset(ac->errstr, 1);
        return;
    }

    if (ngx_http_apikey_redis_attach(ac, rd->log) != NGX_OK) {
        redisAsyncFree(ac);
        goto failed;
    }

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
        ngx_http_apikey_redis_reset("cannot send the handshake", 1);
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

    rd = &ngx_http_apikey_redis;
    rr = reply;

    if (ac != rd->ac) {
        return;
    }

    if (rr == NULL) {
        ngx_http_apikey_redis_lost(ac, ac->errstr[0] ? ac->errstr
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
        ngx_http_apikey_redis_reset("handshake failed", 1);
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

    rd = &ngx_http_apikey_redis;
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
                  rd->host, (int) rd->port, &rd->conf->sentinel_name,
                  (size_t) (rr->type == REDIS_REPLY_ARRAY && rr->elements
                            && rr->element[0]->type == REDIS_REPLY_STRING
                            ? rr->element[0]->len : 0),
                  rr->type == REDIS_REPLY_ARRAY && rr->elements
                  ? rr->element[0]->str : "");

    ngx_http_apikey_redis_reset("not the primary", 1);
}


/*
 * READONLY or LOADING, in a reply or in an element of a batch's reply:
 * with Sentinel, the server is no longer (or not yet) the primary
 */

static ngx_uint_t
ngx_http_apikey_redis_not_primary(redisReply *rr)
{
    size_t       i;
    redisReply  *e;

    if (rr == NULL || ngx_http_apikey_redis.conf->sentinel_name.len == 0) {
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
ngx_http_apikey_redis_primary(u_char *host, size_t len, in_port_t port)
{
    ngx_uint_t                level;
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    rd->discovering = 0;

    if (rd->exiting) {
        return;
    }

    if (host == NULL) {
        level = rd->failed ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, rd->log, 0,
                      "redis: no sentinel of %V named its primary",
                      &rd->conf->address);

        rd->failed = 1;

        if (!ngx_exiting && !ngx_terminate && !ngx_quit
            && !rd->reconnect.timer_set)
        {
            ngx_add_timer(&rd->reconnect, NGX_HTTP_APIKEY_REDIS_RETRY);
        }

        ngx_http_apikey_redis_send_waiting(&rd->resend);
        return;
    }

    if (rd->port != port || ngx_strcmp(rd->host, host) != 0) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "redis primary of \"%V\" is %s:%d",
                      &rd->conf->sentinel_name, host, (int) port);

        ngx_memcpy(rd->host, host, len + 1);
        rd->port = port;
    }

    rd->known = 1;

    ngx_http_apikey_redis_connect();
}


void
ngx_http_apikey_redis_switch(u_char *host, size_t len, in_port_t port)
{
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    if (rd->known && rd->port == port && ngx_strcmp(rd->host, host) == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "redis primary of \"%V\" switched to %s:%d",
                  &rd->conf->sentinel_name, host, (int) port);

    /* the checks in flight on the old primary go to the new one */

    ngx_http_apikey_redis_reset("the primary changed", 0);

    ngx_memcpy(rd->host, host, len + 1);
    rd->port = port;
    rd->known = 1;
}


static void
ngx_http_apikey_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                  *rr;
    ngx_http_apikey_redis_op_t  *op;

    op = privdata;
    rr = reply;

    if (ac == ngx_http_apikey_redis.ac) {
        ngx_http_apikey_redis.last_reply = ngx_current_msec;
    }

    if (ngx_http_apikey_redis_not_primary(rr)
        && ac == ngx_http_apikey_redis.ac)
    {
        /*
         * a failover made this server a replica, or it is loading: find
         * the primary again, and send the command there
         */

        ngx_log_error(NGX_LOG_WARN, ngx_http_apikey_redis.log, 0,
                      "redis at %s:%d answered as no primary of \"%V\"",
                      ngx_http_apikey_redis.host,
                      (int) ngx_http_apikey_redis.port,
                      &ngx_http_apikey_redis.conf->sentinel_name);

        ngx_http_apikey_redis_reset("not the primary", 0);
        rr = NULL;
    }

    if (rr == NULL
        && op->handler != NULL
        && op->resend
        && !op->resent
        && !ngx_http_apikey_redis.exiting)
    {
        /*
         * the connection is gone with the command: send it again on the
         * next one, once (a check Redis ran before the drop may so take a
         * second token, never let one more request through)
         */

        op->resent = 1;
        op->queued = 1;
        ngx_queue_insert_tail(&ngx_http_apikey_redis.waiting, &op->queue);

        if (!ngx_http_apikey_redis.resend.posted) {
            ngx_post_event(&ngx_http_apikey_redis.resend, &ngx_posted_events);
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


static void
ngx_http_apikey_redis_op_timeout(ngx_event_t *ev)
{
    void                              *data;
    ngx_http_apikey_redis_op_t        *op;
    ngx_http_apikey_redis_handler_pt   handler;

    ngx_http_apikey_redis_t  *rd;

    op = ev->data;
    rd = &ngx_http_apikey_redis;

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        op->queued = 0;
        ngx_http_apikey_redis_finish(op, NULL);
        return;
    }

    handler = op->handler;
    data = op->data;
    op->handler = NULL;

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
        ngx_http_apikey_redis_reset("command timed out", 1);

    } else {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis command on %V timed out",
                      &rd->conf->address);
    }

    if (handler) {
        handler(data, NULL);
    }
}


static void
ngx_http_apikey_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_redis_reset("connect timed out", 1);
}


static void
ngx_http_apikey_redis_reconnect(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_terminate || ngx_quit
        || ngx_http_apikey_redis.exiting)
    {
        return;
    }

    ngx_http_apikey_redis_connect();
}


/*
 * Sends the operations that waited for a connection, once one is being
 * made; fails them when the last attempt failed.  Runs as a posted event
 * too, after hiredis has finished with a connection that went away.
 */

static void
ngx_http_apikey_redis_send_waiting(ngx_event_t *ev)
{
    ngx_queue_t                 *q;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = &ngx_http_apikey_redis;

    while (!ngx_queue_empty(&rd->waiting)) {

        if (rd->ac == NULL && ngx_http_apikey_redis_ready()) {
            return;     /* the reconnect timer will send them */
        }

        q = ngx_queue_head(&rd->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_apikey_redis_op_t, queue);
        op->queued = 0;

        if (rd->ac != NULL
            && ngx_http_apikey_redis_ready()
            && redisAsyncFormattedCommand(rd->ac, ngx_http_apikey_redis_reply,
                                          op, (const char *) op->cmd, op->len)
               == REDIS_OK)
        {
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
    ngx_http_apikey_redis_handler_pt   handler;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    handler = op->handler;
    data = op->data;

    ngx_free(op);

    if (handler != NULL && !ngx_http_apikey_redis.exiting) {
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
ngx_http_apikey_redis_lost(const redisAsyncContext *ac, const char *reason,
    ngx_uint_t failure)
{
    ngx_uint_t                level;
    ngx_msec_t                delay;
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    if (ac != rd->ac) {
        return;
    }

    if (rd->state != NGX_HTTP_APIKEY_REDIS_READY) {
        failure = 1;
    }

    rd->ac = NULL;
    rd->state = NGX_HTTP_APIKEY_REDIS_DOWN;
    rd->known = 0;     /* with Sentinel, ask again where the primary is */

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (failure) {

        /* one error per outage; the retries that follow are informational */

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

static void
ngx_http_apikey_redis_reset(const char *reason, ngx_uint_t failure)
{
    redisAsyncContext        *ac;
    ngx_http_apikey_redis_t  *rd;

    rd = &ngx_http_apikey_redis;

    ac = rd->ac;

    if (ac == NULL) {
        return;
    }

    ngx_http_apikey_redis_lost(ac, reason, failure);

    redisAsyncFree(ac);
}


static void
ngx_http_apikey_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        ngx_http_apikey_redis_lost(ac, ac->errstr, 1);
    }
}


static void
ngx_http_apikey_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_apikey_redis_lost(ac, ac->errstr[0] ? ac->errstr
                                                 : "connection closed",
                               0);
}
