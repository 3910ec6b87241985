
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <hiredis/hiredis.h>


#define NGX_HTTP_APIKEY_REDIS_MAX_ARGS   261

/* most checks in one batch: what one call holds Redis for stays short */
#define NGX_HTTP_APIKEY_REDIS_BATCH_MAX  64

#define NGX_HTTP_APIKEY_REDIS_BATCH_ARGS 4

/* batches kept for reuse between passes; more go back to the heap */
#define NGX_HTTP_APIKEY_REDIS_BATCH_FREE 4

#if (NGX_HTTP_APIKEY_REDIS_BATCH_MAX * NGX_HTTP_APIKEY_REDIS_BATCH_ARGS + 4 \
     > NGX_HTTP_APIKEY_REDIS_MAX_ARGS)
#error a full batch must fit in one ngx_http_apikey_redis_eval()
#endif


typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      body;
    u_char                         sha1[40];
} ngx_http_apikey_script_t;


/* a host name (resolved by the http block's resolver), or none ("") */
typedef struct {
    ngx_str_t                      host;
    in_port_t                      port;
} ngx_http_apikey_redis_host_t;


typedef struct {
    ngx_str_t                      address;   /* as written, for logs */
    ngx_addr_t                     addr;      /* host:port or unix:path */
    ngx_str_t                      host;      /* a name: resolved again */
    in_port_t                      port;
    ngx_resolver_t                *resolver;  /* http's, if configured */
    ngx_int_t                      db;
    ngx_str_t                      user;
    ngx_str_t                      password;
    ngx_str_t                      ns;
    ngx_str_t                      layout;    /* ns "layout": its version */
    ngx_str_t                      sentinel_name;   /* "": no Sentinel */
    ngx_array_t                   *sentinels;       /* of ngx_addr_t */
    ngx_array_t                   *sentinel_hosts;  /* of ngx_http_apikey_
                                                       redis_host_t, each
                                                       sentinel's */
    ngx_str_t                      sentinel_password;
    ngx_msec_t                     timeout;
    ngx_array_t                    scripts;   /* ngx_http_apikey_script_t * */

    ngx_flag_t                     ssl;       /* apikey_redis_ssl* */
    ngx_flag_t                     ssl_verify;
    ngx_str_t                      ssl_trusted_certificate;
    ngx_str_t                      ssl_name;
    ngx_str_t                      ssl_certificate;
    ngx_str_t                      ssl_certificate_key;
#if (NGX_SSL)
    ngx_ssl_t                     *ssl_ctx;   /* NULL: no TLS */
#endif
} ngx_http_apikey_redis_conf_t;


/*
 * Called exactly once per operation unless the operation was detached:
 * with the reply, or with NULL when Redis is unreachable, too slow or
 * answered with a broken connection (ngx_http_apikey_redis_sent() then
 * says whether the command may have run).  The reply is valid only
 * during the call.
 */
typedef void (*ngx_http_apikey_redis_handler_pt)(void *data,
    redisReply *reply);


typedef struct ngx_http_apikey_redis_op_s  ngx_http_apikey_redis_op_t;
typedef struct ngx_http_apikey_redis_item_s  ngx_http_apikey_redis_item_t;


/* TLS, ngx_http_apikey_redis_ssl.c */
char *ngx_http_apikey_redis_ssl_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);

#if (NGX_SSL)
/* what a server's certificate must name, for a connection to address */
void ngx_http_apikey_redis_ssl_name(ngx_http_apikey_redis_conf_t *rcf,
    ngx_str_t *address, ngx_str_t *name);
#endif


/* apikey_redis, ngx_http_apikey_redis_conf.c */
char *ngx_http_apikey_redis_directive(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);

char *ngx_http_apikey_redis_resolve_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_resolver_t *resolver);

ngx_int_t ngx_http_apikey_redis_add_script(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script);

/*
 * A worker's connections: checks, the admin API's calls, and, in the
 * worker that keeps the apikey_cache replica, the replica's reads (a
 * blocked XREAD there holds up nothing else)
 */
#define NGX_HTTP_APIKEY_REDIS_GATE       0
#define NGX_HTTP_APIKEY_REDIS_ADMIN      1
#define NGX_HTTP_APIKEY_REDIS_REPLICA    2
#define NGX_HTTP_APIKEY_REDIS_LINKS      3

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
 * Sends a command, its arguments as they are, on one of the worker's
 * connections; what else holds as for ngx_http_apikey_redis_eval().
 */
ngx_int_t ngx_http_apikey_redis_command(ngx_uint_t conn, ngx_uint_t nargs,
    ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **op);

/*
 * A command that blocks in Redis, such as XREAD BLOCK: a worker that shuts
 * down does not wait for its reply
 */
void ngx_http_apikey_redis_blocking(ngx_http_apikey_redis_op_t *op);

/*
 * WAIT for one replica on the admin API's connection (at most half the
 * timeout), after a change that must survive a failover.  Returns as
 * ngx_http_apikey_redis_eval() does.
 */
ngx_int_t ngx_http_apikey_redis_wait(ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data, ngx_log_t *log,
    ngx_http_apikey_redis_op_t **op);

/*
 * Text a server sent, for a log line (ngx_http_apikey_redis_reader.c):
 * escaped, and cut, so that no reply can forge or flood log lines; buf
 * holds NGX_HTTP_APIKEY_REDIS_TEXT_LEN bytes
 */
#define NGX_HTTP_APIKEY_REDIS_TEXT_MAX       256
#define NGX_HTTP_APIKEY_REDIS_TEXT_LEN       (4 * 256 + 3)

u_char *ngx_http_apikey_redis_text(u_char *buf, u_char *text, size_t len);

/* a reply copied into a pool, readable after the handler returned */
redisReply *ngx_http_apikey_redis_copy(ngx_pool_t *pool, redisReply *rr);

/* the handler will not be called; safe to call once per operation */
void ngx_http_apikey_redis_detach(ngx_http_apikey_redis_op_t *op);

/*
 * Within a handler called with NULL: whether the command went out, so
 * that it may have run (the connection broke after sending it, or its
 * reply did not come in time), rather than never reaching Redis.
 */
ngx_uint_t ngx_http_apikey_redis_sent(void);

/*
 * Sends the operation again on the next connection if the one it went
 * out on drops before the reply, and keeps it after a NULL answer until
 * its reply comes: late gets that reply then (NULL: it never came).  For
 * scripts that Redis applies once however often they are sent.
 */
void ngx_http_apikey_redis_resend(ngx_http_apikey_redis_op_t *op,
    ngx_http_apikey_redis_handler_pt late);

/* whether ngx_http_apikey_redis_eval() would send a check now */
ngx_uint_t ngx_http_apikey_redis_ready(void);

/*
 * Within a reply handler: the server that answered on the connection, as
 * text of at most NGX_HTTP_APIKEY_REDIS_SERVER_LEN bytes written to buf,
 * the same for the same server however often it is reconnected to: its
 * run_id, or, where INFO is refused, the connection's number (the same
 * connection is the same server).  The replica's connection only.
 */
#define NGX_HTTP_APIKEY_REDIS_SERVER_LEN  (40 + NGX_INT_T_LEN + 1)

size_t ngx_http_apikey_redis_server(ngx_uint_t conn, u_char *buf);

/* the most replicas a primary's ROLE showed in this worker (Sentinel) */
ngx_uint_t ngx_http_apikey_redis_replicas(void);

/*
 * What a batched call's late handler is told, once it is known, of a call
 * whose own answer went elsewhere (its request timed out, or left): the
 * call's note (NGX_HTTP_APIKEY_REDIS_NOTE bytes its owner wrote, through
 * ngx_http_apikey_redis_batch_note()) and its reply (NULL: Redis's answer
 * never came, what it did is not known).
 */
typedef void (*ngx_http_apikey_redis_late_pt)(void *note, redisReply *reply);

#define NGX_HTTP_APIKEY_REDIS_NOTE       80

/*
 * Queues one call of a batch script: a key and up to
 * NGX_HTTP_APIKEY_REDIS_BATCH_ARGS - 1 arguments, as many for every call
 * of the script.  What a worker queues in one pass of its event loop goes
 * to Redis at the end of the pass as one ngx_http_apikey_redis_eval(),
 * KEYS the calls' keys and ARGV the batch's id ("<worker> <number>",
 * which the script uses to apply a batch once however often it is sent)
 * then the calls' arguments one call after the other; the script answers
 * with an array of one reply per call, and each handler gets its own,
 * under the contract above.  A batch whose connection drops is sent
 * again.  The bytes of the arguments must stay valid until the handler
 * is called or the call is detached (the batch copies them when it is
 * sent).  Returns as ngx_http_apikey_redis_eval() does.
 */
ngx_int_t ngx_http_apikey_redis_batch(ngx_http_apikey_script_t *script,
    ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data,
    ngx_http_apikey_redis_late_pt late, ngx_http_apikey_redis_item_t **item);

/* the call's note, for its late handler */
void *ngx_http_apikey_redis_batch_note(ngx_http_apikey_redis_item_t *item);

/* the handler will not be called; safe to call once per call */
void ngx_http_apikey_redis_batch_detach(ngx_http_apikey_redis_item_t *item);

/* the worker's id, for the batches' ids */
ngx_int_t ngx_http_apikey_redis_batch_init(ngx_cycle_t *cycle);

/* when the worker last sent gatekeeper checks (ngx_current_msec) */
extern ngx_msec_t  ngx_http_apikey_redis_gate_sent;

/* frees every batch; at worker exit, after the connection is freed */
void ngx_http_apikey_redis_batch_exit(void);

/*
 * ngx_http_apikey_redis_sentinel.c: where Sentinel says the primary is.
 * found is called when an answer a call of primary() started has come
 * (primary() then says what it is), switched when a Sentinel announces a
 * new primary.
 */
typedef void (*ngx_http_apikey_sentinel_pt)(void);

void ngx_http_apikey_sentinel_init(ngx_http_apikey_redis_conf_t *rcf,
    ngx_log_t *log, ngx_http_apikey_sentinel_pt found,
    ngx_http_apikey_sentinel_pt switched);

/* NGX_OK with the primary; NGX_AGAIN: asking; NGX_DECLINED: none knows */
ngx_int_t ngx_http_apikey_sentinel_primary(ngx_addr_t **addr);

/* the primary failed us: ask again at the next primary() */
void ngx_http_apikey_sentinel_forget(void);
void ngx_http_apikey_sentinel_exit(void);


/*
 * A graceful shutdown began: what must still go to Redis (the counts a
 * worker holds) is sent now; the worker waits for the replies.
 */
typedef void (*ngx_http_apikey_redis_exit_pt)(void);

ngx_int_t ngx_http_apikey_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_redis_exit_pt exiting);
void ngx_http_apikey_redis_exit_worker(void);


#endif /* _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_ */
