
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


/* what the replica answered of a check, for Redis to record */
#define NGX_HTTP_APIKEY_TALLY_ALLOWED   0
#define NGX_HTTP_APIKEY_TALLY_LIMITED   1
#define NGX_HTTP_APIKEY_TALLY_REFUSED   2


/*
 * The note a check sent to Redis keeps (ngx_http_apikey_redis_batch_note())
 * for ngx_http_apikey_tally_late(): the secret, and whether Redis was
 * asked to count nothing of it (a sibling of a lease).
 */

typedef struct {
    u_char                          hex[64];
    uint32_t                        sibling;
} ngx_http_apikey_tally_note_t;


ngx_int_t ngx_http_apikey_tally_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script);

/* a check of the secret (lowercase hex hash) Redis did not count */
void ngx_http_apikey_tally_add(u_char *hex, ngx_uint_t kind);

/*
 * n tokens of an ended lease, taken at Redis time "taken" (us), for Redis
 * to give back to the secret's bucket as far as the bucket allows, if
 * its limit is still lim (rate, per, burst)
 */
void ngx_http_apikey_tally_back(u_char *hex, ngx_uint_t n, int64_t taken,
    uint32_t *lim);

/* n allowed checks of the secret at once (a lease's) */
void ngx_http_apikey_tally_used(u_char *hex, ngx_uint_t n);

/* what is tallied goes in the next pass, not within the second */
void ngx_http_apikey_tally_now(void);

/*
 * A check's reply that came after nginx answered the request without it
 * (it timed out: 503, unverified, or the replica's answer, which the
 * tally counts itself; or the client left): what Redis counted of it is
 * taken back, so that usage holds what nginx answered.  A batch's late
 * handler, for gate checks.
 */
void ngx_http_apikey_tally_late(void *note, redisReply *reply);

/* a graceful shutdown: the counts go now */
void ngx_http_apikey_tally_exiting(void);
void ngx_http_apikey_tally_exit(void);


#endif /* _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_ */
