
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"


/*
 * apikey_cache: the nginx instance's replica of every key's gate record
 * (the "g" and "c" fields of each secret, docs/data-model.md) in a shared
 * memory zone, loaded from Redis and kept current from the change log by
 * one worker (ngx_http_apikey_cache_sync.c); every worker answers from it
 * (ngx_http_apikey_cache.c).
 */


#define NGX_HTTP_APIKEY_CACHE_ID_LEN   48      /* a stream entry id */

/* a replica that heard from Redis this recently is current */
#define NGX_HTTP_APIKEY_CACHE_FRESH    1000


typedef struct {
    ngx_shm_zone_t                *shm_zone;     /* NULL: no apikey_cache */
    ngx_msec_t                     max_stale;
    ngx_msec_t                     lease;        /* 0: apikey_rate_lease off */
    ngx_msec_t                     timeout;      /* apikey_redis_timeout */
} ngx_http_apikey_cache_conf_t;


typedef struct ngx_http_apikey_cache_node_s  ngx_http_apikey_cache_node_t;


/*
 * Tokens the instance took from a key's Redis bucket at once
 * (apikey_rate_lease, ngx_http_apikey_lease.c), kept with the record that
 * holds the key's bucket while the key has some, or had lately.
 */

typedef struct {
    ngx_queue_t                    queue;        /* in sh->leases */
    ngx_http_apikey_cache_node_t  *node;
    int64_t                        until;        /* us: the lease ends */
    uint64_t                       asked;        /* ms: a lease asked for */
    uint32_t                       epoch;        /* of the record's change */
    int64_t                        told;         /* us: used last tallied */
    uint32_t                       tokens;       /* not spent */
    uint32_t                       back;         /* to give back */
    uint32_t                       used;         /* spent, not tallied yet */
} ngx_http_apikey_lease_t;


/*
 * The lease a check asks Redis for: want 0 for none; a sibling, a check
 * sent while another of the instance asks for the key's lease, wants
 * none but may spend that lease's tokens when Redis finds the bucket
 * empty.
 */

typedef struct {
    uint32_t                       want;         /* tokens, this one's too */
    uint32_t                       sibling;
    uint32_t                       spent;        /* take() spent a leased one */
    uint32_t                       back;
    uint32_t                       epoch;
    uint32_t                       rate;         /* the limit taken under */
    uint32_t                       per;
    uint32_t                       burst;
} ngx_http_apikey_lease_ask_t;


struct ngx_http_apikey_cache_node_s {
    ngx_rbtree_node_t              node;         /* key: the hash's start */
    ngx_http_apikey_lease_t       *lease;
    int64_t                        tat;          /* bucket, us; 0: none */
    time_t                         exp;
    time_t                         grace;
    uint32_t                       gen;          /* load that wrote it */
    uint32_t                       rate;
    uint32_t                       per;
    uint32_t                       burst;
    u_char                         hash[32];
    u_short                        len;          /* of g */
    unsigned                       revoked:1;
    unsigned                       has_c:1;      /* c follows g */
    u_char                         g[1];         /* then c, 32 bytes */
};


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    uint32_t                       gen;          /* the latest load */
    ngx_uint_t                     keys;
    ngx_uint_t                     bytes;        /* of the records */
    ngx_uint_t                     missing;      /* did not fit the zone */
    ngx_uint_t                     reloads;
    uint64_t                       synced;       /* ms, last reply */
    ngx_pid_t                      reader;
    ngx_queue_t                    leases;
    uint32_t                       epoch;        /* changes of records */
    uint64_t                       swept;        /* ms, the last sweep */
    u_char                         last[NGX_HTTP_APIKEY_CACHE_ID_LEN];
    unsigned                       loaded:1;     /* a load completed */
    unsigned                       loading:1;
    unsigned                       warned:1;
} ngx_http_apikey_cache_sh_t;


typedef struct {
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_slab_pool_t               *shpool;
    size_t                         size;
    ngx_str_t                      name;
} ngx_http_apikey_cache_t;


char *ngx_http_apikey_cache_directive(ngx_conf_t *cf,
    ngx_http_apikey_cache_conf_t *ccf);

/*
 * The functions below name a secret by its hash, the 32 bytes of SHA-256
 * (the gate keeps it with the hex form, ctx->bin).
 *
 * The replica's answer for a secret: NGX_OK with
 * *result INVALID, REVOKED, EXPIRED or OK and, unless INVALID, its "g"
 * copied into the pool; NGX_DECLINED when Redis must answer (the replica
 * is not current, or, "offline", too stale for Redis being unreachable).
 * For an OK key the instance holds a lease of, a token of it is taken at
 * once, with one look-up: *leased is then the bucket's ahead (us) for the
 * rate headers, else -1.  A check that goes on to refuse the key gives
 * the token back (ngx_http_apikey_lease_unspend()).
 */
ngx_int_t ngx_http_apikey_cache_find(ngx_http_apikey_cache_conf_t *ccf,
    ngx_pool_t *pool, u_char *hash, ngx_uint_t offline, ngx_uint_t *result,
    ngx_str_t *g, int64_t *leased);

/*
 * The bucket of a secret the replica found valid: NGX_OK with *limited
 * and *ahead (us) when the replica can answer, NGX_DECLINED when Redis
 * must.  A token leased to the instance is spent first; past those,
 * online it answers only a bucket known to be empty, and declines with
 * the lease to ask Redis for in *ask (want 0: none); offline it takes a
 * token from the instance's own bucket.
 */
ngx_int_t ngx_http_apikey_cache_take(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash, ngx_uint_t offline, ngx_uint_t *limited, int64_t *ahead,
    ngx_http_apikey_lease_ask_t *ask);

/* what Redis said of a secret's bucket at a time not after its check */
void ngx_http_apikey_cache_note(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash, int64_t tat);

/*
 * What Redis answered a check that asked for a lease: n tokens taken (0
 * when it took none), this request's one among them.
 */
void ngx_http_apikey_lease_grant(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash, ngx_http_apikey_lease_ask_t *ask, ngx_uint_t n);

/*
 * A token the instance holds of the secret's lease, for a sibling Redis
 * found no token for: NGX_OK with *ahead; NGX_AGAIN when there is none
 * yet but the lease is still being asked for; else NGX_DECLINED.
 */
ngx_int_t ngx_http_apikey_lease_take(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash, int64_t *ahead);

/* a token find() took that the check did not use goes back to the lease */
void ngx_http_apikey_lease_unspend(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash);

/* microseconds of the wall clock */
int64_t ngx_http_apikey_cache_now(void);


/* ngx_http_apikey_cache.c, for the reader and the leases */

ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_lookup(
    ngx_http_apikey_cache_t *cache, u_char *hash);
ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_bucket(
    ngx_http_apikey_cache_t *cache, ngx_http_apikey_cache_node_t *cn);
ngx_int_t ngx_http_apikey_cache_unhex(u_char *dst, u_char *src, size_t len);

void ngx_http_apikey_cache_begin_load(ngx_http_apikey_cache_t *cache);
ngx_int_t ngx_http_apikey_cache_apply(ngx_http_apikey_cache_t *cache,
    ngx_str_t *hex, ngx_str_t *g, ngx_str_t *c);
void ngx_http_apikey_cache_end_load(ngx_http_apikey_cache_t *cache,
    u_char *last, size_t len, ngx_log_t *log);


/* ngx_http_apikey_lease.c, with the zone locked */

ngx_int_t ngx_http_apikey_lease_spend(ngx_http_apikey_cache_node_t *b,
    int64_t now, int64_t *ahead);
void ngx_http_apikey_lease_ask(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_node_t *b, int64_t now,
    ngx_http_apikey_lease_ask_t *ask);
void ngx_http_apikey_lease_move(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *old, ngx_http_apikey_cache_node_t *cn);
void ngx_http_apikey_lease_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn);

/* the sweep of ended leases, in every worker */
ngx_int_t ngx_http_apikey_lease_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf);
void ngx_http_apikey_lease_exit(void);


/* ngx_http_apikey_cache_sync.c: the reader, in one worker */

ngx_int_t ngx_http_apikey_cache_sync_init(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf, ngx_http_apikey_redis_conf_t *rcf);
void ngx_http_apikey_cache_sync_exit(void);
ngx_int_t ngx_http_apikey_cache_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);


#endif /* _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_ */
