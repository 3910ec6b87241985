
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


/* what the replica answered of a secret, for Redis to record */
#define NGX_HTTP_APIKEY_TALLY_ALLOWED   0
#define NGX_HTTP_APIKEY_TALLY_LIMITED   1
#define NGX_HTTP_APIKEY_TALLY_REFUSED   2


ngx_int_t ngx_http_apikey_tally_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script);

/* a check of the secret (lowercase hex hash) the replica answered */
void ngx_http_apikey_tally_add(u_char *hex, ngx_uint_t kind);

/*
 * Tokens of an ended lease (ngx_http_apikey_lease.c) for Redis to give
 * back to the secret's bucket, if its limit is still lim (rate, per,
 * burst).
 */
void ngx_http_apikey_tally_back(u_char *hex, ngx_uint_t n, uint32_t *lim);

/* n allowed checks of the secret at once (a lease's) */
void ngx_http_apikey_tally_used(u_char *hex, ngx_uint_t n);

void ngx_http_apikey_tally_exit(void);


#endif /* _NGX_HTTP_APIKEY_TALLY_H_INCLUDED_ */
