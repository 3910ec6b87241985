
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_org.h"


/*
 * An organization with limits (PATCH orgs/{org}: a rate limit or a quota
 * shared by its keys) has them kept in Redis, where the gate script takes
 * from them with the key's bucket in the same step.  The replica must
 * then not answer a key of that organization itself (its answer would
 * take nothing from the organization): it sends the check to Redis.
 *
 * The replica's load reads, with its first slice, the organizations that
 * have limits (NS orgs:limited) at the change log position it follows
 * from, and the log's reader applies each later change ("o <org>"); the
 * instance's own admin change applies at once.  Once a load is complete,
 * an organization not listed has no limits.  A gate script reply that
 * found limits for an organization not listed (the log not read that far
 * yet) lists it too; a reply never unlists one.  An organization that
 * does not fit in the zone (about 120 bytes each) leaves the list
 * incomplete for the rest of the load: every key then goes to Redis
 * until the next load.
 */


#define NGX_HTTP_APIKEY_ORG_LEN    64


typedef struct {
    ngx_str_node_t                 sn;           /* key: crc32 of the name */
    uint32_t                       load;         /* of the replica */
    ngx_uint_t                     limited;
    u_char                         name[NGX_HTTP_APIKEY_ORG_LEN];
} ngx_http_apikey_org_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
} ngx_http_apikey_org_sh_t;


static ngx_http_apikey_org_t *ngx_http_apikey_org_find(
    ngx_http_apikey_cache_t *cache, ngx_str_t *org, ngx_uint_t create);


ngx_int_t
ngx_http_apikey_org_free(ngx_http_apikey_cache_conf_t *ccf, ngx_str_t *org)
{
    ngx_int_t                 rc;
    ngx_http_apikey_org_t    *o;
    ngx_http_apikey_cache_t  *cache;

    cache = ccf->shm_zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    o = ngx_http_apikey_org_find(cache, org, 0);

    if (o != NULL && o->load == cache->sh->load) {
        rc = o->limited ? NGX_DECLINED : NGX_OK;

    } else if (cache->sh->loaded && !cache->sh->loading
               && cache->sh->org_lost != cache->sh->load)
    {
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_apikey_org_learn(ngx_http_apikey_cache_conf_t *ccf, ngx_str_t *org,
    ngx_uint_t limited, ngx_uint_t said)
{
    ngx_http_apikey_org_t    *o;
    ngx_http_apikey_cache_t  *cache;

    cache = ccf->shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    o = ngx_http_apikey_org_find(cache, org, said || limited);

    if (o == NULL) {
        if (limited) {
            cache->sh->org_lost = cache->sh->load;
        }

    } else if (said || o->load != cache->sh->load) {
        o->limited = limited;
        o->load = cache->sh->load;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* with the zone locked */

static ngx_http_apikey_org_t *
ngx_http_apikey_org_find(ngx_http_apikey_cache_t *cache, ngx_str_t *org,
    ngx_uint_t create)
{
    uint32_t                   hash;
    ngx_http_apikey_org_t     *o;
    ngx_http_apikey_org_sh_t  *osh;

    if (org->len == 0 || org->len > NGX_HTTP_APIKEY_ORG_LEN) {
        return NULL;
    }

    osh = cache->sh->org;

    if (osh == NULL) {
        if (!create) {
            return NULL;
        }

        osh = ngx_slab_calloc_locked(cache->shpool,
                                     sizeof(ngx_http_apikey_org_sh_t));
        if (osh == NULL) {
            return NULL;
        }

        ngx_rbtree_init(&osh->rbtree, &osh->sentinel,
                        ngx_str_rbtree_insert_value);

        cache->sh->org = osh;
    }

    hash = ngx_crc32_short(org->data, org->len);

    o = (ngx_http_apikey_org_t *) ngx_str_rbtree_lookup(&osh->rbtree, org,
                                                        hash);

    if (o != NULL || !create) {
        return o;
    }

    o = ngx_slab_calloc_locked(cache->shpool, sizeof(ngx_http_apikey_org_t));
    if (o == NULL) {
        return NULL;
    }

    /* nothing known yet: of no load */

    o->load = cache->sh->load - 1;

    ngx_memcpy(o->name, org->data, org->len);

    o->sn.node.key = hash;
    o->sn.str.data = o->name;
    o->sn.str.len = org->len;

    ngx_rbtree_insert(&osh->rbtree, &o->sn.node);

    return o;
}
