
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
 * one worker (ngx_http_apikey_cache_sync.c); every worker reads it
 * (ngx_http_apikey_cache.c).  The zone also holds the instance's buckets
 * and leases (ngx_http_apikey_bucket.c), which this file never touches.
 */


#define NGX_HTTP_APIKEY_CACHE_ID_LEN   48      /* a stream entry id */

/* a replica that heard from Redis this recently is current (ms) */
#define NGX_HTTP_APIKEY_CACHE_FRESH    1000

/* zone bytes a record takes: one index bucket each */
#define NGX_HTTP_APIKEY_CACHE_RECORD   192

/* larger records are the slab's, in its powers of two */
#define NGX_HTTP_APIKEY_CACHE_SLOT_MAX 1024


typedef struct {
    ngx_shm_zone_t                *shm_zone;     /* NULL: no apikey_cache */
    ngx_msec_t                     max_stale;
    ngx_msec_t                     lease;        /* 0: apikey_rate_lease off */
    ngx_msec_t                     timeout;      /* apikey_redis_timeout */
} ngx_http_apikey_cache_conf_t;


/*
 * A secret's record.  "version" counts the zone's changes: a bucket kept
 * for the key (ngx_http_apikey_bucket.c) knows the record changed when
 * the version it saw is not the record's any more.  A record that did not
 * fit the zone stays as a "missing" one, hash alone, so that the replica
 * knows the key exists and leaves it to Redis.  "stamp" is the change
 * log's position the record is as new as: a record read earlier never
 * replaces it (the instance's own change, applied at once, is newer than
 * what the reader read just before it), and a secret the instance itself
 * deleted stays "gone" until the reader is past that deletion.  The
 * records are found through a hash index, a bucket per
 * NGX_HTTP_APIKEY_CACHE_RECORD bytes of the zone chosen by the hash's
 * first bytes (a digest: uniform already), and chained through "next".
 */

typedef struct ngx_http_apikey_cache_node_s  ngx_http_apikey_cache_node_t;

struct ngx_http_apikey_cache_node_s {
    ngx_http_apikey_cache_node_t  *next;         /* in the index's bucket */
    uint64_t                       stamp;        /* change log position */
    uint64_t                       version;
    uint32_t                       exp;          /* Unix seconds, 0: none */
    uint32_t                       grace;
    uint32_t                       load;         /* the load that wrote it */
    uint32_t                       rate;
    uint32_t                       per;
    uint32_t                       burst;
    u_char                         hash[32];
    u_short                        len;          /* of g */
    unsigned                       revoked:1;
    unsigned                       has_c:1;      /* c follows g */
    unsigned                       missing:1;    /* no g: did not fit */
    unsigned                       gone:1;       /* no g: deleted */
    u_char                         g[1];         /* then c, 32 bytes */
};


/* pages of records of one size (ngx_http_apikey_cache_alloc.c) */
typedef struct ngx_http_apikey_cache_page_s  ngx_http_apikey_cache_page_t;


typedef struct {
    ngx_http_apikey_cache_node_t **index;        /* by the hash's start */
    ngx_uint_t                     mask;         /* buckets - 1 */
    uint32_t                       load;         /* the latest load */
    uint64_t                       version;      /* changes applied */
    ngx_uint_t                     keys;
    ngx_uint_t                     bytes;        /* of the records */
    ngx_uint_t                     missing;      /* records that did not fit */
    ngx_uint_t                     lost;         /* not even as missing */
    ngx_uint_t                     reloads;
    uint64_t                       synced;       /* ms, monotonic: last reply */
    int64_t                        clock;        /* ms, Redis's, at clock_at */
    uint64_t                       clock_at;     /* ms, monotonic */
    ngx_pid_t                      reader;
    u_char                         last[NGX_HTTP_APIKEY_CACHE_ID_LEN];
    ngx_uint_t                     swept;        /* buckets swept */
    ngx_http_apikey_cache_page_t  *pages[NGX_HTTP_APIKEY_CACHE_SLOT_MAX / 8];
    void                          *bucket;       /* ngx_http_apikey_bucket.c */
    void                          *org;          /* ngx_http_apikey_org.c */
    uint32_t                       org_lost;     /* a load whose limited
                                                    organizations did not
                                                    all fit */
    unsigned                       loaded:1;     /* a load completed */
    unsigned                       loading:1;
    unsigned                       sweeping:1;   /* stale records left */
    unsigned                       warned:1;
} ngx_http_apikey_cache_sh_t;


typedef struct {
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_slab_pool_t               *shpool;
    size_t                         size;
    ngx_str_t                      name;
} ngx_http_apikey_cache_t;


/*
 * What the replica tells of a valid secret's bucket: the secret that
 * holds it (the key's current one), the version of that secret's record,
 * and its limit.
 */

typedef struct {
    u_char                         hash[32];
    uint64_t                       version;
    uint32_t                       rate;
    uint32_t                       per;
    uint32_t                       burst;
} ngx_http_apikey_cache_rec_t;


char *ngx_http_apikey_cache_directive(ngx_conf_t *cf,
    ngx_http_apikey_cache_conf_t *ccf);

/*
 * The functions below name a secret by its hash, the 32 bytes of SHA-256
 * (the gate keeps it with the hex form, ctx->bin).
 *
 * The replica's answer for a secret: NGX_OK with *result INVALID,
 * REVOKED, EXPIRED or OK and, unless INVALID, its "g" copied into the
 * pool and what rec describes; NGX_DECLINED when Redis must answer (the
 * replica is not current, or, "offline", too stale for Redis being
 * unreachable; or the secret's record did not fit the zone).
 */
ngx_int_t ngx_http_apikey_cache_find(ngx_http_apikey_cache_conf_t *ccf,
    ngx_pool_t *pool, u_char *hash, ngx_uint_t offline, ngx_uint_t *result,
    ngx_str_t *g, ngx_http_apikey_cache_rec_t *rec);

/*
 * With the zone locked: whether the bucket held by the record of hash is
 * still as version says (NGX_OK), its limit changed (NGX_ABORT: Redis
 * refilled it), or the record changed otherwise or is gone (NGX_DECLINED).
 */
ngx_int_t ngx_http_apikey_cache_current_locked(ngx_http_apikey_cache_t *cache,
    u_char *hash, uint64_t version, uint32_t *limit);

/* microseconds and milliseconds of a monotonic clock, one for the host */
int64_t ngx_http_apikey_cache_now(void);
uint64_t ngx_http_apikey_cache_msec(void);

ngx_int_t ngx_http_apikey_cache_unhex(u_char *dst, u_char *src, size_t len);


/* ngx_http_apikey_cache.c, for the reader and the admin API */

void ngx_http_apikey_cache_begin_load(ngx_http_apikey_cache_t *cache);

/*
 * A secret's record as Redis had it at the change log's position stamp
 * (ngx_http_apikey_cache_stamp()): g empty for a secret that is gone,
 * kept as gone with "mark" (the instance's own deletion).  A record of a
 * later position stays.  Returns NGX_DECLINED when it did not fit the
 * zone.
 */
ngx_int_t ngx_http_apikey_cache_apply(ngx_http_apikey_cache_t *cache,
    ngx_str_t *hex, ngx_str_t *g, ngx_str_t *c, uint64_t stamp,
    ngx_uint_t mark);

/*
 * refill is told of a bucket tokens were given back to (the change log's
 * "b" entries), so that the instance asks Redis again
 */
typedef void (*ngx_http_apikey_cache_refill_pt)(
    ngx_http_apikey_cache_conf_t *ccf, u_char *hash);

/*
 * The records of a reply from element "from" on, (hash, g, c) threes as
 * the change log's reader reads them, applied as above; returns how many
 */
ngx_uint_t ngx_http_apikey_cache_apply_reply(ngx_http_apikey_cache_conf_t *ccf,
    redisReply *reply, size_t from, uint64_t stamp, ngx_uint_t mark,
    ngx_http_apikey_cache_refill_pt refill);

/* a change log entry's id, "ms-seq", as a number that orders them */
uint64_t ngx_http_apikey_cache_stamp(u_char *id, size_t len);

void ngx_http_apikey_cache_end_load(ngx_http_apikey_cache_t *cache,
    u_char *last, size_t len, ngx_log_t *log);

/* removes a slice of the records a load left stale; 1 when more are left */
ngx_uint_t ngx_http_apikey_cache_sweep(ngx_http_apikey_cache_t *cache);


/*
 * ngx_http_apikey_cache_alloc.c: a record's room in the zone, locked, and
 * what a record of size takes there
 */

void *ngx_http_apikey_cache_alloc_locked(ngx_http_apikey_cache_t *cache,
    size_t size);
void ngx_http_apikey_cache_free_locked(ngx_http_apikey_cache_t *cache,
    void *p, size_t size);
size_t ngx_http_apikey_cache_slot(size_t size);
size_t ngx_http_apikey_cache_room(void *p, size_t size);


/* ngx_http_apikey_cache_sync.c: the reader, in one worker */

ngx_int_t ngx_http_apikey_cache_sync_init(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf, ngx_http_apikey_redis_conf_t *rcf,
    ngx_http_apikey_cache_refill_pt refill);
void ngx_http_apikey_cache_sync_exit(void);
ngx_int_t ngx_http_apikey_cache_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);


#endif /* _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_ */
