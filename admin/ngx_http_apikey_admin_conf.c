
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


#define NGX_HTTP_APIKEY_ADMIN_TOKENS_FILE_MAX  1048576


static ngx_int_t ngx_http_apikey_admin_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_admin_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_admin_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_apikey_admin_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_admin_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_token_line(ngx_conf_t *cf,
    ngx_array_t *tokens, u_char *p, u_char *last);
static char *ngx_http_apikey_admin_environments(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_admin_default_rate(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_admin_check_ttl(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_admin_check_console(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_admin_check_timeout(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_apikey_admin_prefix_post =
    ngx_http_apikey_admin_check_prefix;

static ngx_conf_post_handler_pt  ngx_http_apikey_admin_ttl_post =
    ngx_http_apikey_admin_check_ttl;

static ngx_conf_post_handler_pt  ngx_http_apikey_admin_console_post =
    ngx_http_apikey_admin_check_console;

static ngx_conf_post_handler_pt  ngx_http_apikey_admin_timeout_post =
    ngx_http_apikey_admin_check_timeout;

static ngx_conf_num_bounds_t  ngx_http_apikey_admin_max_keys_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000000
};


static ngx_command_t  ngx_http_apikey_admin_commands[] = {

    { ngx_string("apikey_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_apikey_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_admin_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_main_conf_t, timeout),
      &ngx_http_apikey_admin_timeout_post },

    { ngx_string("apikey_admin_console"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, console),
      &ngx_http_apikey_admin_console_post },

    { ngx_string("apikey_admin_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_admin_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, prefix),
      &ngx_http_apikey_admin_prefix_post },

    { ngx_string("apikey_environments"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_admin_environments,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_default_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_apikey_admin_default_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_max_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, max_keys),
      &ngx_http_apikey_admin_max_keys_bounds },

    { ngx_string("apikey_default_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, default_ttl),
      &ngx_http_apikey_admin_ttl_post },

    { ngx_string("apikey_max_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, max_ttl),
      &ngx_http_apikey_admin_ttl_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_admin_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_apikey_admin_init,            /* postconfiguration */

    ngx_http_apikey_admin_create_main_conf, /* create main configuration */
    ngx_http_apikey_admin_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_admin_create_loc_conf, /* create location configuration */
    ngx_http_apikey_admin_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_admin_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_admin_module_ctx,     /* module context */
    ngx_http_apikey_admin_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_apikey_admin_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_apikey_admin_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_apikey_admin_default_envs[] = {
    ngx_string("production"),
    ngx_string("preview")
};

static ngx_array_t  ngx_http_apikey_admin_default_environments = {
    ngx_http_apikey_admin_default_envs, 2, sizeof(ngx_str_t), 2, NULL
};


/* admin requests are counted for apikey_metrics when they are logged */

static ngx_int_t
ngx_http_apikey_admin_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_admin_log_handler;

    return NGX_OK;
}


/*
 * Worker 0 of an instance with an admin location writes the expiry
 * notices; the gatekeeper's init_process (earlier in the module list)
 * has started the worker's Redis connections
 */

static ngx_int_t
ngx_http_apikey_admin_init_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_main_conf_t        *akmcf;
    ngx_http_apikey_admin_main_conf_t  *amcf;

    if ((ngx_process != NGX_PROCESS_WORKER
         && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_apikey_admin_module);

    if (amcf == NULL || !amcf->scripts) {
        return NGX_OK;
    }

    akmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);

    return ngx_http_apikey_admin_notices_init(cycle, &akmcf->redis,
                                              amcf->timeout);
}


static void
ngx_http_apikey_admin_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_admin_notices_exit();
}


static void *
ngx_http_apikey_admin_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_admin_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_admin_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->scripts = 0;
     */

    amcf->timeout = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_http_apikey_admin_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_apikey_admin_main_conf_t *amcf = conf;

    ngx_conf_init_msec_value(amcf->timeout, 5000);

    return NGX_CONF_OK;
}


static void *
ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_admin_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_admin_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable = 0;
     *     conf->prefix = { 0, NULL };
     */

    conf->console = NGX_CONF_UNSET;
    conf->tokens = NGX_CONF_UNSET_PTR;
    conf->environments = NGX_CONF_UNSET_PTR;
    conf->rate = NGX_CONF_UNSET_UINT;
    conf->per = NGX_CONF_UNSET_UINT;
    conf->burst = NGX_CONF_UNSET_UINT;
    conf->max_keys = NGX_CONF_UNSET;
    conf->default_ttl = NGX_CONF_UNSET;
    conf->max_ttl = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_apikey_admin_loc_conf_t *prev = parent;
    ngx_http_apikey_admin_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->console, prev->console, 0);
    ngx_conf_merge_ptr_value(conf->tokens, prev->tokens, NULL);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "ak");
    ngx_conf_merge_ptr_value(conf->environments, prev->environments,
                             &ngx_http_apikey_admin_default_environments);
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 5);
    ngx_conf_merge_uint_value(conf->per, prev->per, 1);
    ngx_conf_merge_uint_value(conf->burst, prev->burst, 5);
    ngx_conf_merge_value(conf->max_keys, prev->max_keys, 0);
    ngx_conf_merge_sec_value(conf->default_ttl, prev->default_ttl, 0);
    ngx_conf_merge_sec_value(conf->max_ttl, prev->max_ttl, 0);

    if (conf->max_ttl && conf->default_ttl > conf->max_ttl) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_default_ttl\" is longer than "
                           "\"apikey_max_ttl\"");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {

        /* a location inside the admin one serves neither */

        if (conf->console && conf->console != prev->console) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"apikey_admin_console\" requires "
                               "\"apikey_admin\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (conf->tokens == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_admin\" requires \"apikey_admin_tokens\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_apikey_require_redis(cf, "apikey_admin");
}


static char *
ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_apikey_main_conf_t        *akmcf;
    ngx_http_apikey_admin_main_conf_t  *amcf;

    if (alcf->enable) {
        return "is duplicate";
    }

    alcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_apikey_admin_handler;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_apikey_admin_module);

    if (!amcf->scripts) {
        akmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

        if (ngx_http_apikey_admin_add_scripts(cf, &akmcf->redis) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        amcf->scripts = 1;
    }

    return NGX_CONF_OK;
}


/* a file of "name:sha256hex:orgs" lines; "#" starts a comment line */

static char *
ngx_http_apikey_admin_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    u_char           *buf, *p, *last, *eol;
    char             *rv;
    ssize_t           n;
    ngx_str_t        *value;
    ngx_uint_t        line, mode;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (alcf->tokens != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = value[1];
    file.log = cf->log;

    file.fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &value[1]);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &value[1]);
        goto failed;
    }

    /*
     * whoever may write the file may add an admin token: it is loaded,
     * as ssh loads a key file it complains about, with the fix named
     */

    mode = ngx_file_access(&fi);

    if (mode & (S_IWGRP|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "token file \"%V\" is writable by %s (mode "
                           "0%ui%ui%ui): anyone who can write it can add an "
                           "admin token; run \"chmod go-w %V\"",
                           &value[1], (mode & S_IWOTH) ? "anyone" : "its group",
                           (mode >> 6) & 7, (mode >> 3) & 7, mode & 7,
                           &value[1]);
    }

    if (ngx_file_size(&fi) > NGX_HTTP_APIKEY_ADMIN_TOKENS_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%V\" is larger than 1 MiB",
                           &value[1]);
        goto failed;
    }

    buf = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, ngx_file_size(&fi), 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    alcf->tokens = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_apikey_admin_token_t));
    if (alcf->tokens == NULL) {
        goto failed;
    }

    p = buf;
    last = buf + n;

    for (line = 1; p < last; line++) {

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        if (ngx_http_apikey_admin_token_line(cf, alcf->tokens, p, eol)
            != NGX_CONF_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "in token file \"%V\", line %ui",
                               &value[1], line);
            goto failed;
        }

        p = eol + 1;
    }

    if (alcf->tokens->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%V\" has no tokens", &value[1]);
        goto failed;
    }

    rv = NGX_CONF_OK;

failed:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &value[1]);
    }

    return rv;
}


static char *
ngx_http_apikey_admin_token_line(ngx_conf_t *cf, ngx_array_t *tokens,
    u_char *p, u_char *last)
{
    u_char                         *c1, *c2, *q, *comma;
    ngx_str_t                      *org;
    ngx_uint_t                      i;
    ngx_http_apikey_admin_token_t  *t, *token;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == '\r' || last[-1] == ' '
                        || last[-1] == '\t'))
    {
        last--;
    }

    if (p == last || *p == '#') {
        return NGX_CONF_OK;
    }

    c1 = ngx_strlchr(p, last, ':');
    c2 = c1 ? ngx_strlchr(c1 + 1, last, ':') : NULL;

    if (c2 == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token line is \"name:sha256hex:orgs\"");
        return NGX_CONF_ERROR;
    }

    if (!ngx_http_apikey_admin_valid_name(p, c1 - p)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token name is 1 to 64 of A-Z a-z 0-9 . _ -");
        return NGX_CONF_ERROR;
    }

    if (c2 - c1 - 1 != NGX_HTTP_APIKEY_HASH_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a token hash is 64 hexadecimal digits");
        return NGX_CONF_ERROR;
    }

    t = ngx_array_push(tokens);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(t, sizeof(ngx_http_apikey_admin_token_t));

    t->permissions = NGX_HTTP_APIKEY_ADMIN_P_ALL;

    t->name.len = c1 - p;
    t->name.data = ngx_pnalloc(cf->pool, t->name.len);
    if (t->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(t->name.data, p, t->name.len);

    for (i = 0, q = c1 + 1; i < NGX_HTTP_APIKEY_HASH_LEN; i++, q++) {
        if (*q >= '0' && *q <= '9') {
            t->hash[i] = *q;

        } else if ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'f') {
            t->hash[i] = *q | 0x20;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a token hash is 64 hexadecimal digits");
            return NGX_CONF_ERROR;
        }
    }

    token = tokens->elts;

    for (i = 0; i < tokens->nelts - 1; i++) {
        if (token[i].name.len == t->name.len
            && ngx_strncmp(token[i].name.data, t->name.data, t->name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate token name \"%V\"", &t->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_memcmp(token[i].hash, t->hash, NGX_HTTP_APIKEY_HASH_LEN)
            == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "token \"%V\" has the hash of token \"%V\"",
                               &t->name, &token[i].name);
            return NGX_CONF_ERROR;
        }
    }

    p = c2 + 1;

    if (last - p == 1 && *p == '*') {
        t->orgs = NULL;
        return NGX_CONF_OK;
    }

    t->orgs = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (t->orgs == NULL) {
        return NGX_CONF_ERROR;
    }

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (!ngx_http_apikey_admin_valid_name(p, comma - p)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the organizations of token \"%V\" are \"*\" "
                               "or a comma list of names of 1 to 64 of "
                               "A-Z a-z 0-9 . _ -", &t->name);
            return NGX_CONF_ERROR;
        }

        org = ngx_array_push(t->orgs);
        if (org == NULL) {
            return NGX_CONF_ERROR;
        }

        org->len = comma - p;
        org->data = ngx_pnalloc(cf->pool, org->len);
        if (org->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(org->data, p, org->len);

        if (comma == last) {
            return NGX_CONF_OK;
        }

        p = comma + 1;
    }
}


static char *
ngx_http_apikey_admin_environments(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *env;
    ngx_uint_t   i, j;

    if (alcf->environments != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alcf->environments = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (alcf->environments == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (!ngx_http_apikey_admin_valid_name(value[i].data, value[i].len)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid environment \"%V\": 1 to 64 of "
                               "A-Z a-z 0-9 . _ -", &value[i]);
            return NGX_CONF_ERROR;
        }

        for (j = 1; j < i; j++) {
            if (value[j].len == value[i].len
                && ngx_strncmp(value[j].data, value[i].data, value[i].len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate environment \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        env = ngx_array_push(alcf->environments);
        if (env == NULL) {
            return NGX_CONF_ERROR;
        }

        *env = value[i];
    }

    return NGX_CONF_OK;
}


/* apikey_default_rate 5r/s [burst=5]; */

static char *
ngx_http_apikey_admin_default_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *alcf = conf;

    ngx_int_t    burst;
    ngx_str_t   *value;
    ngx_uint_t   rate, per;

    if (alcf->rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_apikey_admin_parse_rate(value[1].data, value[1].len, &rate,
                                         &per)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\": \"<N>r/s\" or \"<N>r/m\", "
                           "N from 1 to 1000000", &value[1]);
        return NGX_CONF_ERROR;
    }

    burst = (rate + per - 1) / per;

    if (cf->args->nelts == 3) {

        if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        burst = ngx_atoi(value[2].data + 6, value[2].len - 6);

        if (burst < 1 || burst > NGX_HTTP_APIKEY_ADMIN_RATE_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid burst \"%V\": 1 to 1000000",
                               &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    alcf->rate = rate;
    alcf->per = per;
    alcf->burst = burst;

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (!ngx_http_apikey_prefix_valid(prefix->data, prefix->len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key prefix \"%V\": [a-z][a-z0-9]{0,15}",
                           prefix);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_ttl(ngx_conf_t *cf, void *post, void *data)
{
    time_t  *tp = data;

    if (*tp <= 0 || *tp > NGX_HTTP_APIKEY_ADMIN_TTL_MAX) {
        return "must be from 1s to 100y";
    }

    return NGX_CONF_OK;
}


/* the console's files are found under the location's own path */

static char *
ngx_http_apikey_admin_check_console(ngx_conf_t *cf, void *post, void *data)
{
    ngx_flag_t  *fp = data;

    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (*fp && (clcf->exact_match || clcf->named || clcf->noname
#if (NGX_PCRE)
                || clcf->regex
#endif
                ))
    {
        return "needs a prefix location";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_timeout(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *mp = data;

    if (*mp == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}
