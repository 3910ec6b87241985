
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"


/*
 * apikey_metrics: the counters of ngx_http_apikey_metrics.c, and the
 * replica's state, in the Prometheus text exposition format (0.0.4).
 */


static ngx_int_t ngx_http_apikey_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_http_apikey_metrics_family(u_char *p, const char *name,
    const char *type, const char *help);
static u_char *ngx_http_apikey_metrics_replica(ngx_http_request_t *r,
    u_char *p, ngx_http_apikey_metrics_t *m);
static u_char *ngx_http_apikey_metrics_operator(u_char *p,
    ngx_http_apikey_metrics_t *m);
static u_char *ngx_http_apikey_metrics_counter(u_char *p, const char *name,
    const char *help, ngx_atomic_uint_t v);
static u_char *ngx_http_apikey_metrics_histogram(u_char *p, const char *name,
    const char *labels, ngx_atomic_t *buckets, ngx_uint_t n, const char **le,
    ngx_atomic_uint_t sum, ngx_uint_t micro);
static u_char *ngx_http_apikey_metrics_labels(u_char *p, const char *labels);


/* upper bounds of the buckets, as written */

static const char  *ngx_http_apikey_latency_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "+Inf"
};

static const char  *ngx_http_apikey_gate_le[] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"
};

static const char  *ngx_http_apikey_admin_le[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "+Inf"
};

static const char  *ngx_http_apikey_batch_le[] = {
    "1", "2", "4", "8", "16", "32", "64", "+Inf"
};

static const char  *ngx_http_apikey_routes[] = {
    "create", "list", "get", "update", "revoke", "restore", "rotate",
    "delete", "events", "usage", "token_create", "token_list", "token_get",
    "token_revoke", "org_get", "org_update", "none"
};

static const char  *ngx_http_apikey_error_kinds[] = {
    "timeout", "connection", "reply"
};

static const char  *ngx_http_apikey_links[] = {
    "gate", "admin", "replica"
};


char *
ngx_http_apikey_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_loc_conf_t *akcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    /* where, for the warning of an unrestricted location */

    akcf->metrics_file = cf->conf_file->file.name.data;
    akcf->metrics_line = cf->conf_file->line;

    if (ngx_http_apikey_metrics_zone_add(cf, &ngx_http_apikey_module)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_apikey_metrics_handler;

    return NGX_CONF_OK;
}


/* the Prometheus text exposition format, version 0.0.4 */

static ngx_int_t
ngx_http_apikey_metrics_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_str_t                   type;
    ngx_uint_t                  i, k;
    ngx_atomic_uint_t           v, sum[NGX_HTTP_APIKEY_M_RESULTS];
    ngx_http_apikey_metrics_t  *m;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_apikey_metrics;

    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool,
                            12288
                            + NGX_HTTP_APIKEY_M_ROUTES
                              * NGX_HTTP_APIKEY_M_STATUSES * 96
                            + NGX_HTTP_APIKEY_M_ROUTES
                              * (NGX_HTTP_APIKEY_M_ADMIN_TIME + 2) * 112
                            + NGX_HTTP_APIKEY_M_NODES
                              * (2 * NGX_SOCKADDR_STRLEN + 64));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    /* results that share a status (the two 403s) share a series */

    p = ngx_http_apikey_metrics_family(p, "apikey_checks_total", "counter",
                         "Requests checked by the gatekeeper, by result "
                         "($apikey_status).");

    for (i = 0; i < NGX_HTTP_APIKEY_M_RESULTS; i++) {
        sum[i] = m->checks[i];

        for (k = 0; k < i; k++) {
            if (ngx_http_apikey_results[k].status.len
                == ngx_http_apikey_results[i].status.len
                && ngx_strcmp(ngx_http_apikey_results[k].status.data,
                              ngx_http_apikey_results[i].status.data)
                   == 0)
            {
                sum[k] += sum[i];
                sum[i] = (ngx_atomic_uint_t) -1;
                break;
            }
        }
    }

    for (i = 0; i < NGX_HTTP_APIKEY_M_RESULTS; i++) {
        if (sum[i] != (ngx_atomic_uint_t) -1) {
            p = ngx_sprintf(p, "apikey_checks_total{status=\"%V\"} %uA\n",
                            &ngx_http_apikey_results[i].status, sum[i]);
        }
    }

    p = ngx_http_apikey_metrics_family(p, "apikey_redis_calls_total",
                         "counter",
                         "Calls sent to Redis, by connection.");
    p = ngx_sprintf(p, "apikey_redis_calls_total{connection=\"gate\"} %uA\n"
                       "apikey_redis_calls_total{connection=\"admin\"} %uA\n"
                       "apikey_redis_calls_total{connection=\"replica\"} "
                       "%uA\n",
                    m->calls[0], m->calls[1], m->calls[2]);

    p = ngx_http_apikey_metrics_family(p, "apikey_redis_errors_total",
                         "counter",
                         "Failed Redis calls and connections, by kind.");

    for (i = 0; i < NGX_HTTP_APIKEY_M_ERRORS; i++) {
        p = ngx_sprintf(p, "apikey_redis_errors_total{kind=\"%s\"} %uA\n",
                        ngx_http_apikey_error_kinds[i], m->errors[i]);
    }

    p = ngx_http_apikey_metrics_family(p, "apikey_redis_reconnects_total",
                         "counter",
                         "Connections to Redis made again after a drop or "
                         "a failure.");
    p = ngx_sprintf(p, "apikey_redis_reconnects_total %uA\n", m->reconnects);

    p = ngx_http_apikey_metrics_family(p, "apikey_redis_failovers_total",
                         "counter",
                         "Moves to another primary announced or found "
                         "through Sentinel.");
    p = ngx_sprintf(p, "apikey_redis_failovers_total %uA\n", m->failovers);

    p = ngx_http_apikey_metrics_family(p,
                         "apikey_redis_script_duration_seconds", "histogram",
                         "Time from sending a gate script call to its reply.");
    p = ngx_http_apikey_metrics_histogram(p,
                         "apikey_redis_script_duration_seconds", "",
                         m->latency,
                         NGX_HTTP_APIKEY_M_LATENCY, ngx_http_apikey_latency_le,
                         m->latency_us, 1);

    p = ngx_http_apikey_metrics_family(p, "apikey_batch_checks", "histogram",
                         "Checks sent in one gate script call.");
    p = ngx_http_apikey_metrics_histogram(p, "apikey_batch_checks", "",
                         m->batch, NGX_HTTP_APIKEY_M_BATCH,
                         ngx_http_apikey_batch_le, m->batch_checks, 0);

    p = ngx_http_apikey_metrics_replica(r, p, m);

    p = ngx_http_apikey_metrics_family(p, "apikey_admin_requests_total",
                         "counter",
                         "Admin API requests, by operation and status.");

    /* only what happened: no sample of a request that never came */

    for (i = 0; i < NGX_HTTP_APIKEY_M_ROUTES; i++) {
        for (k = 0; k < NGX_HTTP_APIKEY_M_STATUSES; k++) {
            v = m->admin[i][k];

            if (v == 0) {
                continue;
            }

            p = ngx_sprintf(p, "apikey_admin_requests_total{route=\"%s\",",
                            ngx_http_apikey_routes[i]);

            p = ngx_http_apikey_metrics_statuses[k]
                ? ngx_sprintf(p, "status=\"%ui\"} %uA\n",
                              ngx_http_apikey_metrics_statuses[k], v)
                : ngx_sprintf(p, "status=\"other\"} %uA\n", v);
        }
    }

    p = ngx_http_apikey_metrics_operator(p, m);

    b->last = p;

    ngx_str_set(&type, "text/plain; version=0.0.4; charset=utf-8");

    return ngx_http_apikey_send_buf(r, NGX_HTTP_OK, &type, b);
}


/* apikey_cache: the instance's replica, when there is one */

static u_char *
ngx_http_apikey_metrics_replica(ngx_http_request_t *r, u_char *p,
    ngx_http_apikey_metrics_t *m)
{
    uint64_t                      now, synced;
    ngx_uint_t                    keys, bytes, missing, reloads, loaded;
    ngx_http_apikey_cache_t      *cache;
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (akmcf->cache.shm_zone == NULL) {
        return p;
    }

    cache = akmcf->cache.shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    keys = cache->sh->keys - cache->sh->missing;
    bytes = cache->sh->bytes;
    missing = cache->sh->missing + cache->sh->lost;
    reloads = cache->sh->reloads;
    loaded = cache->sh->loaded;
    synced = cache->sh->synced;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    now = ngx_http_apikey_cache_msec();

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_keys", "gauge",
                         "Secrets held by the apikey_cache replica.");
    p = ngx_sprintf(p, "apikey_replica_keys %ui\n", keys);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_bytes", "gauge",
                         "Bytes of the records the replica holds.");
    p = ngx_sprintf(p, "apikey_replica_bytes %ui\n", bytes);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_missing_keys",
                         "gauge",
                         "Secrets that did not fit the zone, checked in "
                         "Redis.");
    p = ngx_sprintf(p, "apikey_replica_missing_keys %ui\n", missing);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_lag_seconds",
                         "gauge",
                         "Time since the replica last heard from Redis "
                         "(-1 before the first load).");
    p = loaded
        ? ngx_sprintf(p, "apikey_replica_lag_seconds %uL.%03uL\n",
                      (now > synced ? now - synced : 0) / 1000,
                      (now > synced ? now - synced : 0) % 1000)
        : ngx_sprintf(p, "apikey_replica_lag_seconds -1\n");

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_reloads_total",
                         "counter",
                         "Reloads of the replica after a gap in the change "
                         "log.");
    p = ngx_sprintf(p, "apikey_replica_reloads_total %ui\n", reloads);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_hits_total",
                         "counter",
                         "Checks the replica answered without Redis.");
    p = ngx_sprintf(p, "apikey_replica_hits_total %uA\n", m->replica_hits);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_loading", "gauge",
                         "1 while the replica is being loaded.");
    p = ngx_sprintf(p, "apikey_replica_loading %uA\n", m->replica_loading);

    p = ngx_http_apikey_metrics_family(p, "apikey_replica_load_keys", "gauge",
                         "Keys the running or the last load has read.");
    p = ngx_sprintf(p, "apikey_replica_load_keys %uA\n",
                    m->replica_load_keys);

    p = ngx_http_apikey_metrics_family(p,
                         "apikey_replica_load_resumes_total", "counter",
                         "Load slices that went on from the cursor of a "
                         "failed one.");
    p = ngx_sprintf(p, "apikey_replica_load_resumes_total %uA\n",
                    m->replica_load_resumes);

    return p;
}


/* the time the gatekeeper and the admin API take, Redis, leases, build */

static u_char *
ngx_http_apikey_metrics_operator(u_char *p, ngx_http_apikey_metrics_t *m)
{
    u_char                          *q, *last;
    u_char                           labels[sizeof("route=\"\",") + 16];
    ngx_uint_t                       i, n;
    ngx_atomic_uint_t                count;
    ngx_http_apikey_metrics_node_t   nodes[NGX_HTTP_APIKEY_M_NODES];

    p = ngx_http_apikey_metrics_family(p, "apikey_gate_duration_seconds",
                         "histogram",
                         "Time the gatekeeper added to a request, from the "
                         "access phase to its decision.");
    p = ngx_http_apikey_metrics_histogram(p, "apikey_gate_duration_seconds",
                         "", m->gate, NGX_HTTP_APIKEY_M_GATE,
                         ngx_http_apikey_gate_le, m->gate_us, 1);

    p = ngx_http_apikey_metrics_family(p,
                         "apikey_admin_request_duration_seconds",
                         "histogram",
                         "Time the admin API took to answer, by operation.");

    /* as apikey_admin_requests_total: the operations that were asked */

    for (i = 0; i < NGX_HTTP_APIKEY_M_ROUTES; i++) {
        count = 0;

        for (n = 0; n < NGX_HTTP_APIKEY_M_ADMIN_TIME; n++) {
            count += m->admin_time[i][n];
        }

        if (count == 0) {
            continue;
        }

        ngx_sprintf(labels, "route=\"%s\",%Z", ngx_http_apikey_routes[i]);

        p = ngx_http_apikey_metrics_histogram(p,
                         "apikey_admin_request_duration_seconds",
                         (const char *) labels, m->admin_time[i],
                         NGX_HTTP_APIKEY_M_ADMIN_TIME,
                         ngx_http_apikey_admin_le, m->admin_us[i], 1);
    }

    p = ngx_http_apikey_metrics_family(p, "apikey_redis_up", "gauge",
                         "1 if the connection of that kind last reached the "
                         "Redis node, 0 if it last failed to.");

    n = ngx_http_apikey_metrics_nodes(nodes);

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "apikey_redis_up{connection=\"%s\",node=\"",
                        ngx_http_apikey_links[nodes[i].link]);

        /* a label value's escapes */

        last = nodes[i].name + nodes[i].len;

        for (q = nodes[i].name; q < last; q++) {
            if (*q == '\\' || *q == '"' || *q == '\n') {
                *p++ = '\\';
            }

            *p++ = (*q == '\n') ? 'n' : *q;
        }

        p = ngx_sprintf(p, "\"} %ui\n", nodes[i].up);
    }

    p = ngx_http_apikey_metrics_counter(p, "apikey_lease_asks_total",
                         "Leases of a key's tokens asked of Redis.",
                         m->lease_asks);
    p = ngx_http_apikey_metrics_counter(p, "apikey_lease_grants_total",
                         "Leases Redis granted with tokens for the instance.",
                         m->lease_grants);
    p = ngx_http_apikey_metrics_counter(p,
                         "apikey_lease_giveback_tokens_total",
                         "Unspent leased tokens sent back to Redis.",
                         m->lease_back);
    p = ngx_http_apikey_metrics_counter(p, "apikey_tally_flushes_total",
                         "Flushes of the counts Redis is to record.",
                         m->tally_flushes);

    p = ngx_http_apikey_metrics_family(p, "apikey_build_info", "gauge",
                         "The module's version, as a label; always 1.");
    p = ngx_sprintf(p, "apikey_build_info{version=\"%s\"} 1\n",
                    NGX_HTTP_APIKEY_VERSION);

    p = ngx_http_apikey_metrics_family(p, "apikey_start_time_seconds",
                         "gauge",
                         "When the counters began: the nginx instance's "
                         "start, in Unix seconds.");

    return ngx_sprintf(p, "apikey_start_time_seconds %T\n", m->start);
}


static u_char *
ngx_http_apikey_metrics_counter(u_char *p, const char *name,
    const char *help, ngx_atomic_uint_t v)
{
    p = ngx_http_apikey_metrics_family(p, name, "counter", help);

    return ngx_sprintf(p, "%s %uA\n", name, v);
}


static u_char *
ngx_http_apikey_metrics_family(u_char *p, const char *name, const char *type,
    const char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                       name, help, name, type);
}


/*
 * buckets are kept apart and written cumulative; labels: "" or each
 * followed by a comma; "micro": the sum in us
 */

static u_char *
ngx_http_apikey_metrics_histogram(u_char *p, const char *name,
    const char *labels, ngx_atomic_t *buckets, ngx_uint_t n, const char **le,
    ngx_atomic_uint_t sum, ngx_uint_t micro)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  count;

    count = 0;

    for (i = 0; i < n; i++) {
        count += buckets[i];
        p = ngx_sprintf(p, "%s_bucket{%sle=\"%s\"} %uA\n",
                        name, labels, le[i], count);
    }

    p = ngx_sprintf(p, "%s_sum", name);
    p = ngx_http_apikey_metrics_labels(p, labels);

    if (micro) {
        p = ngx_sprintf(p, " %uA.%06uA\n", sum / 1000000, sum % 1000000);

    } else {
        p = ngx_sprintf(p, " %uA\n", sum);
    }

    p = ngx_sprintf(p, "%s_count", name);
    p = ngx_http_apikey_metrics_labels(p, labels);

    return ngx_sprintf(p, " %uA\n", count);
}


/* "route=\"x\"," as "{route=\"x\"}"; "" as nothing */

static u_char *
ngx_http_apikey_metrics_labels(u_char *p, const char *labels)
{
    size_t  len;

    len = ngx_strlen(labels);

    if (len == 0) {
        return p;
    }

    *p++ = '{';
    p = ngx_cpymem(p, labels, len - 1);
    *p++ = '}';

    return p;
}
