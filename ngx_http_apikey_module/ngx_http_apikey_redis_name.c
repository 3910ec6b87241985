
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis_name.h"


/*
 * A host name of apikey_redis (the server's, a Sentinel's) looked up
 * through the http block's resolver, without blocking: the resolver keeps
 * an answer for its TTL (or valid=), and each lookup takes the name's
 * next address, so that connections go round them.  The owner hears the
 * address, or why there is none, through its handler.
 */


static void ngx_http_apikey_redis_name_done(ngx_resolver_ctx_t *ctx);


ngx_int_t
ngx_http_apikey_redis_name_resolve(ngx_http_apikey_redis_name_t *n,
    ngx_resolver_t *resolver, ngx_msec_t timeout)
{
    ngx_resolver_ctx_t  *ctx;

    if (n->ctx != NULL) {
        return NGX_AGAIN;
    }

    ctx = ngx_resolve_start(resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        return NGX_ERROR;
    }

    ctx->name = n->host;
    ctx->handler = ngx_http_apikey_redis_name_done;
    ctx->data = n;
    ctx->timeout = timeout;

    /* a worker that shuts down does not wait for the answer */
    ctx->cancelable = 1;

    /* the answer may come at once, from the resolver's cache */

    n->ctx = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        n->ctx = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_apikey_redis_name_cancel(ngx_http_apikey_redis_name_t *n)
{
    if (n->ctx != NULL) {
        ngx_resolve_name_done(n->ctx);
        n->ctx = NULL;
    }
}


static void
ngx_http_apikey_redis_name_done(ngx_resolver_ctx_t *ctx)
{
    ngx_http_apikey_redis_name_t *n = ctx->data;

    ngx_uint_t  i;

    n->ctx = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        *ngx_snprintf(n->error, sizeof(n->error) - 1,
                      "cannot resolve \"%V\": %s", &n->host,
                      ctx->state ? ngx_resolver_strerror(ctx->state)
                                 : "no address")
            = '\0';

        ngx_resolve_name_done(ctx);
        n->handler(n, (const char *) n->error);
        return;
    }

    i = n->next++ % ctx->naddrs;

    ngx_memcpy(n->sockaddr, ctx->addrs[i].sockaddr, ctx->addrs[i].socklen);

    n->addr.sockaddr = (struct sockaddr *) n->sockaddr;
    n->addr.socklen = ctx->addrs[i].socklen;

    ngx_inet_set_port(n->addr.sockaddr, n->port);

    ngx_resolve_name_done(ctx);

    n->handler(n, NULL);
}
