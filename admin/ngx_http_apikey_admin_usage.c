
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


#define NGX_HTTP_APIKEY_ADMIN_HOUR  3600
#define NGX_HTTP_APIKEY_ADMIN_DAY   86400


/* the kinds a day's fields end with, in the order of the answer */

static char  *ngx_http_apikey_admin_kinds[] = {
    "allowed", "rate_limited", "refused"
};


static json_t *ngx_http_apikey_admin_counts_json(time_t start, int64_t *n);
static ngx_int_t ngx_http_apikey_admin_add_day(ngx_http_apikey_admin_ctx_t *ctx,
    time_t day, redisReply *fields, int64_t *counts);


/* which: 0 from, 1 to, 2 granularity */

ngx_int_t
ngx_http_apikey_admin_usage_query(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_uint_t which, ngx_str_t *value)
{
    time_t  t;

    if (which == 2) {
        if (value->len == 4 && ngx_strncmp(value->data, "hour", 4) == 0) {
            ctx->in.span = NGX_HTTP_APIKEY_ADMIN_HOUR;
            return NGX_OK;
        }

        if (value->len == 3 && ngx_strncmp(value->data, "day", 3) == 0) {
            ctx->in.span = NGX_HTTP_APIKEY_ADMIN_DAY;
            return NGX_OK;
        }

        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "granularity must be hour or "
                                           "day");
    }

    /* "from" without "=" has no value, and its data is NULL */

    t = value->len ? ngx_http_apikey_admin_parse_time(value->data, value->len)
                   : NGX_ERROR;

    if (t == NGX_ERROR) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "%s must be an RFC 3339 time "
                                           "such as 2026-11-22T10:00:00Z",
                                           which ? "to" : "from");
    }

    if (which == 0) {
        ctx->in.from = t;
        ctx->in.has_from = 1;

    } else {
        ctx->in.to = t;
        ctx->in.has_to = 1;
    }

    return NGX_OK;
}


/*
 * The buckets of the answer: those that overlap [from, to).  Without
 * "to", up to the current one; without "from", the 24 hours or 30 days
 * that end with the last.  Sets from to the start of the first bucket,
 * and the number of buckets.
 */

ngx_int_t
ngx_http_apikey_admin_usage_range(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    time_t                          now, span, first, last, kept;
    ngx_uint_t                      max;
    ngx_http_apikey_admin_input_t  *in;

    in = &ctx->in;

    if (in->span == 0) {
        in->span = NGX_HTTP_APIKEY_ADMIN_HOUR;
    }

    span = in->span;
    now = ngx_time();

    if (in->has_from && in->has_to && in->from >= in->to) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "from must be before to");
    }

    last = in->has_to ? (in->to - 1) / span : now / span;

    if (in->has_from) {
        first = in->from / span;

    } else {
        first = last + 1 - ((span == NGX_HTTP_APIKEY_ADMIN_HOUR)
                            ? NGX_HTTP_APIKEY_ADMIN_USAGE_DEF_HOURS
                            : NGX_HTTP_APIKEY_ADMIN_USAGE_DEF_DAYS);
    }

    if (first > last) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "from must be before to");
    }

    /* a day's counts expire 90 days after the day began */

    kept = (now / NGX_HTTP_APIKEY_ADMIN_DAY
            - (NGX_HTTP_APIKEY_ADMIN_USAGE_DAYS - 1))
           * NGX_HTTP_APIKEY_ADMIN_DAY;

    if (first * span < kept) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "the range starts before the "
                                           "%d days of usage kept",
                                           NGX_HTTP_APIKEY_ADMIN_USAGE_DAYS);
    }

    max = (span == NGX_HTTP_APIKEY_ADMIN_HOUR)
          ? NGX_HTTP_APIKEY_ADMIN_USAGE_HOURS
          : NGX_HTTP_APIKEY_ADMIN_USAGE_DAYS;

    if ((ngx_uint_t) (last - first) >= max) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_query",
                                           "the range holds more than %ui "
                                           "%s buckets", max,
                                           (span == NGX_HTTP_APIKEY_ADMIN_HOUR)
                                           ? "hourly" : "daily");
    }

    in->from = first * span;
    in->buckets = last - first + 1;

    return NGX_OK;
}


/*
 * {"key_id","granularity","from","to","data":[{"start","allowed",
 * "rate_limited","refused"}...],"total":{...}}, oldest bucket first,
 * from the HGETALL of each day the script read
 */

ngx_int_t
ngx_http_apikey_admin_send_usage(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *days)
{
    json_t                         *json, *data, *bucket;
    time_t                          day;
    int64_t                        *counts, total[3];
    ngx_uint_t                      i, k;
    ngx_http_apikey_admin_input_t  *in;

    in = &ctx->in;

    counts = ngx_pcalloc(r->pool, in->buckets * 3 * sizeof(int64_t));
    if (counts == NULL) {
        return NGX_ERROR;
    }

    day = in->from / NGX_HTTP_APIKEY_ADMIN_DAY;

    for (i = 0; i < days->elements; i++) {
        if (ngx_http_apikey_admin_add_day(ctx, day + i, days->element[i],
                                          counts)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "apikey admin: skipped malformed usage counts of "
                          "key \"%V\"", &ctx->id);
        }
    }

    ngx_memzero(total, sizeof(total));

    json = json_object();
    if (json == NULL) {
        return NGX_ERROR;
    }

    /* on failure json_object_set_new() frees the value (a NULL: none) */

    data = json_array();
    if (data == NULL) {
        goto failed;
    }

    if (json_object_set_new(json, "key_id",
                            json_stringn((char *) ctx->id.data, ctx->id.len))
        != 0
        || json_object_set_new(json, "granularity",
                               json_string(in->span
                                           == NGX_HTTP_APIKEY_ADMIN_HOUR
                                           ? "hour" : "day"))
           != 0
        || json_object_set_new(json, "from",
                               ngx_http_apikey_admin_time_json(in->from))
           != 0
        || json_object_set_new(json, "to",
                               ngx_http_apikey_admin_time_json(
                                   in->from + (time_t) in->buckets * in->span))
           != 0
        || json_object_set_new(json, "data", data) != 0)
    {
        goto failed;
    }

    for (i = 0; i < in->buckets; i++) {
        bucket = ngx_http_apikey_admin_counts_json(
                                       in->from + (time_t) i * in->span,
                                       &counts[i * 3]);

        if (bucket == NULL || json_array_append_new(data, bucket) != 0) {
            goto failed;
        }

        for (k = 0; k < 3; k++) {
            total[k] += counts[i * 3 + k];
        }
    }

    if (json_object_set_new(json, "total",
                            ngx_http_apikey_admin_counts_json(0, total))
        != 0)
    {
        goto failed;
    }

    return ngx_http_apikey_admin_send_object(r, json);

failed:

    json_decref(json);

    return NGX_ERROR;
}


/* {"start","allowed","rate_limited","refused"}, without "start" for 0 */

static json_t *
ngx_http_apikey_admin_counts_json(time_t start, int64_t *n)
{
    json_t      *json;
    ngx_uint_t   k;

    json = json_object();
    if (json == NULL) {
        return NULL;
    }

    if (start
        && json_object_set_new(json, "start",
                               ngx_http_apikey_admin_time_json(start))
           != 0)
    {
        json_decref(json);
        return NULL;
    }

    for (k = 0; k < 3; k++) {
        if (json_object_set_new(json, ngx_http_apikey_admin_kinds[k],
                                json_integer(n[k]))
            != 0)
        {
            json_decref(json);
            return NULL;
        }
    }

    return json;
}


/*
 * Adds a day's fields, <hour><kind> ("00a" to "23r") or the day's <kind>
 * ("a", "l", "r"), and a count, to the buckets they fall in; NGX_ERROR if
 * a field is not of that form.
 */

static ngx_int_t
ngx_http_apikey_admin_add_day(ngx_http_apikey_admin_ctx_t *ctx, time_t day,
    redisReply *fields, int64_t *counts)
{
    char        *f;
    time_t       t;
    size_t       i;
    ngx_int_t    hour, n, rc;
    ngx_uint_t   b, k;
    redisReply  *name, *value;

    if (fields->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    rc = NGX_OK;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        name = fields->element[i];
        value = fields->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || (name->len != 3 && name->len != 1)
            || value->type != REDIS_REPLY_STRING)
        {
            rc = NGX_ERROR;
            continue;
        }

        /* a day's total, "a", "l" or "r", counts in daily answers only */

        if (name->len == 1 && ctx->in.span != NGX_HTTP_APIKEY_ADMIN_DAY) {
            continue;
        }

        f = name->str;

        hour = (name->len == 1) ? 0 : ngx_atoi((u_char *) f, 2);
        n = ngx_atoi((u_char *) value->str, value->len);

        switch (f[name->len - 1]) {
        case 'a':
            k = 0;
            break;
        case 'l':
            k = 1;
            break;
        case 'r':
            k = 2;
            break;
        default:
            k = 3;
        }

        if (hour == NGX_ERROR || hour > 23 || n == NGX_ERROR || k == 3) {
            rc = NGX_ERROR;
            continue;
        }

        t = day * NGX_HTTP_APIKEY_ADMIN_DAY + hour * NGX_HTTP_APIKEY_ADMIN_HOUR;

        if (t < ctx->in.from) {
            continue;
        }

        b = (t - ctx->in.from) / ctx->in.span;

        if (b < ctx->in.buckets) {
            counts[b * 3 + k] += n;
        }
    }

    return rc;
}
