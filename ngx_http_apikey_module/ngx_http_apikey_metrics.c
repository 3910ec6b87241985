
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_metrics.h"


/*
 * The counters, in a shared memory zone every worker adds to; the page
 * that shows them is ngx_http_apikey_metrics_page.c.
 */


#define NGX_HTTP_APIKEY_METRICS_SIZE  (64 * 1024)


static ngx_int_t ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_http_apikey_metrics_t  *ngx_http_apikey_metrics;


static ngx_str_t  ngx_http_apikey_metrics_zone = ngx_string("apikey_metrics");


/* the counters' zone, for a location with apikey_metrics */

ngx_int_t
ngx_http_apikey_metrics_zone_add(ngx_conf_t *cf, void *tag)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_apikey_metrics_zone,
                                     NGX_HTTP_APIKEY_METRICS_SIZE, tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_apikey_metrics_init_zone;

    return NGX_OK;
}


/* upper bounds of the latency buckets in microseconds */

static uint64_t  ngx_http_apikey_latency_us[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};

ngx_uint_t  ngx_http_apikey_metrics_statuses[] = {
    200, 201, 204, 400, 401, 403, 404, 405, 413, 415, 500, 503, 0
};


static ngx_int_t
ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_apikey_metrics_t  *m;

    /*
     * Only the zone's own data is set here, in the master: the workers'
     * pointer is set per cycle, in init_process, so that a reload that
     * drops apikey_metrics leaves no worker pointing at an unmapped zone
     */

    if (data) {

        /* a reload that kept the zone keeps the counters */

        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_apikey_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shpool->data = m;
    shm_zone->data = m;

    return NGX_OK;
}


void
ngx_http_apikey_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_shm_zone_t   *zone;
    ngx_list_part_t  *part;

    ngx_http_apikey_metrics = NULL;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].init == ngx_http_apikey_metrics_init_zone)
        {
            ngx_http_apikey_metrics = zone[i].data;
            return;
        }
    }
}


uint64_t
ngx_http_apikey_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


void
ngx_http_apikey_metrics_call(ngx_uint_t n, uint64_t us)
{
    ngx_uint_t                  i;
    ngx_http_apikey_metrics_t  *m;

    m = ngx_http_apikey_metrics;

    if (m == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_M_LATENCY - 1; i++) {
        if (us <= ngx_http_apikey_latency_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->latency[i], 1);
    (void) ngx_atomic_fetch_add(&m->latency_us, us);

    for (i = 0; i < NGX_HTTP_APIKEY_M_BATCH - 1; i++) {
        if (n <= ((ngx_uint_t) 1 << i)) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->batch[i], 1);
    (void) ngx_atomic_fetch_add(&m->batch_checks, n);
}


void
ngx_http_apikey_metrics_admin(ngx_uint_t route, ngx_uint_t status)
{
    ngx_uint_t  i;

    if (ngx_http_apikey_metrics == NULL) {
        return;
    }

    if (route >= NGX_HTTP_APIKEY_M_ROUTES) {
        route = NGX_HTTP_APIKEY_M_ROUTES - 1;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_M_STATUSES - 1; i++) {
        if (ngx_http_apikey_metrics_statuses[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_apikey_metrics->admin[route][i], 1);
}
