
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis_link.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_timer.h"


/*
 * A worker's links to Redis.  A working connection that drops is made
 * again at once; after a failed attempt the next waits, further and
 * further apart, with jitter.  The handshake pipelines AUTH, SELECT,
 * ROLE (with Sentinel) and PING; the PING's reply makes the link ready,
 * and the calls that waited go out then.  Scripts are not loaded
 * ahead: a call that meets NOSCRIPT sends its script's body once.
 */


#define NGX_HTTP_APIKEY_REDIS_BACKOFF      25      /* ms, the first retry */
#define NGX_HTTP_APIKEY_REDIS_BACKOFF_MAX  500     /* ms */
#define NGX_HTTP_APIKEY_REDIS_HANDSHAKE    1000    /* ms, at least */


static void ngx_http_apikey_redis_resolve(ngx_http_apikey_redis_t *rd);
static void ngx_http_apikey_redis_resolved(ngx_http_apikey_redis_name_t *n,
    const char *error);
static void ngx_http_apikey_redis_handshake_send(ngx_http_apikey_redis_t *rd);
static void ngx_http_apikey_redis_handshake_reply(ngx_http_apikey_redis_t *rd,
    redisReply *rr, const char *what);
static void ngx_http_apikey_redis_auth_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_apikey_redis_select_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_apikey_redis_role_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_apikey_redis_info_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr);
static void ngx_http_apikey_redis_server_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *rr);
static void ngx_http_apikey_redis_layout_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *rr);
static void ngx_http_apikey_redis_ping_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_apikey_redis_handshake_timeout(ngx_event_t *ev);
static void ngx_http_apikey_redis_event(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t event, const char *reason, redisReply *reply);
static void ngx_http_apikey_redis_lost(ngx_http_apikey_redis_t *rd,
    const char *reason);
static void ngx_http_apikey_redis_reconnect(ngx_event_t *ev);
static void ngx_http_apikey_redis_found(void);
static void ngx_http_apikey_redis_switched(void);


ngx_http_apikey_redis_t
    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_LINKS];

static ngx_http_apikey_redis_exit_pt  ngx_http_apikey_redis_exit_handler;


#define ngx_http_apikey_redis_of(cmd, field)                                 \
    (ngx_http_apikey_redis_t *)                                               \
        ((u_char *) (cmd) - offsetof(ngx_http_apikey_redis_t, field))



/*
 * Calls wait behind a connection that is being made, unless the last
 * attempt failed: then they get the fail mode's answer until one works.
 */

ngx_uint_t
ngx_http_apikey_redis_link_ready(ngx_http_apikey_redis_t *rd)
{
    if (rd->conf == NULL) {
        return 0;
    }

    if (!ngx_http_apikey_redis_conn_is_open(&rd->conn)) {
        return !rd->failed && !rd->quitting
               && (rd->reconnect.timer_set || rd->discovering || rd->idle);
    }

    return rd->state == NGX_HTTP_APIKEY_REDIS_READY || !rd->failed;
}







/* a new connection, its handshake first, then what waited for it */

void
ngx_http_apikey_redis_link_connect(ngx_http_apikey_redis_t *rd)
{
    ngx_int_t                      rc;
    ngx_addr_t                    *addr;
    ngx_http_apikey_redis_conf_t  *rcf;

    rcf = rd->conf;
    rd->idle = 0;

    if (rd->quitting || rd->freeing
        || ngx_http_apikey_redis_conn_is_open(&rd->conn))
    {
        return;
    }

    if (rcf->sentinel_name.len) {
        rc = ngx_http_apikey_sentinel_primary(&addr);

        if (rc == NGX_AGAIN) {
            rd->discovering = 1;
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_apikey_redis_lost(rd, "no sentinel named the primary");
            return;
        }

    } else if (rcf->resolver && rcf->host.len) {

        /* the name, through nginx's resolver, for each connection */

        if (!rd->have_addr) {
            ngx_http_apikey_redis_resolve(rd);
            return;
        }

        rd->have_addr = 0;
        addr = &rd->host.addr;

    } else {
        addr = &rcf->addr;
    }

    if (rd->connected) {
        ngx_http_apikey_metric_add(reconnects);
    }

    rd->conn.name = addr->name;
    rd->conn.handler = ngx_http_apikey_redis_event;
    rd->conn.data = rd;

#if (NGX_SSL)
    rd->conn.ssl = rcf->ssl_ctx;
    rd->conn.ssl_verify = rcf->ssl_verify ? 1 : 0;
    ngx_http_apikey_redis_ssl_name(rcf, &addr->name, &rd->conn.ssl_name);
#endif

    rc = ngx_http_apikey_redis_conn_open(&rd->conn, addr->sockaddr,
                                         addr->socklen,
                                         rd->failed ? &rd->quiet : rd->log);

    if (rc != NGX_OK) {
        ngx_http_apikey_redis_lost(rd, "cannot connect");
        return;
    }

    rd->state = NGX_HTTP_APIKEY_REDIS_CONNECTING;

    ngx_http_apikey_redis_handshake_send(rd);

    if (!ngx_http_apikey_redis_conn_is_open(&rd->conn)) {
        return;
    }

    /*
     * what waited for this connection goes out once it is ready: a server
     * still loading its data refuses the handshake, and a call sent
     * behind it would count as one that may have run
     */

    ngx_add_timer(&rd->handshake,
                  ngx_max(rcf->timeout, NGX_HTTP_APIKEY_REDIS_HANDSHAKE));
}



/*
 * A host name with a resolver in the http block: looked up for each
 * connection (ngx_http_apikey_redis_name.c); calls wait meanwhile, as for
 * a connection being made.
 */

static void
ngx_http_apikey_redis_resolve(ngx_http_apikey_redis_t *rd)
{
    ngx_int_t                      rc;
    ngx_http_apikey_redis_conf_t  *rcf;

    rcf = rd->conf;

    rd->host.host = rcf->host;
    rd->host.port = rcf->port;
    rd->host.name = rcf->addr.name;
    rd->host.handler = ngx_http_apikey_redis_resolved;
    rd->host.data = rd;

    rd->discovering = 1;

    rc = ngx_http_apikey_redis_name_resolve(&rd->host, rcf->resolver,
                                 ngx_max(rcf->timeout,
                                         NGX_HTTP_APIKEY_REDIS_HANDSHAKE));

    if (rc == NGX_ERROR) {
        rd->discovering = 0;
        ngx_http_apikey_redis_lost(rd, "cannot resolve its name");
    }
}


static void
ngx_http_apikey_redis_resolved(ngx_http_apikey_redis_name_t *n,
    const char *error)
{
    ngx_http_apikey_redis_t *rd = n->data;

    rd->discovering = 0;

    if (rd->freeing || rd->quitting || ngx_exiting || ngx_terminate
        || ngx_quit)
    {
        return;
    }

    if (error != NULL) {
        ngx_http_apikey_redis_lost(rd, error);
        return;
    }

    n->addr.name = n->name;
    rd->have_addr = 1;

    ngx_http_apikey_redis_link_connect(rd);
}


/*
 * AUTH, SELECT, ROLE with Sentinel, and PING, whose reply makes the
 * connection ready.  Scripts are not loaded: a call finds out with
 * NOSCRIPT, and sends the script's body once.
 */

static void
ngx_http_apikey_redis_handshake_send(ngx_http_apikey_redis_t *rd)
{
    size_t                         n, argvlen[3];
    const char                    *argv[3];
    u_char                         db[NGX_INT_T_LEN];
    ngx_http_apikey_redis_conf_t  *rcf;

    rcf = rd->conf;

    rd->auth.handler = ngx_http_apikey_redis_auth_reply;
    rd->select.handler = ngx_http_apikey_redis_select_reply;
    rd->role.handler = ngx_http_apikey_redis_role_reply;
    rd->info.handler = ngx_http_apikey_redis_info_reply;
    rd->server.handler = ngx_http_apikey_redis_server_reply;
    rd->layout.handler = ngx_http_apikey_redis_layout_reply;
    rd->ping.handler = ngx_http_apikey_redis_ping_reply;

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

        if (ngx_http_apikey_redis_conn_argv(&rd->conn, (int) n, argv, argvlen,
                                            &rd->auth)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = sizeof("SELECT") - 1;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", rcf->db) - db;

        if (ngx_http_apikey_redis_conn_argv(&rd->conn, 2, argv, argvlen,
                                            &rd->select)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (rcf->sentinel_name.len) {
        argv[0] = "ROLE";
        argvlen[0] = sizeof("ROLE") - 1;

        if (ngx_http_apikey_redis_conn_argv(&rd->conn, 1, argv, argvlen,
                                            &rd->role)
            != NGX_OK)
        {
            goto failed;
        }
    }

    argv[0] = "INFO";
    argvlen[0] = sizeof("INFO") - 1;
    argv[1] = "cluster";
    argvlen[1] = sizeof("cluster") - 1;

    if (ngx_http_apikey_redis_conn_argv(&rd->conn, 2, argv, argvlen,
                                        &rd->info)
        != NGX_OK)
    {
        goto failed;
    }

    rd->identified = 0;

    if (rd->identify) {
        argv[1] = "server";
        argvlen[1] = sizeof("server") - 1;

        if (ngx_http_apikey_redis_conn_argv(&rd->conn, 2, argv, argvlen,
                                            &rd->server)
            != NGX_OK)
        {
            goto failed;
        }
    }

    argv[0] = "GET";
    argvlen[0] = sizeof("GET") - 1;
    argv[1] = (const char *) rcf->layout.data;
    argvlen[1] = rcf->layout.len;

    if (ngx_http_apikey_redis_conn_argv(&rd->conn, 2, argv, argvlen,
                                        &rd->layout)
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_apikey_redis_conn_send(&rd->conn,
                                        (u_char *) "*1\r\n$4\r\nPING\r\n",
                                        sizeof("*1\r\n$4\r\nPING\r\n") - 1,
                                        &rd->ping)
        == NGX_OK)
    {
        return;
    }

failed:

    ngx_http_apikey_redis_link_reset(rd, "cannot send the handshake", 1);
}



static void
ngx_http_apikey_redis_handshake_reply(ngx_http_apikey_redis_t *rd,
    redisReply *rr, const char *what)
{
    u_char      text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    ngx_uint_t  level;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    level = rd->failed ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, rd->log, 0, "redis %s on %V failed: \"%*s\"",
                  what, &rd->conf->address,
                  ngx_http_apikey_redis_text(text, (u_char *) rr->str,
                                             rr->len) - text,
                  text);

    ngx_http_apikey_redis_link_reset(rd, "the handshake failed", 1);
}



static void
ngx_http_apikey_redis_auth_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_apikey_redis_handshake_reply(ngx_http_apikey_redis_of(cmd, auth),
                                          reply, "AUTH");
}



static void
ngx_http_apikey_redis_select_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_apikey_redis_handshake_reply(
                                      ngx_http_apikey_redis_of(cmd, select),
                                      reply, "SELECT");
}



/* ROLE, with Sentinel: a server that is no primary is never used */

static void
ngx_http_apikey_redis_role_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    u_char                    text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    size_t                    len;
    ngx_http_apikey_redis_t  *rd;

    rd = ngx_http_apikey_redis_of(cmd, role);

    if (rr == NULL) {
        return;     /* the connection's end says what happened */
    }

    if (rr->type == REDIS_REPLY_ARRAY
        && rr->elements == 3
        && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[0]->len == sizeof("master") - 1
        && ngx_strncmp(rr->element[0]->str, "master", 6) == 0)
    {
        /*
         * once a primary showed replicas, the deployment has them: a
         * primary just promoted shows none until the Sentinels repoint
         * the old one (seconds later), and a change it took alone then
         * is lost if it fails too
         */

        if (rr->element[2]->type == REDIS_REPLY_ARRAY
            && rr->element[2]->elements > rd->replicas)
        {
            rd->replicas = rr->element[2]->elements;
        }

        return;
    }

    len = 0;

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements
        && rr->element[0]->type == REDIS_REPLY_STRING)
    {
        len = ngx_http_apikey_redis_text(text, (u_char *) rr->element[0]->str,
                                         rr->element[0]->len)
              - text;

    } else if (rr->type == REDIS_REPLY_ERROR) {
        len = ngx_http_apikey_redis_text(text, (u_char *) rr->str, rr->len)
              - text;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "redis at %V is no primary of \"%V\" (ROLE \"%*s\")",
                  &rd->conn.name, &rd->conf->sentinel_name, len, text);

    ngx_http_apikey_redis_link_reset(rd, "not the primary", 1);
}



/*
 * INFO cluster: a node of a Redis Cluster holds a part of the keys only
 * (a replica loaded from it would call the others' keys unknown), so it
 * is never used as a plain server.  A user that may not run INFO (an ACL)
 * goes on.
 */

static void
ngx_http_apikey_redis_info_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    ngx_uint_t                level;
    ngx_http_apikey_redis_t  *rd;

    static ngx_uint_t  told;

    rd = ngx_http_apikey_redis_of(cmd, info);

    if (rr == NULL || rr->type != REDIS_REPLY_STRING
        || ngx_strlcasestrn((u_char *) rr->str, (u_char *) rr->str + rr->len,
                            (u_char *) "cluster_enabled:1",
                            sizeof("cluster_enabled:1") - 2)
           == NULL)
    {
        return;
    }

    /* once a worker, however often it tries again */

    level = told++ ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, rd->log, 0,
                  "redis at %V is a node of a Redis Cluster, which "
                  "\"apikey_redis\" does not support: give it a standalone "
                  "Redis, or the Sentinels of a primary", &rd->conn.name);

    ngx_http_apikey_redis_link_reset(rd, "a Redis Cluster node", 1);
}


/*
 * INFO server, asked by the replica's link: the server's run_id, new with
 * each start of a server, tells whether a reconnect found the same one
 * (a SCAN cursor goes on there).  A user that may not run INFO goes on,
 * its server unknown.
 */

static void
ngx_http_apikey_redis_server_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    u_char                   *p, *last;
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    rd = ngx_http_apikey_redis_of(cmd, server);

    if (rr == NULL || rr->type != REDIS_REPLY_STRING) {
        return;
    }

    last = (u_char *) rr->str + rr->len;

    p = ngx_strlcasestrn((u_char *) rr->str, last, (u_char *) "run_id:",
                         sizeof("run_id:") - 2);

    if (p == NULL || last - p < (ssize_t) (sizeof("run_id:") - 1 + 40)) {
        return;
    }

    p += sizeof("run_id:") - 1;

    for (i = 0; i < 40; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
        {
            return;
        }
    }

    ngx_memcpy(rd->run_id, p, 40);
    rd->identified = 1;
}


/*
 * GET ns "layout": the version of the data layout (docs/data-model.md).
 * None is this module's layout, "1"; another one, written by a newer
 * module or its migration, would be misread, so the server is left as a
 * Cluster node is.  An ACL that forbids the GET lets it pass.
 */

static void
ngx_http_apikey_redis_layout_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    u_char                    text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    ngx_uint_t                level;
    ngx_http_apikey_redis_t  *rd;

    static ngx_uint_t  told;

    rd = ngx_http_apikey_redis_of(cmd, layout);

    if (rr == NULL || rr->type != REDIS_REPLY_STRING
        || (rr->len == 1 && rr->str[0] == '1'))
    {
        return;
    }

    level = told++ ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, rd->log, 0,
                  "redis at %V holds its keys in data layout \"%*s\", "
                  "which this module does not know (it reads layout 1): "
                  "upgrade the module, or move the data back with the "
                  "release that wrote it", &rd->conn.name,
                  ngx_http_apikey_redis_text(text, (u_char *) rr->str,
                                             rr->len) - text,
                  text);

    ngx_http_apikey_redis_link_reset(rd, "an unknown data layout", 1);
}


/* PING answered: the connection is ready */

static void
ngx_http_apikey_redis_ping_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_apikey_redis_t  *rd;

    rd = ngx_http_apikey_redis_of(cmd, ping);

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_apikey_redis_handshake_reply(rd, reply, "PING");
        return;
    }

    if (rd->handshake.timer_set) {
        ngx_del_timer(&rd->handshake);
    }

    rd->state = NGX_HTTP_APIKEY_REDIS_READY;
    rd->last_reply = ngx_current_msec;
    rd->connected = 1;

    ngx_http_apikey_metrics_redis_up(rd - ngx_http_apikey_redis,
                                     &rd->conn.name, 1);
    rd->backoff = 0;
    rd->stalled = 0;

    if (rd->failed) {
        rd->failed = 0;
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "redis %s connection to %V restored", rd->name,
                      &rd->conf->address);
    }

    if (!ngx_queue_empty(&rd->waiting) && !rd->resend.posted) {
        ngx_post_event(&rd->resend, &ngx_posted_events);
    }
}



static void
ngx_http_apikey_redis_handshake_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_redis_link_reset(ev->data, "the handshake timed out", 1);
}



static void
ngx_http_apikey_redis_event(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t event, const char *reason, redisReply *reply)
{
    ngx_http_apikey_redis_t *rd = rc->data;

    ngx_http_apikey_redis_exit_pt  handler;

    switch (event) {

    case NGX_HTTP_APIKEY_REDIS_CONN_CLOSED:
        ngx_http_apikey_redis_lost(rd, reason);
        return;

    case NGX_HTTP_APIKEY_REDIS_CONN_EXITING:

        /*
         * a graceful shutdown: calls made now (the counts to flush) still
         * go out, and nothing reconnects
         */

        rd->quitting = 1;

        handler = ngx_http_apikey_redis_exit_handler;
        ngx_http_apikey_redis_exit_handler = NULL;

        if (handler) {
            handler();
        }

        return;

    default: /* NGX_HTTP_APIKEY_REDIS_CONN_PUSH */
        ngx_http_apikey_redis_link_reset(rd, "a reply no call asked for", 1);
        return;
    }
}



/*
 * The connection is gone: forget it.  A working connection that dropped
 * (a killed client, a restart, a failover) is made again at once, and
 * calls wait for it; after a failed attempt they get the fail mode's
 * answer, and attempts go on in the background, further and further
 * apart (with jitter, so that workers do not come back all at once).
 */

static void
ngx_http_apikey_redis_lost(ngx_http_apikey_redis_t *rd, const char *reason)
{
    ngx_uint_t  failure, level;
    ngx_msec_t  delay, b;

    failure = rd->failure || rd->conn.broken
              || rd->state != NGX_HTTP_APIKEY_REDIS_READY;

    rd->failure = 0;
    rd->state = NGX_HTTP_APIKEY_REDIS_DOWN;
    rd->discovering = 0;

    /* the calls the connection held come back next, before the others */

    rd->resent = &rd->waiting;

    if (rd->handshake.timer_set) {
        ngx_del_timer(&rd->handshake);
    }

    if (rd->conf->sentinel_name.len) {
        ngx_http_apikey_sentinel_forget();
    }

    if (rd->freeing) {
        return;
    }

    if (failure) {

        /* one error per outage; the retries that follow are informational */

        ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_CONNECTION]);
        ngx_http_apikey_metrics_redis_up(rd - ngx_http_apikey_redis,
                                         &rd->conn.name, 0);

        level = rd->failed ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, rd->log, 0,
                      "redis %s connection to %V failed: %s",
                      rd->name, &rd->conf->address, reason);

        rd->failed = 1;

        b = rd->backoff ? ngx_min(2 * rd->backoff,
                                  NGX_HTTP_APIKEY_REDIS_BACKOFF_MAX)
                        : NGX_HTTP_APIKEY_REDIS_BACKOFF;
        rd->backoff = b;

        delay = b - b / 5 + (ngx_msec_t) ngx_random() % (2 * (b / 5) + 1);

    } else {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "redis %s connection to %V lost: %s, reconnecting",
                      rd->name, &rd->conf->address, reason);

        delay = 0;
    }

    if (rd->quitting || ngx_exiting || ngx_terminate || ngx_quit) {
        rd->quitting = 1;

    } else {
        if (rd->reconnect.timer_set) {
            ngx_del_timer(&rd->reconnect);
        }

        ngx_add_timer(&rd->reconnect, delay);
    }

    if (!ngx_queue_empty(&rd->waiting) && !rd->resend.posted) {
        ngx_post_event(&rd->resend, &ngx_posted_events);
    }
}



/* gives up the current connection: the calls on it go as on a drop */

void
ngx_http_apikey_redis_link_reset(ngx_http_apikey_redis_t *rd,
    const char *reason, ngx_uint_t failure)
{
    if (!ngx_http_apikey_redis_conn_is_open(&rd->conn)) {
        return;
    }

    rd->failure = failure;

    ngx_http_apikey_redis_conn_close(&rd->conn, reason);
}



static void
ngx_http_apikey_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_apikey_redis_t  *rd = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_apikey_redis_link_connect(rd);
}



/* Sentinel answered where the primary is (or that none of them knows) */

static void
ngx_http_apikey_redis_found(void)
{
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        rd = &ngx_http_apikey_redis[i];

        if (!rd->discovering) {
            continue;
        }

        rd->discovering = 0;

        ngx_http_apikey_redis_link_connect(rd);
    }
}



/*
 * a Sentinel announced a new primary: the calls in flight go there, and a
 * link that waits to try again tries now
 */

static void
ngx_http_apikey_redis_switched(void)
{
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    ngx_http_apikey_metric_add(failovers);

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        rd = &ngx_http_apikey_redis[i];

        if (ngx_http_apikey_redis_conn_is_open(&rd->conn)) {
            ngx_http_apikey_redis_link_reset(rd, "the primary changed", 0);
            continue;
        }

        if (rd->reconnect.timer_set) {
            ngx_del_timer(&rd->reconnect);
            rd->backoff = 0;
            ngx_http_apikey_redis_link_connect(rd);
        }
    }
}


void
ngx_http_apikey_redis_link_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_event_handler_pt resend,
    ngx_http_apikey_redis_exit_pt exiting)
{
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    static const char  *names[] = { "gate", "admin", "replica" };

    if (rcf->sentinel_name.len) {
        ngx_http_apikey_sentinel_init(rcf, cycle->log,
                                      ngx_http_apikey_redis_found,
                                      ngx_http_apikey_redis_switched);
    }

    ngx_http_apikey_redis_exit_handler = exiting;

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        rd = &ngx_http_apikey_redis[i];

        ngx_memzero(rd, sizeof(ngx_http_apikey_redis_t));

        rd->conf = rcf;
        rd->name = names[i];
        rd->log = cycle->log;

        rd->quiet = *cycle->log;
        rd->quiet.log_level = NGX_LOG_CRIT;

        ngx_http_apikey_timer_init(&rd->handshake,
                                   ngx_http_apikey_redis_handshake_timeout,
                                   rd, cycle->log);
        ngx_http_apikey_timer_init(&rd->reconnect,
                                   ngx_http_apikey_redis_reconnect, rd,
                                   cycle->log);
        ngx_http_apikey_timer_init(&rd->resend, resend, rd, cycle->log);

        ngx_queue_init(&rd->waiting);
        ngx_queue_init(&rd->conn.cmds);
        rd->resent = &rd->waiting;
    }

    /*
     * the gatekeeper's connection is made now; the admin API's and the
     * replica's when first used, so that a worker of a server without an
     * admin location or apikey_cache holds one connection
     */

    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_ADMIN].idle = 1;
    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_REPLICA].idle = 1;
    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_REPLICA].identify = 1;

    ngx_http_apikey_redis_link_connect(
                            &ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_GATE]);
}


void
ngx_http_apikey_redis_link_exit(void)
{
    ngx_uint_t                i;
    ngx_http_apikey_redis_t  *rd;

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        ngx_http_apikey_redis[i].freeing = 1;
    }

    ngx_http_apikey_sentinel_exit();

    for (i = 0; i < NGX_HTTP_APIKEY_REDIS_LINKS; i++) {
        rd = &ngx_http_apikey_redis[i];

        if (rd->handshake.timer_set) {
            ngx_del_timer(&rd->handshake);
        }

        if (rd->reconnect.timer_set) {
            ngx_del_timer(&rd->reconnect);
        }

        if (rd->resend.posted) {
            ngx_delete_posted_event(&rd->resend);
        }

        ngx_http_apikey_redis_name_cancel(&rd->host);

        ngx_http_apikey_redis_conn_free(&rd->conn);
    }
}
