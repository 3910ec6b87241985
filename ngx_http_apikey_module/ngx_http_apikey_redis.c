
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis_conn.h"
#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_metrics.h"


static ngx_int_t ngx_http_apikey_redis_send(ngx_http_apikey_redis_op_t *op,
    ngx_msec_t timeout, ngx_http_apikey_redis_op_t **opp);


ngx_http_apikey_redis_t          ngx_http_apikey_redis[2];
ngx_http_apikey_redis_primary_t  ngx_http_apikey_redis_primary_addr;


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
     * Requests queue behind the very first connect of a worker; once Redis
     * failed, they get the fail mode's answer until a connection is ready.
     */

    if (!ngx_http_apikey_redis_conn_ready(rd)) {
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

    op->rd = rd;
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

        if (args[i].len) {      /* an empty one may have no data at all */
            p = ngx_cpymem(p, args[i].data, args[i].len);
        }

        *p++ = '\r'; *p++ = '\n';
    }

    op->cmd = cmd;
    op->len = p - cmd;

    ngx_http_apikey_metric_add(calls[conn]);

    return ngx_http_apikey_redis_send(op, timeout, opp);
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
    u_char                      *p, ms[NGX_INT_T_LEN];
    size_t                       n;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    rd = &ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_ADMIN];

    if (!ngx_http_apikey_redis_conn_ready(rd)) {
        return NGX_DECLINED;
    }

    op = ngx_alloc(sizeof(ngx_http_apikey_redis_op_t)
                   + sizeof("*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$\r\n\r\n")
                   + 2 * NGX_INT_T_LEN, log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(op, sizeof(ngx_http_apikey_redis_op_t));

    op->rd = rd;
    op->handler = handler;
    op->data = data;
    op->retried = 1;        /* no script: nothing to send again as EVAL */

    n = ngx_sprintf(ms, "%M", timeout / 2 ? timeout / 2 : 1) - ms;

    op->cmd = (u_char *) (op + 1);

    p = ngx_sprintf(op->cmd, "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$%uz\r\n", n);
    p = ngx_cpymem(p, ms, n);
    *p++ = '\r'; *p++ = '\n';

    op->len = p - op->cmd;

    return ngx_http_apikey_redis_send(op, timeout, opp);
}


/* sends an op on its connection, or queues it for the one being made */

static ngx_int_t
ngx_http_apikey_redis_send(ngx_http_apikey_redis_op_t *op,
    ngx_msec_t timeout, ngx_http_apikey_redis_op_t **opp)
{
    ngx_http_apikey_redis_t  *rd;

    rd = op->rd;

    op->timer.handler = ngx_http_apikey_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = rd->log;

    if (rd->ac == NULL) {

        /* a working connection dropped, or none was needed yet */

        op->queued = 1;
        ngx_queue_insert_tail(&rd->waiting, &op->queue);

    } else if (redisAsyncFormattedCommand(rd->ac, ngx_http_apikey_redis_reply,
                                          op, (const char *) op->cmd, op->len)
               != REDIS_OK)
    {
        ngx_free(op);
        return NGX_DECLINED;

    } else {
        op->sent = 1;
    }

    ngx_add_timer(&op->timer, timeout);

    if (rd->idle) {
        ngx_http_apikey_redis_connect(rd);
    }

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

    rd = &ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE];

    return ngx_http_apikey_redis_conn_ready(rd);
}


/* replicas of the primary, as ROLE told on the last connection */

ngx_uint_t
ngx_http_apikey_redis_replicas(void)
{
    return ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE].replicas;
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
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    static const char  *names[] = { "gate", "admin" };

    if (rcf->sentinel_name.len) {
        ngx_http_apikey_sentinel_init(rcf, cycle->log);
    }

    for (i = 0; i < 2; i++) {
        rd = &ngx_http_apikey_redis[i];

        ngx_memzero(rd, sizeof(ngx_http_apikey_redis_t));

        rd->conf = rcf;
        rd->name = names[i];
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
    }

    /*
     * the gatekeeper's connection is made now; the admin API's when it is
     * first used, so that a worker of a server without an admin location
     * holds one connection
     */

    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_ADMIN].idle = 1;

    rd = &ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE];

    ngx_http_apikey_redis_connect(rd);

    return NGX_OK;
}


void
ngx_http_apikey_redis_exit_worker(void)
{
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    redisAsyncContext           *ac;
    ngx_http_apikey_redis_t     *rd;
    ngx_http_apikey_redis_op_t  *op;

    if (ngx_http_apikey_redis[0].conf == NULL) {
        return;
    }

    for (i = 0; i < 2; i++) {
        ngx_http_apikey_redis[i].exiting = 1;
    }

    ngx_http_apikey_sentinel_exit();

    for (i = 0; i < 2; i++) {
        rd = &ngx_http_apikey_redis[i];

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
}


void
ngx_http_apikey_redis_primary(u_char *host, size_t len, in_port_t port)
{
    ngx_uint_t                        i, level;
    ngx_http_apikey_redis_t          *rd;
    ngx_http_apikey_redis_primary_t  *pa;

    pa = &ngx_http_apikey_redis_primary_addr;

    if (host != NULL) {
        if (pa->port != port || ngx_strcmp(pa->host, host) != 0) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_http_apikey_redis[0].log, 0,
                          "redis primary of \"%V\" is %s:%d",
                          &ngx_http_apikey_redis[0].conf->sentinel_name,
                          host, (int) port);

            ngx_memcpy(pa->host, host, len + 1);
            pa->port = port;
        }

        pa->known = 1;
    }

    /* the connections that waited for the answer go on */

    for (i = 0; i < 2; i++) {
        rd = &ngx_http_apikey_redis[i];

        if (!rd->discovering || rd->exiting) {
            continue;
        }

        rd->discovering = 0;

        if (host != NULL) {
            ngx_http_apikey_redis_connect(rd);
            continue;
        }

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
    }
}


void
ngx_http_apikey_redis_switch(u_char *host, size_t len, in_port_t port)
{
    ngx_uint_t                        i;
    ngx_http_apikey_redis_primary_t  *pa;

    pa = &ngx_http_apikey_redis_primary_addr;

    if (pa->known && pa->port == port && ngx_strcmp(pa->host, host) == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_apikey_redis[0].log, 0,
                  "redis primary of \"%V\" switched to %s:%d",
                  &ngx_http_apikey_redis[0].conf->sentinel_name,
                  host, (int) port);

    ngx_http_apikey_metric_add(failovers);

    /* the checks in flight on the old primary go to the new one */

    for (i = 0; i < 2; i++) {
        ngx_http_apikey_redis_reset(&ngx_http_apikey_redis[i],
                                    "the primary changed", 0);
    }

    ngx_memcpy(pa->host, host, len + 1);
    pa->port = port;
    pa->known = 1;
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
