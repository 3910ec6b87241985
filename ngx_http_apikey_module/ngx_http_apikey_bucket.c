
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_bucket.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_tally.h"
#include "ngx_http_apikey_timer.h"


/*
 * The instance's view of each key's Redis bucket, kept in the replica's
 * zone beside the records, as limit_req keeps lookup, expiry and
 * accounting together.  Times are microseconds of the host's monotonic
 * clock, so that every worker reads the same one, and differences are
 * signed.
 *
 * tat is the bucket's theoretical arrival time as Redis last told it (or
 * as the instance's own takes moved it while Redis was unreachable):
 * nothing but an admin change can bring a bucket back sooner, or tokens
 * given back (the change log's "b" entries clear tat then), so a bucket
 * it shows empty is empty, and answered 429 here.  When it shows one
 * token left at most, one check of the instance asks Redis for it and
 * the others are answered 429 until that reply.
 *
 * apikey_rate_lease: a check that finds no token leased to the instance
 * asks Redis for up to TIME's worth of the key's rate (at most its burst,
 * at most what the bucket holds); the tokens past its own are kept here,
 * and the instance's workers spend them with no Redis call.  One lease
 * per key is asked for at a time.  A lease ends TIME after Redis granted
 * it: what is left goes back with the next lease asked for, or through
 * the sweep; Redis takes back only what cannot exceed the bucket
 * (docs/data-model.md).  A change of the key's record ends the lease: its
 * tokens go back, or are dropped when the limit changed (Redis then
 * refilled the bucket).
 *
 * What a lease lets through is counted with it, once a second a key, by
 * the sweep, which every worker arms and the first due does for the
 * instance; it hands the counts and the tokens to give back to its
 * worker's tally (ngx_http_apikey_tally.c).
 */


#define NGX_HTTP_APIKEY_BUCKET_SWEEP    100        /* ms */
#define NGX_HTTP_APIKEY_BUCKET_LATE     100000     /* us: a request renews */
#define NGX_HTTP_APIKEY_BUCKET_IDLE     10000000   /* us: then it goes */
#define NGX_HTTP_APIKEY_BUCKET_TELL     900000     /* us: uses tallied */
#define NGX_HTTP_APIKEY_BUCKET_BACKS    256        /* told per sweep */


typedef struct {
    ngx_rbtree_node_t              node;
    ngx_queue_t                    queue;
    u_char                         hash[32];
    uint64_t                       version;      /* of its record */
    uint32_t                       limit[3];     /* rate, per, burst */
    int64_t                        tat;          /* 0: none known */
    int64_t                        probe;        /* a check asks for a token */
    int64_t                        seen;

    int64_t                        until;        /* the lease ends */
    int64_t                        asked;        /* 0: no lease asked for */
    uint32_t                       serial;       /* of that ask */
    uint32_t                       tokens;       /* leased, not spent */
    int64_t                        taken;        /* Redis us, of tokens */
    uint32_t                       back;         /* to give back */
    int64_t                        back_taken;   /* Redis us, of back */
    uint32_t                       used;         /* spent, not told yet */
    int64_t                        told;
    int64_t                        quota_until;  /* the quota is used up */
} ngx_http_apikey_bucket_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    all;
    uint32_t                       serial;
    int64_t                        swept;
} ngx_http_apikey_bucket_sh_t;


typedef struct {
    u_char                         hash[32];
    uint32_t                       back;
    int64_t                        taken;
    uint32_t                       used;
    uint32_t                       limit[3];
} ngx_http_apikey_bucket_told_t;


static ngx_http_apikey_bucket_sh_t *ngx_http_apikey_bucket_sh(
    ngx_http_apikey_cache_t *cache);
static ngx_http_apikey_bucket_t *ngx_http_apikey_bucket_lookup(
    ngx_http_apikey_bucket_sh_t *bsh, u_char *hash);
static ngx_http_apikey_bucket_t *ngx_http_apikey_bucket_get(
    ngx_http_apikey_cache_t *cache, ngx_http_apikey_cache_rec_t *rec,
    ngx_uint_t create);
static void ngx_http_apikey_bucket_end(ngx_http_apikey_bucket_t *b,
    ngx_uint_t refilled);
static void ngx_http_apikey_bucket_give(ngx_http_apikey_bucket_t *b,
    uint32_t n, int64_t taken);
static void ngx_http_apikey_bucket_ask(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_bucket_sh_t *bsh, ngx_http_apikey_bucket_t *b,
    int64_t now, ngx_http_apikey_lease_ask_t *ask);
static ngx_int_t ngx_http_apikey_bucket_spend(ngx_http_apikey_bucket_t *b,
    int64_t now, int64_t *ahead);
static void ngx_http_apikey_bucket_sweep(ngx_event_t *ev);
static void ngx_http_apikey_bucket_tell(ngx_uint_t all);
static void ngx_http_apikey_bucket_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);


static ngx_http_apikey_cache_conf_t   *ngx_http_apikey_bucket_conf;
static ngx_event_t                     ngx_http_apikey_bucket_event;
static ngx_http_apikey_bucket_told_t  *ngx_http_apikey_bucket_told;

static void ngx_http_apikey_bucket_exit_tell(ngx_http_apikey_bucket_t *b);
static void ngx_http_apikey_bucket_last_tell(ngx_event_t *ev);
static void ngx_http_apikey_bucket_send_told(
    ngx_http_apikey_bucket_told_t *bt);
static ngx_event_t  ngx_http_apikey_bucket_last;


/* the buckets' part of the zone, made on first use (zone locked) */

static ngx_http_apikey_bucket_sh_t *
ngx_http_apikey_bucket_sh(ngx_http_apikey_cache_t *cache)
{
    ngx_http_apikey_bucket_sh_t  *bsh;

    bsh = cache->sh->bucket;

    if (bsh != NULL) {
        return bsh;
    }

    bsh = ngx_slab_calloc_locked(cache->shpool,
                                 sizeof(ngx_http_apikey_bucket_sh_t));
    if (bsh == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&bsh->rbtree, &bsh->sentinel,
                    ngx_http_apikey_bucket_rbtree_insert_value);
    ngx_queue_init(&bsh->all);

    cache->sh->bucket = bsh;

    return bsh;
}


static ngx_http_apikey_bucket_t *
ngx_http_apikey_bucket_lookup(ngx_http_apikey_bucket_sh_t *bsh, u_char *hash)
{
    ngx_int_t                  rc;
    ngx_rbtree_key_t           key;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_apikey_bucket_t  *b;

    ngx_memcpy(&key, hash, sizeof(ngx_rbtree_key_t));

    node = bsh->rbtree.root;
    sentinel = bsh->rbtree.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        b = (ngx_http_apikey_bucket_t *) node;

        rc = ngx_memcmp(hash, b->hash, 32);

        if (rc == 0) {
            return b;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * The bucket of a record, held to the record as rec describes it: a
 * newer version ends the lease taken for the older one.
 */

static ngx_http_apikey_bucket_t *
ngx_http_apikey_bucket_get(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_rec_t *rec, ngx_uint_t create)
{
    ngx_http_apikey_bucket_t     *b;
    ngx_http_apikey_bucket_sh_t  *bsh;

    bsh = ngx_http_apikey_bucket_sh(cache);
    if (bsh == NULL) {
        return NULL;
    }

    b = ngx_http_apikey_bucket_lookup(bsh, rec->hash);

    if (b != NULL) {

        if (rec->version > b->version) {
            ngx_http_apikey_bucket_end(b, b->limit[0] != rec->rate
                                          || b->limit[1] != rec->per
                                          || b->limit[2] != rec->burst);

            b->version = rec->version;
            b->limit[0] = rec->rate;
            b->limit[1] = rec->per;
            b->limit[2] = rec->burst;

            /* a new quota, or none: Redis tells again */

            b->quota_until = 0;
        }

        return b;
    }

    if (!create) {
        return NULL;
    }

    b = ngx_slab_calloc_locked(cache->shpool,
                               sizeof(ngx_http_apikey_bucket_t));
    if (b == NULL) {
        return NULL;
    }

    ngx_memcpy(b->hash, rec->hash, 32);
    ngx_memcpy(&b->node.key, rec->hash, sizeof(ngx_rbtree_key_t));

    b->version = rec->version;
    b->limit[0] = rec->rate;
    b->limit[1] = rec->per;
    b->limit[2] = rec->burst;

    ngx_rbtree_insert(&bsh->rbtree, &b->node);
    ngx_queue_insert_tail(&bsh->all, &b->queue);

    return b;
}


/*
 * The record changed: the lease ends.  Its tokens go back, or, when the
 * limit changed and Redis refilled the bucket, nothing taken from it is
 * left, and what the instance knew of it is void.
 */

static void
ngx_http_apikey_bucket_end(ngx_http_apikey_bucket_t *b, ngx_uint_t refilled)
{
    if (refilled) {
        b->tokens = 0;
        b->back = 0;
        b->tat = 0;

    } else {
        ngx_http_apikey_bucket_give(b, b->tokens, b->taken);
        b->tokens = 0;
    }

    b->until = 0;
    b->asked = 0;
    b->probe = 0;
    b->serial = 0;
}


/*
 * n tokens taken at Redis time "taken" are to go back; with others that
 * wait, as taken at the earlier time, which gives back no more than
 * either would alone
 */

static void
ngx_http_apikey_bucket_give(ngx_http_apikey_bucket_t *b, uint32_t n,
    int64_t taken)
{
    if (n == 0) {
        return;
    }

    if (b->back == 0 || taken < b->back_taken) {
        b->back_taken = taken;
    }

    b->back += n;
}


ngx_int_t
ngx_http_apikey_bucket_take(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, ngx_uint_t offline,
    ngx_uint_t *limited, int64_t *ahead, ngx_uint_t *spent,
    ngx_http_apikey_lease_ask_t *ask)
{
    double                         step;
    int64_t                        now, tat;
    ngx_int_t                      rc;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_bucket_t      *b;
    ngx_http_apikey_bucket_sh_t   *bsh;

    cache = ccf->shm_zone->data;

    ask->want = 0;
    ask->sibling = 0;
    ask->back = 0;
    *spent = 0;

    if (rec->rate == 0 || rec->per == 0 || rec->burst == 0) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;
    now = ngx_http_apikey_cache_now();
    step = (double) rec->per * 1000000 / rec->rate;

    ngx_shmtx_lock(&cache->shpool->mutex);

    b = ngx_http_apikey_bucket_get(cache, rec, 1);
    bsh = cache->sh->bucket;

    if (b == NULL) {

        /* the zone is full: Redis answers, or, offline, the fail mode */

        goto done;
    }

    b->seen = now;

    if (ngx_http_apikey_bucket_spend(b, now, ahead) == NGX_OK) {
        *spent = 1;
        *limited = 0;
        rc = NGX_OK;
        goto done;
    }

    /* the gate script's GCRA (ngx_http_apikey_gate.lua) on this clock */

    tat = ngx_max(b->tat, now);

    if (tat - now > ((double) rec->burst - 1) * step + 1) {
        *limited = 1;
        *ahead = tat - now;
        rc = NGX_OK;
        goto done;
    }

    if (!offline) {

        if (b->tat && tat - now > ((double) rec->burst - 2) * step) {

            /*
             * one token, at most: one check of the instance asks Redis
             * for it, the others wait for the next
             */

            if (b->probe
                && now - b->probe < (int64_t) ccf->timeout * 1000)
            {
                *limited = 1;
                *ahead = (int64_t) (((double) rec->burst - 1) * step) + 1;
                rc = NGX_OK;
                goto done;
            }

            b->probe = now;
        }

        if (ccf->lease) {
            ngx_http_apikey_bucket_ask(ccf, bsh, b, now, ask);
        }

        goto done;
    }

    tat = (int64_t) ((double) tat + step + 0.999999);

    b->tat = tat;

    *limited = 0;
    *ahead = tat - now;
    rc = NGX_OK;

done:

    ngx_http_apikey_bucket_exit_tell(b);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * A token of the instance's lease, if it holds one; the rate headers
 * count the tokens it still holds as the bucket's.
 */

static ngx_int_t
ngx_http_apikey_bucket_spend(ngx_http_apikey_bucket_t *b, int64_t now,
    int64_t *ahead)
{
    double   held;
    int64_t  a;

    if (b->tokens == 0 || now >= b->until || b->limit[0] == 0) {
        return NGX_DECLINED;
    }

    b->tokens--;
    b->used++;

    a = b->tat - now;
    held = b->tokens * ((double) b->limit[1] * 1000000 / b->limit[0]);

    *ahead = (held < (double) a) ? a - (int64_t) held : 0;

    return NGX_OK;
}


/*
 * The lease a check that Redis must answer asks for: none for a key whose
 * lease would be one token, or while another check of the instance asks.
 */

static void
ngx_http_apikey_bucket_ask(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_bucket_sh_t *bsh, ngx_http_apikey_bucket_t *b,
    int64_t now, ngx_http_apikey_lease_ask_t *ask)
{
    uint64_t  size;

    size = (uint64_t) ccf->lease * b->limit[0]
           / ((uint64_t) b->limit[1] * 1000);

    if (size > b->limit[2]) {
        size = b->limit[2];
    }

    /* a worker that shuts down takes no lease: it could not tell of it */

    if (size < 2 || ngx_exiting) {
        return;
    }

    ask->rate = b->limit[0];
    ask->per = b->limit[1];
    ask->burst = b->limit[2];

    if (b->asked && now - b->asked < (int64_t) ccf->timeout * 1000) {
        ask->sibling = 1;
        return;
    }

    /* the lease ended: what is left of it goes back with this call */

    ngx_http_apikey_bucket_give(b, b->tokens, b->taken);
    b->tokens = 0;

    b->asked = now;
    b->serial = ++bsh->serial;

    ask->want = (uint32_t) size;
    ask->back = b->back;
    ask->taken = b->back_taken;
    ask->serial = b->serial;

    b->back = 0;
}


void
ngx_http_apikey_bucket_note(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t tat, int64_t quota_until)
{
    ngx_http_apikey_cache_t   *cache;
    ngx_http_apikey_bucket_t  *b;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    b = ngx_http_apikey_bucket_get(cache, rec, 1);

    if (b != NULL) {
        if (b->tat < tat) {
            b->tat = tat;
        }

        if (quota_until) {
            b->quota_until = quota_until;
        }

        b->probe = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * A quota Redis found used up stays so until its period ends: nothing but
 * a change of the key (a new record version) gives it units sooner, so
 * the instance answers its checks 429 until then (the bucket's own 429
 * first, as Redis would: a bucket known empty is asked of Redis).
 */

ngx_int_t
ngx_http_apikey_bucket_quota_out(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t *left)
{
    int64_t                    now;
    ngx_int_t                  rc;
    ngx_http_apikey_cache_t   *cache;
    ngx_http_apikey_bucket_t  *b;

    cache = ccf->shm_zone->data;
    now = ngx_http_apikey_cache_now();
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    b = ngx_http_apikey_bucket_get(cache, rec, 0);

    if (b != NULL && b->quota_until > now
        && (rec->rate == 0
            || b->tat - now <= ((double) rec->burst - 1) * rec->per
                               * 1000000 / rec->rate + 1))
    {
        b->seen = now;
        *left = b->quota_until - now;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_apikey_bucket_grant(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, ngx_http_apikey_lease_ask_t *ask,
    ngx_uint_t n, int64_t at)
{
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_bucket_t      *b;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    b = ngx_http_apikey_bucket_get(cache, rec, 0);

    if (b == NULL) {
        goto done;
    }

    if (n == 0 && at == 0) {

        /* the ask never reached Redis: what it gave back is still here */

        ngx_http_apikey_bucket_give(b, ask->back, ask->taken);

    } else {
        ngx_http_apikey_metric_add(lease_asks);
        ngx_http_apikey_metric_add_n(lease_back, ask->back);

        if (n > 1) {
            ngx_http_apikey_metric_add(lease_grants);
        }
    }

    if (b->serial != ask->serial || b->asked == 0) {

        /*
         * a lease of the record as it was before a change: its tokens
         * go back, unless the limit changed (Redis refilled the bucket)
         */

        if (n > 1 && b->limit[0] == ask->rate && b->limit[1] == ask->per
            && b->limit[2] == ask->burst)
        {
            ngx_http_apikey_bucket_give(b, n - 1, at);
        }

        goto done;
    }

    b->asked = 0;

    if (n > 1) {
        b->tokens = n - 1;
        b->taken = at;
        b->until = ngx_http_apikey_cache_now() + (int64_t) ccf->lease * 1000;
    }

done:

    ngx_http_apikey_bucket_exit_tell(b);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_int_t
ngx_http_apikey_bucket_sibling(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t *ahead)
{
    int64_t                        now;
    ngx_int_t                      rc;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_bucket_t      *b;

    cache = ccf->shm_zone->data;

    rc = NGX_DECLINED;
    now = ngx_http_apikey_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    b = ngx_http_apikey_bucket_get(cache, rec, 0);

    if (b != NULL) {
        rc = ngx_http_apikey_bucket_spend(b, now, ahead);

        if (rc == NGX_DECLINED && b->asked
            && now - b->asked < (int64_t) ccf->timeout * 1000)
        {
            rc = NGX_AGAIN;
        }
    }

    ngx_http_apikey_bucket_exit_tell(b);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_apikey_bucket_refill(ngx_http_apikey_cache_conf_t *ccf, u_char *hash)
{
    ngx_http_apikey_cache_t      *cache;
    ngx_http_apikey_bucket_t     *b;
    ngx_http_apikey_bucket_sh_t  *bsh;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    bsh = cache->sh->bucket;
    b = (bsh != NULL) ? ngx_http_apikey_bucket_lookup(bsh, hash) : NULL;

    if (b != NULL) {
        b->tat = 0;
        b->probe = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_int_t
ngx_http_apikey_bucket_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf)
{
    ngx_http_apikey_bucket_conf = NULL;

    if (ccf->shm_zone == NULL) {
        return NGX_OK;
    }

    ngx_http_apikey_bucket_told = ngx_palloc(cycle->pool,
                                      NGX_HTTP_APIKEY_BUCKET_BACKS
                                      * sizeof(ngx_http_apikey_bucket_told_t));
    if (ngx_http_apikey_bucket_told == NULL) {
        return NGX_ERROR;
    }

    ngx_http_apikey_bucket_conf = ccf;

    /*
     * the sweep runs with leases off too: a reload that turned them off
     * leaves leases of the old configuration to give back
     */

    ngx_http_apikey_timer_init(&ngx_http_apikey_bucket_event,
                               ngx_http_apikey_bucket_sweep, NULL, cycle->log);
    ngx_http_apikey_timer_init(&ngx_http_apikey_bucket_last,
                               ngx_http_apikey_bucket_last_tell, NULL,
                               cycle->log);

    ngx_add_timer(&ngx_http_apikey_bucket_event,
                  NGX_HTTP_APIKEY_BUCKET_SWEEP);

    return NGX_OK;
}


/*
 * A worker that shuts down runs no sweep after its last: when it has
 * granted, spent or given back tokens since (the replies to checks sent
 * before the shutdown began), every lease of its zone ends and all is
 * told once the replies of the moment are done (a posted event), for the
 * zone may be one no other worker uses any more (a reload changed or
 * removed it).  Called under the zone's lock.
 */

static void
ngx_http_apikey_bucket_exit_tell(ngx_http_apikey_bucket_t *b)
{
    if (!ngx_exiting || b == NULL
        || (b->used == 0 && b->back == 0 && b->tokens == 0)
        || ngx_http_apikey_bucket_last.posted)
    {
        return;
    }

    ngx_post_event(&ngx_http_apikey_bucket_last, &ngx_posted_events);
}


static void
ngx_http_apikey_bucket_last_tell(ngx_event_t *ev)
{
    if (ngx_http_apikey_bucket_conf != NULL) {
        ngx_http_apikey_bucket_tell(1);
    }
}


static void
ngx_http_apikey_bucket_send_told(ngx_http_apikey_bucket_told_t *bt)
{
    u_char  hex[64];

    ngx_hex_dump(hex, bt->hash, 32);

    if (bt->back) {
        ngx_http_apikey_tally_back(hex, bt->back, bt->taken, bt->limit);
    }

    if (bt->used) {
        ngx_http_apikey_tally_used(hex, bt->used);
    }
}


void
ngx_http_apikey_bucket_exiting(void)
{
    if (ngx_http_apikey_bucket_conf == NULL) {
        return;
    }

    ngx_http_apikey_bucket_tell(1);
}


void
ngx_http_apikey_bucket_exit(void)
{
    if (ngx_http_apikey_bucket_event.timer_set) {
        ngx_del_timer(&ngx_http_apikey_bucket_event);
    }

    if (ngx_http_apikey_bucket_last.posted) {
        ngx_delete_posted_event(&ngx_http_apikey_bucket_last);
    }

    ngx_http_apikey_bucket_conf = NULL;
}


static void
ngx_http_apikey_bucket_sweep(ngx_event_t *ev)
{
    ngx_http_apikey_bucket_tell(0);

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_BUCKET_SWEEP);
    }
}


/*
 * Leases that ended and were not renewed, or whose record changed, give
 * their tokens back; what leases let through is told once a second;
 * buckets of keys no longer used go.  "all": every lease ends now, and
 * every count is told (the worker is shutting down).
 */

static void
ngx_http_apikey_bucket_tell(ngx_uint_t all)
{
    int64_t                         now;
    ngx_int_t                       rc;
    ngx_uint_t                      i, n, more, told;
    ngx_queue_t                    *q, *next;
    ngx_http_apikey_cache_t        *cache;
    ngx_http_apikey_bucket_t       *b;
    ngx_http_apikey_bucket_sh_t    *bsh;
    ngx_http_apikey_bucket_told_t  *bt;

    cache = ngx_http_apikey_bucket_conf->shm_zone->data;

    now = ngx_http_apikey_cache_now();
    told = 0;

again:

    n = 0;
    more = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    bsh = cache->sh->bucket;

    if (bsh == NULL
        || (!all && now - bsh->swept
                    < NGX_HTTP_APIKEY_BUCKET_SWEEP * 1000 - 1000))
    {
        goto done;
    }

    bsh->swept = now;

    for (q = ngx_queue_head(&bsh->all);
         q != ngx_queue_sentinel(&bsh->all);
         q = next)
    {
        next = ngx_queue_next(q);

        b = ngx_queue_data(q, ngx_http_apikey_bucket_t, queue);

        rc = ngx_http_apikey_cache_current_locked(cache, b->hash, b->version,
                                                  b->limit);

        if (rc != NGX_OK) {
            ngx_http_apikey_bucket_end(b, rc == NGX_ABORT);
            b->version = 0;
        }

        if (b->tokens
            && (all || now >= b->until + NGX_HTTP_APIKEY_BUCKET_LATE))
        {
            ngx_http_apikey_bucket_give(b, b->tokens, b->taken);
            b->tokens = 0;
        }

        if (b->back || (b->used && (all || now - b->told
                                              >= NGX_HTTP_APIKEY_BUCKET_TELL)))
        {
            if (n == NGX_HTTP_APIKEY_BUCKET_BACKS) {
                more = 1;
                continue;
            }

            bt = &ngx_http_apikey_bucket_told[n++];

            ngx_memcpy(bt->hash, b->hash, 32);
            bt->back = b->back;
            bt->taken = b->back_taken;
            bt->used = b->used;
            ngx_memcpy(bt->limit, b->limit, sizeof(b->limit));

            b->back = 0;
            b->used = 0;
            b->told = now;
        }

        if (b->tokens == 0 && b->back == 0 && b->used == 0
            && (b->asked == 0
                || now - b->asked >= (int64_t) ngx_http_apikey_bucket_conf
                                                   ->timeout * 1000)
            && now - b->seen >= NGX_HTTP_APIKEY_BUCKET_IDLE
            && now >= b->until + NGX_HTTP_APIKEY_BUCKET_IDLE)
        {
            ngx_rbtree_delete(&bsh->rbtree, &b->node);
            ngx_queue_remove(&b->queue);
            ngx_slab_free_locked(cache->shpool, b);
        }
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    for (i = 0; i < n; i++) {
        ngx_http_apikey_bucket_send_told(&ngx_http_apikey_bucket_told[i]);
    }

    told += n;

    if (more) {
        goto again;
    }

    /*
     * the uses are the instance's, of up to a second (told every 0.9 s
     * plus a sweep): they go now, not with this worker's own counts
     */

    if (told) {
        ngx_http_apikey_tally_now();
    }
}


static void
ngx_http_apikey_bucket_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_http_apikey_bucket_t   *b, *bt;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            b = (ngx_http_apikey_bucket_t *) node;
            bt = (ngx_http_apikey_bucket_t *) temp;

            p = (ngx_memcmp(b->hash, bt->hash, 32) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
