
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_tally.h"
#include "ngx_http_apikey_metrics.h"


#define NGX_HTTP_APIKEY_SCOPE_MAX       64


static ngx_int_t ngx_http_apikey_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_init(ngx_conf_t *cf);
static void *ngx_http_apikey_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_apikey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_apikey_header_vars(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *akcf);
static char *ngx_http_apikey_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_environment(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_rate_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_rate_lease(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_apikey_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_exiting(void);
static void ngx_http_apikey_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_apikey_fail_modes[] = {
    { ngx_string("closed"), NGX_HTTP_APIKEY_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_APIKEY_FAIL_OPEN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_apikey_preflights[] = {
    { ngx_string("pass"), NGX_HTTP_APIKEY_PREFLIGHT_PASS },
    { ngx_string("check"), NGX_HTTP_APIKEY_PREFLIGHT_CHECK },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_apikey_commands[] = {

    { ngx_string("apikey_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.timeout),
      NULL },

    { ngx_string("apikey_redis_ssl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl),
      NULL },

    { ngx_string("apikey_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl_verify),
      NULL },

    { ngx_string("apikey_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl_trusted_certificate),
      NULL },

    { ngx_string("apikey_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl_name),
      NULL },

    { ngx_string("apikey_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl_certificate),
      NULL },

    { ngx_string("apikey_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_main_conf_t, redis.ssl_certificate_key),
      NULL },

    { ngx_string("apikey_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_apikey_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_rate_lease"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_rate_lease,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, enable),
      NULL },

    { ngx_string("apikey_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_bearer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, bearer),
      NULL },

    { ngx_string("apikey_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_environment,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_fail_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, fail_mode),
      &ngx_http_apikey_fail_modes },

    { ngx_string("apikey_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_apikey_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_preflight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, preflight),
      &ngx_http_apikey_preflights },

    { ngx_string("apikey_hide_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, hide_header),
      NULL },

    { ngx_string("apikey_rate_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_rate_headers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_module_ctx = {
    ngx_http_apikey_preconfiguration,      /* preconfiguration */
    ngx_http_apikey_init,                  /* postconfiguration */

    ngx_http_apikey_create_main_conf,      /* create main configuration */
    ngx_http_apikey_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_create_loc_conf,       /* create location configuration */
    ngx_http_apikey_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_module_ctx,           /* module context */
    ngx_http_apikey_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_apikey_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_apikey_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_apikey_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_apikey_metrics_guard_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_apikey_add_variables(cf);
}


static ngx_int_t
ngx_http_apikey_init(ngx_conf_t *cf)
{
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    if (!akmcf->used) {
        return NGX_OK;
    }

    if (ngx_http_apikey_reply_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (akmcf->cache.shm_zone != NULL
        && ngx_http_apikey_cache_add_scripts(cf, &akmcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_gate_init(cf, akmcf);
}


static void *
ngx_http_apikey_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_main_conf_t));
    if (akmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     akmcf->redis.address = { 0, NULL };
     *     akmcf->redis.addr = { NULL, 0, { 0, NULL } };
     *     akmcf->redis.db = 0;
     *     akmcf->redis.user = { 0, NULL };
     *     akmcf->redis.password = { 0, NULL };
     *     akmcf->redis.ns = { 0, NULL };
     *     akmcf->redis.scripts = { NULL, ... };
     *     akmcf->enabled = 0;
     *     akmcf->used = 0;
     */

    akmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    akmcf->redis.ssl = NGX_CONF_UNSET;
    akmcf->redis.ssl_verify = NGX_CONF_UNSET;
    akmcf->cache.max_stale = NGX_CONF_UNSET_MSEC;
    akmcf->cache.lease = NGX_CONF_UNSET_MSEC;

    return akmcf;
}


static char *
ngx_http_apikey_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_apikey_main_conf_t  *akmcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_init_msec_value(akmcf->redis.timeout, 100);
    ngx_conf_init_value(akmcf->redis.ssl, 0);
    ngx_conf_init_value(akmcf->redis.ssl_verify, 1);
    ngx_conf_init_msec_value(akmcf->cache.max_stale, 600000);
    ngx_conf_init_msec_value(akmcf->cache.lease, 0);

    akmcf->cache.timeout = akmcf->redis.timeout;

    if (akmcf->cache.lease && akmcf->cache.shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_rate_lease\" requires \"apikey_cache\"");
        return NGX_CONF_ERROR;
    }

    if (akmcf->cache.shm_zone != NULL && !akmcf->enabled) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_cache\" requires \"apikey_redis\"");
        return NGX_CONF_ERROR;
    }

    if (akmcf->redis.timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis_timeout\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (akmcf->redis.ns.data == NULL) {
        ngx_str_set(&akmcf->redis.ns, "apikey:");
    }

    /* the key that names the data layout, read by every handshake */

    akmcf->redis.layout.len = akmcf->redis.ns.len + sizeof("layout") - 1;
    akmcf->redis.layout.data = ngx_pnalloc(cf->pool, akmcf->redis.layout.len);
    if (akmcf->redis.layout.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(akmcf->redis.layout.data, akmcf->redis.ns.data,
                          akmcf->redis.ns.len),
               "layout", sizeof("layout") - 1);

    /* a host name: by the http block's resolver, or now */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (ngx_http_apikey_redis_resolve_conf(cf, &akmcf->redis, clcf->resolver)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (akmcf->redis.ssl && !akmcf->enabled) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis_ssl\" requires \"apikey_redis\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_apikey_redis_ssl_conf(cf, &akmcf->redis);
}


static void *
ngx_http_apikey_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->header = { 0, NULL };
     *     conf->header_lc = { 0, NULL };
     *     conf->www_authenticate = { 0, NULL };
     *     conf->environment = { 0, NULL };
     *     conf->scopes = { 0, NULL };
     *     conf->metrics_file = NULL;
     *     conf->metrics_line = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->bearer = NGX_CONF_UNSET;
    conf->fail_mode = NGX_CONF_UNSET_UINT;
    conf->preflight = NGX_CONF_UNSET_UINT;
    conf->hide_header = NGX_CONF_UNSET;
    conf->rate_headers = NGX_CONF_UNSET_UINT;
    conf->restricted = NGX_CONF_UNSET;
    conf->returns = NGX_CONF_UNSET;
    conf->vars[0] = NGX_ERROR;
    conf->vars[1] = NGX_ERROR;

    return conf;
}


static char *
ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_apikey_loc_conf_t *prev = parent;
    ngx_http_apikey_loc_conf_t *conf = child;

    u_char  *p;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->bearer, prev->bearer, 0);
    ngx_conf_merge_uint_value(conf->fail_mode, prev->fail_mode,
                              NGX_HTTP_APIKEY_FAIL_CLOSED);
    ngx_conf_merge_uint_value(conf->preflight, prev->preflight,
                              NGX_HTTP_APIKEY_PREFLIGHT_PASS);
    ngx_conf_merge_value(conf->hide_header, prev->hide_header, 1);
    ngx_conf_merge_uint_value(conf->rate_headers, prev->rate_headers,
                              NGX_HTTP_APIKEY_HEADERS_DRAFT
                              |NGX_HTTP_APIKEY_HEADERS_LEGACY);
    ngx_conf_merge_str_value(conf->environment, prev->environment, "");
    ngx_conf_merge_str_value(conf->scopes, prev->scopes, "");
    ngx_conf_merge_value(conf->restricted, prev->restricted, 0);

    if (conf->returns == NGX_CONF_UNSET) {
        conf->returns = (prev->returns == 1) ? 1 : 0;
        conf->return_file = prev->return_file;
        conf->return_line = prev->return_line;
    }

    ngx_http_apikey_metrics_guard_check(cf, conf);

    if (conf->header.data == NULL) {
        if (prev->header.data == NULL) {
            ngx_str_set(&prev->header, "X-API-Key");
            ngx_str_set(&prev->header_lc, "x-api-key");
        }

        conf->header = prev->header;
        conf->header_lc = prev->header_lc;
    }

    if (conf->www_authenticate.data == NULL) {
        conf->www_authenticate.len = sizeof("ApiKey header=\"\"") - 1
                                     + conf->header.len;
        conf->www_authenticate.data = ngx_pnalloc(cf->pool,
                                                  conf->www_authenticate.len);
        if (conf->www_authenticate.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_sprintf(conf->www_authenticate.data, "ApiKey header=\"%V\"",
                        &conf->header);
        conf->www_authenticate.len = p - conf->www_authenticate.data;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->hide_header
        && ngx_http_apikey_header_vars(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_apikey_require_redis(cf, "apikey");
}


/*
 * The variables that read the key's headers: a hidden key must not stay
 * in a value one of them already cached
 */

static ngx_int_t
ngx_http_apikey_header_vars(ngx_conf_t *cf, ngx_http_apikey_loc_conf_t *akcf)
{
    u_char     *p;
    ngx_str_t   name;
    ngx_uint_t  i;

    name.len = sizeof("http_") - 1 + akcf->header_lc.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(name.data, "http_", sizeof("http_") - 1);

    for (i = 0; i < akcf->header_lc.len; i++) {
        *p++ = (akcf->header_lc.data[i] == '-') ? '_'
                                                : akcf->header_lc.data[i];
    }

    akcf->vars[0] = ngx_http_get_variable_index(cf, &name);
    if (akcf->vars[0] == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_str_set(&name, "http_authorization");

    akcf->vars[1] = akcf->bearer ? ngx_http_get_variable_index(cf, &name)
                                 : NGX_ERROR;

    return NGX_OK;
}


char *
ngx_http_apikey_require_redis(ngx_conf_t *cf, const char *directive)
{
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    if (!akmcf->enabled) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" requires \"apikey_redis\" in the http block",
                           directive);
        return NGX_CONF_ERROR;
    }

    akmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_main_conf_t  *akmcf = conf;

    char  *rv;

    if (akmcf->enabled) {
        return "is duplicate";
    }

    rv = ngx_http_apikey_redis_directive(cf, &akmcf->redis);

    if (rv == NGX_CONF_OK) {
        akmcf->enabled = 1;
    }

    return rv;
}


static char *
ngx_http_apikey_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *akcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (akcf->header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a header name";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!((value[1].data[i] >= 'a' && value[1].data[i] <= 'z')
              || (value[1].data[i] >= 'A' && value[1].data[i] <= 'Z')
              || (value[1].data[i] >= '0' && value[1].data[i] <= '9')
              || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    akcf->header = value[1];

    akcf->header_lc.len = value[1].len;
    akcf->header_lc.data = ngx_pnalloc(cf->pool, value[1].len);
    if (akcf->header_lc.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(akcf->header_lc.data, value[1].data, value[1].len);

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *akcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (akcf->environment.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 64) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] >= 0x7f) {
            goto invalid;
        }
    }

    akcf->environment = value[1];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid environment name \"%V\"", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_apikey_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *akcf = conf;

    u_char      *p, c;
    size_t       len;
    ngx_str_t   *value;
    ngx_uint_t   i, k;

    if (akcf->scopes.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    len = 1;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0 || value[i].len > NGX_HTTP_APIKEY_SCOPE_MAX) {
            goto invalid;
        }

        for (k = 0; k < value[i].len; k++) {
            c = value[i].data[k];

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || c == ':' || c == '.' || c == '_' || c == '-'))
            {
                goto invalid;
            }
        }

        len += value[i].len + 1;
    }

    /* " a b ": the form the gate script searches (docs/data-model.md) */

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    akcf->scopes.data = p;
    akcf->scopes.len = len;

    *p++ = ' ';

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = ' ';
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid scope \"%V\": want 1 to 64 of [a-z0-9:._-]",
                       &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_apikey_rate_headers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *akcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, mask, bit;

    if (akcf->rate_headers != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mask = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "off") == 0) {
            bit = NGX_HTTP_APIKEY_HEADERS_OFF;

        } else if (ngx_strcmp(value[i].data, "draft") == 0) {
            bit = NGX_HTTP_APIKEY_HEADERS_DRAFT;

        } else if (ngx_strcmp(value[i].data, "legacy") == 0) {
            bit = NGX_HTTP_APIKEY_HEADERS_LEGACY;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": give \"off\", "
                               "or \"draft\", \"legacy\" or both",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (mask & bit) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        mask |= bit;
    }

    if ((mask & NGX_HTTP_APIKEY_HEADERS_OFF) && cf->args->nelts > 2) {
        return "takes \"off\" alone";
    }

    akcf->rate_headers = mask;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_init_process(ngx_cycle_t *cycle)
{
    ngx_http_conf_ctx_t          *ctx;
    ngx_http_apikey_main_conf_t  *akmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_http_apikey_metrics_init_process(cycle);

    ctx = (ngx_http_conf_ctx_t *) ngx_get_conf(cycle->conf_ctx,
                                               ngx_http_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    akmcf = ctx->main_conf[ngx_http_apikey_module.ctx_index];

    if (!akmcf->used) {
        return NGX_OK;
    }

    /*
     * the cached time is still the master's from before it read the
     * configuration, maybe seconds ago: timers armed from it would fire
     * at the worker's first event
     */

    ngx_time_update();

    if (ngx_http_apikey_redis_init_worker(cycle, &akmcf->redis,
                                          ngx_http_apikey_exiting)
        != NGX_OK
        || ngx_http_apikey_gate_init_worker(cycle, akmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_cache_sync_init(cycle, &akmcf->cache,
                                           &akmcf->redis,
                                           ngx_http_apikey_bucket_refill);
}


/*
 * A graceful shutdown began: the leases go back and the counts the worker
 * holds go to Redis now (the worker waits for the replies)
 */

static void
ngx_http_apikey_exiting(void)
{
    ngx_http_apikey_bucket_exiting();
    ngx_http_apikey_tally_exiting();
}


static char *
ngx_http_apikey_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_main_conf_t  *akmcf = conf;

    return ngx_http_apikey_cache_directive(cf, &akmcf->cache);
}


/* apikey_rate_lease off | TIME */

static char *
ngx_http_apikey_rate_lease(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_main_conf_t  *akmcf = conf;

    ngx_str_t  *value;

    if (akmcf->cache.lease != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        akmcf->cache.lease = 0;
        return NGX_CONF_OK;
    }

    akmcf->cache.lease = ngx_parse_time(&value[1], 0);

    if (akmcf->cache.lease == (ngx_msec_t) NGX_ERROR
        || akmcf->cache.lease == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": give \"off\" or a time "
                           "more than 0, such as \"2s\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ngx_conf_set_enum_slot, with the valid values in its error */

static char *
ngx_http_apikey_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char            *p, *last, text[NGX_MAX_CONF_ERRSTR];
    ngx_str_t         *value;
    ngx_conf_enum_t   *e;

    value = cf->args->elts;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            return ngx_conf_set_enum_slot(cf, cmd, conf);
        }
    }

    p = text;
    last = text + sizeof(text);

    for (e = cmd->post; e->name.len; e++) {
        p = ngx_slprintf(p, last, "%s\"%V\"",
                         (e == cmd->post) ? "" : (e[1].name.len ? ", " : " or "),
                         &e->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\": give %*s", &value[1],
                       p - text, text);

    return NGX_CONF_ERROR;
}


static void
ngx_http_apikey_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_bucket_exit();
    ngx_http_apikey_cache_sync_exit();
    ngx_http_apikey_tally_exit();
    ngx_http_apikey_redis_exit_worker();
    ngx_http_apikey_redis_batch_exit();
    ngx_http_apikey_sha256_free();
}
