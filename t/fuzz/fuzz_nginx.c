
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_redis_conn.h"
#include "fuzz_nginx.h"


static void ngx_http_apikey_fuzz_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);


ngx_log_t  ngx_http_apikey_fuzz_log;

static ngx_cycle_t      ngx_http_apikey_fuzz_cycle;
static ngx_open_file_t  ngx_http_apikey_fuzz_file;


void
ngx_http_apikey_fuzz_init(void)
{
    ngx_uint_t         n;
    static ngx_uint_t  done;

    if (done) {
        return;
    }

    done = 1;

    /* what ngx_os_init() and main() set before any module runs */

    ngx_pagesize = getpagesize();
    ngx_pagesize_shift = 0;

    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }

    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    ngx_slab_sizes_init();

    ngx_pid = ngx_getpid();
    ngx_time_init();

    ngx_http_apikey_fuzz_file.fd = ngx_stderr;

    ngx_use_stderr = 0;

    ngx_http_apikey_fuzz_log.log_level = NGX_LOG_INFO;
    ngx_http_apikey_fuzz_log.file = &ngx_http_apikey_fuzz_file;
    ngx_http_apikey_fuzz_log.writer = ngx_http_apikey_fuzz_writer;

    ngx_http_apikey_fuzz_cycle.log = &ngx_http_apikey_fuzz_log;
    ngx_cycle = &ngx_http_apikey_fuzz_cycle;

    ngx_queue_init(&ngx_posted_events);
    ngx_event_timer_init(&ngx_http_apikey_fuzz_log);

    ngx_http_apikey_module.ctx_index = 0;
}


/*
 * Every line the module logs is one line, whatever a server sent: text
 * from Redis or a Sentinel must come escaped (SPEC section 8)
 */

static void
ngx_http_apikey_fuzz_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len)
{
    size_t  i;

    for (i = 0; i + 1 < len; i++) {
        if (buf[i] < 0x20 || buf[i] == 0x7f) {
            abort();
        }
    }
}


ngx_uint_t
ngx_http_apikey_fuzz_byte(ngx_http_apikey_fuzz_in_t *in)
{
    return (in->pos < in->last) ? *in->pos++ : 0;
}


ngx_str_t
ngx_http_apikey_fuzz_bytes(ngx_http_apikey_fuzz_in_t *in, size_t len)
{
    ngx_str_t  s;

    s.data = (u_char *) in->pos;
    s.len = ngx_min(len, (size_t) (in->last - in->pos));

    in->pos += s.len;

    return s;
}


redisReply *
ngx_http_apikey_fuzz_reply(ngx_http_apikey_fuzz_in_t *in)
{
    void         *reply;
    size_t        budget, len;
    redisReader  *reader;

    len = in->last - in->pos;

    if (len == 0) {
        return NULL;
    }

    budget = NGX_HTTP_APIKEY_REDIS_REPLY_MAX;

    reader = ngx_http_apikey_redis_reader_create(&budget);
    if (reader == NULL) {
        abort();
    }

    reply = NULL;

    if (redisReaderFeed(reader, (const char *) in->pos, len) != REDIS_OK
        || redisReaderGetReply(reader, &reply) != REDIS_OK
        || reply == NULL)
    {
        in->pos = in->last;
        redisReaderFree(reader);
        return NULL;
    }

    /* what the reader holds is what follows the reply */

    in->pos = in->last - (reader->len - reader->pos);

    redisReaderFree(reader);

    return reply;
}


ngx_http_request_t *
ngx_http_apikey_fuzz_request(void)
{
    void                         **main_conf;
    ngx_pool_t                    *pool;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_apikey_main_conf_t   *akmcf;

    pool = ngx_create_pool(4096, &ngx_http_apikey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    main_conf = ngx_pcalloc(pool, sizeof(void *));
    akmcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_main_conf_t));

    if (r == NULL || c == NULL || main_conf == NULL || akmcf == NULL) {
        abort();
    }

    main_conf[ngx_http_apikey_module.ctx_index] = akmcf;

    c->log = &ngx_http_apikey_fuzz_log;
    c->fd = (ngx_socket_t) -1;

    r->connection = c;
    r->pool = pool;
    r->main = r;
    r->main_conf = main_conf;

    return r;
}


void
ngx_http_apikey_fuzz_sane(ngx_http_apikey_ctx_t *ctx)
{
    if (ctx->result > NGX_HTTP_APIKEY_UNAVAILABLE
        || ctx->result == NGX_HTTP_APIKEY_MISSING)
    {
        abort();
    }

    if (ctx->burst >= 0
        && (ctx->remaining < 0 || ctx->remaining > ctx->burst
            || ctx->next < 0 || ctx->reset < 0 || ctx->window < 0
            || (ctx->result == NGX_HTTP_APIKEY_LIMITED
                && ctx->retry_after < 1)))
    {
        abort();
    }

    /* a quota used up is a 429 with the time until the period ends */

    if (ctx->quota < 0 || ctx->quota_reset < 0
        || (ctx->quota_out
            && (ctx->result != NGX_HTTP_APIKEY_LIMITED || ctx->quota == 0
                || ctx->retry_after < 1)))
    {
        abort();
    }
}


ngx_http_apikey_loc_conf_t *
ngx_http_apikey_fuzz_loc_conf(ngx_pool_t *pool)
{
    ngx_http_apikey_loc_conf_t  *akcf;

    akcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_loc_conf_t));
    if (akcf == NULL) {
        abort();
    }

    akcf->enable = 1;
    ngx_str_set(&akcf->environment, "");
    ngx_str_set(&akcf->scopes, "");
    akcf->fail_mode = NGX_HTTP_APIKEY_FAIL_CLOSED;

    return akcf;
}


ngx_http_apikey_cache_t *
ngx_http_apikey_fuzz_zone(ngx_pool_t *pool, ngx_http_apikey_cache_conf_t *ccf,
    size_t size)
{
    ngx_str_t         *value;
    ngx_conf_t         cf;
    ngx_cycle_t       *cycle;
    ngx_shm_zone_t    *zone;
    ngx_slab_pool_t   *sp;

    cycle = ngx_pcalloc(pool, sizeof(ngx_cycle_t));
    if (cycle == NULL) {
        abort();
    }

    cycle->log = &ngx_http_apikey_fuzz_log;

    if (ngx_list_init(&cycle->shared_memory, pool, 1, sizeof(ngx_shm_zone_t))
        != NGX_OK)
    {
        abort();
    }

    ngx_memzero(&cf, sizeof(ngx_conf_t));

    cf.pool = pool;
    cf.cycle = cycle;
    cf.log = &ngx_http_apikey_fuzz_log;

    cf.args = ngx_array_create(pool, 2, sizeof(ngx_str_t));
    if (cf.args == NULL) {
        abort();
    }

    value = ngx_array_push_n(cf.args, 2);
    if (value == NULL) {
        abort();
    }

    ngx_str_set(&value[0], "apikey_cache");

    value[1].data = ngx_pnalloc(pool, sizeof("zone=fuzz:") + NGX_SIZE_T_LEN);
    if (value[1].data == NULL) {
        abort();
    }

    value[1].len = ngx_sprintf(value[1].data, "zone=fuzz:%uz%Z", size)
                   - value[1].data - 1;

    if (ngx_http_apikey_cache_directive(&cf, ccf) != NGX_CONF_OK) {
        abort();
    }

    /* shared memory as ngx_init_cycle() makes it: zeroed, a slab pool */

    zone = ccf->shm_zone;

    zone->shm.addr = ngx_alloc(zone->shm.size, &ngx_http_apikey_fuzz_log);
    if (zone->shm.addr == NULL) {
        abort();
    }

    ngx_memzero(zone->shm.addr, zone->shm.size);

    sp = (ngx_slab_pool_t *) zone->shm.addr;

    sp->end = zone->shm.addr + zone->shm.size;
    sp->min_shift = 3;
    sp->addr = zone->shm.addr;

    if (ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) != NGX_OK) {
        abort();
    }

    ngx_slab_init(sp);

    if (zone->init(zone, NULL) != NGX_OK) {
        abort();
    }

    return zone->data;
}


void
ngx_http_apikey_fuzz_zone_free(ngx_http_apikey_cache_conf_t *ccf)
{
    ngx_slab_pool_t  *sp;

    sp = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;

    ngx_shmtx_destroy(&sp->mutex);
    ngx_free(sp);

    ccf->shm_zone = NULL;
}
