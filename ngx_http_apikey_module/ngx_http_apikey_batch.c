
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_metrics.h"


/*
 * Calls of a batch script queue in the worker's open batch; a posted
 * event sends the queue when the pass of the event loop that filled it
 * ends, so a lone request waits for nothing, and the requests that became
 * ready together share one EVALSHA: Redis parses, looks up and starts the
 * script once for all of them, and the worker handles one reply.
 *
 * Batches come from the heap (a cycle pool would be freed under them by a
 * reload of a single-process nginx); a few are kept on a free list for
 * the next passes, the rest of a burst go back to the heap, and all are
 * freed when the worker exits.  An item lives in its batch until the
 * batch's reply is handed out, or, when its requests were answered
 * without it (timed out), until the reply came after all or was given up
 * (ngx_http_apikey_redis.c keeps such a call): then the late handlers
 * are told what Redis did.
 *
 * A batch's id is the worker's (random, made at its start) and the
 * batch's number: a batch sent again after a drop, or twice by a broken
 * proxy, has the same id, and the script applies it once.
 */

struct ngx_http_apikey_redis_item_s {
    ngx_http_apikey_redis_handler_pt   handler;
    void                              *data;
    ngx_http_apikey_redis_late_pt      late;
    ngx_str_t                          args[NGX_HTTP_APIKEY_REDIS_BATCH_ARGS];
    ngx_uint_t                         reply;     /* index in the reply */
    u_char                             note[NGX_HTTP_APIKEY_REDIS_NOTE];
};


typedef struct ngx_http_apikey_redis_batch_s  ngx_http_apikey_redis_batch_t;

struct ngx_http_apikey_redis_batch_s {
    ngx_http_apikey_redis_batch_t     *next;
    ngx_http_apikey_script_t          *script;
    ngx_uint_t                         nargs;
    ngx_msec_t                         timeout;
    ngx_uint_t                         n;
    ngx_uint_t                         sent;      /* calls in the EVALSHA */
    uint64_t                           start;     /* us, for the metrics */
    u_char                             id[16 + 1 + NGX_INT64_LEN];
    ngx_http_apikey_redis_item_t       items[NGX_HTTP_APIKEY_REDIS_BATCH_MAX];
};


static void ngx_http_apikey_redis_batch_flush(ngx_event_t *ev);
static void ngx_http_apikey_redis_batch_send(
    ngx_http_apikey_redis_batch_t *b);
static void ngx_http_apikey_redis_batch_done(void *data, redisReply *reply);
static void ngx_http_apikey_redis_batch_late(void *data, redisReply *reply);
static redisReply *ngx_http_apikey_redis_batch_reply(
    ngx_http_apikey_redis_batch_t *b, redisReply *reply);
static void ngx_http_apikey_redis_batch_free(
    ngx_http_apikey_redis_batch_t *b);


/* when the worker last sent gatekeeper checks to Redis */
ngx_msec_t  ngx_http_apikey_redis_gate_sent;


static ngx_http_apikey_redis_batch_t  *ngx_http_apikey_redis_queue;
static ngx_http_apikey_redis_batch_t  *ngx_http_apikey_redis_last;
static ngx_http_apikey_redis_batch_t  *ngx_http_apikey_redis_free;
static ngx_uint_t                      ngx_http_apikey_redis_nfree;
static ngx_event_t                     ngx_http_apikey_redis_flush_event;
static u_char                          ngx_http_apikey_redis_worker[16];
static uint64_t                        ngx_http_apikey_redis_number;


ngx_int_t
ngx_http_apikey_redis_batch_init(ngx_cycle_t *cycle)
{
    u_char  bin[8];

    if (RAND_bytes(bin, sizeof(bin)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "RAND_bytes() failed for the worker's id");
        return NGX_ERROR;
    }

    ngx_hex_dump(ngx_http_apikey_redis_worker, bin, sizeof(bin));

    ngx_http_apikey_redis_number = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_redis_batch(ngx_http_apikey_script_t *script,
    ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_http_apikey_redis_handler_pt handler, void *data,
    ngx_http_apikey_redis_late_pt late, ngx_http_apikey_redis_item_t **itemp)
{
    ngx_uint_t                      i;
    ngx_event_t                    *ev;
    ngx_http_apikey_redis_item_t   *item;
    ngx_http_apikey_redis_batch_t  *b;

    if (!ngx_http_apikey_redis_ready()) {
        return NGX_DECLINED;
    }

    if (nargs == 0 || nargs > NGX_HTTP_APIKEY_REDIS_BATCH_ARGS) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "bad number of batch arguments: %ui", nargs);
        return NGX_ERROR;
    }

    b = ngx_http_apikey_redis_last;

    if (b == NULL
        || b->n == NGX_HTTP_APIKEY_REDIS_BATCH_MAX
        || b->script != script
        || b->nargs != nargs
        || b->timeout != timeout)
    {
        b = ngx_http_apikey_redis_free;

        if (b) {
            ngx_http_apikey_redis_free = b->next;
            ngx_http_apikey_redis_nfree--;

        } else {
            b = ngx_alloc(sizeof(ngx_http_apikey_redis_batch_t),
                          ngx_cycle->log);
            if (b == NULL) {
                return NGX_ERROR;
            }
        }

        b->next = NULL;
        b->script = script;
        b->nargs = nargs;
        b->timeout = timeout;
        b->n = 0;

        if (ngx_http_apikey_redis_last) {
            ngx_http_apikey_redis_last->next = b;

        } else {
            ngx_http_apikey_redis_queue = b;
        }

        ngx_http_apikey_redis_last = b;
    }

    item = &b->items[b->n++];

    item->handler = handler;
    item->data = data;
    item->late = late;

    for (i = 0; i < nargs; i++) {
        item->args[i] = args[i];
    }

    *itemp = item;

    ev = &ngx_http_apikey_redis_flush_event;

    ev->handler = ngx_http_apikey_redis_batch_flush;
    ev->log = ngx_cycle->log;

    if (ngx_exiting) {

        /*
         * a worker that shuts down exits once no call is under way: a
         * posted event would never run
         */

        if (ev->posted) {
            ngx_delete_posted_event(ev);
        }

        ngx_http_apikey_redis_batch_flush(ev);

    } else if (!ev->posted) {
        ngx_post_event(ev, &ngx_posted_events);
    }

    return NGX_OK;
}


void *
ngx_http_apikey_redis_batch_note(ngx_http_apikey_redis_item_t *item)
{
    return item->note;
}


void
ngx_http_apikey_redis_batch_detach(ngx_http_apikey_redis_item_t *item)
{
    item->handler = NULL;
}


static void
ngx_http_apikey_redis_batch_flush(ngx_event_t *ev)
{
    ngx_http_apikey_redis_batch_t  *b, *next;

    b = ngx_http_apikey_redis_queue;

    ngx_http_apikey_redis_queue = NULL;
    ngx_http_apikey_redis_last = NULL;

    for ( /* void */ ; b; b = next) {
        next = b->next;
        ngx_http_apikey_redis_batch_send(b);
    }
}


static void
ngx_http_apikey_redis_batch_send(ngx_http_apikey_redis_batch_t *b)
{
    ngx_int_t                      rc;
    ngx_str_t                      args[NGX_HTTP_APIKEY_REDIS_BATCH_MAX
                                        * NGX_HTTP_APIKEY_REDIS_BATCH_ARGS
                                        + 1];
    ngx_uint_t                     i, j, k, n;
    ngx_http_apikey_redis_op_t    *op;
    ngx_http_apikey_redis_item_t  *item;

    /*
     * KEYS, then the batch's id and ARGV call by call; calls detached
     * while queued (their arguments may be gone with their requests) are
     * left out, and nothing of them reached Redis
     */

    n = 0;

    for (i = 0; i < b->n; i++) {
        item = &b->items[i];

        if (item->handler == NULL) {
            item->late = NULL;
            continue;
        }

        item->reply = n;
        args[n++] = item->args[0];
    }

    b->sent = n;

    if (n == 0) {
        ngx_http_apikey_redis_batch_done(b, NULL);
        return;
    }

    k = n;

    args[k].data = b->id;
    args[k].len = ngx_sprintf(b->id, "%*s %uL",
                              sizeof(ngx_http_apikey_redis_worker),
                              ngx_http_apikey_redis_worker,
                              ++ngx_http_apikey_redis_number)
                  - b->id;
    k++;

    for (i = 0; i < b->n; i++) {
        item = &b->items[i];

        if (item->handler == NULL) {
            continue;
        }

        for (j = 1; j < b->nargs; j++) {
            args[k++] = item->args[j];
        }
    }

    if (ngx_http_apikey_metrics) {
        b->start = ngx_http_apikey_metrics_now();
    }

    ngx_http_apikey_redis_gate_sent = ngx_current_msec;

    rc = ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_GATE, b->script,
                                    n, k, args, b->timeout,
                                    ngx_http_apikey_redis_batch_done, b,
                                    ngx_cycle->log, &op);

    if (rc != NGX_OK) {
        ngx_http_apikey_redis_batch_done(b, NULL);
        return;
    }

    ngx_http_apikey_redis_resend(op, ngx_http_apikey_redis_batch_late);
}


/*
 * hands each call its own reply; a call whose request left gets it
 * through its late handler.  A batch whose requests were answered without
 * the reply (it timed out) is kept for the reply (batch_late()).
 */

static void
ngx_http_apikey_redis_batch_done(void *data, redisReply *reply)
{
    ngx_http_apikey_redis_batch_t *b = data;

    ngx_uint_t                         i, kept;
    redisReply                        *rr;
    ngx_http_apikey_redis_item_t      *item;
    ngx_http_apikey_redis_handler_pt   handler;

    kept = (reply == NULL && b->sent && ngx_http_apikey_redis_sent());

    if (reply != NULL && ngx_http_apikey_metrics && b->sent) {
        ngx_http_apikey_metrics_call(b->sent,
                                     ngx_http_apikey_metrics_now() - b->start);
    }

    reply = ngx_http_apikey_redis_batch_reply(b, reply);

    for (i = 0; i < b->n; i++) {
        item = &b->items[i];

        rr = reply;

        if (rr != NULL && rr->type == REDIS_REPLY_ARRAY) {
            rr = rr->element[item->reply];
        }

        handler = item->handler;

        if (handler == NULL) {

            /* the request left: Redis may have counted it all the same */

            if (rr != NULL && item->late) {
                item->late(item->note, rr);
                item->late = NULL;
            }

            continue;
        }

        item->handler = NULL;

        if (rr != NULL) {
            item->late = NULL;
        }

        handler(item->data, rr);
    }

    if (kept) {
        return;
    }

    ngx_http_apikey_redis_batch_free(b);
}


/* the reply of a batch whose requests were answered without it */

static void
ngx_http_apikey_redis_batch_late(void *data, redisReply *reply)
{
    ngx_http_apikey_redis_batch_t *b = data;

    ngx_uint_t                     i;
    redisReply                    *rr;
    ngx_http_apikey_redis_item_t  *item;

    reply = ngx_http_apikey_redis_batch_reply(b, reply);

    for (i = 0; i < b->n; i++) {
        item = &b->items[i];

        if (item->late == NULL) {
            continue;
        }

        rr = reply;

        if (rr != NULL && rr->type == REDIS_REPLY_ARRAY) {
            rr = rr->element[item->reply];
        }

        item->late(item->note, rr);
        item->late = NULL;
    }

    ngx_http_apikey_redis_batch_free(b);
}


/* the batch's reply if it is one, an error for all, or NULL */

static redisReply *
ngx_http_apikey_redis_batch_reply(ngx_http_apikey_redis_batch_t *b,
    redisReply *reply)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        return reply;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != b->sent) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "unexpected reply of the redis \"%V\" script",
                      &b->script->name);
        return NULL;
    }

    return reply;
}


/*
 * puts the batch on the free list, or back to the heap when the list
 * holds enough for a busy pass
 */

static void
ngx_http_apikey_redis_batch_free(ngx_http_apikey_redis_batch_t *b)
{
    if (ngx_http_apikey_redis_nfree >= NGX_HTTP_APIKEY_REDIS_BATCH_FREE) {
        ngx_free(b);
        return;
    }

    b->next = ngx_http_apikey_redis_free;
    ngx_http_apikey_redis_free = b;
    ngx_http_apikey_redis_nfree++;
}


void
ngx_http_apikey_redis_batch_exit(void)
{
    ngx_uint_t                      i;
    ngx_http_apikey_redis_batch_t  *b, *next;
    ngx_http_apikey_redis_batch_t  *lists[2];

    /* the worker's requests are gone: queued calls have no one to answer */

    lists[0] = ngx_http_apikey_redis_queue;
    lists[1] = ngx_http_apikey_redis_free;

    for (i = 0; i < 2; i++) {
        for (b = lists[i]; b; b = next) {
            next = b->next;
            ngx_free(b);
        }
    }

    ngx_http_apikey_redis_queue = NULL;
    ngx_http_apikey_redis_last = NULL;
    ngx_http_apikey_redis_free = NULL;
    ngx_http_apikey_redis_nfree = 0;
}
