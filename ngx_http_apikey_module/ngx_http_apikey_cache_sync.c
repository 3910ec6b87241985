
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_org.h"
#include "ngx_http_apikey_timer.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_cache_scripts.h"


/*
 * The reader: one worker of the instance (the first) loads the replica
 * from Redis in slices and then follows the change log, on a connection
 * of its own.  A slice that fails (a timeout, a lost connection) is asked
 * again from the same SCAN cursor as long as the same server answers
 * (its run_id): the load goes on where it stopped.  Once the reader has
 * read the log to its end, it waits there in Redis: an XREAD that blocks
 * until an entry comes after the last one it read, whatever wrote it, or
 * for NGX_HTTP_APIKEY_CACHE_BLOCK ms.  An entry, or a second without
 * one, and the reader reads the log with its script (the second's read
 * finds a gap that no entry shows: a log deleted or replaced).  Idle,
 * that is two XREADs and one script call a second.  Each reply is the
 * replica's last contact with Redis, from which it answers for max_stale
 * once Redis is gone: under a short max_stale the XREAD blocks for a
 * tenth of it, so that nine tenths at least are left after a fault.
 * Nothing here blocks the worker: each step is a reply handler that
 * sends the next call, or arms the timer of the next step.
 */


#define NGX_HTTP_APIKEY_CACHE_POLL      1000      /* ms, a read at least */
#define NGX_HTTP_APIKEY_CACHE_RETRY     20        /* ms, after a failure */
#define NGX_HTTP_APIKEY_CACHE_BLOCK     500       /* ms an XREAD waits */
#define NGX_HTTP_APIKEY_CACHE_SWEEP_READ  100     /* ms of sweep between reads */
#define NGX_HTTP_APIKEY_CACHE_BLOCK_MIN 20
#define NGX_HTTP_APIKEY_CACHE_SLICE     "400"     /* keys a load slice scans */
#define NGX_HTTP_APIKEY_CACHE_ENTRIES   "500"     /* entries a read takes */


typedef struct {
    ngx_http_apikey_cache_conf_t  *ccf;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_redis_conf_t  *rcf;
    ngx_event_t                    timer;
    ngx_http_apikey_redis_op_t    *op;
    ngx_log_t                     *log;
    ngx_str_t                      stream;
    u_char                         cursor[NGX_INT64_LEN + 1];
    u_char                         start[NGX_HTTP_APIKEY_CACHE_ID_LEN];
    size_t                         start_len;
    u_char                         server[NGX_HTTP_APIKEY_REDIS_SERVER_LEN];
    size_t                         server_len;   /* where the cursor is */
    ngx_uint_t                     keys;
    ngx_uint_t                     slices;
    ngx_uint_t                     resumes;
    uint64_t                       began;    /* ms, monotonic: the load */
    uint64_t                       sent;     /* ms, monotonic: the call */
    uint64_t                       read;     /* ms, monotonic: the log's */
    ngx_msec_t                     block;    /* ms an XREAD waits */
    ngx_http_apikey_cache_refill_pt  refill;
    unsigned                       loading:1;
    unsigned                       resume:1; /* a slice failed */
    unsigned                       failed:1;
} ngx_http_apikey_cache_reader_t;


static void ngx_http_apikey_cache_step(ngx_event_t *ev);
static void ngx_http_apikey_cache_loaded(void *data, redisReply *reply);
static void ngx_http_apikey_cache_followed(void *data, redisReply *reply);
static void ngx_http_apikey_cache_wait(ngx_http_apikey_cache_reader_t *rd);
static void ngx_http_apikey_cache_woken(void *data, redisReply *reply);
static ngx_int_t ngx_http_apikey_cache_send(
    ngx_http_apikey_cache_reader_t *rd, ngx_http_apikey_script_t *script,
    u_char *arg, size_t len, const char *n,
    ngx_http_apikey_redis_handler_pt handler);
static ngx_int_t ngx_http_apikey_cache_records(
    ngx_http_apikey_cache_reader_t *rd, redisReply *reply, size_t from,
    uint64_t stamp, ngx_uint_t *n);
static ngx_uint_t ngx_http_apikey_cache_mine(
    ngx_http_apikey_cache_reader_t *rd, u_char *last, size_t len,
    redisReply *clock);
static void ngx_http_apikey_cache_failed(ngx_http_apikey_cache_reader_t *rd,
    const char *what, redisReply *reply);
static void ngx_http_apikey_cache_next(ngx_http_apikey_cache_reader_t *rd,
    ngx_msec_t delay);


static ngx_http_apikey_script_t  ngx_http_apikey_cache_load_script = {
    ngx_string("cache load"),
    { sizeof(ngx_http_apikey_cache_load_lua) - 1,
      ngx_http_apikey_cache_load_lua },
    { 0 }
};

static ngx_http_apikey_script_t  ngx_http_apikey_cache_follow_script = {
    ngx_string("cache follow"),
    { sizeof(ngx_http_apikey_cache_follow_lua) - 1,
      ngx_http_apikey_cache_follow_lua },
    { 0 }
};


static ngx_http_apikey_cache_reader_t  ngx_http_apikey_cache_reader;


ngx_int_t
ngx_http_apikey_cache_add_scripts(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf)
{
    if (ngx_http_apikey_redis_add_script(cf, rcf,
                                         &ngx_http_apikey_cache_load_script)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_apikey_redis_add_script(cf, rcf,
                                          &ngx_http_apikey_cache_follow_script);
}


ngx_int_t
ngx_http_apikey_cache_sync_init(ngx_cycle_t *cycle,
    ngx_http_apikey_cache_conf_t *ccf, ngx_http_apikey_redis_conf_t *rcf,
    ngx_http_apikey_cache_refill_pt refill)
{
    ngx_http_apikey_cache_t         *cache;
    ngx_http_apikey_cache_reader_t  *rd;

    if (ccf->shm_zone == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    rd = &ngx_http_apikey_cache_reader;
    cache = ccf->shm_zone->data;

    rd->ccf = ccf;
    rd->cache = cache;
    rd->rcf = rcf;
    rd->log = cycle->log;
    rd->refill = refill;

    rd->block = NGX_HTTP_APIKEY_CACHE_BLOCK;

    if (ccf->max_stale && ccf->max_stale / 10 < rd->block) {
        rd->block = ngx_max(ccf->max_stale / 10,
                            NGX_HTTP_APIKEY_CACHE_BLOCK_MIN);
    }

    rd->stream.len = rcf->ns.len + sizeof("changes") - 1;
    rd->stream.data = ngx_pnalloc(cycle->pool, rd->stream.len);
    if (rd->stream.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(rd->stream.data, rcf->ns.data, rcf->ns.len),
               "changes", sizeof("changes") - 1);

    /*
     * this worker is the reader from now on: one of a previous
     * configuration, still finishing its requests, no longer applies
     * what it reads
     */

    ngx_shmtx_lock(&cache->shpool->mutex);
    cache->sh->reader = ngx_pid;
    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_apikey_timer_init(&rd->timer, ngx_http_apikey_cache_step, rd,
                               cycle->log);

    ngx_add_timer(&rd->timer, 1);

    return NGX_OK;
}


void
ngx_http_apikey_cache_sync_exit(void)
{
    ngx_http_apikey_cache_reader_t  *rd;

    rd = &ngx_http_apikey_cache_reader;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->op) {
        ngx_http_apikey_redis_detach(rd->op);
        rd->op = NULL;
    }
}


static void
ngx_http_apikey_cache_step(ngx_event_t *ev)
{
    ngx_http_apikey_cache_reader_t *rd = ev->data;

    u_char                      last[NGX_HTTP_APIKEY_CACHE_ID_LEN];
    size_t                      len;
    ngx_int_t                   rc;
    ngx_uint_t                  loaded;
    ngx_http_apikey_cache_t    *cache;

    if (ngx_exiting || ngx_quit || ngx_terminate || rd->op) {
        return;
    }

    cache = rd->cache;

    /*
     * what the last load did not see goes, a slice a step; the log is
     * read between slices, so that changes are seen meanwhile (a sweep
     * of a million keys takes seconds)
     */

    if (ngx_http_apikey_cache_msec() - rd->read
        < NGX_HTTP_APIKEY_CACHE_SWEEP_READ
        && ngx_http_apikey_cache_sweep(cache))
    {
        ngx_http_apikey_cache_next(rd, 1);
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->sh->reader != ngx_pid) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    loaded = cache->sh->loaded && !cache->sh->loading;
    len = ngx_strlen(cache->sh->last);
    ngx_memcpy(last, cache->sh->last, len);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (!loaded || rd->loading) {

        if (!rd->loading) {
            ngx_http_apikey_cache_begin_load(cache);

            rd->loading = 1;
            rd->resume = 0;
            rd->keys = 0;
            rd->slices = 0;
            rd->resumes = 0;
            rd->began = ngx_http_apikey_cache_msec();
            rd->cursor[0] = '0';
            rd->cursor[1] = '\0';

            ngx_http_apikey_metric_set(replica_loading, 1);
            ngx_http_apikey_metric_set(replica_load_keys, 0);

            ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                          "apikey_cache zone \"%V\": loading",
                          &cache->name);
        }

        rc = ngx_http_apikey_cache_send(rd, &ngx_http_apikey_cache_load_script,
                                        rd->cursor, ngx_strlen(rd->cursor),
                                        NGX_HTTP_APIKEY_CACHE_SLICE,
                                        ngx_http_apikey_cache_loaded);

    } else {
        rc = ngx_http_apikey_cache_send(rd,
                                        &ngx_http_apikey_cache_follow_script,
                                        last, len,
                                        NGX_HTTP_APIKEY_CACHE_ENTRIES,
                                        ngx_http_apikey_cache_followed);
    }

    if (rc != NGX_OK) {

        /* Redis is known down: try again later (a load resumes then) */

        rd->resume = rd->loading;
        ngx_http_apikey_cache_next(rd, NGX_HTTP_APIKEY_CACHE_RETRY);
    }
}


static ngx_int_t
ngx_http_apikey_cache_send(ngx_http_apikey_cache_reader_t *rd,
    ngx_http_apikey_script_t *script, u_char *arg, size_t len,
    const char *n, ngx_http_apikey_redis_handler_pt handler)
{
    ngx_str_t  args[4];

    args[0] = rd->stream;
    args[1] = rd->rcf->ns;
    args[2].data = arg;
    args[2].len = len;
    args[3].data = (u_char *) n;
    args[3].len = ngx_strlen(n);

    rd->sent = ngx_http_apikey_cache_msec();

    return ngx_http_apikey_redis_eval(NGX_HTTP_APIKEY_REDIS_REPLICA, script,
                                      1, 4, args, rd->rcf->timeout, handler,
                                      rd, rd->log, &rd->op);
}


static void
ngx_http_apikey_cache_loaded(void *data, redisReply *reply)
{
    ngx_http_apikey_cache_reader_t *rd = data;

    u_char       server[NGX_HTTP_APIKEY_REDIS_SERVER_LEN];
    size_t       len;
    uint64_t     ms;
    ngx_uint_t   n;
    redisReply  *e;

    rd->op = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len > NGX_INT64_LEN
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        /*
         * a timeout, or a lost connection: the slice is asked again, from
         * the same cursor, once Redis answers
         */

        ngx_http_apikey_cache_failed(rd, "load", reply);
        rd->resume = 1;
        ngx_http_apikey_cache_next(rd, NGX_HTTP_APIKEY_CACHE_RETRY);
        return;
    }

    len = ngx_http_apikey_redis_server(NGX_HTTP_APIKEY_REDIS_REPLICA, server);

    e = reply->element[1];

    if (rd->cursor[0] == '0' && rd->cursor[1] == '\0') {
        ngx_memcpy(rd->server, server, len);
        rd->server_len = len;

        n = ngx_min(e->len, NGX_HTTP_APIKEY_CACHE_ID_LEN - 1);
        ngx_memcpy(rd->start, e->str, n);
        rd->start_len = n;

    } else if (len != rd->server_len
               || ngx_memcmp(server, rd->server, len) != 0)
    {
        /* a SCAN cursor means nothing on another server: begin again */

        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "apikey_cache zone \"%V\": another Redis server "
                      "answers, the load begins again", &rd->cache->name);

        rd->loading = 0;
        ngx_http_apikey_cache_next(rd, 1);
        return;
    }

    rd->failed = 0;
    rd->slices++;

    if (rd->resume) {
        rd->resume = 0;
        rd->resumes++;
        ngx_http_apikey_metric_add(replica_load_resumes);
    }

    /* what a slice reads is as new as where the load began, at least */

    if (ngx_http_apikey_cache_records(rd, reply, 3,
                                      ngx_http_apikey_cache_stamp(rd->start,
                                                              rd->start_len),
                                      &n)
        != NGX_OK)
    {
        rd->loading = 0;
        return;
    }

    rd->keys += n;

    ngx_http_apikey_metric_set(replica_load_keys, rd->keys);

    e = reply->element[0];

    ngx_memcpy(rd->cursor, e->str, e->len);
    rd->cursor[e->len] = '\0';

    /*
     * the next slice at once: the calls that came to Redis while this one
     * was on its way back go before it, so a load costs them one slice's
     * wait at most, and a pause between slices would only make it longer
     */

    if (!(e->len == 1 && e->str[0] == '0')) {
        ngx_http_apikey_cache_next(rd, 0);
        return;
    }

    rd->loading = 0;

    ngx_http_apikey_cache_end_load(rd->cache, rd->start, rd->start_len,
                                   rd->log);

    (void) ngx_http_apikey_cache_mine(rd, NULL, 0, reply->element[2]);

    ngx_http_apikey_metric_set(replica_loading, 0);

    ms = ngx_http_apikey_cache_msec() - rd->began;

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "apikey_cache zone \"%V\": %ui keys loaded in %uL.%03uL s "
                  "(%ui slices, %ui resumed after a failed one), following "
                  "the change log from %*s", &rd->cache->name, rd->keys,
                  ms / 1000, ms % 1000, rd->slices, rd->resumes,
                  rd->start_len, rd->start);

    ngx_http_apikey_cache_next(rd, 1);
}


static void
ngx_http_apikey_cache_followed(void *data, redisReply *reply)
{
    ngx_http_apikey_cache_reader_t *rd = data;

    ngx_uint_t   n;
    redisReply  *e;

    rd->op = NULL;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 3
        && ngx_strncmp(reply->element[0]->str, "gap", 3) == 0)
    {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "apikey_cache zone \"%V\": the change log has a gap "
                      "(trimmed, or a new Redis), reloading",
                      &rd->cache->name);

        rd->loading = 0;

        ngx_shmtx_lock(&rd->cache->shpool->mutex);
        rd->cache->sh->loading = 1;
        ngx_shmtx_unlock(&rd->cache->shpool->mutex);

        ngx_http_apikey_cache_next(rd, 1);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_apikey_cache_failed(rd, "follow", reply);
        ngx_http_apikey_cache_next(rd, NGX_HTTP_APIKEY_CACHE_RETRY);
        return;
    }

    rd->failed = 0;
    rd->read = ngx_http_apikey_cache_msec();

    e = reply->element[1];

    if (ngx_http_apikey_cache_records(rd, reply, 2,
                                      ngx_http_apikey_cache_stamp(
                                          (u_char *) e->str, e->len),
                                      &n)
        != NGX_OK)
    {
        return;
    }

    if (!ngx_http_apikey_cache_mine(rd, (u_char *) e->str, e->len,
                                    reply->element[0]))
    {
        return;
    }

    /*
     * a sweep goes on; else, at the log's end or after a full read, the
     * XREAD says if more wait
     */

    if (rd->cache->sh->sweeping) {
        ngx_http_apikey_cache_next(rd, 1);
        return;
    }

    ngx_http_apikey_cache_wait(rd);
}


static void
ngx_http_apikey_cache_wait(ngx_http_apikey_cache_reader_t *rd)
{
    u_char                    last[NGX_HTTP_APIKEY_CACHE_ID_LEN];
    u_char                    block[NGX_INT_T_LEN];
    ngx_str_t                 args[8];
    ngx_http_apikey_cache_t  *cache;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    cache = rd->cache;

    ngx_shmtx_lock(&cache->shpool->mutex);

    args[7].len = ngx_strlen(cache->sh->last);
    ngx_memcpy(last, cache->sh->last, args[7].len);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_str_set(&args[0], "XREAD");
    ngx_str_set(&args[1], "COUNT");
    ngx_str_set(&args[2], "1");
    ngx_str_set(&args[3], "BLOCK");
    args[4].data = block;
    args[4].len = ngx_sprintf(block, "%M", rd->block) - block;
    ngx_str_set(&args[5], "STREAMS");
    args[6] = rd->stream;
    args[7].data = last;

    rd->sent = ngx_http_apikey_cache_msec();

    /* the call's timeout runs from the end of the block */

    if (ngx_http_apikey_redis_command(NGX_HTTP_APIKEY_REDIS_REPLICA, 8, args,
                                      rd->block + rd->rcf->timeout,
                                      ngx_http_apikey_cache_woken, rd,
                                      rd->log, &rd->op)
        != NGX_OK)
    {
        ngx_http_apikey_cache_next(rd, NGX_HTTP_APIKEY_CACHE_RETRY);
        return;
    }

    ngx_http_apikey_redis_blocking(rd->op);
    ngx_http_apikey_metric_add(calls[NGX_HTTP_APIKEY_REDIS_REPLICA]);
}


/*
 * The XREAD's reply: an entry after the last one read, and the log is
 * read at once; none, and the replica is as current as Redis's answer
 * (nothing came after its position meanwhile), and waits again unless a
 * second passed since the log was last read.  A connection that ended
 * before the block did (Redis killed or restarted, the connection
 * dropped) was in step until then too: Redis would have sent any entry
 * it had.
 */

static void
ngx_http_apikey_cache_woken(void *data, redisReply *reply)
{
    ngx_http_apikey_cache_reader_t *rd = data;

    rd->op = NULL;

    if (reply == NULL
        || (reply->type != REDIS_REPLY_NIL
            && reply->type != REDIS_REPLY_ARRAY))
    {
        if (reply == NULL
            && ngx_http_apikey_cache_msec() - rd->sent < rd->block
            && !ngx_http_apikey_cache_mine(rd, NULL, 0, NULL))
        {
            return;
        }

        ngx_http_apikey_cache_failed(rd, "wait", reply);
        ngx_http_apikey_cache_next(rd, NGX_HTTP_APIKEY_CACHE_RETRY);
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {

        if (!ngx_http_apikey_cache_mine(rd, NULL, 0, NULL)) {
            return;
        }

        if (ngx_http_apikey_cache_msec() - rd->read
            < NGX_HTTP_APIKEY_CACHE_POLL)
        {
            ngx_http_apikey_cache_wait(rd);
            return;
        }
    }

    ngx_http_apikey_cache_step(&rd->timer);
}


/*
 * Applies the (hash, g, c) triples from element "from" on, and the
 * (org, "1" or "0", "o") ones, an organization's limits changed, in
 * order; stops (NGX_DECLINED) when another worker has become the reader.
 */

static ngx_int_t
ngx_http_apikey_cache_records(ngx_http_apikey_cache_reader_t *rd,
    redisReply *reply, size_t from, uint64_t stamp, ngx_uint_t *n)
{
    size_t        i;
    ngx_str_t     org;
    redisReply  **e;

    *n = 0;

    if (!ngx_http_apikey_cache_mine(rd, NULL, 0, NULL)) {
        return NGX_DECLINED;
    }

    *n = ngx_http_apikey_cache_apply_reply(rd->ccf, reply, from, stamp, 0,
                                           rd->refill);

    e = reply->element;

    for (i = from; i + 2 < reply->elements; i += 3) {
        if (e[i]->type == REDIS_REPLY_STRING
            && e[i + 1]->type == REDIS_REPLY_STRING && e[i + 1]->len == 1
            && e[i + 2]->type == REDIS_REPLY_STRING && e[i + 2]->len == 1
            && e[i + 2]->str[0] == 'o')
        {
            org.data = (u_char *) e[i]->str;
            org.len = e[i]->len;

            ngx_http_apikey_org_learn(rd->ccf, &org, e[i + 1]->str[0] == '1',
                                      1);
        }
    }

    return NGX_OK;
}


/*
 * Whether this worker is still the reader; if so, marks the replica in
 * step with Redis now, at the position given (NULL: unchanged), and
 * learns Redis's clock from a reply's milliseconds: the replica judges
 * expiry and grace by it, run on from there by the monotonic clock, so
 * that a step of the host's clock changes nothing.  Redis read its clock
 * after the call was sent and before the reply came: taken as read when
 * the call was sent, and a millisecond on (the reply's are truncated),
 * the replica's clock is never behind Redis's, so that a grace or an
 * expiry never ends later here than in Redis (by the call's round trip
 * at most, it ends sooner).
 */

static ngx_uint_t
ngx_http_apikey_cache_mine(ngx_http_apikey_cache_reader_t *rd, u_char *last,
    size_t len, redisReply *clock)
{
    int64_t                      ms;
    ngx_uint_t                   mine;
    ngx_http_apikey_cache_sh_t  *sh;

    sh = rd->cache->sh;
    ms = NGX_ERROR;

    if (clock != NULL && clock->type == REDIS_REPLY_STRING
        && clock->len <= NGX_INT64_LEN)
    {
        ms = ngx_atoof((u_char *) clock->str, clock->len);
    }

    ngx_shmtx_lock(&rd->cache->shpool->mutex);

    mine = (sh->reader == ngx_pid);

    if (mine) {
        sh->synced = ngx_http_apikey_cache_msec();

        if (ms > 0) {
            sh->clock = ms + 1;
            sh->clock_at = rd->sent;
        }

        if (last != NULL && len < NGX_HTTP_APIKEY_CACHE_ID_LEN) {
            ngx_memcpy(sh->last, last, len);
            sh->last[len] = '\0';
        }
    }

    ngx_shmtx_unlock(&rd->cache->shpool->mutex);

    return mine;
}


static void
ngx_http_apikey_cache_failed(ngx_http_apikey_cache_reader_t *rd,
    const char *what, redisReply *reply)
{
    u_char  text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];

    if (rd->failed) {
        return;
    }

    rd->failed = 1;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "apikey_cache zone \"%V\": %s failed: \"%*s\"",
                      &rd->cache->name, what,
                      ngx_http_apikey_redis_text(text, (u_char *) reply->str,
                                                 reply->len) - text,
                      text);
        return;
    }

    if (reply != NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "apikey_cache zone \"%V\": unexpected reply to %s",
                      &rd->cache->name, what);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "apikey_cache zone \"%V\": %s failed: redis unreachable, "
                  "answering from the replica for max_stale",
                  &rd->cache->name, what);
}


static void
ngx_http_apikey_cache_next(ngx_http_apikey_cache_reader_t *rd,
    ngx_msec_t delay)
{
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(&rd->timer, delay);
}
