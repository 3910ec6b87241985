
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"


#define NGX_HTTP_APIKEY_M_RESULTS        11   /* the gate's result codes */

#define NGX_HTTP_APIKEY_M_TIMEOUT        0    /* kinds of Redis errors */
#define NGX_HTTP_APIKEY_M_CONNECTION     1
#define NGX_HTTP_APIKEY_M_REPLY          2
#define NGX_HTTP_APIKEY_M_ERRORS         3

#define NGX_HTTP_APIKEY_M_LATENCY        12   /* histogram buckets, +Inf */
#define NGX_HTTP_APIKEY_M_BATCH          8

#define NGX_HTTP_APIKEY_M_GATE           15   /* time the gatekeeper adds */
#define NGX_HTTP_APIKEY_M_ADMIN_TIME     13   /* an admin request's time */

#define NGX_HTTP_APIKEY_M_ROUTES         17   /* admin operations, none */
#define NGX_HTTP_APIKEY_M_STATUSES       13

#define NGX_HTTP_APIKEY_M_NODES          32   /* Redis nodes, all links */


/*
 * A Redis node one of the links (gate, admin, replica) reached or failed
 * to reach, as a worker last saw it: len 0 is a free slot.
 */

typedef struct {
    ngx_uint_t                     link;
    ngx_uint_t                     up;
    size_t                         len;
    u_char                         name[NGX_SOCKADDR_STRLEN];
} ngx_http_apikey_metrics_node_t;


/*
 * The counters, in a shared memory zone: every worker adds to the same
 * ones, and a reload that keeps the zone keeps them.
 */

typedef struct {
    ngx_atomic_t                   checks[NGX_HTTP_APIKEY_M_RESULTS];
    ngx_atomic_t                   calls[3];         /* by connection */
    ngx_atomic_t                   errors[NGX_HTTP_APIKEY_M_ERRORS];
    ngx_atomic_t                   reconnects;
    ngx_atomic_t                   failovers;
    ngx_atomic_t                   latency[NGX_HTTP_APIKEY_M_LATENCY];
    ngx_atomic_t                   latency_us;       /* sum */
    ngx_atomic_t                   batch[NGX_HTTP_APIKEY_M_BATCH];
    ngx_atomic_t                   batch_checks;     /* sum */
    ngx_atomic_t                   replica_hits;     /* apikey_cache */
    ngx_atomic_t                   replica_loading;  /* 1: a load runs */
    ngx_atomic_t                   replica_load_keys;    /* it read */
    ngx_atomic_t                   replica_load_resumes;
    ngx_atomic_t                   admin[NGX_HTTP_APIKEY_M_ROUTES]
                                        [NGX_HTTP_APIKEY_M_STATUSES];
    ngx_atomic_t                   gate[NGX_HTTP_APIKEY_M_GATE];
    ngx_atomic_t                   gate_us;          /* sum */
    ngx_atomic_t                   admin_time[NGX_HTTP_APIKEY_M_ROUTES]
                                             [NGX_HTTP_APIKEY_M_ADMIN_TIME];
    ngx_atomic_t                   admin_us[NGX_HTTP_APIKEY_M_ROUTES];
    ngx_atomic_t                   lease_asks;
    ngx_atomic_t                   lease_grants;
    ngx_atomic_t                   lease_back;       /* tokens */
    ngx_atomic_t                   tally_flushes;
    time_t                         start;            /* counting began */
    ngx_http_apikey_metrics_node_t nodes[NGX_HTTP_APIKEY_M_NODES];
} ngx_http_apikey_metrics_t;


/*
 * NULL without apikey_metrics: nothing is counted.  Set in each worker
 * from its own cycle's zones (ngx_http_apikey_metrics_init_process()).
 */
extern ngx_http_apikey_metrics_t  *ngx_http_apikey_metrics;


#define ngx_http_apikey_metric_add(field)                                     \
    if (ngx_http_apikey_metrics) {                                            \
        (void) ngx_atomic_fetch_add(&ngx_http_apikey_metrics->field, 1);      \
    }


#define ngx_http_apikey_metric_add_n(field, n)                                \
    if (ngx_http_apikey_metrics) {                                            \
        (void) ngx_atomic_fetch_add(&ngx_http_apikey_metrics->field, n);      \
    }


#define ngx_http_apikey_metric_set(field, value)                              \
    if (ngx_http_apikey_metrics) {                                            \
        ngx_http_apikey_metrics->field = (value);                             \
    }


/* the admin API's statuses counted apart, 0: any other */
extern ngx_uint_t  ngx_http_apikey_metrics_statuses[];

ngx_int_t ngx_http_apikey_metrics_zone_add(ngx_conf_t *cf, void *tag);

/* apikey_metrics, ngx_http_apikey_metrics_page.c */
char *ngx_http_apikey_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

void ngx_http_apikey_metrics_init_process(ngx_cycle_t *cycle);

/*
 * ngx_http_apikey_metrics_guard.c: the directives that restrict a
 * location, and rewrite's return, are watched while the http block is
 * read (preconfiguration); a merged location with apikey_metrics and none
 * of the first logs a warning, as does one with "apikey on" and a return
 */
ngx_int_t ngx_http_apikey_metrics_guard_init(ngx_conf_t *cf);
void ngx_http_apikey_metrics_guard_check(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *akcf);

/* microseconds of a monotonic clock, for latencies */
uint64_t ngx_http_apikey_metrics_now(void);

/* a gate script call of n checks that took us microseconds */
void ngx_http_apikey_metrics_call(ngx_uint_t n, uint64_t us);

/* the gatekeeper decided a request us microseconds after its access phase */
void ngx_http_apikey_metrics_gate(uint64_t us);

/* an admin request: its operation (or none), status, and time taken */
void ngx_http_apikey_metrics_admin(ngx_uint_t route, ngx_uint_t status,
    uint64_t us);

/*
 * A worker's link (NGX_HTTP_APIKEY_REDIS_GATE, _ADMIN, _REPLICA) found
 * the node (host:port, as configured or discovered) up or down
 */
void ngx_http_apikey_metrics_redis_up(ngx_uint_t link, ngx_str_t *node,
    ngx_uint_t up);

/* the nodes listed, copied into out[NGX_HTTP_APIKEY_M_NODES]: how many */
ngx_uint_t ngx_http_apikey_metrics_nodes(ngx_http_apikey_metrics_node_t *out);


#endif /* _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_ */
