
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


/*
 * The worker's connections to Redis, shared by ngx_http_apikey_redis.c
 * (the interface the module uses) and ngx_http_apikey_redis_conn.c (a
 * connection's life: connect, handshake, replies, timeouts, reconnect).
 */


#define NGX_HTTP_APIKEY_REDIS_DOWN        0
#define NGX_HTTP_APIKEY_REDIS_CONNECTING  1
#define NGX_HTTP_APIKEY_REDIS_READY       2

#define NGX_HTTP_APIKEY_REDIS_RETRY       200


typedef struct ngx_http_apikey_redis_s  ngx_http_apikey_redis_t;


/*
 * An operation lives in the heap, not in a request pool: hiredis holds it
 * until the reply (or the connection's end) even when the request is gone.
 * It keeps the command as sent, to send it again on a new connection, and
 * its arguments for the EVAL after NOSCRIPT.  Between connections it
 * waits in the worker's queue of operations to send.
 */

struct ngx_http_apikey_redis_op_s {
    ngx_http_apikey_redis_t           *rd;
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
    unsigned                           sent:1;
};


struct ngx_http_apikey_redis_s {
    ngx_http_apikey_redis_conf_t      *conf;
    const char                        *name;      /* for logs */
    redisAsyncContext                 *ac;
    ngx_uint_t                         state;
    ngx_event_t                        connect_timer;
    ngx_event_t                        reconnect;
    ngx_event_t                        resend;
    ngx_queue_t                        waiting;   /* ops to send */
    ngx_msec_t                         last_reply;
    ngx_log_t                         *log;

    ngx_uint_t                         replicas;  /* as ROLE said */

    unsigned                           failed:1;
    unsigned                           exiting:1;
    unsigned                           idle:1;    /* not connected yet */
    unsigned                           connected:1;   /* once, at least */
    unsigned                           discovering:1;
};


/* with Sentinel: the primary it named, for every connection */

typedef struct {
    u_char                             host[NGX_SOCKADDR_STRLEN + 1];
    in_port_t                          port;
    unsigned                           known:1;
} ngx_http_apikey_redis_primary_t;


extern ngx_http_apikey_redis_t          ngx_http_apikey_redis[2];
extern ngx_http_apikey_redis_primary_t  ngx_http_apikey_redis_primary_addr;


void ngx_http_apikey_redis_connect(ngx_http_apikey_redis_t *rd);
ngx_uint_t ngx_http_apikey_redis_conn_ready(ngx_http_apikey_redis_t *rd);
void ngx_http_apikey_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
void ngx_http_apikey_redis_op_timeout(ngx_event_t *ev);
void ngx_http_apikey_redis_connect_timeout(ngx_event_t *ev);
void ngx_http_apikey_redis_reconnect(ngx_event_t *ev);
void ngx_http_apikey_redis_send_waiting(ngx_event_t *ev);
void ngx_http_apikey_redis_reset(ngx_http_apikey_redis_t *rd,
    const char *reason, ngx_uint_t failure);


#endif /* _NGX_HTTP_APIKEY_REDIS_CONN_H_INCLUDED_ */
