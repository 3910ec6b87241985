
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_tally.h"


/*
 * apikey_rate_lease: a check that finds no token leased to its instance
 * asks Redis for up to TIME's worth of the key's rate (at most its burst,
 * at most what the bucket holds); the tokens past its own are kept with
 * the record of the key's bucket in the zone, and the instance's workers
 * spend them with no Redis call.  One lease per key is asked for at a
 * time; meanwhile the key's other checks go to Redis one by one.
 *
 * A lease ends TIME after Redis granted it: what is left goes back to the
 * bucket with the next lease asked for, or, for a key no longer used, by
 * the sweep.  A change of the key's record (the change log) ends it at
 * once: the tokens go back, or, when the limit changed and Redis refilled
 * the bucket, are dropped; a lease granted for the record as it was
 * before the change is dropped too (the epoch tells).
 *
 * The requests a lease lets through are counted with it, for the
 * instance, not in each worker's tally: the sweep hands the count to the
 * tally once a second a key (ngx_http_apikey_tally.c), so Redis records
 * them, and the key's last use, once a second an instance.
 *
 * Every worker arms the sweep; the first of them due does it for the
 * instance.  What it gives back and counts goes to Redis with that
 * worker's tally.
 */


#define NGX_HTTP_APIKEY_LEASE_SWEEP    100        /* ms */
#define NGX_HTTP_APIKEY_LEASE_LATE     100000     /* us: a request renews */
#define NGX_HTTP_APIKEY_LEASE_IDLE     1000000    /* us: then it goes */
#define NGX_HTTP_APIKEY_LEASE_BACKS    256        /* tallied per sweep */
#define NGX_HTTP_APIKEY_LEASE_TELL     1000000    /* us: uses tallied */


typedef struct {
    u_char                         hash[32];
    uint32_t                       back;
    uint32_t                       used;
    uint32_t                       lim[3];
} ngx_http_apikey_lease_back_t;


static uint32_t ngx_http_apikey_lease_size(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_node_t *b);
static ngx_http_apikey_lease_t *ngx_http_apikey_lease_of(
    ngx_http_apikey_cache_t *cache, u_char *hash);
static void ngx_http_apikey_lease_sweep(ngx_event_t *ev);


static ngx_http_apikey_cache_conf_t  *ngx_http_apikey_lease_conf;
static ngx_event_t                    ngx_http_apikey_lease_event;
static ngx_connection_t               ngx_http_apikey_lease_conn;
static ngx_http_apikey_lease_back_t  *ngx_http_apikey_lease_backs;


/* TIME's worth of the key's rate, at most its burst */

static uint32_t
ngx_http_apikey_lease_size(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_node_t *b)
{
    uint64_t  n;

    if (b->per == 0) {
        return 0;
    }

    n = (uint64_t) ccf->lease * b->rate / ((uint64_t) b->per * 1000);

    return (n > b->burst) ? b->burst : (uint32_t) n;
}


/*
 * A token of the instance's lease, if it holds one; the rate headers
 * count the tokens it still holds as the bucket's.
 */

ngx_int_t
ngx_http_apikey_lease_spend(ngx_http_apikey_cache_node_t *b, int64_t now,
    int64_t *ahead)
{
    double                    held;
    int64_t                   a;
    ngx_http_apikey_lease_t  *l;

    l = b->lease;

    /* a record with tokens leased has a limit: rate and per are not 0 */

    if (l->tokens == 0 || now >= l->until) {
        return NGX_DECLINED;
    }

    l->tokens--;
    l->used++;

    a = b->tat - now;
    held = l->tokens * ((double) b->per * 1000000 / b->rate);

    *ahead = (held < (double) a) ? a - (int64_t) held : 0;

    return NGX_OK;
}


/*
 * The lease a check that Redis must answer asks for: none for a key whose
 * lease would be one token, or while another check of the instance asks.
 */

void
ngx_http_apikey_lease_ask(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_node_t *b, int64_t now,
    ngx_http_apikey_lease_ask_t *ask)
{
    uint32_t                  size;
    ngx_msec_t                ms;
    ngx_http_apikey_cache_t  *cache;
    ngx_http_apikey_lease_t  *l;

    size = ngx_http_apikey_lease_size(ccf, b);

    if (size < 2) {
        return;
    }

    cache = ccf->shm_zone->data;
    ms = ngx_current_msec;
    l = b->lease;

    if (l == NULL) {
        l = ngx_slab_alloc_locked(cache->shpool,
                                  sizeof(ngx_http_apikey_lease_t));

        if (l == NULL) {

            /* the zone is full: the key is checked request by request */

            return;
        }

        ngx_memzero(l, sizeof(ngx_http_apikey_lease_t));

        l->node = b;
        l->epoch = ++cache->sh->epoch;
        b->lease = l;

        ngx_queue_insert_tail(&cache->sh->leases, &l->queue);

    } else if (l->asked && ms - l->asked < ccf->timeout) {
        ask->sibling = 1;
        ask->rate = b->rate;
        ask->per = b->per;
        ask->burst = b->burst;
        return;
    }

    if (l->tokens) {

        /* the lease ended: what is left goes back with this call */

        l->back += l->tokens;
        l->tokens = 0;
    }

    l->asked = ms ? ms : 1;

    ask->want = size;
    ask->back = l->back;
    ask->epoch = l->epoch;
    ask->rate = b->rate;
    ask->per = b->per;
    ask->burst = b->burst;

    l->back = 0;
}


void
ngx_http_apikey_lease_grant(ngx_http_apikey_cache_conf_t *ccf, u_char *hash,
    ngx_http_apikey_lease_ask_t *ask, ngx_uint_t n)
{
    ngx_http_apikey_cache_t  *cache;
    ngx_http_apikey_lease_t  *l;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    l = ngx_http_apikey_lease_of(cache, hash);

    /* a lease of the record before a change is dropped */

    if (l != NULL && l->epoch == ask->epoch) {
        l->asked = 0;

        if (n > 1) {
            l->tokens += n - 1;
            l->until = ngx_http_apikey_cache_now()
                       + (int64_t) ccf->lease * 1000;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_int_t
ngx_http_apikey_lease_take(ngx_http_apikey_cache_conf_t *ccf, u_char *hash,
    int64_t *ahead)
{
    ngx_int_t                 rc;
    ngx_http_apikey_cache_t  *cache;
    ngx_http_apikey_lease_t  *l;

    cache = ccf->shm_zone->data;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    l = ngx_http_apikey_lease_of(cache, hash);

    if (l != NULL) {
        rc = ngx_http_apikey_lease_spend(l->node, ngx_http_apikey_cache_now(),
                                         ahead);

        if (rc == NGX_DECLINED && l->asked
            && ngx_current_msec - l->asked < ccf->timeout)
        {
            rc = NGX_AGAIN;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_apikey_lease_unspend(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash)
{
    ngx_http_apikey_cache_t  *cache;
    ngx_http_apikey_lease_t  *l;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    l = ngx_http_apikey_lease_of(cache, hash);

    if (l != NULL) {

        /* after the lease's end, or a change, it goes back to Redis */

        if (l->until > ngx_http_apikey_cache_now()) {
            l->tokens++;

        } else {
            l->back++;
        }

        if (l->used) {
            l->used--;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* the lease of a secret's bucket, with the zone locked */

static ngx_http_apikey_lease_t *
ngx_http_apikey_lease_of(ngx_http_apikey_cache_t *cache, u_char *hash)
{
    ngx_http_apikey_cache_node_t  *cn;

    cn = ngx_http_apikey_cache_lookup(cache, hash);

    if (cn != NULL) {
        cn = ngx_http_apikey_cache_bucket(cache, cn);
    }

    return (cn != NULL) ? cn->lease : NULL;
}


/* a record changed: the lease ends, with the new record */

void
ngx_http_apikey_lease_move(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *old, ngx_http_apikey_cache_node_t *cn)
{
    ngx_http_apikey_lease_t  *l;

    l = old->lease;

    if (l == NULL) {
        return;
    }

    old->lease = NULL;

    if (old->rate == cn->rate && old->per == cn->per
        && old->burst == cn->burst)
    {
        l->back += l->tokens;

    } else {

        /* Redis refilled the bucket: nothing taken from it is left */

        l->back = 0;
    }

    l->tokens = 0;
    l->until = 0;
    l->asked = 0;
    l->epoch = ++cache->sh->epoch;
    l->node = cn;

    cn->lease = l;
}


void
ngx_http_apikey_lease_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn)
{
    ngx_queue_remove(&cn->lease->queue);
    ngx_slab_free_locked(cache->shpool, cn->lease);

    cn->lease = NULL;
}


ngx_int_t
ngx_http_apikey_lease_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf)
{
    if (ccf->shm_zone == NULL || ccf->lease == 0) {
        return NGX_OK;
    }

    ngx_http_apikey_lease_backs = ngx_palloc(cycle->pool,
                                      NGX_HTTP_APIKEY_LEASE_BACKS
                                      * sizeof(ngx_http_apikey_lease_back_t));
    if (ngx_http_apikey_lease_backs == NULL) {
        return NGX_ERROR;
    }

    ngx_http_apikey_lease_conf = ccf;

    /* nginx's debug log reads a timer's data as a connection */

    ngx_http_apikey_lease_conn.fd = (ngx_socket_t) -1;

    ngx_http_apikey_lease_event.handler = ngx_http_apikey_lease_sweep;
    ngx_http_apikey_lease_event.data = &ngx_http_apikey_lease_conn;
    ngx_http_apikey_lease_event.log = cycle->log;
    ngx_http_apikey_lease_event.cancelable = 1;

    ngx_add_timer(&ngx_http_apikey_lease_event, NGX_HTTP_APIKEY_LEASE_SWEEP);

    return NGX_OK;
}


void
ngx_http_apikey_lease_exit(void)
{
    if (ngx_http_apikey_lease_event.timer_set) {
        ngx_del_timer(&ngx_http_apikey_lease_event);
    }
}


/*
 * Leases that ended and were not renewed give their tokens back; what
 * leases let through is tallied once a second; leases of keys no longer
 * used go.
 */

static void
ngx_http_apikey_lease_sweep(ngx_event_t *ev)
{
    u_char                         hex[64];
    int64_t                        now;
    ngx_uint_t                     i, n;
    ngx_msec_t                     ms;
    ngx_queue_t                   *q, *next;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_lease_t       *l;
    ngx_http_apikey_cache_conf_t  *ccf;
    ngx_http_apikey_lease_back_t  *lb;

    ccf = ngx_http_apikey_lease_conf;
    cache = ccf->shm_zone->data;

    ms = ngx_current_msec;
    now = ngx_http_apikey_cache_now();
    n = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (ms - cache->sh->swept < NGX_HTTP_APIKEY_LEASE_SWEEP) {
        goto done;
    }

    cache->sh->swept = ms;

    for (q = ngx_queue_head(&cache->sh->leases);
         q != ngx_queue_sentinel(&cache->sh->leases);
         q = next)
    {
        next = ngx_queue_next(q);

        l = ngx_queue_data(q, ngx_http_apikey_lease_t, queue);

        if (l->tokens && now >= l->until + NGX_HTTP_APIKEY_LEASE_LATE) {
            l->back += l->tokens;
            l->tokens = 0;
        }

        if ((l->back
             || (l->used && now >= l->told + NGX_HTTP_APIKEY_LEASE_TELL))
            && n < NGX_HTTP_APIKEY_LEASE_BACKS)
        {
            lb = &ngx_http_apikey_lease_backs[n++];

            ngx_memcpy(lb->hash, l->node->hash, 32);
            lb->back = l->back;
            lb->used = l->used;
            lb->lim[0] = l->node->rate;
            lb->lim[1] = l->node->per;
            lb->lim[2] = l->node->burst;

            l->back = 0;
            l->used = 0;
            l->told = now;
        }

        if (l->tokens == 0 && l->back == 0 && l->used == 0
            && (l->asked == 0 || ms - l->asked >= ccf->timeout)
            && now >= l->until + NGX_HTTP_APIKEY_LEASE_IDLE)
        {
            ngx_http_apikey_lease_free(cache, l->node);
        }
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    for (i = 0; i < n; i++) {
        lb = &ngx_http_apikey_lease_backs[i];

        ngx_hex_dump(hex, lb->hash, 32);

        if (lb->back) {
            ngx_http_apikey_tally_back(hex, lb->back, lb->lim);
        }

        if (lb->used) {
            ngx_http_apikey_tally_used(hex, lb->used);
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_LEASE_SWEEP);
    }
}
