
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_cache.h"


/*
 * The replica's records, in slots of their own size rounded up to 8 bytes
 * rather than to the slab's next power of two: a record of 180 bytes
 * takes 184, not 256.  A page of the slab holds the slots of one size
 * after its header; the pages of a size that have a free slot are listed
 * in the zone.  A freed slot is chained through its first bytes; a page
 * whose last slot is freed goes back to the slab.  A record larger than
 * NGX_HTTP_APIKEY_CACHE_SLOT_MAX is the slab's.
 */


struct ngx_http_apikey_cache_page_s {
    ngx_http_apikey_cache_page_t   *next;        /* of the size, with room */
    ngx_http_apikey_cache_page_t  **prev;
    u_char                         *free;        /* the last slot freed */
    uint32_t                        used;        /* slots taken */
    uint32_t                        fresh;       /* the first never taken */
    uint32_t                        size;
};


static ngx_uint_t ngx_http_apikey_cache_page_full(
    ngx_http_apikey_cache_page_t *page);
static void ngx_http_apikey_cache_page_link(ngx_http_apikey_cache_sh_t *sh,
    ngx_http_apikey_cache_page_t *page);
static void ngx_http_apikey_cache_page_unlink(
    ngx_http_apikey_cache_page_t *page);


/* the zone a record of size takes, with its share of its page's upkeep */

size_t
ngx_http_apikey_cache_slot(size_t size)
{
    size_t  chunk, page;

    page = ngx_pagesize + sizeof(ngx_slab_page_t);

    if (size <= NGX_HTTP_APIKEY_CACHE_SLOT_MAX) {
        size = ngx_align(size, 8);
        return page / ((ngx_pagesize - sizeof(ngx_http_apikey_cache_page_t))
                       / size);
    }

    for (chunk = NGX_HTTP_APIKEY_CACHE_SLOT_MAX; chunk < size; chunk <<= 1) {
        /* void */
    }

    return chunk * page / ngx_pagesize;
}


void *
ngx_http_apikey_cache_alloc_locked(ngx_http_apikey_cache_t *cache,
    size_t size)
{
    u_char                        *p;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_page_t  *page;

    if (size > NGX_HTTP_APIKEY_CACHE_SLOT_MAX) {
        return ngx_slab_alloc_locked(cache->shpool, size);
    }

    sh = cache->sh;
    size = ngx_align(size, 8);

    page = sh->pages[size / 8 - 1];

    if (page == NULL) {

        /* a page of the slab's is aligned to its size */

        page = ngx_slab_alloc_locked(cache->shpool, ngx_pagesize);
        if (page == NULL) {
            return NULL;
        }

        page->free = NULL;
        page->used = 0;
        page->fresh = ngx_align(sizeof(ngx_http_apikey_cache_page_t), 8);
        page->size = (uint32_t) size;

        ngx_http_apikey_cache_page_link(sh, page);
    }

    if (page->free != NULL) {
        p = page->free;
        page->free = *(u_char **) p;

    } else {
        p = (u_char *) page + page->fresh;
        page->fresh += page->size;
    }

    page->used++;

    if (ngx_http_apikey_cache_page_full(page)) {
        ngx_http_apikey_cache_page_unlink(page);
    }

    return p;
}


/*
 * What the slot of a record of size at p holds: a record changed in place
 * may grow up to it, or shrink, and is freed by its page's size all the
 * same; a record of the slab's has no room to spare
 */

size_t
ngx_http_apikey_cache_room(void *p, size_t size)
{
    ngx_http_apikey_cache_page_t  *page;

    if (size > NGX_HTTP_APIKEY_CACHE_SLOT_MAX) {
        return size;
    }

    page = (ngx_http_apikey_cache_page_t *)
               ((uintptr_t) p & ~((uintptr_t) ngx_pagesize - 1));

    return page->size;
}


void
ngx_http_apikey_cache_free_locked(ngx_http_apikey_cache_t *cache, void *p,
    size_t size)
{
    ngx_uint_t                     full;
    ngx_http_apikey_cache_page_t  *page;

    if (size > NGX_HTTP_APIKEY_CACHE_SLOT_MAX) {
        ngx_slab_free_locked(cache->shpool, p);
        return;
    }

    page = (ngx_http_apikey_cache_page_t *)
               ((uintptr_t) p & ~((uintptr_t) ngx_pagesize - 1));

    full = ngx_http_apikey_cache_page_full(page);

    *(u_char **) p = page->free;
    page->free = p;
    page->used--;

    if (page->used == 0) {

        if (!full) {
            ngx_http_apikey_cache_page_unlink(page);
        }

        ngx_slab_free_locked(cache->shpool, page);
        return;
    }

    if (full) {
        ngx_http_apikey_cache_page_link(cache->sh, page);
    }
}


static ngx_uint_t
ngx_http_apikey_cache_page_full(ngx_http_apikey_cache_page_t *page)
{
    return page->free == NULL && page->fresh + page->size > ngx_pagesize;
}


static void
ngx_http_apikey_cache_page_link(ngx_http_apikey_cache_sh_t *sh,
    ngx_http_apikey_cache_page_t *page)
{
    ngx_http_apikey_cache_page_t  **head;

    head = &sh->pages[page->size / 8 - 1];

    page->next = *head;
    page->prev = head;

    if (*head != NULL) {
        (*head)->prev = &page->next;
    }

    *head = page;
}


static void
ngx_http_apikey_cache_page_unlink(ngx_http_apikey_cache_page_t *page)
{
    *page->prev = page->next;

    if (page->next != NULL) {
        page->next->prev = page->prev;
    }
}
