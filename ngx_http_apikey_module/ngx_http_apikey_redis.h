
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


#define NGX_HTTP_APIKEY_REDIS_MAX_ARGS  64


typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      body;
    u_char                         sha1[40];
} ngx_http_apikey_script_t;


typedef struct {
    ngx_str_t                      address;   /* as written, for logs */
    ngx_str_t                      host;      /* numeric IP, NUL-terminated */
    ngx_str_t                      path;      /* unix socket, NUL-terminated */
    in_port_t                      port;
    ngx_int_t                      db;
    ngx_str_t                      user;
    ngx_str_t                      password;
    ngx_str_t                      ns;
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


ngx_int_t ngx_http_apikey_redis_add_script(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script);

/*
 * Runs a script with EVALSHA (EVAL after NOSCRIPT) on the worker's
 * connection.  args[0 .. nkeys-1] are Redis keys, the rest ARGV.
 * Returns NGX_OK when sent (the handler will be called), NGX_DECLINED
 * when Redis is known to be down (fail fast), NGX_ERROR on allocation
 * failure.  *op is set for ngx_http_apikey_redis_detach().
 */
ngx_int_t ngx_http_apikey_redis_eval(ngx_http_apikey_script_t *script,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args,
    ngx_msec_t timeout, ngx_http_apikey_redis_handler_pt handler,
    void *data, ngx_log_t *log, ngx_http_apikey_redis_op_t **op);

/* the handler will not be called; safe to call once per operation */
void ngx_http_apikey_redis_detach(ngx_http_apikey_redis_op_t *op);

ngx_int_t ngx_http_apikey_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf);
void ngx_http_apikey_redis_exit_worker(void);


#endif /* _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_ */
