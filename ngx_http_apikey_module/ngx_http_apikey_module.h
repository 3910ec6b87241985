
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_key.h"


typedef struct {
    ngx_http_apikey_redis_conf_t   redis;
    ngx_flag_t                     enabled;   /* apikey_redis was given */
    ngx_flag_t                     used;      /* some location needs it */
} ngx_http_apikey_main_conf_t;


/*
 * Sends an application/problem+json response (RFC 9457) with the given
 * status, "code" and "detail"; headers already in r->headers_out are kept.
 * Returns what the output filter returned, for ngx_http_finalize_request().
 */
ngx_int_t ngx_http_apikey_send_problem(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *detail);

/* adds a response header; name is a literal that outlives the request */
ngx_table_elt_t *ngx_http_apikey_add_header(ngx_http_request_t *r,
    const char *name, size_t len, ngx_str_t *value);

/*
 * Marks that a location needs Redis; fails with a clear message when no
 * apikey_redis was configured.
 */
char *ngx_http_apikey_require_redis(ngx_conf_t *cf, const char *directive);


extern ngx_module_t  ngx_http_apikey_module;


#endif /* _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_ */
