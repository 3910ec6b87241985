
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


/*
 * The web console: the files of admin/console, which config turns into
 * ngx_http_apikey_console_assets.h at configure time.  "index.html" is
 * served at the location's own path, the others under it by name; the
 * page asks for them with "?v=" and the version of the whole console, so
 * that such a request can be cached for good.
 */

typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       type;
    ngx_str_t                       etag;
    u_char                         *data;
    size_t                          len;
} ngx_http_apikey_console_asset_t;


#include <ngx_http_apikey_console_assets.h>


static ngx_http_apikey_console_asset_t *ngx_http_apikey_admin_console_find(
    u_char *p, u_char *last);
static ngx_int_t ngx_http_apikey_admin_console_redirect(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_console_send(ngx_http_request_t *r,
    ngx_http_apikey_console_asset_t *asset);


/*
 * What a console response may do in a browser: load its own script,
 * style and images, talk to its own origin, nothing else; no inline
 * script or style, no frames, no forms, no <base>
 */

static ngx_str_t  ngx_http_apikey_console_csp = ngx_string(
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'");

static ngx_str_t  ngx_http_apikey_console_version = ngx_string(
    "v=" NGX_HTTP_APIKEY_CONSOLE_VERSION);


/*
 * NGX_DECLINED: the path is no file of the console, the admin API
 * answers it
 */

ngx_int_t
ngx_http_apikey_admin_console_handler(ngx_http_request_t *r)
{
    u_char                           *p, *last;
    ngx_int_t                         rc;
    ngx_str_t                         allow, code, detail;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_apikey_console_asset_t  *asset;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* apikey_admin_console is refused in other than prefix locations */

    if (r->uri.len < clcf->name.len
        || ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) != 0)
    {
        return NGX_DECLINED;
    }

    p = r->uri.data + clcf->name.len;
    last = r->uri.data + r->uri.len;

    if (clcf->name.len && clcf->name.data[clcf->name.len - 1] == '/') {
        p--;
    }

    if (p == last) {

        /* "location /admin" and "/admin": the page needs its "/" */

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return NGX_DECLINED;
        }

        return ngx_http_apikey_admin_console_redirect(r);
    }

    asset = ngx_http_apikey_admin_console_find(p, last);

    if (asset == NULL) {
        return NGX_DECLINED;
    }

    /* the final status answers an "Expect: 100-continue" */

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        ngx_str_set(&allow, "GET, HEAD");

        if (ngx_http_apikey_add_header(r, "Allow", sizeof("Allow") - 1,
                                       &allow)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&code, "method_not_allowed");
        ngx_str_set(&detail, "allowed methods: GET, HEAD");

        return ngx_http_apikey_send_problem(r, NGX_HTTP_NOT_ALLOWED, &code,
                                            &detail);
    }

    return ngx_http_apikey_admin_console_send(r, asset);
}


/* "/" is the page, "/name" a file of the console other than the page */

static ngx_http_apikey_console_asset_t *
ngx_http_apikey_admin_console_find(u_char *p, u_char *last)
{
    size_t                            len;
    ngx_uint_t                        page;
    ngx_http_apikey_console_asset_t  *asset;

    if (*p++ != '/') {
        return NULL;
    }

    len = last - p;

    for (asset = ngx_http_apikey_console_assets; asset->len; asset++) {

        page = (asset->name.len == sizeof("index.html") - 1
                && ngx_strncmp(asset->name.data, "index.html",
                               sizeof("index.html") - 1)
                   == 0);

        if (len == 0) {
            if (page) {
                return asset;
            }

            continue;
        }

        if (!page && asset->name.len == len
            && ngx_strncmp(asset->name.data, p, len) == 0)
        {
            return asset;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_apikey_admin_console_redirect(ngx_http_request_t *r)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_str_t         value;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    p = ngx_pnalloc(r->pool, r->uri.len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = p;
    p = ngx_cpymem(p, r->uri.data, r->uri.len);
    *p++ = '/';
    value.len = p - value.data;

    h = ngx_http_apikey_add_header(r, "Location", sizeof("Location") - 1,
                                   &value);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.location = h;

    return NGX_HTTP_MOVED_PERMANENTLY;
}


static ngx_int_t
ngx_http_apikey_admin_console_send(ngx_http_request_t *r,
    ngx_http_apikey_console_asset_t *asset)
{
    ngx_buf_t         *b;
    ngx_str_t          value;
    ngx_table_elt_t   *h;

    if (ngx_http_apikey_add_header(r, "Content-Security-Policy",
                                   sizeof("Content-Security-Policy") - 1,
                                   &ngx_http_apikey_console_csp)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "nosniff");

    if (ngx_http_apikey_add_header(r, "X-Content-Type-Options",
                                   sizeof("X-Content-Type-Options") - 1,
                                   &value)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "no-referrer");

    if (ngx_http_apikey_add_header(r, "Referrer-Policy",
                                   sizeof("Referrer-Policy") - 1, &value)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * the page is asked for again every time (and answered 304 while it
     * is the same); a file asked for with the current version never
     * changes
     */

    if (ngx_strncmp(asset->type.data, "text/html", sizeof("text/html") - 1)
           != 0
        && r->args.len == ngx_http_apikey_console_version.len
        && ngx_strncmp(r->args.data, ngx_http_apikey_console_version.data,
                       r->args.len) == 0)
    {
        ngx_str_set(&value, "public, max-age=31536000, immutable");

    } else {
        ngx_str_set(&value, "no-cache");
    }

    if (ngx_http_apikey_add_header(r, "Cache-Control",
                                   sizeof("Cache-Control") - 1, &value)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the not-modified filter answers a matching If-None-Match with 304 */

    h = ngx_http_apikey_add_header(r, "ETag", sizeof("ETag") - 1,
                                   &asset->etag);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.etag = h;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = asset->data;
    b->last = asset->data + asset->len;
    b->memory = 1;

    return ngx_http_apikey_send_buf(r, NGX_HTTP_OK, &asset->type, b);
}
