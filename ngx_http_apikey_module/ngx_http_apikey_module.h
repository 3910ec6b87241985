
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_bucket.h"


/* the module's version, as debian/changelog has it upstream */
#define NGX_HTTP_APIKEY_VERSION         "0.4.0"

#define NGX_HTTP_APIKEY_FAIL_CLOSED     0
#define NGX_HTTP_APIKEY_FAIL_OPEN       1

#define NGX_HTTP_APIKEY_PREFLIGHT_PASS  0
#define NGX_HTTP_APIKEY_PREFLIGHT_CHECK 1

#define NGX_HTTP_APIKEY_HEADERS_OFF     0x0001
#define NGX_HTTP_APIKEY_HEADERS_DRAFT   0x0002
#define NGX_HTTP_APIKEY_HEADERS_LEGACY  0x0004

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
#define NGX_HTTP_APIKEY_PREFLIGHT       10

/* the gate script's code for a quota used up: LIMITED, with quota_out */
#define NGX_HTTP_APIKEY_QUOTA_OUT       7

#define NGX_HTTP_APIKEY_PENDING         1
#define NGX_HTTP_APIKEY_DONE            2


typedef struct {
    ngx_flag_t                    enable;
    ngx_str_t                     header;        /* as written */
    ngx_str_t                     header_lc;
    ngx_str_t                     www_authenticate;
    ngx_flag_t                    bearer;
    ngx_str_t                     environment;
    ngx_str_t                     scopes;        /* " a b " */
    ngx_uint_t                    fail_mode;
    ngx_uint_t                    preflight;
    ngx_flag_t                    hide_header;
    ngx_uint_t                    rate_headers;
    ngx_int_t                     vars[2];       /* $http_<header>, and
                                                    $http_authorization */
    ngx_flag_t                    restricted;    /* allow, deny, auth_*,
                                                    satisfy: see
                                                    _metrics_guard.c */
    u_char                       *metrics_file;  /* apikey_metrics here */
    ngx_uint_t                    metrics_line;
    ngx_flag_t                    returns;       /* rewrite's return here,
                                                    or the server's */
    u_char                       *return_file;
    ngx_uint_t                    return_line;
} ngx_http_apikey_loc_conf_t;


typedef struct {
    ngx_str_t                     status;
    ngx_uint_t                    http_status;
    ngx_str_t                     code;
    ngx_str_t                     detail;
} ngx_http_apikey_result_t;


/* one policy of the rate headers: a bucket or a quota */

typedef struct {
    ngx_str_t                     name;
    int64_t                       quota;       /* q: burst, or units */
    ngx_int_t                     window;      /* w */
    int64_t                       remaining;   /* r */
    ngx_int_t                     next;        /* t: s until more */
    ngx_int_t                     reset;       /* s until all */
} ngx_http_apikey_policy_t;

#define NGX_HTTP_APIKEY_POLICIES  4


/*
 * A request's check, kept through internal redirects and shared with its
 * subrequests (ngx_http_apikey_ctx.c).
 */

typedef struct {
    ngx_uint_t                    state;
    ngx_uint_t                    result;
    ngx_http_request_t           *request;
    ngx_http_apikey_loc_conf_t   *conf;
    ngx_http_apikey_redis_item_t *item;
    ngx_str_t                     key;           /* the raw key, if found */
    ngx_uint_t                    found;         /* find_key()'s result */
    ngx_str_t                     secret;        /* NS{<hex hash>} */
    u_char                       *hash;          /* the hex, in secret */
    u_char                        bin[32];       /* the same, as bytes */
    int64_t                       start;         /* us, before the check */
    uint64_t                      entered;       /* us, monotonic: the
                                                    access phase began */
    ngx_http_apikey_cache_rec_t   rec;           /* the replica's bucket */
    ngx_http_apikey_lease_ask_t   lease;         /* asked of Redis */
    ngx_uint_t                    leased;        /* tokens Redis took */
    int64_t                       leased_at;     /* Redis us, of those */
    ngx_table_elt_t              *header;        /* where the key came */
    ngx_str_t                     id;
    ngx_str_t                     org;
    ngx_str_t                     name;
    ngx_str_t                     environment;
    ngx_str_t                     prefix;
    ngx_str_t                     scopes;        /* the key's, "a b" */
    ngx_str_t                     meta;          /* compact JSON */
    ngx_int_t                     rate;          /* the key's limit */
    ngx_int_t                     per;
    ngx_int_t                     burst_size;
    ngx_int_t                     burst;         /* -1: no bucket used */
    ngx_int_t                     remaining;
    ngx_int_t                     reset;         /* s until full */
    ngx_int_t                     next;          /* s until one more */
    ngx_int_t                     retry_after;
    ngx_int_t                     window;
    int64_t                       quota;         /* units a period, 0: none */
    int64_t                       quota_used;    /* -1: not known */
    ngx_int_t                     quota_reset;   /* s until it ends */
    u_char                        quota_period;  /* 'd' or 'm' */
    ngx_int_t                     org_rate;      /* the organization's */
    ngx_int_t                     org_per;       /* bucket, 0: none */
    ngx_int_t                     org_burst;
    int64_t                       org_ahead;     /* us */
    int64_t                       org_quota;     /* 0: none */
    int64_t                       org_used;
    ngx_int_t                     org_reset;     /* s until it ends */
    u_char                        org_period;    /* 'd' or 'm' */
    unsigned                      looked:1;      /* the key was looked for */
    unsigned                      checked:1;     /* the check was made */
    unsigned                      cached:1;      /* rec is the replica's */
    unsigned                      hidden:1;
    unsigned                      bearer:1;      /* the key was a bearer */
    unsigned                      rate_sent:1;
    unsigned                      counted:1;
    unsigned                      resend:1;      /* a sibling, once more */
    unsigned                      resent:2;
    unsigned                      quota_out:1;   /* limited by the quota */
} ngx_http_apikey_ctx_t;


typedef struct {
    ngx_http_apikey_redis_conf_t   redis;
    ngx_http_apikey_cache_conf_t   cache;
    ngx_flag_t                     enabled;   /* apikey_redis was given */
    ngx_flag_t                     used;      /* some location needs it */
} ngx_http_apikey_main_conf_t;


/* ngx_http_apikey_gate.c: the access handler and its decision */

ngx_int_t ngx_http_apikey_gate_init(ngx_conf_t *cf,
    ngx_http_apikey_main_conf_t *akmcf);
ngx_int_t ngx_http_apikey_gate_init_worker(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *akmcf);


/* ngx_http_apikey_ctx.c: the request's check, for every phase */

ngx_http_apikey_ctx_t *ngx_http_apikey_ctx_create(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *akcf);
ngx_http_apikey_ctx_t *ngx_http_apikey_get_ctx(ngx_http_request_t *r);

/* the last request header of a lowercase name, and how many there are */
ngx_table_elt_t *ngx_http_apikey_header_in(ngx_http_request_t *r,
    ngx_str_t *name, ngx_uint_t *n);


/* ngx_http_apikey_answer.c: what a check's answer says */

/*
 * The gate script's reply to the request's check (NULL: none came), with
 * what the replica and the leases make of it.
 */
ngx_int_t ngx_http_apikey_read_reply(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, redisReply *reply);

/*
 * The replica's answer (apikey_cache), as the gate script would give it:
 * NGX_OK with ctx->result, NGX_DECLINED when Redis must answer.
 */
ngx_int_t ngx_http_apikey_local(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, ngx_uint_t offline);

/*
 * After an internal redirect, or when the replica answers: holds the key
 * to the location's environment and scopes with what its check learnt.
 */
void ngx_http_apikey_recheck(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *akcf);

/* the rate numbers of the headers, from how far ahead the bucket is (us) */
void ngx_http_apikey_bucket_headers(ngx_http_apikey_ctx_t *ctx,
    int64_t ahead);

/*
 * The policies that applied to the check, for the rate headers: the
 * key's bucket, the organization's, the key's quota and the
 * organization's; returns how many (at most NGX_HTTP_APIKEY_POLICIES)
 */
ngx_uint_t ngx_http_apikey_policies(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_policy_t *pol);


/* ngx_http_apikey_reply.c: refusals, problem+json and rate headers */

extern ngx_http_apikey_result_t  ngx_http_apikey_results[];

ngx_int_t ngx_http_apikey_reply_init(ngx_conf_t *cf);

/*
 * Answers a refused check: the result's status and problem+json body,
 * with WWW-Authenticate or Retry-After where the status calls for them.
 */
ngx_int_t ngx_http_apikey_refuse(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);

/*
 * Sends an application/problem+json response (RFC 9457) with the given
 * status, "code" and "detail"; headers already in r->headers_out are kept.
 * Returns what the output filter returned, for ngx_http_finalize_request().
 */
ngx_int_t ngx_http_apikey_send_problem(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *detail);

/*
 * Sends b as the whole response with the status and content type; returns
 * what the output filter returned, for ngx_http_finalize_request()
 */
ngx_int_t ngx_http_apikey_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b);

/* adds a response header; name is a literal that outlives the request */
ngx_table_elt_t *ngx_http_apikey_add_header(ngx_http_request_t *r,
    const char *name, size_t len, ngx_str_t *value);

/* ngx_http_apikey_variables.c */

ngx_int_t ngx_http_apikey_add_variables(ngx_conf_t *cf);


/* ngx_http_apikey_module.c */

/*
 * Marks that a location needs Redis; fails with a clear message when no
 * apikey_redis was configured.
 */
char *ngx_http_apikey_require_redis(ngx_conf_t *cf, const char *directive);


extern ngx_module_t  ngx_http_apikey_module;


#endif /* _NGX_HTTP_APIKEY_MODULE_H_INCLUDED_ */
