
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * What the libFuzzer targets that run the module on nginx's core share
 * (fuzz_nginx.c): the process state nginx's main() would have set up, a
 * log that fails the target on a line that text from a server could
 * forge, replies read from the input by the module's own capped reader,
 * a request, and an apikey_cache zone made by the module's directive on
 * a slab pool, as nginx makes one.
 */


#ifndef _NGX_HTTP_APIKEY_FUZZ_H_INCLUDED_
#define _NGX_HTTP_APIKEY_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"


/* the input, taken from the front */

typedef struct {
    const u_char                  *pos;
    const u_char                  *last;
} ngx_http_apikey_fuzz_in_t;


extern ngx_log_t  ngx_http_apikey_fuzz_log;


/* once per process; every target calls it first */
void ngx_http_apikey_fuzz_init(void);

/* the next byte, 0 past the end */
ngx_uint_t ngx_http_apikey_fuzz_byte(ngx_http_apikey_fuzz_in_t *in);

/* up to len bytes of the input, as they are */
ngx_str_t ngx_http_apikey_fuzz_bytes(ngx_http_apikey_fuzz_in_t *in,
    size_t len);

/*
 * The next reply in the input, read as a connection reads one (the
 * reader of ngx_http_apikey_redis_reader.c, with its caps): NULL when no
 * complete reply is left; free it with ngx_http_apikey_redis_reply_free().
 */
redisReply *ngx_http_apikey_fuzz_reply(ngx_http_apikey_fuzz_in_t *in);

/*
 * A request in a pool of its own (r->pool, the caller destroys it), with
 * the module's main configuration zeroed; what it is checked against (its
 * location's) is the caller's.
 */
ngx_http_request_t *ngx_http_apikey_fuzz_request(void);

/* aborts unless the check's result is a gate's, with sane rate numbers */
void ngx_http_apikey_fuzz_sane(ngx_http_apikey_ctx_t *ctx);

/* a location's "apikey on" with no other directive, as merged */
ngx_http_apikey_loc_conf_t *ngx_http_apikey_fuzz_loc_conf(ngx_pool_t *pool);

/*
 * "apikey_cache zone=fuzz:SIZE" into ccf, its zone made and initialised
 * as nginx does for a new cycle; freed with ngx_http_apikey_fuzz_zone_free.
 */
ngx_http_apikey_cache_t *ngx_http_apikey_fuzz_zone(ngx_pool_t *pool,
    ngx_http_apikey_cache_conf_t *ccf, size_t size);
void ngx_http_apikey_fuzz_zone_free(ngx_http_apikey_cache_conf_t *ccf);


#endif /* _NGX_HTTP_APIKEY_FUZZ_H_INCLUDED_ */
