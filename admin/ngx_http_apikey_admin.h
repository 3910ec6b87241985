
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_http_apikey_module.h"


#define NGX_HTTP_APIKEY_ADMIN_BODY_MAX       65536
#define NGX_HTTP_APIKEY_ADMIN_NAME_MAX       100
#define NGX_HTTP_APIKEY_ADMIN_DESCRIPTION_MAX  500
#define NGX_HTTP_APIKEY_ADMIN_SCOPES_MAX     32
#define NGX_HTTP_APIKEY_ADMIN_SCOPE_MAX      64
#define NGX_HTTP_APIKEY_ADMIN_SEGMENT_MAX    64
#define NGX_HTTP_APIKEY_ADMIN_RATE_MAX       1000000
#define NGX_HTTP_APIKEY_ADMIN_TTL_MIN        60
#define NGX_HTTP_APIKEY_ADMIN_TTL_MAX        3153600000
#define NGX_HTTP_APIKEY_ADMIN_GRACE_MAX      604800
#define NGX_HTTP_APIKEY_ADMIN_PER_PAGE       20
#define NGX_HTTP_APIKEY_ADMIN_PER_PAGE_MAX   100
#define NGX_HTTP_APIKEY_ADMIN_PAGE_MAX       1000000000
#define NGX_HTTP_APIKEY_ADMIN_ID_LEN         24
#define NGX_HTTP_APIKEY_ADMIN_MAX_ARGS       32

#define NGX_HTTP_APIKEY_ADMIN_UNPROCESSABLE  422

/* usage: days kept, most buckets per answer, buckets by default */
#define NGX_HTTP_APIKEY_ADMIN_USAGE_DAYS     90
#define NGX_HTTP_APIKEY_ADMIN_USAGE_HOURS    744
#define NGX_HTTP_APIKEY_ADMIN_USAGE_DEF_HOURS  24
#define NGX_HTTP_APIKEY_ADMIN_USAGE_DEF_DAYS   30

/*
 * index entries a list walks per script call (about a
 * millisecond of Redis), and how a worker paces its slices while it has
 * gatekeeper checks to send (ngx_http_apikey_admin_ops.c)
 */
#define NGX_HTTP_APIKEY_ADMIN_WALK           800
#define NGX_HTTP_APIKEY_ADMIN_WALK_PAUSE     3          /* ms */
#define NGX_HTTP_APIKEY_ADMIN_WALK_BUSY      100        /* ms */


/* operations */

#define NGX_HTTP_APIKEY_ADMIN_CREATE         0
#define NGX_HTTP_APIKEY_ADMIN_LIST           1
#define NGX_HTTP_APIKEY_ADMIN_GET            2
#define NGX_HTTP_APIKEY_ADMIN_UPDATE         3
#define NGX_HTTP_APIKEY_ADMIN_REVOKE         4
#define NGX_HTTP_APIKEY_ADMIN_RESTORE        5
#define NGX_HTTP_APIKEY_ADMIN_ROTATE         6
#define NGX_HTTP_APIKEY_ADMIN_DELETE         7
#define NGX_HTTP_APIKEY_ADMIN_EVENTS         8
#define NGX_HTTP_APIKEY_ADMIN_USAGE          9
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE   10
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_LIST     11
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_GET      12
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE   13
#define NGX_HTTP_APIKEY_ADMIN_ORG_GET        14
#define NGX_HTTP_APIKEY_ADMIN_ORG_UPDATE     15

/* the management tokens' operations */
#define ngx_http_apikey_admin_token_op(ctx)                                   \
    ((ctx)->operation >= NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE                   \
     && (ctx)->operation <= NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE)

/*
 * the scripts that are no operation of their own, after those of the
 * operations: the index rebuild, the lookup of a management token and
 * the expiry notices
 */
#define NGX_HTTP_APIKEY_ADMIN_REINDEX_SCRIPT 16
#define NGX_HTTP_APIKEY_ADMIN_AUTH_SCRIPT    17
#define NGX_HTTP_APIKEY_ADMIN_NOTICES_SCRIPT 18

/* the operations that change keys */
#define ngx_http_apikey_admin_changes(ctx)                                    \
    ((1 << (ctx)->operation) & ((1 << NGX_HTTP_APIKEY_ADMIN_CREATE)           \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_UPDATE)         \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_REVOKE)         \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_RESTORE)        \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_ROTATE)         \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_DELETE)         \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_TOKEN_CREATE)   \
                                | (1 << NGX_HTTP_APIKEY_ADMIN_TOKEN_REVOKE)))


/* permissions (SPEC section 6), a token's as bits */

#define NGX_HTTP_APIKEY_ADMIN_P_KEYS_READ      0x0001
#define NGX_HTTP_APIKEY_ADMIN_P_KEYS_WRITE     0x0002
#define NGX_HTTP_APIKEY_ADMIN_P_USAGE_READ     0x0004
#define NGX_HTTP_APIKEY_ADMIN_P_EVENTS_READ    0x0008
#define NGX_HTTP_APIKEY_ADMIN_P_ORGS_WRITE     0x0010
#define NGX_HTTP_APIKEY_ADMIN_P_TOKENS_MANAGE  0x0020
#define NGX_HTTP_APIKEY_ADMIN_P_ALL            0x003f

/* a management token lives 180 days by default, 2 years at most */
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL      15552000
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_TTL_MAX  63072000
#define NGX_HTTP_APIKEY_ADMIN_TOKEN_PREFIX   "akm"


/* the fields of a key as the scripts return them */

#define NGX_HTTP_APIKEY_ADMIN_META_MAX       1024  /* bytes of compact JSON */

#define NGX_HTTP_APIKEY_ADMIN_F_ID           0
#define NGX_HTTP_APIKEY_ADMIN_F_ORG          1
#define NGX_HTTP_APIKEY_ADMIN_F_NAME         2
#define NGX_HTTP_APIKEY_ADMIN_F_DESCRIPTION  3
#define NGX_HTTP_APIKEY_ADMIN_F_PREFIX       4
#define NGX_HTTP_APIKEY_ADMIN_F_ENV          5
#define NGX_HTTP_APIKEY_ADMIN_F_SCOPES       6
#define NGX_HTTP_APIKEY_ADMIN_F_RATE         7
#define NGX_HTTP_APIKEY_ADMIN_F_PER          8
#define NGX_HTTP_APIKEY_ADMIN_F_BURST        9
#define NGX_HTTP_APIKEY_ADMIN_F_CREATED_AT   10
#define NGX_HTTP_APIKEY_ADMIN_F_CREATED_BY   11
#define NGX_HTTP_APIKEY_ADMIN_F_UPDATED_AT   12
#define NGX_HTTP_APIKEY_ADMIN_F_EXPIRES_AT   13
#define NGX_HTTP_APIKEY_ADMIN_F_REVOKED_AT   14
#define NGX_HTTP_APIKEY_ADMIN_F_LAST_USED    15
#define NGX_HTTP_APIKEY_ADMIN_F_META         16
#define NGX_HTTP_APIKEY_ADMIN_F_QUOTA        17    /* "<limit> <d|m>" */
#define NGX_HTTP_APIKEY_ADMIN_F_QUOTA_USED   18    /* "<period> <used>" */
#define NGX_HTTP_APIKEY_ADMIN_F_N            19

#define NGX_HTTP_APIKEY_ADMIN_QUOTA_MAX      1000000000000LL

/* the fields of a management token as the scripts return them */

#define NGX_HTTP_APIKEY_ADMIN_T_ID           0
#define NGX_HTTP_APIKEY_ADMIN_T_NAME         1
#define NGX_HTTP_APIKEY_ADMIN_T_ORGS         2
#define NGX_HTTP_APIKEY_ADMIN_T_PERMISSIONS  3
#define NGX_HTTP_APIKEY_ADMIN_T_CREATED_AT   4
#define NGX_HTTP_APIKEY_ADMIN_T_CREATED_BY   5
#define NGX_HTTP_APIKEY_ADMIN_T_EXPIRES_AT   6
#define NGX_HTTP_APIKEY_ADMIN_T_LAST_USED    7
#define NGX_HTTP_APIKEY_ADMIN_T_REVOKED_AT   8
#define NGX_HTTP_APIKEY_ADMIN_T_PREFIX       9
#define NGX_HTTP_APIKEY_ADMIN_T_N            10


typedef struct {
    ngx_str_t                       name;
    u_char                          hash[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_array_t                    *orgs;      /* ngx_str_t; NULL: all */
    ngx_uint_t                      permissions;  /* ..._ADMIN_P_* */
    ngx_str_t                       id;        /* a management token's */
} ngx_http_apikey_admin_token_t;


typedef struct {
    ngx_msec_t                      timeout;   /* apikey_admin_timeout */
    ngx_flag_t                      scripts;   /* registered this cycle */
} ngx_http_apikey_admin_main_conf_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_flag_t                      console;
    ngx_array_t                    *tokens;    /* of the token file */
    ngx_str_t                       prefix;
    ngx_array_t                    *environments;
    ngx_uint_t                      rate;
    ngx_uint_t                      per;
    ngx_uint_t                      burst;
    ngx_int_t                       max_keys;
    time_t                          default_ttl;
    time_t                          max_ttl;
} ngx_http_apikey_admin_loc_conf_t;


/* the body fields given, in ngx_http_apikey_admin_input_t's "given" */

#define NGX_HTTP_APIKEY_ADMIN_GIVEN_NAME         0x0001
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_DESCRIPTION  0x0002
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_ENVIRONMENT  0x0004
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_SCOPES       0x0008
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_RATE         0x0010
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_EXPIRES_AT   0x0020
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_EXPIRES_IN   0x0040
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_META         0x0080
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_QUOTA        0x0100
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_ORGS         0x0200
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_PERMISSIONS  0x0400
#define NGX_HTTP_APIKEY_ADMIN_GIVEN_MAX_KEYS     0x0800

#define ngx_http_apikey_admin_given(in, field)                                \
    ((in)->given & NGX_HTTP_APIKEY_ADMIN_GIVEN_##field)


typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       description;
    ngx_str_t                       environment;
    ngx_str_t                       scopes_json;   /* ["a","b"] */
    ngx_str_t                       meta;          /* compact JSON */
    ngx_str_t                       quota;         /* "N d|m", "": none */
    ngx_int_t                       max_keys;      /* -1: fall back */
    ngx_str_t                       orgs_json;     /* of a token */
    ngx_str_t                       permissions_json;
    ngx_uint_t                      rate;          /* 0: unlimited */
    ngx_uint_t                      per;
    ngx_uint_t                      burst;
    time_t                          expires_at;    /* 0: never */
    time_t                          expires_in;
    time_t                          grace;
    ngx_str_t                       search;
    ngx_str_t                       status;
    ngx_str_t                       env_filter;
    ngx_str_t                       name_prefix;
    ngx_uint_t                      page;
    ngx_uint_t                      per_page;
    time_t                          from;          /* usage */
    time_t                          to;
    time_t                          span;          /* 3600 or 86400 */
    ngx_uint_t                      buckets;

    ngx_uint_t                      given;  /* NGX_HTTP_APIKEY_ADMIN_GIVEN_* */

    unsigned                        has_from:1;
    unsigned                        has_to:1;
} ngx_http_apikey_admin_input_t;


typedef struct {
    ngx_uint_t                      status;
    ngx_str_t                       code;
    ngx_str_t                       detail;
} ngx_http_apikey_admin_error_t;


typedef struct ngx_http_apikey_admin_ctx_s  ngx_http_apikey_admin_ctx_t;

typedef void (*ngx_http_apikey_admin_resume_pt)(
    ngx_http_apikey_admin_ctx_t *ctx);


struct ngx_http_apikey_admin_ctx_s {
    ngx_http_request_t             *request;
    uint64_t                        started;   /* us, for the metrics */
    ngx_http_apikey_admin_token_t  *token;
    ngx_http_apikey_redis_op_t     *op;        /* the call in Redis */
    ngx_uint_t                      step;      /* which call it is */
    ngx_uint_t                      rounds;    /* of the index rebuild */
    ngx_http_apikey_admin_resume_pt resume;    /* a list's turn came */
    ngx_uint_t                      operation;
    ngx_uint_t                      permission; /* the route needs */
    ngx_http_apikey_script_t       *script;    /* of the operation */
    ngx_str_t                       org;
    ngx_str_t                       id;
    ngx_http_apikey_admin_input_t   in;
    ngx_http_apikey_admin_error_t   err;

    /* a new raw key and the response holding it, wiped with the pool */
    ngx_str_t                       raw;
    ngx_str_t                       out;
    u_char                          hash[NGX_HTTP_APIKEY_HASH_LEN];

    /* Idempotency-Key: the header, the record, the request, the raw key */
    ngx_str_t                       idem;
    ngx_str_t                       idem_id;
    ngx_str_t                       idem_fp;
    ngx_str_t                       sealed;

    /* a change's reply, kept while WAIT runs */
    redisReply                     *saved;

    /* the walk of a filtered list, one script call after another */
    json_t                         *data;
    ngx_str_t                       cursor_score;
    ngx_str_t                       cursor_member;
    int64_t                         seen;
    ngx_queue_t                     queue;     /* waiting for its turn */

    unsigned                        queued:1;
    unsigned                        walking:1; /* its slice is in Redis */
    unsigned                        routed:1;   /* "operation" is set */
    unsigned                        sending:1;  /* in ..._admin_send() */
    unsigned                        lost:1;     /* failed while sending */
    unsigned                        unknown:1;  /* lost, maybe after Redis
                                                   ran it */
};


/*
 * ngx_http_apikey_admin_conf.c: the module, its directives, the token file
 * ngx_http_apikey_admin.c: the handler: authentication, routing and
 * bodies
 */

ngx_int_t ngx_http_apikey_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_apikey_admin_log_handler(ngx_http_request_t *r);


/*
 * ngx_http_apikey_admin_console.c: the web console's files; NGX_DECLINED
 * for a path that is none of them
 */

ngx_int_t ngx_http_apikey_admin_console_handler(ngx_http_request_t *r);


/*
 * ngx_http_apikey_admin_query.c: the query string of a list, the events
 * or the usage, parsed strictly into ctx->in; NGX_DECLINED: ctx->err says
 * why
 */

ngx_int_t ngx_http_apikey_admin_parse_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_loc_conf_t *alcf);


/* ngx_http_apikey_admin_reply.c: errors and replies, shared validators */

ngx_int_t ngx_http_apikey_admin_error(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_uint_t status, char *code,
    const char *fmt, ...);
ngx_int_t ngx_http_apikey_admin_send_error(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);
ngx_int_t ngx_http_apikey_admin_no_memory(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_valid_name(u_char *p, size_t len);
ngx_int_t ngx_http_apikey_admin_text_chars(u_char *p, size_t len);
ngx_int_t ngx_http_apikey_admin_parse_rate(u_char *p, size_t len,
    ngx_uint_t *rate, ngx_uint_t *per);
int64_t ngx_http_apikey_admin_int(redisReply *reply);


/* script arguments, built in r->pool; "failed" is checked once at the end */

typedef struct {
    ngx_pool_t                     *pool;
    ngx_str_t                      *ns;
    ngx_str_t                       args[NGX_HTTP_APIKEY_ADMIN_MAX_ARGS];
    ngx_uint_t                      nargs;
    ngx_uint_t                      nkeys;
    ngx_uint_t                      failed;
} ngx_http_apikey_admin_args_t;


/*
 * ngx_http_apikey_admin_args.c: the scripts' arguments, from ctx; a new
 * key and its hash for create and rotate
 */

ngx_int_t ngx_http_apikey_admin_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a);
void ngx_http_apikey_admin_reindex_args(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_args_t *a, ngx_str_t *budget);
ngx_int_t ngx_http_apikey_admin_new_id(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char letter);
ngx_int_t ngx_http_apikey_admin_new_secret(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *prefix);
void ngx_http_apikey_admin_arg(ngx_http_apikey_admin_args_t *a,
    ngx_str_t *value);
void ngx_http_apikey_admin_arg_num(ngx_http_apikey_admin_args_t *a,
    int64_t n);
void ngx_http_apikey_admin_arg_key(ngx_http_apikey_admin_args_t *a,
    const char *fmt, ...);


/* ngx_http_apikey_admin_ops.c: the script calls of each operation */

ngx_int_t ngx_http_apikey_admin_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf);
ngx_http_apikey_script_t *ngx_http_apikey_admin_script_of(ngx_uint_t n);
/*
 * Sends the operation's calls and answers the request from their replies:
 * NGX_DONE, or an answer for ngx_http_finalize_request()
 */
ngx_int_t ngx_http_apikey_admin_run(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);


/*
 * ngx_http_apikey_admin_walk.c: a worker's list walks take turns, one
 * slice in Redis at a time; take_turn says whether ctx may send now (else
 * it is queued, and ctx->resume called in its turn); end_turn when its
 * slice is answered or its request gone
 */
ngx_uint_t ngx_http_apikey_admin_take_turn(ngx_http_apikey_admin_ctx_t *ctx);
void ngx_http_apikey_admin_end_turn(ngx_http_apikey_admin_ctx_t *ctx);


/*
 * ngx_http_apikey_admin_result.c: the response to a script's reply;
 * NGX_AGAIN when a walk goes on
 */

ngx_int_t ngx_http_apikey_admin_reply(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);


/*
 * ngx_http_apikey_admin_notices.c: in one worker of each instance that
 * serves the admin API, the expiry notices that are due are written each
 * second; started in init_process, stopped in exit_process
 */

ngx_int_t ngx_http_apikey_admin_notices_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_msec_t timeout);
void ngx_http_apikey_admin_notices_exit(void);


/*
 * ngx_http_apikey_admin_replica.c: with apikey_cache, the gate records a
 * change script returned go into the instance's replica
 */

void ngx_http_apikey_admin_replica(ngx_http_request_t *r,
    redisReply *gates, redisReply *stamp);


/*
 * ngx_http_apikey_admin_idem.c: the Idempotency-Key of a POST (its header;
 * then, once the body is read, the record and the fingerprint), the new
 * raw key sealed under it, and a retry's raw key unsealed; NGX_DECLINED
 * from idem_header sets ctx->err, from unseal means it does not open
 */

ngx_int_t ngx_http_apikey_admin_idem_header(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_idem_prepare(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *body);
ngx_int_t ngx_http_apikey_admin_seal(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_unseal(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char *p, size_t len);


/*
 * ngx_http_apikey_admin_token.c: management tokens.  token_lookup runs
 * the tokens_auth script (ops.c has it) for the token a request carries,
 * then calls the handler with ctx->token set (NULL: refused) or ctx->err
 * set (the store failed).  Which orgs a token allows; a new token's
 * checks (NGX_DECLINED: ctx->err says why); the token scripts' arguments.
 */

typedef ngx_int_t (*ngx_http_apikey_admin_authorized_pt)(
    ngx_http_request_t *r, ngx_http_apikey_admin_ctx_t *ctx);

ngx_int_t ngx_http_apikey_admin_token_shape(ngx_str_t *bearer);
ngx_int_t ngx_http_apikey_admin_token_lookup(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *bearer,
    ngx_http_apikey_script_t *script,
    ngx_http_apikey_admin_authorized_pt handler);
ngx_int_t ngx_http_apikey_admin_token_allows(
    ngx_http_apikey_admin_token_t *token, ngx_str_t *org);
ngx_int_t ngx_http_apikey_admin_token_check(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_token_args(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_http_apikey_admin_args_t *a);


/* ngx_http_apikey_admin_json.c: request bodies, parsed strictly */

ngx_int_t ngx_http_apikey_admin_parse_body(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char *p, size_t len);


/* ngx_http_apikey_admin_time.c: RFC 3339 times in; NGX_ERROR if invalid */

time_t ngx_http_apikey_admin_parse_time(u_char *p, size_t len);
ngx_int_t ngx_http_apikey_admin_days(ngx_int_t year, ngx_int_t month,
    ngx_int_t day);


/*
 * ngx_http_apikey_admin_usage.c: the usage query, its range, the answer
 * from the days the script read
 */

ngx_int_t ngx_http_apikey_admin_usage_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_uint_t which, ngx_str_t *value);
ngx_int_t ngx_http_apikey_admin_usage_range(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx);
ngx_int_t ngx_http_apikey_admin_send_usage(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *days);


/* ngx_http_apikey_admin_org.c: an organization's settings, as answered */

ngx_int_t ngx_http_apikey_admin_send_org(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);


/* ngx_http_apikey_admin_json_out.c: key and token objects, events, times */

json_t *ngx_http_apikey_admin_key_json(ngx_str_t *f, time_t now);
json_t *ngx_http_apikey_admin_token_json(ngx_str_t *f, time_t now);
json_t *ngx_http_apikey_admin_limits_json(ngx_str_t *f, time_t now);
json_t *ngx_http_apikey_admin_event_json(u_char *p, size_t len);
json_t *ngx_http_apikey_admin_time_json(time_t t);
ngx_int_t ngx_http_apikey_admin_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *raw, ngx_str_t *out);
ngx_int_t ngx_http_apikey_admin_send_object(ngx_http_request_t *r,
    json_t *json);
ngx_int_t ngx_http_apikey_admin_dump_as(ngx_http_request_t *r, json_t *json,
    const char *name, ngx_str_t *raw, ngx_str_t *out);


extern ngx_module_t  ngx_http_apikey_admin_module;


#endif /* _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_ */
