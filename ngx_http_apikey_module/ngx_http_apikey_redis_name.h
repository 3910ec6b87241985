
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_NAME_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_NAME_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_http_apikey_redis_name_s  ngx_http_apikey_redis_name_t;

/* an address in n->addr (error NULL), or why there is none */
typedef void (*ngx_http_apikey_redis_name_pt)(ngx_http_apikey_redis_name_t *n,
    const char *error);


struct ngx_http_apikey_redis_name_s {
    ngx_str_t                          host;     /* set by the owner */
    in_port_t                          port;
    ngx_str_t                          name;     /* for logs: as written */
    ngx_http_apikey_redis_name_pt      handler;
    void                              *data;

    ngx_addr_t                         addr;     /* the last looked up */
    ngx_resolver_ctx_t                *ctx;      /* a lookup under way */
    ngx_uint_t                         next;
    u_char                             sockaddr[NGX_SOCKADDRLEN];
    u_char                             error[NGX_MAX_ERROR_STR];
};


/*
 * NGX_OK: the handler will be called (maybe before this returns);
 * NGX_AGAIN: a lookup is under way already; NGX_ERROR: none can be made.
 */
ngx_int_t ngx_http_apikey_redis_name_resolve(ngx_http_apikey_redis_name_t *n,
    ngx_resolver_t *resolver, ngx_msec_t timeout);
void ngx_http_apikey_redis_name_cancel(ngx_http_apikey_redis_name_t *n);


#endif /* _NGX_HTTP_APIKEY_REDIS_NAME_H_INCLUDED_ */
