
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


/*
 * With apikey_cache, a change made through this instance's admin API
 * takes effect on its very next request (SPEC section 4): the gate records
 * of the secrets the script changed (hash, g, the hash c names; g empty
 * for a secret that is gone), as the change log's reader would read them,
 * go into the instance's replica before the answer, as of the change log
 * position of the change ("stamp", the id of its entry: what the log's
 * reader read before the change does not replace them, and a secret the
 * change deleted stays gone until the reader is past it).  The other
 * instances learn of the change from the log.
 */

void
ngx_http_apikey_admin_replica(ngx_http_request_t *r, redisReply *gates,
    redisReply *stamp)
{
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (akmcf->cache.shm_zone == NULL || gates->type != REDIS_REPLY_ARRAY
        || stamp->type != REDIS_REPLY_STRING || stamp->len == 0)
    {
        return;
    }

    (void) ngx_http_apikey_cache_apply_reply(&akmcf->cache, gates, 0,
                                  ngx_http_apikey_cache_stamp(
                                      (u_char *) stamp->str, stamp->len),
                                  1, NULL);
}
