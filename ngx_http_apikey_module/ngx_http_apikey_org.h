
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_ORG_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ORG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_cache.h"


/*
 * apikey_cache: what the instance knows of organizations' limits (a
 * rate limit or a quota shared by an organization's keys, set through the
 * admin API), in the replica's zone (ngx_http_apikey_org.c).
 */

/* NGX_OK: the organization is known to have no limits */
ngx_int_t ngx_http_apikey_org_free(ngx_http_apikey_cache_conf_t *ccf,
    ngx_str_t *org);

/*
 * What Redis told of it: "said" by the load or the change log or the
 * instance's own admin change, which always holds; else by a gate script
 * reply, which only lists an organization with limits the instance does
 * not list yet
 */
void ngx_http_apikey_org_learn(ngx_http_apikey_cache_conf_t *ccf,
    ngx_str_t *org, ngx_uint_t limited, ngx_uint_t said);


#endif /* _NGX_HTTP_APIKEY_ORG_H_INCLUDED_ */
