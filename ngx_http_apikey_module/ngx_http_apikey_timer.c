
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_timer.h"


static ngx_connection_t  ngx_http_apikey_timer_conn;


void
ngx_http_apikey_timer_init(ngx_event_t *ev, ngx_event_handler_pt handler,
    void *data, ngx_log_t *log)
{
    if (data == NULL) {
        ngx_http_apikey_timer_conn.fd = (ngx_socket_t) -1;
        data = &ngx_http_apikey_timer_conn;
    }

    ev->handler = handler;
    ev->data = data;
    ev->log = log;
    ev->cancelable = 1;
}
