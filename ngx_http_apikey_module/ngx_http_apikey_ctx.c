
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"


/*
 * A request's check lives in its pool and is registered as a request
 * cleanup: an internal redirect clears module contexts, but the check was
 * made and paid for, and is found again through the cleanup; and a
 * request that ends while Redis still answers lets its call go.  And what
 * every phase reads of a request: its headers by name.
 */


static void ngx_http_apikey_ctx_cleanup(void *data);


ngx_http_apikey_ctx_t *
ngx_http_apikey_ctx_create(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *akcf)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ctx->item = NULL;
     *     ctx->header = NULL;
     *     ctx->key = { 0, NULL };
     *     ctx->id = { 0, NULL };  (and the other strings)
     *     ctx->looked = 0;
     *     ctx->checked = 0;
     *     ctx->hidden = 0;
     */

    ctx->request = r;
    ctx->conf = akcf;
    ctx->burst = -1;
    ctx->quota_used = -1;
    ctx->state = NGX_HTTP_APIKEY_DONE;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_apikey_ctx_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);

    return ctx;
}


ngx_http_apikey_ctx_t *
ngx_http_apikey_get_ctx(ngx_http_request_t *r)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx != NULL) {
        return ctx;
    }

    for (cln = r->main->cleanup; cln; cln = cln->next) {
        if (cln->handler != ngx_http_apikey_ctx_cleanup) {
            continue;
        }

        /* cleanups are the main request's, subrequests' ones too */

        ctx = cln->data;

        if (ctx->request == r) {
            ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
            return ctx;
        }
    }

    return NULL;
}


/* the last request header of a lowercase name, and how many there are */

ngx_table_elt_t *
ngx_http_apikey_header_in(ngx_http_request_t *r, ngx_str_t *name,
    ngx_uint_t *n)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    *n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncmp(h[i].lowcase_key, name->data, name->len) == 0)
        {
            found = &h[i];
            (*n)++;
        }
    }

    return found;
}


static void
ngx_http_apikey_ctx_cleanup(void *data)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    if (ctx->item) {
        ngx_http_apikey_redis_batch_detach(ctx->item);
        ctx->item = NULL;
    }
}
