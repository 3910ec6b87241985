
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_tally.h"


/*
 * What Redis would have recorded of the checks the replica answered
 * (apikey_cache): per secret, how many were allowed, limited and refused,
 * summed in the worker and sent once a second as calls of the gate
 * script's "tally" form (ngx_http_apikey_gate.lua), which go to Redis in
 * the same script calls as the checks of that moment.  An allowed one
 * also records the key's last use.  Tokens of ended leases go back to
 * their buckets the same way.  Counts wait while Redis is unreachable and
 * go when it is back.
 *
 * Two tables: one counts while the other's calls are under way.
 */


#define NGX_HTTP_APIKEY_TALLY_SLOTS     4096       /* a power of two */
#define NGX_HTTP_APIKEY_TALLY_FULL      3072
#define NGX_HTTP_APIKEY_TALLY_INTERVAL  1000


#define NGX_HTTP_APIKEY_TALLY_BACK      3


typedef struct {
    ngx_str_t                       args[4];   /* NS{<hash>}, "\1", counts,
                                                  lease */
    ngx_uint_t                      n[4];
    uint32_t                        lim[3];    /* of the tokens given back */
    u_char                          counts[3 * NGX_INT_T_LEN + 3];
    u_char                          lease[NGX_INT_T_LEN + 3
                                          + 3 * NGX_INT32_LEN + 2];
    ngx_http_apikey_redis_item_t   *item;
    struct ngx_http_apikey_tally_s *table;
} ngx_http_apikey_tally_slot_t;


typedef struct ngx_http_apikey_tally_s {
    ngx_http_apikey_tally_slot_t   *slots;
    u_char                         *keys;      /* one NS{<hash>} per slot */
    ngx_uint_t                      used;
    ngx_uint_t                      pending;   /* calls under way */
} ngx_http_apikey_tally_t;


static void ngx_http_apikey_tally_add_n(u_char *hex, ngx_uint_t kind,
    ngx_uint_t n, uint32_t *lim);
static ngx_http_apikey_tally_t *ngx_http_apikey_tally_counting(void);
static void ngx_http_apikey_tally_flush(ngx_event_t *ev);
static void ngx_http_apikey_tally_done(void *data, redisReply *reply);
static void ngx_http_apikey_tally_clear(ngx_http_apikey_tally_t *t);


static ngx_http_apikey_tally_t       ngx_http_apikey_tallies[2];
static ngx_uint_t                    ngx_http_apikey_tally_active;
static ngx_event_t                   ngx_http_apikey_tally_event;
static ngx_connection_t              ngx_http_apikey_tally_conn;
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
    ngx_uint_t                i;
    ngx_http_apikey_tally_t  *t;

    klen = rcf->ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;

    for (i = 0; i < 2; i++) {
        t = &ngx_http_apikey_tallies[i];

        t->slots = ngx_pcalloc(cycle->pool, NGX_HTTP_APIKEY_TALLY_SLOTS
                                    * sizeof(ngx_http_apikey_tally_slot_t));
        t->keys = ngx_pnalloc(cycle->pool,
                              NGX_HTTP_APIKEY_TALLY_SLOTS * klen);

        if (t->slots == NULL || t->keys == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_apikey_tally_script = script;
    ngx_http_apikey_tally_ns = rcf->ns;
    ngx_http_apikey_tally_timeout = rcf->timeout;

    /* nginx's debug log reads a timer's data as a connection */

    ngx_http_apikey_tally_conn.fd = (ngx_socket_t) -1;

    ngx_http_apikey_tally_event.handler = ngx_http_apikey_tally_flush;
    ngx_http_apikey_tally_event.data = &ngx_http_apikey_tally_conn;
    ngx_http_apikey_tally_event.log = cycle->log;
    ngx_http_apikey_tally_event.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_apikey_tally_add(u_char *hex, ngx_uint_t kind)
{
    ngx_http_apikey_tally_add_n(hex, kind, 1, NULL);
}


void
ngx_http_apikey_tally_used(u_char *hex, ngx_uint_t n)
{
    ngx_http_apikey_tally_add_n(hex, NGX_HTTP_APIKEY_TALLY_ALLOWED, n, NULL);
}


void
ngx_http_apikey_tally_back(u_char *hex, ngx_uint_t n, uint32_t *lim)
{
    ngx_http_apikey_tally_add_n(hex, NGX_HTTP_APIKEY_TALLY_BACK, n, lim);
}


static void
ngx_http_apikey_tally_add_n(u_char *hex, ngx_uint_t kind, ngx_uint_t n,
    uint32_t *lim)
{
    u_char                        *key;
    size_t                         klen;
    ngx_uint_t                     i, h;
    ngx_http_apikey_tally_t       *t;
    ngx_http_apikey_tally_slot_t  *s;

    t = ngx_http_apikey_tally_counting();

    if (t == NULL || kind > NGX_HTTP_APIKEY_TALLY_BACK) {
        return;
    }

    klen = ngx_http_apikey_tally_ns.len + NGX_HTTP_APIKEY_HASH_LEN + 2;

    h = ngx_hash_key(hex, 16) & (NGX_HTTP_APIKEY_TALLY_SLOTS - 1);

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        s = &t->slots[(h + i) & (NGX_HTTP_APIKEY_TALLY_SLOTS - 1)];

        if (s->args[0].len == 0) {

            if (t->used >= NGX_HTTP_APIKEY_TALLY_FULL) {
                break;
            }

            key = t->keys + ((h + i) & (NGX_HTTP_APIKEY_TALLY_SLOTS - 1))
                            * klen;

            s->args[0].data = key;
            s->args[0].len = klen;
            s->table = t;

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

        if (kind == NGX_HTTP_APIKEY_TALLY_BACK) {

            /* tokens taken under another limit are dropped */

            if (s->n[kind] && ngx_memcmp(s->lim, lim, sizeof(s->lim)) != 0) {
                s->n[kind] = 0;
            }

            ngx_memcpy(s->lim, lim, sizeof(s->lim));
        }

        s->n[kind] += n;

        if (!ngx_http_apikey_tally_event.timer_set
            && !ngx_http_apikey_tally_event.posted)
        {
            ngx_add_timer(&ngx_http_apikey_tally_event,
                          NGX_HTTP_APIKEY_TALLY_INTERVAL);
        }

        return;
    }

    if (ngx_http_apikey_tally_lost++ == 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "apikey_cache: more secrets answered in a second than "
                      "the worker tallies, %d; some go uncounted",
                      NGX_HTTP_APIKEY_TALLY_FULL);
    }
}


/* the table that counts: the other may have calls under way */

static ngx_http_apikey_tally_t *
ngx_http_apikey_tally_counting(void)
{
    if (ngx_http_apikey_tallies[0].slots == NULL) {
        return NULL;
    }

    return &ngx_http_apikey_tallies[ngx_http_apikey_tally_active];
}


static void
ngx_http_apikey_tally_flush(ngx_event_t *ev)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_apikey_tally_t       *t, *other;
    ngx_http_apikey_tally_slot_t  *s;

    t = &ngx_http_apikey_tallies[ngx_http_apikey_tally_active];
    other = &ngx_http_apikey_tallies[ngx_http_apikey_tally_active ^ 1];

    ngx_http_apikey_tally_lost = 0;

    if (t->used == 0) {
        return;
    }

    if (other->pending) {

        /* the last second's calls are still under way */

        ngx_add_timer(ev, NGX_HTTP_APIKEY_TALLY_INTERVAL);
        return;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        s = &t->slots[i];

        if (s->args[0].len == 0 || s->item != NULL) {
            continue;
        }

        s->args[1] = ngx_http_apikey_tally_mark;
        s->args[2].data = s->counts;
        s->args[2].len = ngx_sprintf(s->counts, "%ui %ui %ui", s->n[0],
                                     s->n[1], s->n[2])
                         - s->counts;

        s->args[3].data = s->lease;
        s->args[3].len = s->n[NGX_HTTP_APIKEY_TALLY_BACK]
                         ? (size_t) (ngx_sprintf(s->lease, "0 %ui %uD/%uD/%uD",
                                         s->n[NGX_HTTP_APIKEY_TALLY_BACK],
                                         s->lim[0], s->lim[1], s->lim[2])
                                     - s->lease)
                         : 0;

        rc = ngx_http_apikey_redis_batch(ngx_http_apikey_tally_script, 4,
                                         s->args,
                                         ngx_http_apikey_tally_timeout,
                                         ngx_http_apikey_tally_done, s,
                                         &s->item);

        if (rc != NGX_OK) {

            /* Redis is unreachable: the counts wait, and so does the rest */

            break;
        }

        t->pending++;
    }

    if (t->pending == 0) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_TALLY_INTERVAL);
        return;
    }

    /* counting goes on in the other table */

    ngx_http_apikey_tally_active ^= 1;

    if (i < NGX_HTTP_APIKEY_TALLY_SLOTS) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_TALLY_INTERVAL);
    }
}


static void
ngx_http_apikey_tally_done(void *data, redisReply *reply)
{
    ngx_http_apikey_tally_slot_t *s = data;

    ngx_http_apikey_tally_t  *t;

    t = s->table;
    s->item = NULL;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "apikey_cache: the tally of a secret was not recorded");
    }

    /* recorded (or lost with the call): the slot counts afresh */

    s->args[0].len = 0;
    ngx_memzero(s->n, sizeof(s->n));
    t->used--;

    if (--t->pending == 0 && t->used) {

        /* slots Redis was unreachable for: counted on with the others */

        ngx_http_apikey_tally_clear(t);
    }
}


/*
 * Merges the counts left in a table whose calls are done into the
 * counting table.
 */

static void
ngx_http_apikey_tally_clear(ngx_http_apikey_tally_t *t)
{
    ngx_uint_t                     i, k;
    ngx_http_apikey_tally_slot_t  *s;

    if (t == ngx_http_apikey_tally_counting()) {
        return;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_TALLY_SLOTS; i++) {
        s = &t->slots[i];

        if (s->args[0].len == 0) {
            continue;
        }

        for (k = 0; k < 4; k++) {
            if (s->n[k]) {
                ngx_http_apikey_tally_add_n(s->args[0].data
                                            + ngx_http_apikey_tally_ns.len
                                            + 1, k, s->n[k], s->lim);
            }
        }

        s->args[0].len = 0;
        ngx_memzero(s->n, sizeof(s->n));
    }

    t->used = 0;
}


void
ngx_http_apikey_tally_exit(void)
{
    ngx_uint_t                     i, k;
    ngx_http_apikey_tally_t       *t;
    ngx_http_apikey_tally_slot_t  *s;

    if (ngx_http_apikey_tally_event.timer_set) {
        ngx_del_timer(&ngx_http_apikey_tally_event);
    }

    if (ngx_http_apikey_tally_event.posted) {
        ngx_delete_posted_event(&ngx_http_apikey_tally_event);
    }

    for (k = 0; k < 2; k++) {
        t = &ngx_http_apikey_tallies[k];

        if (t->slots == NULL) {
            continue;
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
}
