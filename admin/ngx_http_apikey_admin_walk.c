
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_timer.h"


static void ngx_http_apikey_admin_next_walk(ngx_event_t *ev);


/*
 * A worker sends one list slice at a time: the searches its clients run
 * together take turns, one slice each.  While the worker is sending
 * gatekeeper checks (it did within NGX_HTTP_APIKEY_ADMIN_WALK_BUSY), it
 * leaves Redis to them for NGX_HTTP_APIKEY_ADMIN_WALK_PAUSE after each
 * slice, so that walks take about a quarter of Redis's time per worker
 * and a check waits behind one slice (about a millisecond) at most; on a
 * quiet worker slices follow one another.
 */

static ngx_queue_t   ngx_http_apikey_admin_walks;
static ngx_uint_t    ngx_http_apikey_admin_walking;
static ngx_event_t   ngx_http_apikey_admin_walk_event;


ngx_uint_t
ngx_http_apikey_admin_take_turn(ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_queue_t  *q;

    q = &ngx_http_apikey_admin_walks;

    if (q->next == NULL) {
        ngx_queue_init(q);
        ngx_http_apikey_timer_init(&ngx_http_apikey_admin_walk_event,
                                   ngx_http_apikey_admin_next_walk, NULL,
                                   ngx_cycle->log);
    }

    if (ngx_http_apikey_admin_walking
        || ngx_http_apikey_admin_walk_event.timer_set
        || ngx_http_apikey_admin_walk_event.posted
        || !ngx_queue_empty(q))
    {
        ngx_queue_insert_tail(q, &ctx->queue);
        ctx->queued = 1;
        return 0;
    }

    ngx_http_apikey_admin_walking = 1;
    ctx->walking = 1;

    return 1;
}


/* the slice in Redis is done (or its request gone): a pause, then the next */

void
ngx_http_apikey_admin_end_turn(ngx_http_apikey_admin_ctx_t *ctx)
{
    if (!ctx->walking) {
        return;
    }

    ctx->walking = 0;
    ngx_http_apikey_admin_walking = 0;

    if (ngx_current_msec - ngx_http_apikey_redis_gate_sent
        < NGX_HTTP_APIKEY_ADMIN_WALK_BUSY)
    {
        ngx_add_timer(&ngx_http_apikey_admin_walk_event,
                      NGX_HTTP_APIKEY_ADMIN_WALK_PAUSE);

    } else if (!ngx_queue_empty(&ngx_http_apikey_admin_walks)) {
        ngx_post_event(&ngx_http_apikey_admin_walk_event, &ngx_posted_events);
    }
}


static void
ngx_http_apikey_admin_next_walk(ngx_event_t *ev)
{
    ngx_queue_t                  *q;
    ngx_http_apikey_admin_ctx_t  *ctx;

    if (ngx_http_apikey_admin_walking
        || ngx_queue_empty(&ngx_http_apikey_admin_walks))
    {
        return;
    }

    q = ngx_queue_head(&ngx_http_apikey_admin_walks);
    ngx_queue_remove(q);

    ctx = ngx_queue_data(q, ngx_http_apikey_admin_ctx_t, queue);
    ctx->queued = 0;

    ngx_http_apikey_admin_walking = 1;
    ctx->walking = 1;

    ctx->resume(ctx);
}
