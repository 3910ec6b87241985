
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"


/*
 * The hiredis adapter: hiredis's addRead/delRead/addWrite/delWrite and
 * cleanup hooks mapped onto an nginx connection made for hiredis's socket.
 */


static void ngx_http_apikey_redis_read_handler(ngx_event_t *ev);
static void ngx_http_apikey_redis_write_handler(ngx_event_t *ev);
static void ngx_http_apikey_redis_add_read(void *privdata);
static void ngx_http_apikey_redis_del_read(void *privdata);
static void ngx_http_apikey_redis_add_write(void *privdata);
static void ngx_http_apikey_redis_del_write(void *privdata);
static void ngx_http_apikey_redis_cleanup(void *privdata);


ngx_int_t
ngx_http_apikey_redis_attach(redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_apikey_redis_read_handler;
    c->write->handler = ngx_http_apikey_redis_write_handler;
    c->read->log = log;
    c->write->log = log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_apikey_redis_add_read;
    ac->ev.delRead = ngx_http_apikey_redis_del_read;
    ac->ev.addWrite = ngx_http_apikey_redis_add_write;
    ac->ev.delWrite = ngx_http_apikey_redis_del_write;
    ac->ev.cleanup = ngx_http_apikey_redis_cleanup;

    return NGX_OK;
}


static void
ngx_http_apikey_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_apikey_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * hiredis reads at most one buffer per call, so reads are level-triggered:
 * with nginx's edge-triggered epoll a pipelined burst of replies larger
 * than one read would otherwise wait for the next packet.
 */

static void
ngx_http_apikey_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "adding the redis read event failed");
        }
    }
}


static void
ngx_http_apikey_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_apikey_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "adding the redis write event failed");
        }
    }
}


static void
ngx_http_apikey_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis closes the socket itself: release the nginx connection only */

static void
ngx_http_apikey_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}
