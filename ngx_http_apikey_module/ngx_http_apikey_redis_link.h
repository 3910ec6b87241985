
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_LINK_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_LINK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_conn.h"
#include "ngx_http_apikey_redis_name.h"


/*
 * A worker's link to Redis, one for the gatekeeper's calls, one for the
 * admin API's and one for the replica's reads
 * (ngx_http_apikey_redis_link.c): its connection, the handshake,
 * reconnects with backoff, Sentinel's primary.  The calls made
 * on it are ngx_http_apikey_redis.c's: they wait in "waiting", which the
 * link hands on by posting "resend" (whose handler is the calls' file's)
 * whenever they may go, or must be answered.
 */


#define NGX_HTTP_APIKEY_REDIS_DOWN        0
#define NGX_HTTP_APIKEY_REDIS_CONNECTING  1
#define NGX_HTTP_APIKEY_REDIS_READY       2


typedef struct {
    ngx_http_apikey_redis_conn_t       conn;
    ngx_http_apikey_redis_conf_t      *conf;
    const char                        *name;
    ngx_uint_t                         state;
    ngx_event_t                        handshake;
    ngx_event_t                        reconnect;
    ngx_event_t                        resend;
    ngx_queue_t                        waiting;   /* calls to send */
    ngx_queue_t                       *resent;    /* the last sent again */
    ngx_msec_t                         backoff;
    ngx_msec_t                         last_reply;
    ngx_uint_t                         replicas;  /* most ROLE showed */
    u_char                             run_id[40];    /* of the server */
    ngx_log_t                         *log;
    ngx_log_t                          quiet;     /* during an outage */

    ngx_http_apikey_redis_name_t       host;      /* by the resolver */

    ngx_http_apikey_redis_cmd_t        auth;
    ngx_http_apikey_redis_cmd_t        select;
    ngx_http_apikey_redis_cmd_t        role;
    ngx_http_apikey_redis_cmd_t        info;
    ngx_http_apikey_redis_cmd_t        server;
    ngx_http_apikey_redis_cmd_t        layout;
    ngx_http_apikey_redis_cmd_t        ping;

    unsigned                           failed:1;
    unsigned                           failure:1; /* the close to come */
    unsigned                           idle:1;    /* not connected yet */
    unsigned                           connected:1;   /* once, at least */
    unsigned                           discovering:1;
    unsigned                           quitting:1;    /* graceful */
    unsigned                           freeing:1;     /* the worker ends */
    unsigned                           stalled:1;     /* logged */
    unsigned                           have_addr:1;   /* just resolved */
    unsigned                           identify:1;    /* asks run_id */
    unsigned                           identified:1;  /* run_id known */
} ngx_http_apikey_redis_t;


extern ngx_http_apikey_redis_t
    ngx_http_apikey_redis[NGX_HTTP_APIKEY_REDIS_LINKS];


void ngx_http_apikey_redis_link_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_event_handler_pt resend,
    ngx_http_apikey_redis_exit_pt exiting);
void ngx_http_apikey_redis_link_exit(void);

/* whether calls may be made: a connection ready, or one being made */
ngx_uint_t ngx_http_apikey_redis_link_ready(ngx_http_apikey_redis_t *rd);

void ngx_http_apikey_redis_link_connect(ngx_http_apikey_redis_t *rd);

/* gives the connection up: its calls come back as on a drop */
void ngx_http_apikey_redis_link_reset(ngx_http_apikey_redis_t *rd,
    const char *reason, ngx_uint_t failure);


#endif /* _NGX_HTTP_APIKEY_REDIS_LINK_H_INCLUDED_ */
