
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_HTTP_APIKEY_REDIS_MAX_ARGS   260

/* most checks in one batch: what one call holds Redis for stays short */
#define NGX_HTTP_APIKEY_REDIS_BATCH_MAX  64

#define NGX_HTTP_APIKEY_REDIS_BATCH_ARGS 4

/* batches kept for reuse between passes; more go back to the heap */
#define NGX_HTTP_APIKEY_REDIS_BATCH_FREE 4

#if (NGX_HTTP_APIKEY_REDIS_BATCH_MAX * NGX_HTTP_APIKEY_REDIS_BATCH_ARGS + 3 \
     > NGX_HTTP_APIKEY_REDIS_MAX_ARGS)
#error a full batch must fit in one ngx_http_apikey_redis_eval()
#endif


typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      body;
    u_char                         sha1[40];
} ngx_http_apikey_script_t;


typedef struct {
    ngx_str_t                      host;      /* numeric IP, NUL-terminated */
    in_port_t                      port;
    ngx_str_t                      text;      /* as written, for logs */
} ngx_http_apikey_redis_addr_t;


typedef struct {
    ngx_str_t                      address;   /* as written, for logs */
    ngx_str_t                      host;      /* numeric IP, NUL-terminated */
    ngx_str_t                      path;      /* unix socket, NUL-terminated */
    in_port_t                      port;
    ngx_int_t                      db;
    ngx_str_t                      user;
    ngx_str_t                      password;
    ngx_str_t                      ns;
    ngx_str_t                      sentinel_name;   /* "": no Sentinel */
    ngx_array_t                   *sentinels;       /* of _redis_addr_t */
    ngx_str_t                      sentinel_password;
    ngx_msec_t                     timeout;
    ngx_array_t                    scripts;   /* ngx_http_apikey_script_t * */
} ngx_http_apikey_redis_conf_t;


/*
 * Called exactly once per operation unless the operation was detached:
 * with the reply, or with NULL when Redis is unreachable, too slow or
 * answered with a broken connection.  The reply belongs to hiredis and is
 * valid only during the call.
 */
typedef void (*ngx_http_apikey_redis_handler_pt)(void *data,
    redisReply *reply);


typedef struct ngx_http_apikey_redis_op_s  ngx_http_apikey_redis_op_t;
typedef struct ngx_http_apikey_redis_item_s  ngx_http_apikey_redis_item_t;


ngx_int_t ngx_http_apikey_redis_add_script(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script);

/* a worker's two connections: checks, and the admin API's calls */
#define NGX_HTTP_APIKEY_REDIS_GATE       0
#define NGX_HTTP_APIKEY_REDIS_ADMIN      1

/*
 * Runs a script with EVALSHA (EVAL after NOSCRIPT) on one of the worker's
 * connections: a write there can be followed by WAIT without holding up
 * the other.  args[0 .. nkeys-1] are Redis keys, the rest ARGV.
 * Returns NGX_OK when sent (the handler will be called), NGX_DECLINED
 * when Redis is known to be down (fail fast), NGX_ERROR on allocation
 * failure.  *op is set for ngx_http_apikey_redis_detach().
 */
ngx_int_t ngx_http_apikey_redis_eval(ngx_uint_t conn,
    ngx_http_apikey_script_t *script,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args,
    ngx_msec_t timeout, ngx_http_apikey_redis_handler_pt handler,
    void *data, ngx_log_t *log, ngx_http_apikey_redis_op_t **op);

/*
 * WAIT for one replica on the admin API's connection (at most half the
 * timeout), after a change that must survive a failover.  Returns as
 * ngx_http_apikey_redis_eval() does.
 */
ngx_int_t ngx_http_apikey_redis_wait(ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **op);

/* a reply copied into a pool, readable after the handler returned */
redisReply *ngx_http_apikey_redis_copy(ngx_pool_t *pool, redisReply *rr);

/* the handler will not be called; safe to call once per operation */
void ngx_http_apikey_redis_detach(ngx_http_apikey_redis_op_t *op);

/*
 * In a handler called with NULL only: 1 when the command may have reached
 * Redis (it was handed to the connection), 0 when it was never sent
 */
ngx_uint_t ngx_http_apikey_redis_sent(void);

/*
 * Sends the operation again on the next connection if the one it went
 * out on drops before the reply (once): for scripts that may run twice.
 */
void ngx_http_apikey_redis_resend(ngx_http_apikey_redis_op_t *op);

/* whether ngx_http_apikey_redis_eval() would send a check now */
ngx_uint_t ngx_http_apikey_redis_ready(void);

/* the primary's replicas, as ROLE said on the last connection (Sentinel) */
ngx_uint_t ngx_http_apikey_redis_replicas(void);

/*
 * Queues one call of a batch script: a key and up to
 * NGX_HTTP_APIKEY_REDIS_BATCH_ARGS - 1 arguments, as many for every call
 * of the script.  What a worker queues in one pass of its event loop goes
 * to Redis at the end of the pass as one ngx_http_apikey_redis_eval(),
 * KEYS the calls' keys and ARGV their arguments one call after the other;
 * the script answers with an array of one reply per call, and each
 * handler gets its own, under the contract above.  The bytes of the
 * arguments must stay valid until the handler is called or the call is
 * detached (the batch copies them when it is sent).  Returns as
 * ngx_http_apikey_redis_eval() does.
 */
ngx_int_t ngx_http_apikey_redis_batch(ngx_http_apikey_script_t *script,
    ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data,
    ngx_http_apikey_redis_item_t **item);

/* the handler will not be called; safe to call once per call */
void ngx_http_apikey_redis_batch_detach(ngx_http_apikey_redis_item_t *item);

/* when the worker last sent gatekeeper checks (ngx_current_msec) */
extern ngx_msec_t  ngx_http_apikey_redis_gate_sent;

/* frees every batch; at worker exit, after the connection is freed */
void ngx_http_apikey_redis_batch_exit(void);

/*
 * ngx_http_apikey_redis_event.c: drives a hiredis context from nginx's
 * event loop through a connection made for its socket; hiredis keeps and
 * closes the socket
 */
ngx_int_t ngx_http_apikey_redis_attach(redisAsyncContext *ac,
    ngx_log_t *log);

/*
 * ngx_http_apikey_redis_sentinel.c: asks the Sentinels for the primary
 * and follows +switch-master; answers with the two functions below
 */
void ngx_http_apikey_sentinel_init(ngx_http_apikey_redis_conf_t *rcf,
    ngx_log_t *log);
void ngx_http_apikey_sentinel_discover(void);
void ngx_http_apikey_sentinel_exit(void);

/* the primary a Sentinel named; host NULL: none of them answered */
void ngx_http_apikey_redis_primary(u_char *host, size_t len, in_port_t port);

/* a Sentinel announced a new primary */
void ngx_http_apikey_redis_switch(u_char *host, size_t len, in_port_t port);

ngx_int_t ngx_http_apikey_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf);
void ngx_http_apikey_redis_exit_worker(void);


#endif /* _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_ */
