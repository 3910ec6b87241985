
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"
#include "ngx_http_apikey_timer.h"


/*
 * Expiry notices (SPEC section 5, docs/data-model.md): once a second,
 * worker 0 of an instance with an admin location runs the notices script
 * on the admin API's connection, one call at a time.  The script takes
 * what is due in a slice of Redis time and writes the events in the same
 * step, so any number of instances share the work and none writes an
 * event twice.  When more were due than a slice holds, or the backfill
 * goes on, the next slice follows after NGX_HTTP_APIKEY_ADMIN_NOTICES_MORE.
 * Redis unreachable: the second is skipped; nothing is lost, the next
 * call takes it.
 */


#define NGX_HTTP_APIKEY_ADMIN_NOTICES_EVERY  1000      /* ms */
#define NGX_HTTP_APIKEY_ADMIN_NOTICES_MORE   100       /* ms */

/* notices and backfill keys per call: about a millisecond of Redis */
#define NGX_HTTP_APIKEY_ADMIN_NOTICES_MOST   "50"
#define NGX_HTTP_APIKEY_ADMIN_NOTICES_SCAN   "100"


typedef struct {
    ngx_event_t                     timer;
    ngx_http_apikey_redis_op_t     *op;
    ngx_msec_t                      timeout;
    ngx_log_t                      *log;
    ngx_str_t                       args[5];
    unsigned                        sending:1;
    unsigned                        lost:1;    /* failed while sending */
} ngx_http_apikey_admin_notices_t;


static void ngx_http_apikey_admin_notices_run(ngx_event_t *ev);
static void ngx_http_apikey_admin_notices_done(void *data, redisReply *reply);
static ngx_uint_t ngx_http_apikey_admin_notices_stopped(void);


static ngx_http_apikey_admin_notices_t  ngx_http_apikey_admin_notices;


ngx_int_t
ngx_http_apikey_admin_notices_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_msec_t timeout)
{
    u_char                           *p;
    ngx_str_t                        *args;
    ngx_http_apikey_admin_notices_t  *an;

    an = &ngx_http_apikey_admin_notices;
    args = an->args;

    /* KEYS: NS notices, NS notices:backfill; ARGV: ns, most, scan */

    p = ngx_pnalloc(cycle->pool, 2 * rcf->ns.len + sizeof("notices")
                                 + sizeof("notices:backfill"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    args[0].data = p;
    p = ngx_cpymem(ngx_cpymem(p, rcf->ns.data, rcf->ns.len),
                   "notices", sizeof("notices") - 1);
    args[0].len = p - args[0].data;

    args[1].data = p;
    p = ngx_cpymem(ngx_cpymem(p, rcf->ns.data, rcf->ns.len),
                   "notices:backfill", sizeof("notices:backfill") - 1);
    args[1].len = p - args[1].data;

    args[2] = rcf->ns;
    ngx_str_set(&args[3], NGX_HTTP_APIKEY_ADMIN_NOTICES_MOST);
    ngx_str_set(&args[4], NGX_HTTP_APIKEY_ADMIN_NOTICES_SCAN);

    an->op = NULL;
    an->timeout = timeout;
    an->log = cycle->log;

    ngx_http_apikey_timer_init(&an->timer, ngx_http_apikey_admin_notices_run,
                               NULL, cycle->log);

    ngx_add_timer(&an->timer, NGX_HTTP_APIKEY_ADMIN_NOTICES_EVERY);

    return NGX_OK;
}


/*
 * at worker exit, after the Redis connections are freed (and the call
 * under way with them): only the timer is left
 */

void
ngx_http_apikey_admin_notices_exit(void)
{
    ngx_http_apikey_admin_notices_t  *an;

    an = &ngx_http_apikey_admin_notices;

    if (an->timer.timer_set) {
        ngx_del_timer(&an->timer);
    }

    an->op = NULL;
}


static void
ngx_http_apikey_admin_notices_run(ngx_event_t *ev)
{
    ngx_int_t                         rc;
    ngx_http_apikey_redis_op_t       *op;
    ngx_http_apikey_admin_notices_t  *an;

    an = &ngx_http_apikey_admin_notices;

    if (ngx_http_apikey_admin_notices_stopped() || an->op != NULL) {
        return;
    }

    an->sending = 1;
    an->lost = 0;

    rc = ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_ADMIN,
                                    ngx_http_apikey_admin_script_of(
                                        NGX_HTTP_APIKEY_ADMIN_NOTICES_SCRIPT),
                                    2, 5, an->args, an->timeout,
                                    ngx_http_apikey_admin_notices_done, an,
                                    an->log, &op);

    an->sending = 0;

    if (rc == NGX_OK && !an->lost) {
        an->op = op;
        return;
    }

    /*
     * Redis is known to be down, the connection failed as the call went
     * out (its handler ran already), or no memory: the next second
     */

    if (!an->timer.timer_set) {
        ngx_add_timer(&an->timer, NGX_HTTP_APIKEY_ADMIN_NOTICES_EVERY);
    }
}


/* {events written, more due} */

static void
ngx_http_apikey_admin_notices_done(void *data, redisReply *reply)
{
    ngx_http_apikey_admin_notices_t *an = data;

    u_char      text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    ngx_msec_t  next;

    if (an->sending) {
        an->lost = 1;
        return;
    }

    an->op = NULL;
    next = NGX_HTTP_APIKEY_ADMIN_NOTICES_EVERY;

    if (reply == NULL) {
        /* unreachable or too slow: what is due stays due */

    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
               && reply->element[0]->type == REDIS_REPLY_INTEGER
               && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, an->log, 0,
                       "apikey admin: %L expiry notices written",
                       reply->element[0]->integer);

        if (reply->element[1]->integer) {
            next = NGX_HTTP_APIKEY_ADMIN_NOTICES_MORE;
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, an->log, 0,
                      "apikey admin: the expiry notices script failed: %*s",
                      ngx_http_apikey_redis_text(text, (u_char *) reply->str,
                                                 reply->len) - text,
                      text);

    } else {
        ngx_log_error(NGX_LOG_ALERT, an->log, 0,
                      "apikey admin: unexpected reply from the expiry "
                      "notices script");
    }

    if (!ngx_http_apikey_admin_notices_stopped() && !an->timer.timer_set) {
        ngx_add_timer(&an->timer, next);
    }
}


static ngx_uint_t
ngx_http_apikey_admin_notices_stopped(void)
{
    return ngx_exiting || ngx_quit || ngx_terminate;
}
