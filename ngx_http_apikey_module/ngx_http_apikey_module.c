
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_gate_scripts.h"


#define NGX_HTTP_APIKEY_FAIL_CLOSED     0
#define NGX_HTTP_APIKEY_FAIL_OPEN       1

#define NGX_HTTP_APIKEY_HEADERS_OFF     0x0001
#define NGX_HTTP_APIKEY_HEADERS_DRAFT   0x0002
#define NGX_HTTP_APIKEY_HEADERS_LEGACY  0x0004

#define NGX_HTTP_APIKEY_SCOPE_MAX       64

/* results, in the order of the checks; the script returns 0 to 6 */

#define NGX_HTTP_APIKEY_OK              0
#define NGX_HTTP_APIKEY_INVALID         1
#define NGX_HTTP_APIKEY_REVOKED         2
#define NGX_HTTP_APIKEY_EXPIRED         3
#define NGX_HTTP_APIKEY_ENVIRONMENT     4
#define NGX_HTTP_APIKEY_SCOPE           5
#define NGX_HTTP_APIKEY_LIMITED         6
#define NGX_HTTP_APIKEY_MISSING         7
#define NGX_HTTP_APIKEY_UNAVAILABLE     8
#define NGX_HTTP_APIKEY_UNVERIFIED      9

#define NGX_HTTP_APIKEY_PENDING         1
#define NGX_HTTP_APIKEY_DONE            2


typedef struct {
    ngx_flag_t                    enable;
    ngx_str_t                     header;        /* as written */
    ngx_str_t                     header_lc;
    ngx_uint_t                    header_hash;
    ngx_str_t                     www_authenticate;
    ngx_flag_t                    bearer;
    ngx_str_t                     environment;
    ngx_str_t                     scopes;        /* " a b " */
    ngx_uint_t                    fail_mode;
    ngx_flag_t                    hide_header;
    ngx_uint_t                    rate_headers;
} ngx_http_apikey_loc_conf_t;


typedef struct {
    ngx_str_t                     status;
    ngx_uint_t                    http_status;
    ngx_str_t                     code;
    ngx_str_t                     detail;
} ngx_http_apikey_result_t;


typedef struct {
    ngx_uint_t                    state;
    ngx_uint_t                    result;
    ngx_http_request_t           *request;
    ngx_http_apikey_loc_conf_t   *conf;
    ngx_http_apikey_redis_item_t *item;
    ngx_table_elt_t              *header;        /* where the key came */
    ngx_str_t                     id;
    ngx_str_t                     org;
    ngx_str_t                     name;
    ngx_str_t                     environment;
    ngx_str_t                     prefix;
    ngx_str_t                     scopes;        /* the key's, "a b" */
    ngx_int_t                     rate;          /* the key's limit */
    ngx_int_t                     per;
    ngx_int_t                     burst_size;
    ngx_int_t                     burst;         /* -1: no bucket used */
    ngx_int_t                     remaining;
    ngx_int_t                     reset;
    ngx_int_t                     retry_after;
    ngx_int_t                     window;
    unsigned                      hidden:1;
    unsigned                      rate_sent:1;
} ngx_http_apikey_ctx_t;


static ngx_int_t ngx_http_apikey_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_find_key(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static void ngx_http_apikey_done(void *data, redisReply *reply);
static ngx_int_t ngx_http_apikey_read_reply(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_parse_gate(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, u_char *data, size_t len);
static void ngx_http_apikey_bucket(ngx_http_apikey_ctx_t *ctx,
    int64_t ahead);
static ngx_int_t ngx_http_apikey_seconds(double us);
static void ngx_http_apikey_recheck(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *akcf);
static ngx_uint_t ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope,
    size_t len);
static ngx_int_t ngx_http_apikey_decide(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_hide(ngx_http_request_t *r,
    ngx_table_elt_t *h);
static ngx_http_apikey_ctx_t *ngx_http_apikey_get_ctx(ngx_http_request_t *r);
static void ngx_http_apikey_cleanup(void *data);
static ngx_int_t ngx_http_apikey_header_filter(ngx_http_request_t *r);
static u_char *ngx_http_apikey_itoa(u_char *p, ngx_int_t n);
static ngx_int_t ngx_http_apikey_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_init(ngx_conf_t *cf);
static void *ngx_http_apikey_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_apikey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
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
static ngx_int_t ngx_http_apikey_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_apikey_fail_modes[] = {
    { ngx_string("closed"), NGX_HTTP_APIKEY_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_APIKEY_FAIL_OPEN },
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
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, fail_mode),
      &ngx_http_apikey_fail_modes },

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
    ngx_http_apikey_add_variables,         /* preconfiguration */
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


static ngx_http_apikey_result_t  ngx_http_apikey_results[] = {
    { ngx_string("ok"), 0, ngx_null_string, ngx_null_string },
    { ngx_string("invalid"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("invalid_api_key"),
      ngx_string("The API key is not valid.") },
    { ngx_string("revoked"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("revoked_api_key"),
      ngx_string("The API key has been revoked.") },
    { ngx_string("expired"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("expired_api_key"),
      ngx_string("The API key has expired.") },
    { ngx_string("forbidden"), NGX_HTTP_FORBIDDEN,
      ngx_string("environment_mismatch"),
      ngx_string("The API key belongs to another environment.") },
    { ngx_string("forbidden"), NGX_HTTP_FORBIDDEN,
      ngx_string("insufficient_scope"),
      ngx_string("The API key lacks a scope this resource requires.") },
    { ngx_string("limited"), NGX_HTTP_TOO_MANY_REQUESTS,
      ngx_string("rate_limited"),
      ngx_string("The API key's rate limit is exhausted; retry later.") },
    { ngx_string("missing"), NGX_HTTP_UNAUTHORIZED,
      ngx_string("missing_api_key"),
      ngx_string("The request carries no API key.") },
    { ngx_string("unavailable"), NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("auth_unavailable"),
      ngx_string("The API key cannot be checked right now.") },
    { ngx_string("unverified"), 0, ngx_null_string, ngx_null_string }
};


/* $apikey_* variables read these ctx fields; data is the offset */

static ngx_http_variable_t  ngx_http_apikey_vars[] = {

    { ngx_string("apikey_status"), NULL, ngx_http_apikey_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_id"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_org"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, org), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_name"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, name), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_environment"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, environment),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_prefix"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, prefix), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_rate_remaining"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, remaining),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_apikey_script_t  ngx_http_apikey_gate_script = {
    ngx_string("gate"),
    { sizeof(ngx_http_apikey_gate_lua) - 1, ngx_http_apikey_gate_lua },
    { 0 }
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_apikey_handler(ngx_http_request_t *r)
{
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_str_t                      key, args[3];
    ngx_http_cleanup_t            *cln;
    ngx_http_apikey_ctx_t         *ctx;
    ngx_http_apikey_loc_conf_t    *akcf;
    ngx_http_apikey_main_conf_t   *akmcf;

    akcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!akcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx != NULL) {

        /* resumed after the reply, or after an internal redirect */

        if (ctx->state == NGX_HTTP_APIKEY_PENDING) {
            return NGX_AGAIN;
        }

        if (ctx->conf != akcf) {
            ngx_http_apikey_recheck(ctx, akcf);
        }

        return ngx_http_apikey_decide(r, ctx);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ctx->item = NULL;
     *     ctx->header = NULL;
     *     ctx->id = { 0, NULL };  (and the other strings)
     *     ctx->hidden = 0;
     *     ctx->rate_sent = 0;
     */

    ctx->request = r;
    ctx->conf = akcf;
    ctx->burst = -1;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_apikey_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);

    ctx->result = ngx_http_apikey_find_key(r, ctx, &key);

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return ngx_http_apikey_decide(r, ctx);
    }

    if (!ngx_http_apikey_key_valid(key.data, key.len)) {
        ctx->result = NGX_HTTP_APIKEY_INVALID;
        return ngx_http_apikey_decide(r, ctx);
    }

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    /* NS{<hash>}: only the hash of the key ever leaves nginx */

    args[0].len = akmcf->redis.ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;
    args[0].data = ngx_pnalloc(r->pool, args[0].len);
    if (args[0].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(args[0].data, akmcf->redis.ns.data, akmcf->redis.ns.len);
    *p++ = '{';

    if (ngx_http_apikey_sha256_hex(p, key.data, key.len) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "SHA-256 failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p[NGX_HTTP_APIKEY_HASH_LEN] = '}';

    args[1] = akcf->environment;
    args[2] = akcf->scopes;

    rc = ngx_http_apikey_redis_batch(&ngx_http_apikey_gate_script, 3, args,
                                     akmcf->redis.timeout,
                                     ngx_http_apikey_done, ctx, &ctx->item);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return ngx_http_apikey_decide(r, ctx);
    }

    ctx->state = NGX_HTTP_APIKEY_PENDING;

    /* notice a client that leaves while Redis answers */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_apikey_find_key(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_uint_t                   i, n;
    ngx_list_part_t             *part;
    ngx_table_elt_t             *h, *found;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ctx->conf;
    found = NULL;
    n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != akcf->header_hash
            || h[i].key.len != akcf->header_lc.len
            || ngx_strncmp(h[i].lowcase_key, akcf->header_lc.data,
                           akcf->header_lc.len)
               != 0)
        {
            continue;
        }

        found = &h[i];
        n++;
    }

    if (n > 1) {
        return NGX_HTTP_APIKEY_INVALID;
    }

    if (found && found->value.len) {
        ctx->header = found;
        *key = found->value;
        return NGX_HTTP_APIKEY_OK;
    }

    h = r->headers_in.authorization;

    if (akcf->bearer && h != NULL
        && h->value.len > sizeof("Bearer ") - 1
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           == 0)
    {
        key->data = h->value.data + sizeof("Bearer ") - 1;
        key->len = h->value.len - (sizeof("Bearer ") - 1);

        while (key->len && *key->data == ' ') {
            key->data++;
            key->len--;
        }

        if (key->len) {
            ctx->header = h;
            return NGX_HTTP_APIKEY_OK;
        }
    }

    return NGX_HTTP_APIKEY_MISSING;
}


static void
ngx_http_apikey_done(void *data, redisReply *reply)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ctx->item = NULL;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    if (ngx_http_apikey_read_reply(r, ctx, reply) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "apikey result:%ui id:\"%V\"", ctx->result, &ctx->id);

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_apikey_read_reply(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    redisReply *reply)
{
    ngx_int_t     rc;
    redisReply  **e;

    if (reply == NULL) {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return NGX_OK;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redis gate script failed: %*s",
                      (size_t) reply->len, reply->str);
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return NGX_OK;
    }

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1 || reply->elements > 3
        || e[0]->type != REDIS_REPLY_INTEGER
        || e[0]->integer < NGX_HTTP_APIKEY_OK
        || e[0]->integer > NGX_HTTP_APIKEY_LIMITED)
    {
        goto unexpected;
    }

    ctx->result = (ngx_uint_t) e[0]->integer;

    if (reply->elements == 1) {
        if (ctx->result != NGX_HTTP_APIKEY_INVALID) {
            goto unexpected;
        }

        return NGX_OK;
    }

    if (e[1]->type != REDIS_REPLY_STRING
        || (reply->elements == 3 && e[2]->type != REDIS_REPLY_INTEGER))
    {
        goto unexpected;
    }

    rc = ngx_http_apikey_parse_gate(r, ctx, (u_char *) e[1]->str, e[1]->len);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        goto unexpected;
    }

    if (reply->elements == 3) {
        ngx_http_apikey_bucket(ctx, e[2]->integer);
    }

    return NGX_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "unexpected reply of the redis gate script");

    ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;

    return NGX_OK;
}


/*
 * The secret's "g" field (docs/data-model.md): a line of check values
 * ending with the environment and the scopes, then id, org, prefix and
 * name, one per line.
 */

static ngx_int_t
ngx_http_apikey_parse_gate(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    u_char *data, size_t len)
{
    u_char      *p, *last, *q;
    ngx_int_t    n[3];
    ngx_str_t   *lines[4];
    ngx_uint_t   i;

    lines[0] = &ctx->id;
    lines[1] = &ctx->org;
    lines[2] = &ctx->prefix;
    lines[3] = &ctx->name;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, data, len);
    last = p + len;

    /* rev exp grace rate per burst: nginx needs the last three */

    for (i = 0; i < 6; i++) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            return NGX_DECLINED;
        }

        if (i >= 3) {
            n[i - 3] = ngx_atoi(p, q - p);
            if (n[i - 3] == NGX_ERROR) {
                return NGX_DECLINED;
            }
        }

        p = q + 1;
    }

    ctx->rate = n[0];
    ctx->per = n[1];
    ctx->burst_size = n[2];

    q = ngx_strlchr(p, last, '\n');
    if (q == NULL) {
        return NGX_DECLINED;
    }

    ctx->environment.data = p;

    p = ngx_strlchr(p, q, ' ');

    if (p == NULL) {
        ctx->environment.len = q - ctx->environment.data;

    } else {
        ctx->environment.len = p - ctx->environment.data;
        ctx->scopes.data = p + 1;
        ctx->scopes.len = q - p - 1;
    }

    for (i = 0; i < 4; i++) {
        p = q + 1;

        if (p > last) {
            return NGX_DECLINED;
        }

        q = (i < 3) ? ngx_strlchr(p, last, '\n') : last;
        if (q == NULL) {
            return NGX_DECLINED;
        }

        lines[i]->data = p;
        lines[i]->len = q - p;
    }

    return NGX_OK;
}


/*
 * The rate headers from the key's limit and how far (microseconds) the
 * bucket's theoretical arrival time is ahead of now: the bucket holds
 * burst - ahead / step tokens (docs/data-model.md).
 */

static void
ngx_http_apikey_bucket(ngx_http_apikey_ctx_t *ctx, int64_t ahead)
{
    double  step, tokens;

    if (ctx->rate <= 0 || ctx->per <= 0 || ctx->burst_size <= 0) {
        return;
    }

    if (ahead < 0) {
        ahead = 0;
    }

    step = (double) ctx->per * 1000000 / ctx->rate;
    tokens = ctx->burst_size - ahead / step;

    ctx->burst = ctx->burst_size;
    ctx->remaining = (tokens > 0) ? (ngx_int_t) (tokens + 0.001) : 0;
    ctx->reset = (ngx_int_t) ((ahead + 999999) / 1000000);
    ctx->window = ngx_http_apikey_seconds(ctx->burst_size * step);

    if (ctx->result == NGX_HTTP_APIKEY_LIMITED) {
        ctx->retry_after = ngx_http_apikey_seconds(
                                    ahead - (ctx->burst_size - 1) * step);
        if (ctx->retry_after < 1) {
            ctx->retry_after = 1;
        }
    }
}


/* whole seconds, rounded up, of a non-negative number of microseconds */

static ngx_int_t
ngx_http_apikey_seconds(double us)
{
    ngx_int_t  s;

    us = us / 1000000 - 1e-9;

    if (us <= 0) {
        return 0;
    }

    s = (ngx_int_t) us;

    return (s < us) ? s + 1 : s;
}


/*
 * After an internal redirect the key is not checked again, but the new
 * location may ask for another environment or more scopes: hold the key
 * to them with what the first check learnt.
 */

static void
ngx_http_apikey_recheck(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *akcf)
{
    u_char  *p, *last, *q;

    ctx->conf = akcf;

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return;
    }

    if (akcf->environment.len
        && (akcf->environment.len != ctx->environment.len
            || ngx_strncmp(akcf->environment.data, ctx->environment.data,
                           akcf->environment.len)
               != 0))
    {
        ctx->result = NGX_HTTP_APIKEY_ENVIRONMENT;
        return;
    }

    p = akcf->scopes.data;
    last = p + akcf->scopes.len;

    while (p < last) {
        if (*p == ' ') {
            p++;
            continue;
        }

        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if (!ngx_http_apikey_has_scope(&ctx->scopes, p, q - p)) {
            ctx->result = NGX_HTTP_APIKEY_SCOPE;
            return;
        }

        p = q;
    }
}


static ngx_uint_t
ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope, size_t len)
{
    u_char  *p, *last, *q;

    p = scopes->data;
    last = p + scopes->len;

    while (p < last) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if ((size_t) (q - p) == len && ngx_strncmp(p, scope, len) == 0) {
            return 1;
        }

        p = q + 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_apikey_decide(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                    value;
    ngx_http_apikey_result_t    *res;
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ctx->conf;

    if (ctx->result == NGX_HTTP_APIKEY_UNAVAILABLE
        && akcf->fail_mode == NGX_HTTP_APIKEY_FAIL_OPEN)
    {
        ctx->result = NGX_HTTP_APIKEY_UNVERIFIED;
    }

    res = &ngx_http_apikey_results[ctx->result];

    if (res->http_status == 0) {

        if (akcf->hide_header && ctx->header && !ctx->hidden) {
            ctx->hidden = 1;

            if (ngx_http_apikey_hide(r, ctx->header) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "apikey refused: %V%s%V%s%V", &res->code,
                  ctx->id.len ? ", key id " : "", &ctx->id,
                  ctx->prefix.len ? ", prefix " : "", &ctx->prefix);

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (res->http_status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_http_apikey_add_header(r, "WWW-Authenticate",
                                       sizeof("WWW-Authenticate") - 1,
                                       &akcf->www_authenticate)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->result == NGX_HTTP_APIKEY_LIMITED) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.data = p;
        value.len = ngx_sprintf(p, "%i", ctx->retry_after) - p;

        if (ngx_http_apikey_add_header(r, "Retry-After",
                                       sizeof("Retry-After") - 1, &value)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_apikey_send_problem(r, res->http_status, &res->code,
                                      &res->detail);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_http_apikey_send_problem(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *detail)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_str_t     title;
    ngx_chain_t   out;

    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(&title, "Bad Request");
        break;
    case NGX_HTTP_UNAUTHORIZED:
        ngx_str_set(&title, "Unauthorized");
        break;
    case NGX_HTTP_FORBIDDEN:
        ngx_str_set(&title, "Forbidden");
        break;
    case NGX_HTTP_NOT_FOUND:
        ngx_str_set(&title, "Not Found");
        break;
    case NGX_HTTP_NOT_ALLOWED:
        ngx_str_set(&title, "Method Not Allowed");
        break;
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_str_set(&title, "Content Too Large");
        break;
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        ngx_str_set(&title, "Unsupported Media Type");
        break;
    case NGX_HTTP_TOO_MANY_REQUESTS:
        ngx_str_set(&title, "Too Many Requests");
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&title, "Service Unavailable");
        break;
    default:
        ngx_str_set(&title, "Error");
    }

    /* code, title and detail are ours: plain ASCII with nothing to escape */

    len = sizeof("{\"type\":\"about:blank\",\"title\":\"\",\"status\":,"
                 "\"code\":\"\",\"detail\":\"\"}") - 1
          + title.len + NGX_INT_T_LEN + code->len + detail->len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"type\":\"about:blank\",\"title\":\"%V\","
                          "\"status\":%ui,\"code\":\"%V\",\"detail\":\"%V\"}",
                          &title, status, code, detail);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Takes the key's header out of the request so that no upstream sees it.
 * The list is rebuilt without it: pointers from r->headers_in into the old
 * parts stay valid, and the key's own header loses its pointer.
 */

static ngx_int_t
ngx_http_apikey_hide(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_uint_t        i;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *e, *n;

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    e = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            e = part->elts;
            i = 0;
        }

        if (&e[i] == h) {
            continue;
        }

        n = ngx_list_push(&r->headers_in.headers);
        if (n == NULL) {
            return NGX_ERROR;
        }

        *n = e[i];
    }

    if (r->headers_in.authorization == h) {
        r->headers_in.authorization = NULL;
    }

    return NGX_OK;
}


static ngx_http_apikey_ctx_t *
ngx_http_apikey_get_ctx(ngx_http_request_t *r)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx != NULL) {
        return ctx;
    }

    /*
     * an internal redirect clears module contexts, but the check was made
     * and paid for: find it again through the request cleanup
     */

    for (cln = r->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_apikey_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_apikey_cleanup(void *data)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    if (ctx->item) {
        ngx_http_apikey_redis_batch_detach(ctx->item);
        ctx->item = NULL;
    }
}


ngx_table_elt_t *
ngx_http_apikey_add_header(ngx_http_request_t *r, const char *name,
    size_t len, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.len = len;
    h->key.data = (u_char *) name;
    h->value = *value;

    return h;
}


static ngx_int_t
ngx_http_apikey_header_filter(ngx_http_request_t *r)
{
    u_char                 *p;
    ngx_str_t               v[5];
    ngx_uint_t              i, first, last;
    ngx_http_apikey_ctx_t  *ctx;

    static ngx_str_t  names[] = {
        ngx_string("RateLimit-Policy"),
        ngx_string("RateLimit"),
        ngx_string("RateLimit-Limit"),
        ngx_string("RateLimit-Remaining"),
        ngx_string("RateLimit-Reset")
    };

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL
        || ctx->rate_sent
        || ctx->burst < 0
        || (ctx->result != NGX_HTTP_APIKEY_OK
            && ctx->result != NGX_HTTP_APIKEY_LIMITED))
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->rate_sent = 1;

    /* draft: the first two headers, legacy: the last three */

    first = (ctx->conf->rate_headers & NGX_HTTP_APIKEY_HEADERS_DRAFT) ? 0 : 2;
    last = (ctx->conf->rate_headers & NGX_HTTP_APIKEY_HEADERS_LEGACY) ? 5 : 2;

    if (first >= last) {
        return ngx_http_next_header_filter(r);
    }

    /* every gatekept response pays for these: no ngx_sprintf() */

    p = ngx_pnalloc(r->pool, sizeof("\"default\";q=;w=\"default\";r=;t=") - 1
                             + 7 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v[0].data = p;
    p = ngx_cpymem(p, "\"default\";q=", sizeof("\"default\";q=") - 1);
    v[2].data = p;
    p = ngx_http_apikey_itoa(p, ctx->burst);
    v[2].len = p - v[2].data;
    p = ngx_cpymem(p, ";w=", sizeof(";w=") - 1);
    p = ngx_http_apikey_itoa(p, ctx->window);
    v[0].len = p - v[0].data;

    v[1].data = p;
    p = ngx_cpymem(p, "\"default\";r=", sizeof("\"default\";r=") - 1);
    v[3].data = p;
    p = ngx_http_apikey_itoa(p, ctx->remaining);
    v[3].len = p - v[3].data;
    p = ngx_cpymem(p, ";t=", sizeof(";t=") - 1);
    v[4].data = p;
    p = ngx_http_apikey_itoa(p, ctx->reset);
    v[4].len = p - v[4].data;
    v[1].len = p - v[1].data;

    for (i = first; i < last; i++) {
        if (ngx_http_apikey_add_header(r, (char *) names[i].data,
                                       names[i].len, &v[i])
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static u_char *
ngx_http_apikey_itoa(u_char *p, ngx_int_t n)
{
    u_char   buf[NGX_INT_T_LEN], *q;

    if (n < 0) {
        *p++ = '-';
        n = -n;
    }

    q = buf + NGX_INT_T_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, buf + NGX_INT_T_LEN - q);
}


static ngx_int_t
ngx_http_apikey_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    ngx_str_t              *s, empty = ngx_null_string;
    ngx_http_apikey_ctx_t  *ctx;

    /* before the check, and where it learnt nothing, the value is empty */

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL || ctx->state != NGX_HTTP_APIKEY_DONE) {
        s = &empty;

    } else if (data == 0) {
        s = &ngx_http_apikey_results[ctx->result].status;

    } else if (data == offsetof(ngx_http_apikey_ctx_t, remaining)) {
        s = &empty;

        if (ctx->burst >= 0) {
            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->len = ngx_sprintf(p, "%i", ctx->remaining) - p;
            v->data = p;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;

            return NGX_OK;
        }

    } else {
        s = (ngx_str_t *) ((u_char *) ctx + data);
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt          *h;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    if (!akmcf->used) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_apikey_header_filter;

    return ngx_http_apikey_redis_add_script(cf, &akmcf->redis,
                                            &ngx_http_apikey_gate_script);
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
     *     akmcf->redis.host = { 0, NULL };
     *     akmcf->redis.path = { 0, NULL };
     *     akmcf->redis.port = 0;
     *     akmcf->redis.db = 0;
     *     akmcf->redis.user = { 0, NULL };
     *     akmcf->redis.password = { 0, NULL };
     *     akmcf->redis.ns = { 0, NULL };
     *     akmcf->redis.scripts = { NULL, ... };
     *     akmcf->enabled = 0;
     *     akmcf->used = 0;
     */

    akmcf->redis.timeout = NGX_CONF_UNSET_MSEC;

    return akmcf;
}


static char *
ngx_http_apikey_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_apikey_main_conf_t  *akmcf = conf;

    ngx_conf_init_msec_value(akmcf->redis.timeout, 100);

    if (akmcf->redis.timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis_timeout\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (akmcf->redis.ns.data == NULL) {
        ngx_str_set(&akmcf->redis.ns, "apikey:");
    }

    return NGX_CONF_OK;
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
     *     conf->header_hash = 0;
     *     conf->www_authenticate = { 0, NULL };
     *     conf->environment = { 0, NULL };
     *     conf->scopes = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->bearer = NGX_CONF_UNSET;
    conf->fail_mode = NGX_CONF_UNSET_UINT;
    conf->hide_header = NGX_CONF_UNSET;
    conf->rate_headers = NGX_CONF_UNSET_UINT;

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
    ngx_conf_merge_value(conf->hide_header, prev->hide_header, 1);
    ngx_conf_merge_uint_value(conf->rate_headers, prev->rate_headers,
                              NGX_HTTP_APIKEY_HEADERS_DRAFT
                              |NGX_HTTP_APIKEY_HEADERS_LEGACY);
    ngx_conf_merge_str_value(conf->environment, prev->environment, "");
    ngx_conf_merge_str_value(conf->scopes, prev->scopes, "");

    if (conf->header.data == NULL) {
        if (prev->header.data == NULL) {
            ngx_str_set(&prev->header, "X-API-Key");
            ngx_str_set(&prev->header_lc, "x-api-key");
            prev->header_hash = ngx_hash_key(prev->header_lc.data,
                                             prev->header_lc.len);
        }

        conf->header = prev->header;
        conf->header_lc = prev->header_lc;
        conf->header_hash = prev->header_hash;
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

    if (conf->enable) {
        return ngx_http_apikey_require_redis(cf, "apikey");
    }

    return NGX_CONF_OK;
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

    u_char     *p;
    size_t      len;
    ngx_int_t   db;
    ngx_str_t  *value, s;
    ngx_url_t   u;
    ngx_uint_t  i, seen, bit;

    if (akmcf->enabled) {
        return "is duplicate";
    }

    value = cf->args->elts;

    akmcf->redis.address = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        akmcf->redis.path.len = value[1].len - 5;
        akmcf->redis.path.data = ngx_pnalloc(cf->pool,
                                             akmcf->redis.path.len + 1);
        if (akmcf->redis.path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(akmcf->redis.path.data, value[1].data + 5,
                    akmcf->redis.path.len + 1);

    } else {

        /*
         * hiredis resolves names with a blocking getaddrinfo(): resolve
         * here, once, and hand it a numeric address
         */

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"%V\" of \"apikey_redis\"",
                                   u.err, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0 || u.uri.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in \"apikey_redis\"",
                               &u.url);
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                            NGX_SOCKADDR_STRLEN, 0);
        p[len] = '\0';

        akmcf->redis.host.data = p;
        akmcf->redis.host.len = len;
        akmcf->redis.port = u.port;
    }

    seen = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            db = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (db == NGX_ERROR) {
                goto invalid;
            }

            akmcf->redis.db = db;
            bit = 1;

        } else if (ngx_strncmp(value[i].data, "user=", 5) == 0
                   && value[i].len > 5)
        {
            s.len = value[i].len - 5;
            s.data = value[i].data + 5;
            akmcf->redis.user = s;
            bit = 2;

        } else if (ngx_strncmp(value[i].data, "password=", 9) == 0
                   && value[i].len > 9)
        {
            s.len = value[i].len - 9;
            s.data = value[i].data + 9;
            akmcf->redis.password = s;
            bit = 4;

        } else if (ngx_strncmp(value[i].data, "namespace=", 10) == 0
                   && value[i].len > 10)
        {
            s.len = value[i].len - 10;
            s.data = value[i].data + 10;
            akmcf->redis.ns = s;
            bit = 8;

        } else {
            goto invalid;
        }

        if (seen & bit) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        seen |= bit;
    }

    if (akmcf->redis.user.len && akmcf->redis.password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" of \"apikey_redis\" needs \"password=\"");
        return NGX_CONF_ERROR;
    }

    akmcf->enabled = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
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

    akcf->header_hash = ngx_hash_strlow(akcf->header_lc.data, value[1].data,
                                        value[1].len);

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
                               "invalid parameter \"%V\"", &value[i]);
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

    ctx = (ngx_http_conf_ctx_t *) ngx_get_conf(cycle->conf_ctx,
                                               ngx_http_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    akmcf = ctx->main_conf[ngx_http_apikey_module.ctx_index];

    if (!akmcf->used) {
        return NGX_OK;
    }

    return ngx_http_apikey_redis_init_worker(cycle, &akmcf->redis);
}


static void
ngx_http_apikey_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_redis_exit_worker();
}
