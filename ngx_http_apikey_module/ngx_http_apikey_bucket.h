
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_BUCKET_H_INCLUDED_
#define _NGX_HTTP_APIKEY_BUCKET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_cache.h"


/*
 * apikey_cache: what the instance knows of each key's Redis bucket, and
 * its leases (apikey_rate_lease), in the replica's zone, kept apart from
 * the records (ngx_http_apikey_bucket.c).  A bucket is held to the
 * record it was made for by the record's version: a change of the key
 * ends its lease (the tokens go back, or are dropped when the limit
 * changed, since Redis then refilled the bucket).
 */


/*
 * What a check that Redis must answer asks for: want tokens of a lease
 * (this request's among them; 0: none).  A sibling, a check sent while
 * another of the instance asks for the key's lease, wants none but may
 * spend that lease's tokens when Redis finds the bucket empty.  back
 * tokens of an ended lease go back with it, as taken at Redis time
 * "taken" (us) under the limit rate/per/burst.
 */

typedef struct {
    uint32_t                       want;
    uint32_t                       sibling;
    uint32_t                       back;
    uint32_t                       serial;       /* of the ask */
    int64_t                        taken;
    uint32_t                       rate;
    uint32_t                       per;
    uint32_t                       burst;
} ngx_http_apikey_lease_ask_t;


/*
 * The bucket of a secret the replica found valid: NGX_OK with *limited
 * and *ahead (us) when the instance can answer, NGX_DECLINED when Redis
 * must.  A token leased to the instance is spent first; past those,
 * online it answers a bucket known to be empty, or one known to hold its
 * last token while another check asks Redis for it; else it declines,
 * with the lease to ask Redis for in *ask; offline it takes a token from
 * the instance's own bucket.  *spent: a leased token was spent (the lease
 * counts the request).
 */
ngx_int_t ngx_http_apikey_bucket_take(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, ngx_uint_t offline,
    ngx_uint_t *limited, int64_t *ahead, ngx_uint_t *spent,
    ngx_http_apikey_lease_ask_t *ask);

/*
 * What Redis said of the bucket at a time not after the check (local),
 * and, unless 0, until when (same clock) the key's quota is used up
 */
void ngx_http_apikey_bucket_note(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t tat, int64_t quota_until);

/*
 * NGX_OK with *left (us) while the instance knows the key's quota is used
 * up (bucket_note), the bucket not known empty
 */
ngx_int_t ngx_http_apikey_bucket_quota_out(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t *left);

/*
 * What Redis answered a check that asked for a lease: n tokens taken at
 * Redis time "at" (0 when it took none), this request's one among them.
 */
void ngx_http_apikey_bucket_grant(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, ngx_http_apikey_lease_ask_t *ask,
    ngx_uint_t n, int64_t at);

/*
 * A token of the instance's lease for a sibling Redis found no token for:
 * NGX_OK with *ahead; NGX_AGAIN when there is none yet but the lease is
 * still being asked for; else NGX_DECLINED.
 */
ngx_int_t ngx_http_apikey_bucket_sibling(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_rec_t *rec, int64_t *ahead);

/* tokens came back to the bucket of hash in Redis: ask again */
void ngx_http_apikey_bucket_refill(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash);

/* the sweep of ended leases, in every worker */
ngx_int_t ngx_http_apikey_bucket_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf);

/* a graceful shutdown: every lease goes back, its uses are told */
void ngx_http_apikey_bucket_exiting(void);
void ngx_http_apikey_bucket_exit(void);


#endif /* _NGX_HTTP_APIKEY_BUCKET_H_INCLUDED_ */
