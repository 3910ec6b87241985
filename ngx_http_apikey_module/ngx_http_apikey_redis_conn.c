
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis_conn.h"


/*
 * A connection is made with ngx_event_connect_peer() and read and written
 * by its event handlers.  With epoll, nginx registers it edge-triggered:
 * reads drain the socket.  It is marked idle, so that a graceful shutdown
 * (ngx_close_idle_connections()) calls its read handler with c->close
 * set: the owner hears EXITING, may send what it must still send, and
 * closes the connection itself.
 */


#define NGX_HTTP_APIKEY_REDIS_CONN_READ   16384
#define NGX_HTTP_APIKEY_REDIS_CONN_OUT    4096


static void ngx_http_apikey_redis_conn_read(ngx_event_t *rev);
static void ngx_http_apikey_redis_conn_write(ngx_event_t *wev);
#if (NGX_SSL)
static void ngx_http_apikey_redis_conn_tls(ngx_event_t *ev);
static void ngx_http_apikey_redis_conn_tls_done(ngx_connection_t *c);
#endif
static ngx_int_t ngx_http_apikey_redis_conn_dispatch(
    ngx_http_apikey_redis_conn_t *rc);


ngx_int_t
ngx_http_apikey_redis_conn_open(ngx_http_apikey_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_log_t *log)
{
    ngx_int_t          rv;
    ngx_connection_t  *c;

    if (rc->peer.connection != NULL) {
        return NGX_ERROR;
    }

    rc->budget = NGX_HTTP_APIKEY_REDIS_REPLY_MAX;
    rc->reader = ngx_http_apikey_redis_reader_create(&rc->budget);

    if (rc->reader == NULL) {
        return NGX_ERROR;
    }

    if (rc->cmds.next == NULL) {
        ngx_queue_init(&rc->cmds);
    }

    rc->log = log;

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));

    rc->peer.sockaddr = sockaddr;
    rc->peer.socklen = socklen;
    rc->peer.name = &rc->name;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = log;
    rc->peer.log_error = NGX_ERROR_ERR;
    rc->peer.tries = 1;

    rv = ngx_event_connect_peer(&rc->peer);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
        rc->peer.connection = NULL;

        return (rv == NGX_DECLINED) ? NGX_DECLINED : NGX_ERROR;
    }

    c = rc->peer.connection;

    c->data = rc;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = ngx_http_apikey_redis_conn_read;
    c->write->handler = ngx_http_apikey_redis_conn_write;
    c->idle = 1;

#if (NGX_SSL)

    /* TLS first: what is queued meanwhile goes once it is done */

    if (rc->ssl) {

        /* where TLS keeps its state for the connection */

        c->pool = ngx_create_pool(1024, log);
        if (c->pool == NULL) {
            ngx_close_connection(c);
            redisReaderFree(rc->reader);
            rc->reader = NULL;
            rc->peer.connection = NULL;

            return NGX_ERROR;
        }

        c->read->handler = ngx_http_apikey_redis_conn_tls;
        c->write->handler = ngx_http_apikey_redis_conn_tls;

        /*
         * not idle until the handshake is done: nginx's handshake handler
         * would not hear of a graceful shutdown (tls_done tells of it)
         */

        c->idle = 0;

        if (rv == NGX_OK) {
            ngx_post_event(c->write, &ngx_posted_events);
        }
    }

#endif

    /* the owner logs a lost connection once, with the reason */

    c->log_error = NGX_ERROR_INFO;

    rc->generation++;
    rc->out_pos = 0;
    rc->out_len = 0;
    rc->queued = rc->written;
    rc->broken = 0;

    return NGX_OK;
}


ngx_uint_t
ngx_http_apikey_redis_conn_is_open(ngx_http_apikey_redis_conn_t *rc)
{
    return rc->peer.connection != NULL;
}


/*
 * Queues a command's bytes and the command that waits for its reply; the
 * bytes go out from a posted write event, never from here, so that no
 * handler runs before this returns.
 */

ngx_int_t
ngx_http_apikey_redis_conn_send(ngx_http_apikey_redis_conn_t *rc, u_char *buf,
    size_t len, ngx_http_apikey_redis_cmd_t *cmd)
{
    u_char            *p;
    size_t             size;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    if (c == NULL) {
        return NGX_ERROR;
    }

    if (rc->out_pos == rc->out_len) {
        rc->out_pos = 0;
        rc->out_len = 0;
    }

    if (rc->out_size - rc->out_len < len) {

        /* grow, keeping only what is still to be written */

        size = ngx_max(NGX_HTTP_APIKEY_REDIS_CONN_OUT,
                       2 * (rc->out_len - rc->out_pos + len));

        p = ngx_alloc(size, rc->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (rc->out) {
            ngx_memcpy(p, rc->out + rc->out_pos, rc->out_len - rc->out_pos);
            ngx_free(rc->out);
        }

        rc->out_len -= rc->out_pos;
        rc->out_pos = 0;
        rc->out = p;
        rc->out_size = size;
    }

    ngx_memcpy(rc->out + rc->out_len, buf, len);
    rc->out_len += len;

    cmd->start = rc->queued;
    rc->queued += len;

    ngx_queue_insert_tail(&rc->cmds, &cmd->queue);
    rc->ncmds++;

    if (c->write->ready && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_redis_conn_argv(ngx_http_apikey_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_http_apikey_redis_cmd_t *cmd)
{
    int         len;
    char       *buf;
    ngx_int_t   rv;

    len = redisFormatCommandArgv(&buf, argc, argv, argvlen);

    if (len < 0) {
        return NGX_ERROR;
    }

    rv = ngx_http_apikey_redis_conn_send(rc, (u_char *) buf, len, cmd);

    free(buf);

    return rv;
}


static void
ngx_http_apikey_redis_conn_write(ngx_event_t *wev)
{
    ssize_t                        n;
    ngx_connection_t              *c;
    ngx_http_apikey_redis_conn_t  *rc;

    c = wev->data;
    rc = c->data;

    while (rc->out_pos < rc->out_len) {

        if (!wev->ready) {
            break;
        }

        n = c->send(c, rc->out + rc->out_pos, rc->out_len - rc->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_apikey_redis_conn_close(rc, "writing failed");
            return;
        }

        rc->out_pos += n;
        rc->written += n;
    }

    if (rc->out_pos == rc->out_len) {
        rc->out_pos = 0;
        rc->out_len = 0;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_apikey_redis_conn_close(rc, "adding the write event failed");
    }
}


static void
ngx_http_apikey_redis_conn_read(ngx_event_t *rev)
{
    ssize_t                        n;
    ngx_connection_t              *c;
    ngx_http_apikey_redis_conn_t  *rc;
    u_char                         buf[NGX_HTTP_APIKEY_REDIS_CONN_READ];

    c = rev->data;
    rc = c->data;

    if (c->close) {

        /* nginx shuts down gracefully: the owner closes when it is done */

        c->close = 0;
        rc->handler(rc, NGX_HTTP_APIKEY_REDIS_CONN_EXITING, NULL, NULL);
        return;
    }

    while (rev->ready) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_apikey_redis_conn_close(rc, "the server closed the "
                                                 "connection");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_apikey_redis_conn_close(rc, "reading failed");
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            rc->broken = 1;
            ngx_http_apikey_redis_conn_close(rc, "out of memory");
            return;
        }

        if (ngx_http_apikey_redis_conn_dispatch(rc) != NGX_OK) {
            return;
        }

        /* a reply still incomplete may not grow past the cap either */

        if (rc->reader->len - rc->reader->pos
            > NGX_HTTP_APIKEY_REDIS_REPLY_MAX)
        {
            rc->broken = 1;
            ngx_http_apikey_redis_conn_close(rc, "a reply too large");
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_apikey_redis_conn_close(rc, "adding the read event failed");
    }
}


#if (NGX_SSL)

/*
 * The connection is made (or failed): the TLS handshake, then the check
 * of the server's certificate; its failure closes the connection with
 * the reason.
 */

static void
ngx_http_apikey_redis_conn_tls(ngx_event_t *ev)
{
    int                            err;
    socklen_t                      len;
    ngx_int_t                      rv;
    ngx_connection_t              *c;
    ngx_http_apikey_redis_conn_t  *rc;

    c = ev->data;
    rc = c->data;

    /* a command queued before the connect is done posts this early */

    if (c->ssl != NULL || !c->write->ready) {
        return;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_INFO, c->log, err, "connect() to %V failed",
                      &rc->name);
        ngx_http_apikey_redis_conn_close(rc, "cannot connect");
        return;
    }

    if (ngx_ssl_create_connection(rc->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_apikey_redis_conn_close(rc, "TLS could not begin");
        return;
    }

    ngx_http_apikey_redis_ssl_sni(c, &rc->ssl_name);

    rv = ngx_ssl_handshake(c);

    if (rv == NGX_AGAIN) {
        c->ssl->handler = ngx_http_apikey_redis_conn_tls_done;
        return;
    }

    ngx_http_apikey_redis_conn_tls_done(c);
}


static void
ngx_http_apikey_redis_conn_tls_done(ngx_connection_t *c)
{
    const char                    *reason;
    ngx_http_apikey_redis_conn_t  *rc;

    rc = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_apikey_redis_conn_close(rc, "the TLS handshake failed");
        return;
    }

    if (rc->ssl_verify) {
        reason = ngx_http_apikey_redis_ssl_check(c, &rc->ssl_name);

        if (reason != NULL) {
            ngx_http_apikey_redis_conn_close(rc, reason);
            return;
        }
    }

    c->read->handler = ngx_http_apikey_redis_conn_read;
    c->write->handler = ngx_http_apikey_redis_conn_write;
    c->idle = 1;

    /* what was queued goes now; the server may have said something */

    ngx_post_event(c->write, &ngx_posted_events);

    if (ngx_exiting) {

        /* a graceful shutdown began during the handshake */

        c->close = 1;
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}

#endif


/*
 * Hands each complete reply to the command at the head of the queue;
 * NGX_ERROR when the connection was closed meanwhile (by a bad reply, or
 * by a handler): nothing of it may be touched then.
 */

static ngx_int_t
ngx_http_apikey_redis_conn_dispatch(ngx_http_apikey_redis_conn_t *rc)
{
    void                         *reply;
    ngx_uint_t                    generation;
    ngx_queue_t                  *q;
    ngx_http_apikey_redis_cmd_t  *cmd;

    generation = rc->generation;

    for ( ;; ) {

        if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
            rc->broken = 1;
            ngx_http_apikey_redis_conn_close(rc,
                                      rc->reader->err == REDIS_ERR_OOM
                                      ? "a reply over the size limits"
                                      : "a reply that is no RESP");
            return NGX_ERROR;
        }

        if (reply == NULL) {
            return NGX_OK;
        }

        rc->budget = NGX_HTTP_APIKEY_REDIS_REPLY_MAX;

        if (ngx_queue_empty(&rc->cmds)) {
            rc->handler(rc, NGX_HTTP_APIKEY_REDIS_CONN_PUSH, NULL, reply);

        } else {
            q = ngx_queue_head(&rc->cmds);
            ngx_queue_remove(q);
            rc->ncmds--;

            cmd = ngx_queue_data(q, ngx_http_apikey_redis_cmd_t, queue);
            cmd->handler(cmd, reply);
        }

        ngx_http_apikey_redis_reply_free(reply);

        if (rc->generation != generation || rc->peer.connection == NULL) {
            return NGX_ERROR;
        }
    }
}


/*
 * Closes the connection: the owner hears CLOSED, then each command that
 * waited gets its NULL reply, in order.
 */

void
ngx_http_apikey_redis_conn_close(ngx_http_apikey_redis_conn_t *rc,
    const char *reason)
{
    ngx_queue_t                   cmds, *q;
    ngx_pool_t                   *pool;
    ngx_connection_t             *c;
    ngx_http_apikey_redis_cmd_t  *cmd;

    c = rc->peer.connection;

    if (c == NULL) {
        return;
    }

    rc->peer.connection = NULL;
    rc->generation++;

#if (NGX_SSL)

    /* no close_notify to wait for or to send: nothing blocks the close */

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }

#endif

    pool = c->pool;

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }

    redisReaderFree(rc->reader);
    rc->reader = NULL;

    rc->out_pos = 0;
    rc->out_len = 0;

    ngx_queue_init(&cmds);

    if (!ngx_queue_empty(&rc->cmds)) {
        cmds = rc->cmds;
        cmds.next->prev = &cmds;
        cmds.prev->next = &cmds;
        ngx_queue_init(&rc->cmds);
    }

    rc->ncmds = 0;

    rc->handler(rc, NGX_HTTP_APIKEY_REDIS_CONN_CLOSED, reason, NULL);

    while (!ngx_queue_empty(&cmds)) {
        q = ngx_queue_head(&cmds);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_apikey_redis_cmd_t, queue);
        cmd->handler(cmd, NULL);
    }

    /* bytes queued and never written are gone with the connection */

    rc->queued = rc->written;
}


void
ngx_http_apikey_redis_conn_free(ngx_http_apikey_redis_conn_t *rc)
{
    ngx_http_apikey_redis_conn_close(rc, "nginx is exiting");

    if (rc->out) {
        ngx_free(rc->out);
        rc->out = NULL;
        rc->out_size = 0;
    }
}
