
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_cache.h"


static ngx_int_t ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_apikey_cache_current(
    ngx_http_apikey_cache_conf_t *ccf, ngx_http_apikey_cache_sh_t *sh,
    ngx_uint_t offline);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_lookup(
    ngx_http_apikey_cache_t *cache, u_char *hash);
static ngx_http_apikey_cache_node_t **ngx_http_apikey_cache_bucket(
    ngx_http_apikey_cache_sh_t *sh, u_char *hash);
static void ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn);
static void ngx_http_apikey_cache_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn);
static size_t ngx_http_apikey_cache_size(ngx_http_apikey_cache_node_t *cn);
static ngx_int_t ngx_http_apikey_cache_parse(ngx_http_apikey_cache_node_t *cn,
    u_char *p, u_char *last);


char *
ngx_http_apikey_cache_directive(ngx_conf_t *cf,
    ngx_http_apikey_cache_conf_t *ccf)
{
    u_char                   *p;
    ssize_t                   size;
    ngx_str_t                *value, name, s;
    ngx_uint_t                i;
    ngx_http_apikey_cache_t  *cache;

    if (ccf->shm_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    name.len = 0;
    size = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_stale=", 10) == 0) {

            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            ccf->max_stale = ngx_parse_time(&s, 0);

            if (ccf->max_stale == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_stale \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &value[0]);
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_apikey_module);
    if (ccf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ccf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    cache->name = name;
    cache->size = size;

    ccf->shm_zone->init = ngx_http_apikey_cache_init_zone;
    ccf->shm_zone->data = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_apikey_cache_t  *ocache = data;

    size_t                    len;
    ngx_uint_t                n;
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {

        /* a reload that kept the zone keeps the replica and goes on */

        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_apikey_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cache->sh, sizeof(ngx_http_apikey_cache_sh_t));

    cache->shpool->data = cache->sh;

    /* a power of two of buckets, about one a record the zone holds */

    for (n = 1; n * 2 <= shm_zone->shm.size / NGX_HTTP_APIKEY_CACHE_RECORD;
         n <<= 1)
    { /* void */ }

    cache->sh->index = ngx_slab_calloc(cache->shpool, n * sizeof(void *));
    if (cache->sh->index == NULL) {
        return NGX_ERROR;
    }

    cache->sh->mask = n - 1;

    ngx_memcpy(cache->sh->last, "0-0", sizeof("0-0"));

    /* a zone too small is reported once, by the load, not per record */

    cache->shpool->log_nomem = 0;

    len = sizeof(" in apikey_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in apikey_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


int64_t
ngx_http_apikey_cache_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


uint64_t
ngx_http_apikey_cache_msec(void)
{
    return (uint64_t) ngx_http_apikey_cache_now() / 1000;
}


/*
 * Whether the replica may answer: online only while it follows the change
 * log (a full load done, none running, a reply within the last second);
 * offline, with Redis unreachable, for max_stale after the last reply.
 */

static ngx_uint_t
ngx_http_apikey_cache_current(ngx_http_apikey_cache_conf_t *ccf,
    ngx_http_apikey_cache_sh_t *sh, ngx_uint_t offline)
{
    uint64_t  now;

    if (!sh->loaded) {
        return 0;
    }

    now = ngx_http_apikey_cache_msec();

    if (offline) {
        return now <= sh->synced + ccf->max_stale;
    }

    return !sh->loading && now <= sh->synced + NGX_HTTP_APIKEY_CACHE_FRESH;
}


ngx_int_t
ngx_http_apikey_cache_find(ngx_http_apikey_cache_conf_t *ccf,
    ngx_pool_t *pool, u_char *hash, ngx_uint_t offline, ngx_uint_t *result,
    ngx_str_t *g, ngx_http_apikey_cache_rec_t *rec)
{
    time_t                         now;
    ngx_int_t                      rc;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *cn, *b;

    cache = ccf->shm_zone->data;
    sh = cache->sh;

    rc = NGX_OK;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (!ngx_http_apikey_cache_current(ccf, sh, offline)) {
        rc = NGX_DECLINED;
        goto done;
    }

    /* Redis's clock, as the gate script judges by (the host's, unlearnt) */

    now = sh->clock_at
          ? (time_t) ((sh->clock + (int64_t) (ngx_http_apikey_cache_msec()
                                              - sh->clock_at))
                      / 1000)
          : ngx_time();

    cn = ngx_http_apikey_cache_lookup(cache, hash);

    if (cn == NULL) {

        /* unknown: for sure only if every key has a record here */

        if (sh->lost) {
            rc = NGX_DECLINED;

        } else {
            *result = NGX_HTTP_APIKEY_INVALID;
        }

        goto done;
    }

    if (cn->gone || (cn->load != sh->load && !sh->loading)) {

        /*
         * deleted, or the last load did not see it (gone from Redis; during
         * a load, offline, the records of the one before still answer)
         */

        *result = NGX_HTTP_APIKEY_INVALID;
        goto done;
    }

    if (cn->missing) {

        /* it did not fit the zone */

        rc = NGX_DECLINED;
        goto done;
    }

    if (cn->grace && now >= cn->grace) {
        *result = NGX_HTTP_APIKEY_INVALID;
        goto done;
    }

    if (cn->revoked) {
        *result = NGX_HTTP_APIKEY_REVOKED;

    } else if (cn->exp && now >= cn->exp) {
        *result = NGX_HTTP_APIKEY_EXPIRED;

    } else {
        *result = NGX_HTTP_APIKEY_OK;

        /* the bucket is the key's current secret's */

        b = cn->has_c ? ngx_http_apikey_cache_lookup(cache, cn->g + cn->len)
                      : cn;

        if (b == NULL || b->missing || b->gone
            || (b->load != sh->load && !sh->loading))
        {
            rc = NGX_DECLINED;
            goto done;
        }

        ngx_memcpy(rec->hash, b->hash, 32);
        rec->version = b->version;
        rec->rate = b->rate;
        rec->per = b->per;
        rec->burst = b->burst;
    }

    g->len = cn->len;
    g->data = ngx_pnalloc(pool, cn->len);

    if (g->data == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_memcpy(g->data, cn->g, cn->len);

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_apikey_cache_current_locked(ngx_http_apikey_cache_t *cache,
    u_char *hash, uint64_t version, uint32_t *limit)
{
    ngx_http_apikey_cache_node_t  *cn;

    cn = ngx_http_apikey_cache_lookup(cache, hash);

    if (cn == NULL || cn->missing || cn->gone) {
        return NGX_DECLINED;
    }

    if (cn->version == version) {
        return NGX_OK;
    }

    if (cn->rate != limit[0] || cn->per != limit[1] || cn->burst != limit[2])
    {
        return NGX_ABORT;
    }

    return NGX_DECLINED;
}


void
ngx_http_apikey_cache_begin_load(ngx_http_apikey_cache_t *cache)
{
    ngx_http_apikey_cache_sh_t  *sh;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->loaded) {
        sh->reloads++;
    }

    sh->load++;
    sh->loading = 1;
    sh->lost = 0;
    sh->warned = 0;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * A secret's record as Redis has it now.  The old record goes first, so
 * that a change that fits replaces it even in a full zone; a record that
 * does not fit stays as a missing one, and is counted.
 */

ngx_int_t
ngx_http_apikey_cache_apply(ngx_http_apikey_cache_t *cache, ngx_str_t *hex,
    ngx_str_t *g, ngx_str_t *c, uint64_t stamp, ngx_uint_t mark)
{
    u_char                         hash[32], chash[32];
    size_t                         size, oldsize;
    ngx_int_t                      rc;
    ngx_uint_t                     has_c;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *cn, *old, **slot;

    if (hex->len != 64
        || ngx_http_apikey_cache_unhex(hash, hex->data, 64) != NGX_OK)
    {
        return NGX_OK;
    }

    has_c = (c->len == 64
             && ngx_http_apikey_cache_unhex(chash, c->data, 64) == NGX_OK);

    sh = cache->sh;
    rc = NGX_OK;

    ngx_shmtx_lock(&cache->shpool->mutex);

    old = ngx_http_apikey_cache_lookup(cache, hash);

    if (old != NULL && old->stamp > stamp && old->load == sh->load) {

        /* read before the record there was written */

        goto done;
    }

    size = offsetof(ngx_http_apikey_cache_node_t, g) + g->len
           + (has_c ? 32 : 0);

    oldsize = old ? ngx_http_apikey_cache_size(old) : 0;

    if (old != NULL && !old->missing && !old->gone && g->len
        && g->len <= 65535 && oldsize <= NGX_HTTP_APIKEY_CACHE_SLOT_MAX
        && size <= ngx_http_apikey_cache_room(old, oldsize))
    {
        /*
         * a change that fits the record's slot is written there: in a
         * full zone, a record a few bytes longer would find no slot of
         * its size and leave the key to Redis
         */

        sh->bytes -= oldsize;
        sh->version++;

        ngx_memcpy(old->g, g->data, g->len);
        old->len = (u_short) g->len;
        old->has_c = has_c;

        if (has_c) {
            ngx_memcpy(old->g + old->len, chash, 32);
        }

        old->stamp = stamp;
        old->version = sh->version;
        old->load = sh->load;

        sh->bytes += size;

        if (ngx_http_apikey_cache_parse(old, g->data, g->data + g->len)
            != NGX_OK)
        {
            ngx_http_apikey_cache_delete(cache, old);
        }

        goto done;
    }

    if (old != NULL) {
        ngx_http_apikey_cache_delete(cache, old);

    } else if (sh->lost && g->len == 0) {

        /* a key that had no record at all, not even a missing one */

        sh->lost--;
    }

    if ((g->len == 0 && !mark) || g->len > 65535) {
        goto done;
    }

    sh->version++;

    cn = ngx_http_apikey_cache_alloc_locked(cache, size);

    if (cn != NULL) {
        ngx_memzero(cn, offsetof(ngx_http_apikey_cache_node_t, g));

        ngx_memcpy(cn->g, g->data, g->len);
        cn->len = (u_short) g->len;
        cn->has_c = has_c;
        cn->gone = (g->len == 0);

        if (has_c) {
            ngx_memcpy(cn->g + cn->len, chash, 32);
        }

        if (!cn->gone
            && ngx_http_apikey_cache_parse(cn, g->data, g->data + g->len)
               != NGX_OK)
        {
            ngx_http_apikey_cache_free_locked(cache, cn, size);
            goto done;
        }

    } else if (g->len == 0) {

        /* no room for the mark: the reader will delete the record anyway */

        goto done;

    } else {

        /* the zone is full: the key is checked in Redis */

        rc = NGX_DECLINED;
        size = offsetof(ngx_http_apikey_cache_node_t, g);

        cn = ngx_http_apikey_cache_alloc_locked(cache, size);

        if (cn == NULL) {
            sh->lost++;
            goto done;
        }

        ngx_memzero(cn, size);

        cn->missing = 1;
        sh->missing++;
    }

    ngx_memcpy(cn->hash, hash, 32);
    cn->stamp = stamp;
    cn->version = sh->version;
    cn->load = sh->load;

    slot = ngx_http_apikey_cache_bucket(sh, hash);
    cn->next = *slot;
    *slot = cn;

    sh->keys++;
    sh->bytes += size;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * The records of a reply, from element "from" on, in threes (hash, g,
 * the hash c names), as the change log's reader and the admin API get
 * them, applied as of stamp; "b" in the third place says tokens came
 * back to that secret's bucket (refill is told), "o" that an
 * organization's limits changed (passed over here).  Returns how many
 * records were applied.
 */

ngx_uint_t
ngx_http_apikey_cache_apply_reply(ngx_http_apikey_cache_conf_t *ccf,
    redisReply *reply, size_t from, uint64_t stamp, ngx_uint_t mark,
    ngx_http_apikey_cache_refill_pt refill)
{
    u_char        bin[32];
    size_t        i;
    ngx_str_t     hex, g, c;
    ngx_uint_t    n;
    redisReply  **e;

    e = reply->element;
    n = 0;

    for (i = from; i + 2 < reply->elements; i += 3) {

        if (e[i]->type != REDIS_REPLY_STRING
            || e[i + 1]->type != REDIS_REPLY_STRING
            || e[i + 2]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        hex.data = (u_char *) e[i]->str;
        hex.len = e[i]->len;
        g.data = (u_char *) e[i + 1]->str;
        g.len = e[i + 1]->len;
        c.data = (u_char *) e[i + 2]->str;
        c.len = e[i + 2]->len;

        /* an organization's limits changed: the reader tells org.c */

        if (c.len == 1 && c.data[0] == 'o') {
            continue;
        }

        if (c.len == 1 && c.data[0] == 'b') {

            if (refill != NULL && hex.len == 64
                && ngx_http_apikey_cache_unhex(bin, hex.data, 64) == NGX_OK)
            {
                refill(ccf, bin);
            }

            continue;
        }

        (void) ngx_http_apikey_cache_apply(ccf->shm_zone->data, &hex, &g, &c,
                                           stamp, mark);
        n++;
    }

    return n;
}


uint64_t
ngx_http_apikey_cache_stamp(u_char *id, size_t len)
{
    u_char     *dash;
    ngx_int_t   ms, seq;

    dash = ngx_strlchr(id, id + len, '-');

    if (dash == NULL) {
        return 0;
    }

    ms = ngx_atoi(id, dash - id);
    seq = ngx_atoi(dash + 1, id + len - dash - 1);

    if (ms == NGX_ERROR || seq == NGX_ERROR) {
        return 0;
    }

    return ((uint64_t) ms << 20) | ngx_min((uint64_t) seq, 0xfffff);
}


/*
 * A load is complete: the change log is followed from where it stood when
 * the load began.  Records the load did not see are gone from Redis: they
 * no longer answer (find() leaves a record of an older load to Redis),
 * and the reader removes them a slice at a time (sweep()).
 */

void
ngx_http_apikey_cache_end_load(ngx_http_apikey_cache_t *cache, u_char *last,
    size_t len, ngx_log_t *log)
{
    size_t                        avg, cost;
    ngx_uint_t                    keys, missing, bytes, lost;
    ngx_http_apikey_cache_sh_t   *sh;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (len >= NGX_HTTP_APIKEY_CACHE_ID_LEN) {
        len = NGX_HTTP_APIKEY_CACHE_ID_LEN - 1;
    }

    ngx_memcpy(sh->last, last, len);
    sh->last[len] = '\0';

    sh->loaded = 1;
    sh->loading = 0;
    sh->sweeping = 1;
    sh->swept = 0;

    keys = sh->keys;
    missing = sh->missing;
    lost = sh->lost;
    bytes = sh->bytes;

    if ((missing == 0 && lost == 0) || sh->warned) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    sh->warned = 1;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    /*
     * What a record takes in the zone: its slot, and the index has a
     * bucket per NGX_HTTP_APIKEY_CACHE_RECORD bytes of the zone; then a
     * quarter more, for the buckets of the keys in use and for slack.
     */

    avg = (keys > missing) ? bytes / (keys - missing)
                           : NGX_HTTP_APIKEY_CACHE_RECORD;

    cost = ngx_http_apikey_cache_slot(avg);
    cost += cost * sizeof(void *) / NGX_HTTP_APIKEY_CACHE_RECORD;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "apikey_cache zone \"%V\" is too small: %ui of %ui keys "
                  "did not fit and are checked in Redis; about %uzk is "
                  "needed, %uz bytes a key", &cache->name, missing + lost,
                  keys + lost,
                  ((keys + lost) * cost * 5 / 4 + 64 * 1024) / 1024, cost);
}


/* buckets and records a slice of the sweep looks at, under the lock */
#define NGX_HTTP_APIKEY_CACHE_SWEEP  2048


ngx_uint_t
ngx_http_apikey_cache_sweep(ngx_http_apikey_cache_t *cache)
{
    ngx_uint_t                     n, more;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *cn, **p;

    sh = cache->sh;
    more = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (!sh->sweeping) {
        goto done;
    }

    for (n = 0; sh->swept <= sh->mask && n < NGX_HTTP_APIKEY_CACHE_SWEEP;
         sh->swept++)
    {
        p = &sh->index[sh->swept];

        for (n++; *p != NULL; n++) {
            cn = *p;

            if (cn->load == sh->load) {
                p = &cn->next;
                continue;
            }

            *p = cn->next;
            ngx_http_apikey_cache_free(cache, cn);
        }
    }

    if (sh->swept > sh->mask) {
        sh->sweeping = 0;
        goto done;
    }

    more = 1;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return more;
}


static void
ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn)
{
    ngx_http_apikey_cache_node_t  **p;

    for (p = ngx_http_apikey_cache_bucket(cache->sh, cn->hash);
         *p != cn;
         p = &(*p)->next)
    { /* void */ }

    *p = cn->next;

    ngx_http_apikey_cache_free(cache, cn);
}


static void
ngx_http_apikey_cache_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *cn)
{
    ngx_http_apikey_cache_sh_t  *sh;

    sh = cache->sh;

    sh->keys--;
    sh->bytes -= ngx_http_apikey_cache_size(cn);

    if (cn->missing) {
        sh->missing--;
    }

    ngx_http_apikey_cache_free_locked(cache, cn,
                                      ngx_http_apikey_cache_size(cn));
}


static size_t
ngx_http_apikey_cache_size(ngx_http_apikey_cache_node_t *cn)
{
    return offsetof(ngx_http_apikey_cache_node_t, g) + cn->len
           + (cn->has_c ? 32 : 0);
}


/* the index's bucket of a hash: its first bytes, a digest's, are uniform */

static ngx_http_apikey_cache_node_t **
ngx_http_apikey_cache_bucket(ngx_http_apikey_cache_sh_t *sh, u_char *hash)
{
    ngx_uint_t  key;

    ngx_memcpy(&key, hash, sizeof(ngx_uint_t));

    return &sh->index[key & sh->mask];
}


static ngx_http_apikey_cache_node_t *
ngx_http_apikey_cache_lookup(ngx_http_apikey_cache_t *cache, u_char *hash)
{
    ngx_http_apikey_cache_node_t  *cn;

    for (cn = *ngx_http_apikey_cache_bucket(cache->sh, hash);
         cn != NULL;
         cn = cn->next)
    {
        if (ngx_memcmp(cn->hash, hash, 32) == 0) {
            return cn;
        }
    }

    return NULL;
}


/* "rev exp grace rate per burst env ...": the values the checks need */

static ngx_int_t
ngx_http_apikey_cache_parse(ngx_http_apikey_cache_node_t *cn, u_char *p,
    u_char *last)
{
    u_char      *q;
    ngx_int_t    n[6];
    ngx_uint_t   i;

    for (i = 0; i < 6; i++) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            return NGX_ERROR;
        }

        n[i] = ngx_atoi(p, q - p);
        if (n[i] == NGX_ERROR) {
            return NGX_ERROR;
        }

        p = q + 1;
    }

    if (n[0] > 1 || n[3] > 0xffffffff || n[4] > 0xffffffff
        || n[5] > 0xffffffff)
    {
        return NGX_ERROR;
    }

    cn->revoked = (n[0] == 1);

    /* a time past 2106 is as good as never */

    cn->exp = (uint32_t) ngx_min(n[1], 0xffffffff);
    cn->grace = (uint32_t) ngx_min(n[2], 0xffffffff);
    cn->rate = (uint32_t) n[3];
    cn->per = (uint32_t) n[4];
    cn->burst = (uint32_t) n[5];

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_cache_unhex(u_char *dst, u_char *src, size_t len)
{
    u_char  c, v;
    size_t  i;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c >= '0' && c <= '9') {
            v = c - '0';

        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;

        } else {
            return NGX_ERROR;
        }

        if (i & 1) {
            dst[i / 2] |= v;

        } else {
            dst[i / 2] = v << 4;
        }
    }

    return NGX_OK;
}
