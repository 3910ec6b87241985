
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
static void ngx_http_apikey_metrics_observe(ngx_atomic_t *buckets,
    const uint64_t *bounds, ngx_uint_t n, ngx_atomic_t *sum, uint64_t v);
static ngx_http_apikey_metrics_node_t *ngx_http_apikey_metrics_node(
    ngx_http_apikey_metrics_t *m, ngx_uint_t link, u_char *name, size_t len,
    ngx_uint_t add);


ngx_http_apikey_metrics_t  *ngx_http_apikey_metrics;

static ngx_slab_pool_t     *ngx_http_apikey_metrics_shpool;

/* the node each of the worker's links last saw, to drop when it moves */
static u_char  ngx_http_apikey_metrics_last[3][NGX_SOCKADDR_STRLEN];
static size_t  ngx_http_apikey_metrics_last_len[3];


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


/* upper bounds of the buckets (+Inf not written), in microseconds */

static const uint64_t  ngx_http_apikey_latency_us[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};

static const uint64_t  ngx_http_apikey_gate_us[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000
};

static const uint64_t  ngx_http_apikey_admin_us[] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000, 5000000
};

static const uint64_t  ngx_http_apikey_batch_n[] = {
    1, 2, 4, 8, 16, 32, 64
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

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {

        /*
         * a reload that kept the zone keeps the counters; the Redis nodes
         * are listed afresh, as the new workers reach them (the
         * configuration may name others)
         */

        m = data;

        ngx_shmtx_lock(&shpool->mutex);
        ngx_memzero(m->nodes, sizeof(m->nodes));
        ngx_shmtx_unlock(&shpool->mutex);

        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_apikey_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    /* in the master, as it starts (or the reload that adds the zone) */

    m->start = ngx_time();

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
    ngx_memzero(ngx_http_apikey_metrics_last_len,
                sizeof(ngx_http_apikey_metrics_last_len));

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
            ngx_http_apikey_metrics_shpool =
                                    (ngx_slab_pool_t *) zone[i].shm.addr;
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
    ngx_http_apikey_metrics_t  *m;

    m = ngx_http_apikey_metrics;

    if (m == NULL) {
        return;
    }

    ngx_http_apikey_metrics_observe(m->latency, ngx_http_apikey_latency_us,
                                    NGX_HTTP_APIKEY_M_LATENCY, &m->latency_us,
                                    us);
    ngx_http_apikey_metrics_observe(m->batch, ngx_http_apikey_batch_n,
                                    NGX_HTTP_APIKEY_M_BATCH, &m->batch_checks,
                                    n);
}


void
ngx_http_apikey_metrics_gate(uint64_t us)
{
    ngx_http_apikey_metrics_t  *m;

    m = ngx_http_apikey_metrics;

    if (m == NULL) {
        return;
    }

    ngx_http_apikey_metrics_observe(m->gate, ngx_http_apikey_gate_us,
                                    NGX_HTTP_APIKEY_M_GATE, &m->gate_us, us);
}


void
ngx_http_apikey_metrics_admin(ngx_uint_t route, ngx_uint_t status,
    uint64_t us)
{
    ngx_uint_t                  i;
    ngx_http_apikey_metrics_t  *m;

    m = ngx_http_apikey_metrics;

    if (m == NULL) {
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

    (void) ngx_atomic_fetch_add(&m->admin[route][i], 1);

    ngx_http_apikey_metrics_observe(m->admin_time[route],
                                    ngx_http_apikey_admin_us,
                                    NGX_HTTP_APIKEY_M_ADMIN_TIME,
                                    &m->admin_us[route], us);
}


/* n buckets, the last +Inf: v in the first whose bound it does not pass */

static void
ngx_http_apikey_metrics_observe(ngx_atomic_t *buckets, const uint64_t *bounds,
    ngx_uint_t n, ngx_atomic_t *sum, uint64_t v)
{
    ngx_uint_t  i;

    for (i = 0; i < n - 1; i++) {
        if (v <= bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&buckets[i], 1);
    (void) ngx_atomic_fetch_add(sum, v);
}


/*
 * The last state any worker recorded for a link's node wins.  A link that
 * moves to another node (a failover, a name that resolves elsewhere)
 * takes its old node off the list; a worker still on that node lists it
 * again at its next change.  Nodes past the fixed slots go unlisted.
 */

void
ngx_http_apikey_metrics_redis_up(ngx_uint_t link, ngx_str_t *node,
    ngx_uint_t up)
{
    u_char                          *last;
    size_t                          *last_len;
    ngx_http_apikey_metrics_t       *m;
    ngx_http_apikey_metrics_node_t  *mn;

    m = ngx_http_apikey_metrics;

    if (m == NULL || link > 2 || node->len == 0
        || node->len > NGX_SOCKADDR_STRLEN)
    {
        return;
    }

    last = ngx_http_apikey_metrics_last[link];
    last_len = &ngx_http_apikey_metrics_last_len[link];

    ngx_shmtx_lock(&ngx_http_apikey_metrics_shpool->mutex);

    if (*last_len
        && (*last_len != node->len
            || ngx_memcmp(last, node->data, node->len) != 0))
    {
        mn = ngx_http_apikey_metrics_node(m, link, last, *last_len, 0);

        if (mn != NULL) {
            mn->len = 0;
        }
    }

    mn = ngx_http_apikey_metrics_node(m, link, node->data, node->len, 1);

    if (mn != NULL) {
        mn->up = up ? 1 : 0;
    }

    ngx_shmtx_unlock(&ngx_http_apikey_metrics_shpool->mutex);

    ngx_memcpy(last, node->data, node->len);
    *last_len = node->len;
}


ngx_uint_t
ngx_http_apikey_metrics_nodes(ngx_http_apikey_metrics_node_t *out)
{
    ngx_uint_t                  i, n;
    ngx_http_apikey_metrics_t  *m;

    m = ngx_http_apikey_metrics;
    n = 0;

    ngx_shmtx_lock(&ngx_http_apikey_metrics_shpool->mutex);

    for (i = 0; i < NGX_HTTP_APIKEY_M_NODES; i++) {
        if (m->nodes[i].len) {
            out[n++] = m->nodes[i];
        }
    }

    ngx_shmtx_unlock(&ngx_http_apikey_metrics_shpool->mutex);

    return n;
}


/* under the zone's lock: the link's slot for the node, or a new one */

static ngx_http_apikey_metrics_node_t *
ngx_http_apikey_metrics_node(ngx_http_apikey_metrics_t *m, ngx_uint_t link,
    u_char *name, size_t len, ngx_uint_t add)
{
    ngx_uint_t                       i;
    ngx_http_apikey_metrics_node_t  *mn, *free;

    free = NULL;

    for (i = 0; i < NGX_HTTP_APIKEY_M_NODES; i++) {
        mn = &m->nodes[i];

        if (mn->len == 0) {
            if (free == NULL) {
                free = mn;
            }

            continue;
        }

        if (mn->link == link && mn->len == len
            && ngx_memcmp(mn->name, name, len) == 0)
        {
            return mn;
        }
    }

    if (!add || free == NULL) {
        return NULL;
    }

    free->link = link;
    free->len = len;
    ngx_memcpy(free->name, name, len);

    return free;
}
