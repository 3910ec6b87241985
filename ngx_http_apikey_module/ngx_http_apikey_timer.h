
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_TIMER_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TIMER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * An event of the module's own (a timer, or one posted): cancelable, so
 * that a graceful shutdown is not held up by it.  nginx's debug log reads
 * a timer's data as a connection: with data NULL it gets a connection of
 * no socket, for a handler that needs no data.
 */
void ngx_http_apikey_timer_init(ngx_event_t *ev, ngx_event_handler_pt handler,
    void *data, ngx_log_t *log);


#endif /* _NGX_HTTP_APIKEY_TIMER_H_INCLUDED_ */
