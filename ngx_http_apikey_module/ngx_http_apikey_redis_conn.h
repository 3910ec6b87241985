
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <hiredis/hiredis.h>


/*
 * One connection to a Redis server (or a Sentinel) on nginx's own
 * connection and event API, speaking RESP: commands are written as
 * hiredis formats them, replies read by hiredis's parser with capped
 * sizes (ngx_http_apikey_redis_reader.c) and handed, in order, to the
 * commands that wait for them.  It knows nothing of scripts, timeouts or
 * reconnecting: its owner does (ngx_http_apikey_redis.c, _sentinel.c).
 */


/* a reply may make at most this much (bytes, its objects included) */
#define NGX_HTTP_APIKEY_REDIS_REPLY_MAX      (64 * 1024 * 1024)
#define NGX_HTTP_APIKEY_REDIS_STRING_MAX     (16 * 1024 * 1024)
#define NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX   (1024 * 1024)


/* what a connection tells its owner */
#define NGX_HTTP_APIKEY_REDIS_CONN_CLOSED    1   /* it is gone */
#define NGX_HTTP_APIKEY_REDIS_CONN_EXITING   2   /* graceful shutdown */
#define NGX_HTTP_APIKEY_REDIS_CONN_PUSH      3   /* a reply nobody asked */


typedef struct ngx_http_apikey_redis_conn_s  ngx_http_apikey_redis_conn_t;
typedef struct ngx_http_apikey_redis_cmd_s   ngx_http_apikey_redis_cmd_t;


/*
 * The reply to a command, or NULL when the connection closed before it
 * came.  The reply is freed when the handler returns.
 */
typedef void (*ngx_http_apikey_redis_cmd_pt)(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply);

/*
 * The connection's news: CLOSED (reason says why; the commands that
 * waited get their NULL replies after this), EXITING, or PUSH (with the
 * reply: a message on a subscriber connection).
 */
typedef void (*ngx_http_apikey_redis_conn_pt)(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t event, const char *reason, redisReply *reply);


struct ngx_http_apikey_redis_cmd_s {
    ngx_queue_t                       queue;
    ngx_http_apikey_redis_cmd_pt      handler;
    off_t                             start;     /* its first byte sent */
};


struct ngx_http_apikey_redis_conn_s {
    ngx_peer_connection_t             peer;
    redisReader                      *reader;
    size_t                            budget;    /* of the reply being read */

    u_char                           *out;       /* heap: to be written */
    size_t                            out_pos;
    size_t                            out_len;
    size_t                            out_size;
    off_t                             queued;    /* bytes ever queued */
    off_t                             written;   /* bytes ever written */

    ngx_queue_t                       cmds;      /* waiting for replies */
    ngx_uint_t                        ncmds;
    ngx_uint_t                        generation;    /* opens so far */

    ngx_http_apikey_redis_conn_pt     handler;
    void                             *data;
    ngx_log_t                        *log;
    ngx_str_t                         name;      /* for logs */

    unsigned                          broken:1;  /* closed on a bad reply */

#if (NGX_SSL)
    ngx_ssl_t                        *ssl;       /* TLS when set */
    ngx_str_t                         ssl_name;  /* its certificate's */
    unsigned                          ssl_verify:1;
#endif
};


ngx_int_t ngx_http_apikey_redis_conn_open(ngx_http_apikey_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_log_t *log);
ngx_uint_t ngx_http_apikey_redis_conn_is_open(
    ngx_http_apikey_redis_conn_t *rc);
ngx_int_t ngx_http_apikey_redis_conn_send(ngx_http_apikey_redis_conn_t *rc,
    u_char *buf, size_t len, ngx_http_apikey_redis_cmd_t *cmd);
ngx_int_t ngx_http_apikey_redis_conn_argv(ngx_http_apikey_redis_conn_t *rc,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_apikey_redis_cmd_t *cmd);
void ngx_http_apikey_redis_conn_close(ngx_http_apikey_redis_conn_t *rc,
    const char *reason);
void ngx_http_apikey_redis_conn_free(ngx_http_apikey_redis_conn_t *rc);

/* whether any of the command's bytes went out (it may have run) */
#define ngx_http_apikey_redis_conn_sent(rc, cmd)  ((cmd)->start < (rc)->written)


#if (NGX_SSL)

/* ngx_http_apikey_redis_ssl.c: a TLS connection's SNI, and its check */

void ngx_http_apikey_redis_ssl_sni(ngx_connection_t *c, ngx_str_t *name);
const char *ngx_http_apikey_redis_ssl_check(ngx_connection_t *c,
    ngx_str_t *name);

#endif


/* ngx_http_apikey_redis_reader.c */

redisReader *ngx_http_apikey_redis_reader_create(size_t *budget);
void ngx_http_apikey_redis_reply_free(void *reply);


#endif /* _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_ */
