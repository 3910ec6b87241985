
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
} ngx_http_apikey_cache_conf_t;


typedef struct {
    ngx_rbtree_node_t              node;         /* key: the hash's start */
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
} ngx_http_apikey_cache_node_t;


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
 * The replica's answer for a secret (lowercase hex hash): NGX_OK with
 * *result INVALID, REVOKED, EXPIRED or OK and, unless INVALID, its "g"
 * copied into the pool; NGX_DECLINED when Redis must answer (the replica
 * is not current, or, "offline", too stale for Redis being unreachable).
 */
ngx_int_t ngx_http_apikey_cache_find(ngx_http_apikey_cache_conf_t *ccf,
    ngx_pool_t *pool, u_char *hex, ngx_uint_t offline, ngx_uint_t *result,
    ngx_str_t *g);

/*
 * The bucket of a secret the replica found valid: NGX_OK with *limited
 * and *ahead (us) when the replica can answer, NGX_DECLINED when Redis
 * must.  Online it answers only a bucket known to be empty; offline it
 * takes a token from the instance's own bucket.
 */
ngx_int_t ngx_http_apikey_cache_take(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hex, ngx_uint_t offline, ngx_uint_t *limited, int64_t *ahead);

/* what Redis said of a secret's bucket at a time not after its check */
void ngx_http_apikey_cache_note(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hex, int64_t tat);

/* microseconds of the wall clock */
int64_t ngx_http_apikey_cache_now(void);


/* ngx_http_apikey_cache.c, for the reader */

void ngx_http_apikey_cache_begin_load(ngx_http_apikey_cache_t *cache);
ngx_int_t ngx_http_apikey_cache_apply(ngx_http_apikey_cache_t *cache,
    ngx_str_t *hex, ngx_str_t *g, ngx_str_t *c);
void ngx_http_apikey_cache_end_load(ngx_http_apikey_cache_t *cache,
    u_char *last, size_t len, ngx_log_t *log);


/* ngx_http_apikey_cache_sync.c: the reader, in one worker */

ngx_int_t ngx_http_apikey_cache_sync_init(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf, ngx_http_apikey_redis_conf_t *rcf);
void ngx_http_apikey_cache_sync_exit(void);
ngx_int_t ngx_http_apikey_cache_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);


#endif /* _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_ */
