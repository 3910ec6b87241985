
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_tally.h"
#include "ngx_http_apikey_timer.h"


/*
 * What Redis is to record of checks it did not count itself: per secret,
 * how many were allowed, limited and refused (the replica's answers, a
 * lease's uses, and, taken back, what Redis counted of a check whose
 * request was answered without its reply), summed in the worker and sent
 * once a second as calls of the gate script's "tally" form
 * (ngx_http_apikey_gate.lua), which go to Redis in the same script calls
 * as the checks of that moment; an allowed one also records the key's
 * last use.  Tokens of ended leases go back to their buckets the same
 * way.  Counts wait while Redis is unreachable and go when it is back; a
 * call that went out is never made again (Redis applies a batch once),
 * one that did not is counted on.  A graceful shutdown sends what is
 * left at once.
 *
 * A slot counts on while its call is under way: what the call took is
 * subtracted when its reply comes.
 */


#define NGX_HTTP_APIKEY_TALLY_SLOTS     4096       /* a power of two */
#define NGX_HTTP_APIKEY_TALLY_FULL      3072
#define NGX_HTTP_APIKEY_TALLY_INTERVAL  1000


typedef struct {
    ngx_str_t                       args[4];   /* NS{<hash>}, "\1", counts,
                                                  lease */
    ngx_int_t                       n[3];      /* allowed, limited, refused */
    ngx_uint_t                      back;
    ngx_int_t                       sent[3];   /* in the call under way */
    ngx_uint_t                      sent_back;
    int64_t                         taken;     /* of the tokens given back */
    uint32_t                        lim[3];
    u_char                          counts[3 * (NGX_INT_T_LEN + 1)];
    u_char                          lease[NGX_INT_T_LEN + NGX_INT64_LEN + 4
                                          + 3 * NGX_INT32_LEN + 2];
    ngx_http_apikey_redis_item_t   *item;
} ngx_http_apikey_tally_slot_t;


typedef struct {
    ngx_http_apikey_tally_slot_t   *slots;
    u_char                         *keys;      /* one NS{<hash>} per slot */
    ngx_uint_t                      used;
} ngx_http_apikey_tally_t;


static void ngx_http_apikey_tally_put(u_char *hex, ngx_int_t *n,
    ngx_uint_t back, int64_t taken, uint32_t *lim);
static void ngx_http_apikey_tally_soon(void);
static void ngx_http_apikey_tally_flush(ngx_event_t *ev);
static void ngx_http_apikey_tally_done(void *data, redisReply *reply);


static ngx_http_apikey_tally_t       ngx_http_apikey_tally;
static ngx_event_t                   ngx_http_apikey_tally_event;
static ngx_http_apikey_script_t     *ngx_http_apikey_tally_script;
static ngx_str_t                     ngx_http_apikey_tally_ns;
static ngx_msec_t                    ngx_http_apikey_tally_timeout;
static ngx_uint_t                    ngx_http_apikey_tally_lost;

static ngx_str_t  ngx_http_apikey_tally_mark = ngx_string("\1");


ngx_int_t
ngx_http_apikey_tally_init(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_conf_t *rcf, ngx_http_apikey_script_t *script)
{
    size_t                    klen;
    ngx_http_apikey_tally_t  *t;

    klen = rcf->ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;

    t = &ngx_http_apikey_tally;

    t->slots = ngx_pcalloc(cycle->pool, NGX_HTTP_APIKEY_TALLY_SLOTS
                                        * sizeof(ngx_http_apikey_tally_slot_t));
    t->keys = ngx_pnalloc(cycle->pool, NGX_HTTP_APIKEY_TALLY_SLOTS * klen);

    if (t->slots == NULL || t->keys == NULL) {
        return NGX_ERROR;
    }

    t->used = 0;

    ngx_http_apikey_tally_script = script;
    ngx_http_apikey_tally_ns = rcf->ns;
    ngx_http_apikey_tally_timeout = rcf->timeout;

    ngx_http_apikey_timer_init(&ngx_http_apikey_tally_event,
                               ngx_http_apikey_tally_flush, NULL, cycle->log);

    return NGX_OK;
}


void
ngx_http_apikey_tally_add(u_char *hex, ngx_uint_t kind)
{
    ngx_int_t  n[3];

    n[0] = (kind == NGX_HTTP_APIKEY_TALLY_ALLOWED);
    n[1] = (kind == NGX_HTTP_APIKEY_TALLY_LIMITED);
    n[2] = (kind == NGX_HTTP_APIKEY_TALLY_REFUSED);

    ngx_http_apikey_tally_put(hex, n, 0, 0, NULL);
}


void
ngx_http_apikey_tally_used(u_char *hex, ngx_uint_t n)
{
    ngx_int_t  d[3];

    d[0] = n;
    d[1] = 0;
    d[2] = 0;

    ngx_http_apikey_tally_put(hex, d, 0, 0, NULL);
}


void
ngx_http_apikey_tally_back(u_char *hex, ngx_uint_t n, int64_t taken,
    uint32_t *lim)
{
    ngx_int_t  d[3];

    d[0] = 0;
    d[1] = 0;
    d[2] = 0;

    ngx_http_apikey_tally_put(hex, d, n, taken, lim);
}


/*
 * The gate script's reply to a check (ngx_http_apikey_gate.lua): code 0
 * counted allowed, 6 limited (unless the check asked for nothing to be
 * counted), 2 to 5 refused, 1 nothing.
 */

void
ngx_http_apikey_tally_late(void *note, redisReply *reply)
{
    ngx_http_apikey_tally_note_t *tn = note;

    ngx_int_t  n[3];

    if (reply == NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "apikey: what Redis counted of a check that timed "
                      "out is not known");
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        return;
    }

    n[0] = 0;
    n[1] = 0;
    n[2] = 0;

    switch (reply->element[0]->integer) {

    case NGX_HTTP_APIKEY_OK:
        n[0] = -1;
        break;

    case NGX_HTTP_APIKEY_LIMITED:
        if (tn->sibling) {
            return;
        }

        n[1] = -1;
        break;

    case NGX_HTTP_APIKEY_REVOKED:
    case NGX_HTTP_APIKEY_EXPIRED:
    case NGX_HTTP_APIKEY_ENVIRONMENT:
    case NGX_HTTP_APIKEY_SCOPE:
        n[2] = -1;
        break;

    default:
        return;
    }

    ngx_http_apikey_tally_put(tn->hex, n, 0, 0, NULL);
}


static void
ngx_http_apikey_tally_put(u_char *hex, ngx_int_t *n, ngx_uint_t back,
    int64_t taken, uint32_t *lim)
{
    u_char                        *key;
    size_t                         klen;
    ngx_uint_t                     i, h, k;
    ngx_http_apikey_tally_t       *t;
    ngx_http_apikey_tally_slot_t  *s;

    t = &ngx_http_apikey_tally;

    if (t->slots == NULL) {
        return;
    }

    klen = ngx_http_apikey_tally_ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;

    h = ngx_hash_key(hex, 16) & (NGX_HTTP_APIKEY_TALLY_SLOTS - 1);

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        k = (h + i) & (NGX_HTTP_APIKEY_TALLY_SLOTS - 1);
        s = &t->slots[k];

        if (s->args[0].len == 0) {

            if (t->used >= NGX_HTTP_APIKEY_TALLY_FULL) {
                break;
            }

            key = t->keys + k * klen;

            s->args[0].data = key;
            s->args[0].len = klen;

            key = ngx_cpymem(key, ngx_http_apikey_tally_ns.data,
                             ngx_http_apikey_tally_ns.len);
            *key++ = '{';
            key = ngx_cpymem(key, hex, NGX_HTTP_APIKEY_HASH_LEN);
            *key = '}';

            t->used++;

            if (t->used == NGX_HTTP_APIKEY_TALLY_FULL
                && !ngx_http_apikey_tally_event.posted)
            {
                /* early, before secrets go uncounted */

                if (ngx_http_apikey_tally_event.timer_set) {
                    ngx_del_timer(&ngx_http_apikey_tally_event);
                }

                ngx_post_event(&ngx_http_apikey_tally_event,
                               &ngx_posted_events);
            }

        } else if (ngx_memcmp(s->args[0].data + ngx_http_apikey_tally_ns.len
                              + 1, hex, NGX_HTTP_APIKEY_HASH_LEN)
                   != 0)
        {
            continue;
        }

        s->n[0] += n[0];
        s->n[1] += n[1];
        s->n[2] += n[2];

        if (back) {

            /* tokens taken under another limit are dropped */

            if (s->back && ngx_memcmp(s->lim, lim, sizeof(s->lim)) != 0) {
                s->back = 0;
            }

            if (s->back == 0 || taken < s->taken) {
                s->taken = taken;
            }

            ngx_memcpy(s->lim, lim, sizeof(s->lim));
            s->back += back;
        }

        ngx_http_apikey_tally_soon();

        return;
    }

    if (ngx_http_apikey_tally_lost++ == 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "apikey: more secrets counted in a second than "
                      "the worker tallies, %d; some go uncounted",
                      NGX_HTTP_APIKEY_TALLY_FULL);
    }
}


/*
 * An instance's lease uses, told to one worker's tally once a second
 * (ngx_http_apikey_bucket.c), go at once: a worker killed meanwhile
 * loses the instance's counts it carries, so they are carried no longer
 * than it takes to send them.
 */

void
ngx_http_apikey_tally_now(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_apikey_tally_event;

    if (ngx_http_apikey_tally.slots == NULL || ev->posted) {
        return;
    }

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ngx_post_event(ev, &ngx_posted_events);
}


/*
 * The counts go within a second; a worker that shuts down sends them now
 * (it exits once no call is under way, so a timer might never fire)
 */

static void
ngx_http_apikey_tally_soon(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_apikey_tally_event;

    if (ev->posted) {
        return;
    }

    if (ngx_exiting) {

        if (ev->timer_set) {
            ngx_del_timer(ev);
        }

        ngx_post_event(ev, &ngx_posted_events);

    } else if (!ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_TALLY_INTERVAL);
    }
}


static void
ngx_http_apikey_tally_flush(ngx_event_t *ev)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, sent;
    ngx_http_apikey_tally_t       *t;
    ngx_http_apikey_tally_slot_t  *s;

    t = &ngx_http_apikey_tally;
    sent = 0;

    ngx_http_apikey_tally_lost = 0;

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        s = &t->slots[i];

        if (s->args[0].len == 0 || s->item != NULL) {
            continue;
        }

        if (s->n[0] == 0 && s->n[1] == 0 && s->n[2] == 0 && s->back == 0) {

            /* counts that cancelled out */

            s->args[0].len = 0;
            t->used--;
            continue;
        }

        s->args[1] = ngx_http_apikey_tally_mark;
        s->args[2].data = s->counts;
        s->args[2].len = ngx_sprintf(s->counts, "%i %i %i", s->n[0],
                                     s->n[1], s->n[2])
                         - s->counts;

        s->args[3].data = s->lease;
        s->args[3].len = s->back
                         ? (size_t) (ngx_sprintf(s->lease,
                                                 "0 %ui %L %uD/%uD/%uD",
                                                 s->back, s->taken,
                                                 s->lim[0], s->lim[1],
                                                 s->lim[2])
                                     - s->lease)
                         : 0;

        rc = ngx_http_apikey_redis_batch(ngx_http_apikey_tally_script, 4,
                                         s->args,
                                         ngx_http_apikey_tally_timeout,
                                         ngx_http_apikey_tally_done, s, NULL,
                                         &s->item);

        if (rc != NGX_OK) {

            /* Redis is unreachable: the counts wait */

            break;
        }

        ngx_memcpy(s->sent, s->n, sizeof(s->n));
        s->sent_back = s->back;
        sent = 1;
    }

    if (sent) {
        ngx_http_apikey_metric_add(tally_flushes);
    }

    if (t->used && !ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_TALLY_INTERVAL);
    }
}


void
ngx_http_apikey_tally_exiting(void)
{
    if (ngx_http_apikey_tally.slots == NULL) {
        return;
    }

    if (ngx_http_apikey_tally_event.timer_set) {
        ngx_del_timer(&ngx_http_apikey_tally_event);
    }

    if (ngx_http_apikey_tally_event.posted) {
        ngx_delete_posted_event(&ngx_http_apikey_tally_event);
    }

    ngx_http_apikey_tally_flush(&ngx_http_apikey_tally_event);
}


/*
 * A call is done: what it took is no longer the slot's, unless it never
 * went out; a slot with nothing left is free.
 */

static void
ngx_http_apikey_tally_done(void *data, redisReply *reply)
{
    ngx_http_apikey_tally_slot_t *s = data;

    ngx_http_apikey_tally_t  *t;

    t = &ngx_http_apikey_tally;
    s->item = NULL;

    if (reply == NULL && !ngx_http_apikey_redis_sent()) {
        return;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "apikey: a tally call failed; Redis applies it once "
                      "if it ran");
    }

    ngx_http_apikey_metric_add_n(lease_back, s->sent_back);

    s->n[0] -= s->sent[0];
    s->n[1] -= s->sent[1];
    s->n[2] -= s->sent[2];
    s->back -= s->sent_back;

    ngx_memzero(s->sent, sizeof(s->sent));
    s->sent_back = 0;

    if (s->n[0] == 0 && s->n[1] == 0 && s->n[2] == 0 && s->back == 0) {
        s->args[0].len = 0;
        t->used--;
        return;
    }

    /* what was counted while the call was under way goes next */

    ngx_http_apikey_tally_soon();
}


void
ngx_http_apikey_tally_exit(void)
{
    ngx_uint_t                     i;
    ngx_http_apikey_tally_t       *t;
    ngx_http_apikey_tally_slot_t  *s;

    if (ngx_http_apikey_tally_event.timer_set) {
        ngx_del_timer(&ngx_http_apikey_tally_event);
    }

    if (ngx_http_apikey_tally_event.posted) {
        ngx_delete_posted_event(&ngx_http_apikey_tally_event);
    }

    t = &ngx_http_apikey_tally;

    if (t->slots == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        s = &t->slots[i];

        if (s->item) {
            ngx_http_apikey_redis_batch_detach(s->item);
            s->item = NULL;
        }
    }

    t->slots = NULL;
}
