
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_apikey_module.h"


static ngx_int_t ngx_http_apikey_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_meta_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_apikey_variable_set(ngx_http_variable_value_t *v,
    ngx_str_t *s);


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

    { ngx_string("apikey_quota_remaining"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, quota_used),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_meta"), NULL, ngx_http_apikey_variable,
      offsetof(ngx_http_apikey_ctx_t, meta), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* $apikey_meta_NAME: one top-level field of meta */

    { ngx_string("apikey_meta_"), NULL, ngx_http_apikey_meta_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_apikey_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    ngx_str_t              *s, empty = ngx_null_string;
    ngx_uint_t              quota;
    ngx_http_apikey_ctx_t  *ctx;

    /* before the check, and where it learnt nothing, the value is empty */

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL || !ctx->checked || ctx->state != NGX_HTTP_APIKEY_DONE) {
        s = &empty;

    } else if (data == 0) {
        s = &ngx_http_apikey_results[ctx->result].status;

    } else if (data == offsetof(ngx_http_apikey_ctx_t, remaining)
               || data == offsetof(ngx_http_apikey_ctx_t, quota_used))
    {
        s = &empty;
        quota = (data == offsetof(ngx_http_apikey_ctx_t, quota_used));

        if (quota ? (ctx->quota > 0 && ctx->quota_used >= 0)
                  : (ctx->burst >= 0))
        {
            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->len = ngx_sprintf(p, "%L",
                                 quota ? ngx_max(ctx->quota - ctx->quota_used,
                                                 0)
                                       : (int64_t) ctx->remaining)
                     - p;
            v->data = p;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;

            return NGX_OK;
        }

    } else {
        s = (ngx_str_t *) ((u_char *) ctx + data);
    }

    ngx_http_apikey_variable_set(v, s);

    return NGX_OK;
}


/*
 * $apikey_meta_NAME (data: the variable's whole name): the field NAME of
 * the key's meta, a string as its text, any other value as compact JSON;
 * empty when the key has no such field.  No string of meta holds a
 * control character (the admin API refuses them), so the text can go
 * into a header as it is.
 */

static ngx_int_t
ngx_http_apikey_meta_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *var = (ngx_str_t *) data;

    char                   *js, name[33];
    size_t                  len;
    json_t                 *meta, *field;
    ngx_str_t               s;
    ngx_http_apikey_ctx_t  *ctx;

    ngx_str_null(&s);

    ctx = ngx_http_apikey_get_ctx(r);
    len = var->len - (sizeof("apikey_meta_") - 1);

    if (ctx == NULL || !ctx->checked || ctx->state != NGX_HTTP_APIKEY_DONE
        || ctx->meta.len <= 2 || len >= sizeof(name))
    {
        ngx_http_apikey_variable_set(v, &s);
        return NGX_OK;
    }

    ngx_memcpy(name, var->data + sizeof("apikey_meta_") - 1, len);
    name[len] = '\0';

    meta = json_loadb((char *) ctx->meta.data, ctx->meta.len, 0, NULL);
    field = json_object_get(meta, name);

    if (json_is_string(field)) {
        s.len = json_string_length(field);
        s.data = ngx_pnalloc(r->pool, s.len);

        if (s.data == NULL) {
            json_decref(meta);
            return NGX_ERROR;
        }

        ngx_memcpy(s.data, json_string_value(field), s.len);

    } else if (field) {
        js = json_dumps(field, JSON_COMPACT | JSON_ENCODE_ANY
                               | JSON_PRESERVE_ORDER);
        if (js == NULL) {
            json_decref(meta);
            return NGX_ERROR;
        }

        s.len = ngx_strlen(js);
        s.data = ngx_pnalloc(r->pool, s.len);

        if (s.data == NULL) {
            free(js);
            json_decref(meta);
            return NGX_ERROR;
        }

        ngx_memcpy(s.data, js, s.len);
        free(js);
    }

    json_decref(meta);

    ngx_http_apikey_variable_set(v, &s);

    return NGX_OK;
}


/* an empty value still points somewhere: add_header copies it */

static void
ngx_http_apikey_variable_set(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    v->len = s->len;
    v->data = s->len ? s->data : (u_char *) "";
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
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