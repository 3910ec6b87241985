
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the replica of apikey_cache (ngx_http_apikey_cache.c)
 * in a zone of 8 to 23 pages made as nginx makes one, under a sequence of
 * what its reader does: records applied (hex, g and c as fuzzed, or well
 * formed and of any size up to past 64 KB, so that the zone fills), loads
 * begun and ended, sweeps; the reader's replies, read as RESP by its own
 * handlers (ngx_http_apikey_cache_sync.c, included to reach them); and
 * the gate's look-ups, online and offline.  After every step the zone's
 * accounting must match its index (keys, bytes, missing: never an
 * underflow; each record in its hash's bucket, once), and a look-up must
 * say what the record says; in the end, with every record removed, the
 * slab pool must have every page back.
 */


#include "ngx_http_apikey_cache_sync.c"

#include "ngx_http_apikey_redis_conn.h"
#include "fuzz_nginx.h"


#define NGX_HTTP_APIKEY_FUZZ_HASHES  16


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void ngx_http_apikey_fuzz_apply(ngx_http_apikey_fuzz_in_t *in,
    ngx_uint_t op, ngx_pool_t *pool, ngx_http_apikey_cache_t *cache);
static ngx_str_t ngx_http_apikey_fuzz_g(ngx_http_apikey_fuzz_in_t *in,
    ngx_pool_t *pool);
static void ngx_http_apikey_fuzz_find(ngx_http_apikey_fuzz_in_t *in,
    ngx_pool_t *pool, ngx_http_apikey_cache_conf_t *ccf);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_fuzz_node(
    ngx_http_apikey_cache_t *cache, u_char *hash);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_fuzz_any(
    ngx_http_apikey_cache_sh_t *sh);
static void ngx_http_apikey_fuzz_accounting(ngx_http_apikey_cache_t *cache);
static void ngx_http_apikey_fuzz_hex(u_char *dst, u_char *hash);
static void ngx_http_apikey_fuzz_refill(ngx_http_apikey_cache_conf_t *ccf,
    u_char *hash);


/*
 * The hashes the steps name: four share their first eight bytes, the
 * tree's key, so that the tree's order within a key is reached too.
 */

static u_char  ngx_http_apikey_fuzz_hash[NGX_HTTP_APIKEY_FUZZ_HASHES][32];
static u_char  ngx_http_apikey_fuzz_hexes[NGX_HTTP_APIKEY_FUZZ_HASHES][64];


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                         hex[64];
    ngx_str_t                      h, g, c, last;
    ngx_uint_t                     i, op, pfree;
    ngx_pool_t                    *pool;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_node_t  *cn;
    ngx_http_apikey_fuzz_in_t      in;
    redisReply                    *reply;
    ngx_cycle_t                    cycle;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_conf_t   ccf;
    ngx_http_apikey_redis_conf_t   rcf;

    ngx_http_apikey_fuzz_init();

    if (ngx_http_apikey_fuzz_hash[1][31] == 0) {
        for (i = 0; i < NGX_HTTP_APIKEY_FUZZ_HASHES; i++) {
            ngx_memset(ngx_http_apikey_fuzz_hash[i], i & 3, 8);
            ngx_memset(ngx_http_apikey_fuzz_hash[i] + 8, i, 24);
            ngx_http_apikey_fuzz_hex(ngx_http_apikey_fuzz_hexes[i],
                                     ngx_http_apikey_fuzz_hash[i]);
        }
    }

    in.pos = data;
    in.last = data + size;

    pool = ngx_create_pool(4096, &ngx_http_apikey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    ngx_memzero(&ccf, sizeof(ngx_http_apikey_cache_conf_t));

    ccf.max_stale = 600000;
    ccf.timeout = 100;

    cache = ngx_http_apikey_fuzz_zone(pool, &ccf,
                                      (8 + ngx_http_apikey_fuzz_byte(&in) % 16)
                                      * ngx_pagesize);
    sh = cache->sh;
    pfree = cache->shpool->pfree;

    /* this worker, the first, reads the change log */

    ngx_memzero(&cycle, sizeof(ngx_cycle_t));
    ngx_memzero(&rcf, sizeof(ngx_http_apikey_redis_conf_t));

    cycle.pool = pool;
    cycle.log = &ngx_http_apikey_fuzz_log;
    ngx_str_set(&rcf.ns, "ak:");
    ngx_worker = 0;

    ngx_memzero(&ngx_http_apikey_cache_reader,
                sizeof(ngx_http_apikey_cache_reader_t));

    if (ngx_http_apikey_cache_sync_init(&cycle, &ccf, &rcf,
                                        ngx_http_apikey_fuzz_refill)
        != NGX_OK)
    {
        abort();
    }

    while (in.pos < in.last) {
        op = ngx_http_apikey_fuzz_byte(&in);

        if (op >= 0xf0) {

            /* a reply to the load or the follow script */

            reply = ngx_http_apikey_fuzz_reply(&in);

            if (op & 1) {
                ngx_http_apikey_cache_loaded(&ngx_http_apikey_cache_reader,
                                             reply);

            } else {
                ngx_http_apikey_cache_followed(&ngx_http_apikey_cache_reader,
                                               reply);
            }

            ngx_http_apikey_redis_reply_free(reply);
            ngx_http_apikey_fuzz_accounting(cache);
            continue;
        }

        switch (op % 8) {

        case 0:
        case 1:
        case 2:
        case 3:
            ngx_http_apikey_fuzz_apply(&in, op, pool, cache);
            break;

        case 4:
            ngx_http_apikey_cache_begin_load(cache);
            break;

        case 5:
            last = ngx_http_apikey_fuzz_bytes(&in,
                                          ngx_http_apikey_fuzz_byte(&in) % 64);
            ngx_http_apikey_cache_end_load(cache, last.data, last.len,
                                           &ngx_http_apikey_fuzz_log);
            break;

        case 6:
            (void) ngx_http_apikey_cache_sweep(cache);
            break;

        default:
            ngx_http_apikey_fuzz_find(&in, pool, &ccf);
            break;
        }

        ngx_http_apikey_fuzz_accounting(cache);
    }

    /* every record removed, as a reader that saw every key deleted */

    g.len = 0;
    c.len = 0;
    h.data = hex;
    h.len = 64;

    while ((cn = ngx_http_apikey_fuzz_any(sh)) != NULL) {
        ngx_http_apikey_fuzz_hex(hex, cn->hash);

        (void) ngx_http_apikey_cache_apply(cache, &h, &g, &c, UINT64_MAX, 0);
    }

    ngx_http_apikey_fuzz_accounting(cache);
    ngx_http_apikey_cache_sync_exit();

    if (sh->keys || sh->bytes || sh->missing
        || cache->shpool->pfree != pfree)
    {
        abort();
    }

    ngx_http_apikey_fuzz_zone_free(&ccf);
    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_http_apikey_fuzz_apply(ngx_http_apikey_fuzz_in_t *in, ngx_uint_t op,
    ngx_pool_t *pool, ngx_http_apikey_cache_t *cache)
{
    uint64_t    stamp;
    ngx_uint_t  b, mark;
    ngx_str_t   hex, g, c;

    /* as new as a change-log position (an older one is ignored), or a
     * deletion the admin API marks gone */

    b = ngx_http_apikey_fuzz_byte(in);
    stamp = b >> 1;
    mark = b & 1;

    b = ngx_http_apikey_fuzz_byte(in);

    if (op % 8 == 3) {

        /* any bytes as the hex */

        hex = ngx_http_apikey_fuzz_bytes(in, b % 72);

    } else {
        hex.data = ngx_http_apikey_fuzz_hexes[b % NGX_HTTP_APIKEY_FUZZ_HASHES];
        hex.len = 64;
    }

    b = ngx_http_apikey_fuzz_byte(in);

    switch (b % 4) {

    case 0:
        c.len = 0;
        break;

    case 1:
        c.data = ngx_http_apikey_fuzz_hexes[(b / 4)
                                            % NGX_HTTP_APIKEY_FUZZ_HASHES];
        c.len = 64;
        break;

    default:
        c = ngx_http_apikey_fuzz_bytes(in, b / 4);
        break;
    }

    if (op % 8 == 2) {

        /* the key is gone */

        g.len = 0;

    } else {
        g = ngx_http_apikey_fuzz_g(in, pool);
    }

    (void) ngx_http_apikey_cache_apply(cache, &hex, &g, &c, stamp, mark);
}


/*
 * A g: any bytes, or "rev exp grace rate per burst env scopes\nid\norg\n
 * prefix\nname" with numbers in and out of range, filled up to a size of
 * up to 65,535 + 255 bytes
 */

static ngx_str_t
ngx_http_apikey_fuzz_g(ngx_http_apikey_fuzz_in_t *in, ngx_pool_t *pool)
{
    u_char            *p;
    time_t             t;
    size_t             len;
    ngx_str_t          g;
    ngx_uint_t         b, i, hi, lo;
    static ngx_uint_t  numbers[] = {
        0, 1, 2, 5, 60, 1000000, 4294967295u, 4294967296u,
        (ngx_uint_t) NGX_MAX_INT_T_VALUE
    };

    b = ngx_http_apikey_fuzz_byte(in);

    if (b & 1) {
        return ngx_http_apikey_fuzz_bytes(in, ngx_http_apikey_fuzz_byte(in));
    }

    hi = ngx_http_apikey_fuzz_byte(in);
    lo = ngx_http_apikey_fuzz_byte(in);

    len = ngx_max((hi << 8) + lo + hi, 128);

    g.data = ngx_pnalloc(pool, len);
    if (g.data == NULL) {
        abort();
    }

    t = ngx_time();

    p = ngx_sprintf(g.data, "%ui %T %T ", (b >> 1) % 3,
                    (b & 0x08) ? t + (time_t) ((b & 0x10) ? -60 : 60) : 0,
                    (b & 0x20) ? t + (time_t) ((b & 0x40) ? -60 : 60) : 0);

    for (i = 0; i < 3; i++) {
        p = ngx_sprintf(p, "%ui ", numbers[ngx_http_apikey_fuzz_byte(in)
                                           % (sizeof(numbers)
                                              / sizeof(numbers[0]))]);
    }

    p = ngx_cpymem(p, "production a:b\nid\norg\npre\n", 26);

    ngx_memset(p, 'n', g.data + len - p);

    g.len = len;

    return g;
}


/* the gate's look-up, which must say what the record says */

static void
ngx_http_apikey_fuzz_find(ngx_http_apikey_fuzz_in_t *in, ngx_pool_t *pool,
    ngx_http_apikey_cache_conf_t *ccf)
{
    u_char                        *hash;
    ngx_int_t                      rc;
    ngx_str_t                      g;
    ngx_uint_t                     b, result;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_rec_t    rec;
    ngx_http_apikey_cache_node_t  *cn, *holder;

    cache = ccf->shm_zone->data;

    b = ngx_http_apikey_fuzz_byte(in);
    hash = ngx_http_apikey_fuzz_hash[b % NGX_HTTP_APIKEY_FUZZ_HASHES];

    /* a reply from Redis just now, or max_stale ago and more */

    cache->sh->synced = ngx_http_apikey_cache_msec()
                        - ((b & 0x20) ? ccf->max_stale + 1 : 0);

    rc = ngx_http_apikey_cache_find(ccf, pool, hash, b & 0x10, &result, &g,
                                    &rec);

    if (rc == NGX_DECLINED) {
        return;
    }

    if (rc != NGX_OK) {
        abort();
    }

    cn = ngx_http_apikey_fuzz_node(cache, hash);

    switch (result) {

    case NGX_HTTP_APIKEY_INVALID:
        if (cn == NULL && cache->sh->lost) {
            abort();
        }

        return;

    case NGX_HTTP_APIKEY_REVOKED:
    case NGX_HTTP_APIKEY_EXPIRED:
    case NGX_HTTP_APIKEY_OK:
        break;

    default:
        abort();
    }

    if (cn == NULL || cn->missing || g.len != cn->len
        || ngx_memcmp(g.data, cn->g, g.len) != 0)
    {
        abort();
    }

    if (result != NGX_HTTP_APIKEY_OK) {
        return;
    }

    holder = cn->has_c ? ngx_http_apikey_fuzz_node(cache, cn->g + cn->len)
                       : cn;

    if (holder == NULL || holder->missing
        || ngx_memcmp(rec.hash, holder->hash, 32) != 0
        || rec.version != holder->version || rec.rate != holder->rate
        || rec.per != holder->per || rec.burst != holder->burst)
    {
        abort();
    }
}


/* the record of a hash, found by walking every bucket, not by look-up */

static ngx_http_apikey_cache_node_t *
ngx_http_apikey_fuzz_node(ngx_http_apikey_cache_t *cache, u_char *hash)
{
    ngx_uint_t                     i;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *cn;

    sh = cache->sh;

    for (i = 0; i <= sh->mask; i++) {
        for (cn = sh->index[i]; cn != NULL; cn = cn->next) {
            if (ngx_memcmp(cn->hash, hash, 32) == 0) {
                return cn;
            }
        }
    }

    return NULL;
}


static ngx_http_apikey_cache_node_t *
ngx_http_apikey_fuzz_any(ngx_http_apikey_cache_sh_t *sh)
{
    ngx_uint_t  i;

    for (i = 0; i <= sh->mask; i++) {
        if (sh->index[i] != NULL) {
            return sh->index[i];
        }
    }

    return NULL;
}


/*
 * the zone's counts are its index's, each record is in its hash's bucket,
 * and no hash is there twice (two records of a hash share a bucket)
 */

static void
ngx_http_apikey_fuzz_accounting(ngx_http_apikey_cache_t *cache)
{
    ngx_uint_t                     i, key, keys, bytes, missing;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *cn, *other;

    sh = cache->sh;

    keys = 0;
    bytes = 0;
    missing = 0;

    for (i = 0; i <= sh->mask; i++) {
        for (cn = sh->index[i]; cn != NULL; cn = cn->next) {

            ngx_memcpy(&key, cn->hash, sizeof(ngx_uint_t));

            if ((key & sh->mask) != i) {
                abort();
            }

            for (other = cn->next; other != NULL; other = other->next) {
                if (ngx_memcmp(other->hash, cn->hash, 32) == 0) {
                    abort();
                }
            }

            if (cn->missing && (cn->len || cn->has_c)) {
                abort();
            }

            keys++;
            missing += cn->missing;
            bytes += offsetof(ngx_http_apikey_cache_node_t, g) + cn->len
                     + (cn->has_c ? 32 : 0);
        }
    }

    if (keys != sh->keys || bytes != sh->bytes || missing != sh->missing
        || sh->missing > sh->keys)
    {
        abort();
    }
}


static void
ngx_http_apikey_fuzz_hex(u_char *dst, u_char *hash)
{
    (void) ngx_hex_dump(dst, hash, 32);
}


static void
ngx_http_apikey_fuzz_refill(ngx_http_apikey_cache_conf_t *ccf, u_char *hash)
{
    u_char  bin[32];

    /* a "b" entry's hash, as bytes: all 32 are read */

    ngx_memcpy(bin, hash, 32);
}
