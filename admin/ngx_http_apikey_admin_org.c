
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_org.h"


/*
 * GET and PATCH orgs/{org}: the organization's limits as its script read
 * them (docs/admin-api.md), with what this admin location's configuration
 * says of it (environments, key prefix, the max_keys it falls back to).
 * A change of the limits reaches this instance's replica at once, so its
 * next request obeys it; other instances learn it from the change log
 * (ngx_http_apikey_org.c).
 */


static ngx_int_t ngx_http_apikey_admin_org_body(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, json_t *json, redisReply *v);


/*
 * NGX_DECLINED: the reply is not the org script's; else as
 * ngx_http_apikey_admin_send_json()
 */

/* the script's fields, in order, and where a key's record holds each */

static ngx_uint_t  ngx_http_apikey_admin_org_fields[] = {
    NGX_HTTP_APIKEY_ADMIN_F_RATE,
    NGX_HTTP_APIKEY_ADMIN_F_PER,
    NGX_HTTP_APIKEY_ADMIN_F_BURST,
    NGX_HTTP_APIKEY_ADMIN_F_QUOTA,
    NGX_HTTP_APIKEY_ADMIN_F_QUOTA_USED
};


ngx_int_t
ngx_http_apikey_admin_send_org(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply)
{
    json_t                       *json;
    time_t                        now;
    ngx_str_t                     f[NGX_HTTP_APIKEY_ADMIN_F_N];
    ngx_uint_t                    i;
    redisReply                   *v, *e;
    ngx_http_apikey_main_conf_t  *akmcf;

    v = reply->element[3];

    if (v->elements != 7 || v->element[6]->type != REDIS_REPLY_INTEGER) {
        return NGX_DECLINED;
    }

    ngx_memzero(f, sizeof(f));

    for (i = 0; i < 6; i++) {
        e = v->element[i];

        if (e->type == REDIS_REPLY_NIL) {
            continue;
        }

        if (e->type != REDIS_REPLY_STRING) {
            return NGX_DECLINED;
        }

        if (i < 5) {
            f[ngx_http_apikey_admin_org_fields[i]].data = (u_char *) e->str;
            f[ngx_http_apikey_admin_org_fields[i]].len = e->len;
        }
    }

    now = (time_t) ngx_http_apikey_admin_int(reply->element[2]);

    json = ngx_http_apikey_admin_limits_json(f, now);
    if (json == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_apikey_admin_org_body(r, ctx, json, v) != NGX_OK) {
        json_decref(json);
        return NGX_ERROR;
    }

    /* this instance's replica obeys the change from its next request */

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (ctx->operation == NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE
        && akmcf->cache.shm_zone != NULL)
    {
        ngx_http_apikey_org_learn(&akmcf->cache, &ctx->org,
                                  f[NGX_HTTP_APIKEY_ADMIN_F_RATE].len
                                  || f[NGX_HTTP_APIKEY_ADMIN_F_QUOTA].len,
                                  1);
    }

    return ngx_http_apikey_admin_send_object(r, json);
}


/*
 * "org", "max_keys" (the limit in force: the organization's own, else
 * apikey_max_keys; null for none), "active_keys", "environments" and
 * "key_prefix"
 */

static ngx_int_t
ngx_http_apikey_admin_org_body(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, json_t *json, redisReply *v)
{
    json_t                            *envs, *max;
    ngx_int_t                          own;
    ngx_str_t                         *env;
    ngx_uint_t                         i;
    ngx_http_apikey_admin_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);

    own = (v->element[5]->type == REDIS_REPLY_STRING)
          ? ngx_atoi((u_char *) v->element[5]->str, v->element[5]->len)
          : NGX_ERROR;

    if (own == NGX_ERROR) {
        own = alcf->max_keys;
    }

    max = (own > 0) ? json_integer(own) : json_null();

    envs = json_array();
    if (envs == NULL) {
        json_decref(max);
        return NGX_ERROR;
    }

    env = alcf->environments->elts;

    for (i = 0; i < alcf->environments->nelts; i++) {
        if (json_array_append_new(envs, json_stringn((char *) env[i].data,
                                                     env[i].len))
            != 0)
        {
            json_decref(envs);
            json_decref(max);
            return NGX_ERROR;
        }
    }

    if (json_object_set_new(json, "org",
                            json_stringn((char *) ctx->org.data,
                                         ctx->org.len))
           != 0
        || json_object_set_new(json, "max_keys", max) != 0
        || json_object_set_new(json, "active_keys",
                               json_integer(v->element[6]->integer))
           != 0
        || json_object_set_new(json, "environments", envs) != 0
        || json_object_set_new(json, "key_prefix",
                               json_stringn((char *) alcf->prefix.data,
                                            alcf->prefix.len))
           != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
