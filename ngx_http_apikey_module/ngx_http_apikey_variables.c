
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"


static ngx_int_t ngx_http_apikey_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* $apikey_* variables read these ctx fields; data is the offset */

static ngx_http_variable_t  ngx_http_apikey_vars[] = {

    { ngx_string("apikey_status"), NULL, ngx_http_apikey_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_id"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_org"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, org), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_name"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, name), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_environment"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, environment),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_prefix"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, prefix), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_scopes"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, scopes), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_rate_remaining"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, remaining),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_apikey_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    ngx_str_t              *s, empty = ngx_null_string;
    ngx_http_apikey_ctx_t  *ctx;

    /* before the check, and where it learnt nothing, the value is empty */

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL || !ctx->checked || ctx->state != NGX_HTTP_APIKEY_DONE) {
        s = &empty;

    } else if (data == 0) {
        s = &ngx_http_apikey_results[ctx->result].status;

    } else if (data == offsetof(ngx_http_apikey_ctx_t, remaining)) {
        s = &empty;

        if (ctx->burst >= 0) {
            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->len = ngx_sprintf(p, "%i", ctx->remaining) - p;
            v->data = p;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;

            return NGX_OK;
        }

    } else {
        s = (ngx_str_t *) ((u_char *) ctx + data);
    }

    /* an empty value still points somewhere: add_header copies it */

    v->len = s->len;
    v->data = s->len ? s->data : (u_char *) "";
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}