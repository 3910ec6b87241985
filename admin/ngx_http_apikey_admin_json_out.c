
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


#define NGX_HTTP_APIKEY_ADMIN_STRING  0
#define NGX_HTTP_APIKEY_ADMIN_TIME    1
#define NGX_HTTP_APIKEY_ADMIN_SCOPES  2
#define NGX_HTTP_APIKEY_ADMIN_RATE    3
#define NGX_HTTP_APIKEY_ADMIN_STATUS  4
#define NGX_HTTP_APIKEY_ADMIN_META    5
#define NGX_HTTP_APIKEY_ADMIN_QUOTA   6
#define NGX_HTTP_APIKEY_ADMIN_TSTATUS 7   /* a management token's */


/* a member of the key or token object: its name, record field and kind */

typedef struct {
    const char                      *name;
    ngx_uint_t                       field;
    ngx_uint_t                       type;
} ngx_http_apikey_admin_member_t;


static json_t *ngx_http_apikey_admin_object_json(
    ngx_http_apikey_admin_member_t *members, ngx_str_t *f, time_t now);
static const char *ngx_http_apikey_admin_status(ngx_str_t *revoked,
    ngx_str_t *expires, time_t now);
static json_t *ngx_http_apikey_admin_stored_json(ngx_str_t *s,
    ngx_uint_t object);
static json_t *ngx_http_apikey_admin_rate_json(ngx_str_t *f);
static json_t *ngx_http_apikey_admin_quota_json(ngx_str_t *f, time_t now);
static time_t ngx_http_apikey_admin_field_time(ngx_str_t *s);


static ngx_http_apikey_admin_member_t  ngx_http_apikey_admin_key_members[] = {
    { "id", NGX_HTTP_APIKEY_ADMIN_F_ID, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "org", NGX_HTTP_APIKEY_ADMIN_F_ORG, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "name", NGX_HTTP_APIKEY_ADMIN_F_NAME, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "description", NGX_HTTP_APIKEY_ADMIN_F_DESCRIPTION,
      NGX_HTTP_APIKEY_ADMIN_STRING },
    { "prefix", NGX_HTTP_APIKEY_ADMIN_F_PREFIX, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "environment", NGX_HTTP_APIKEY_ADMIN_F_ENV,
      NGX_HTTP_APIKEY_ADMIN_STRING },
    { "scopes", NGX_HTTP_APIKEY_ADMIN_F_SCOPES, NGX_HTTP_APIKEY_ADMIN_SCOPES },
    { "rate_limit", 0, NGX_HTTP_APIKEY_ADMIN_RATE },
    { "status", 0, NGX_HTTP_APIKEY_ADMIN_STATUS },
    { "created_at", NGX_HTTP_APIKEY_ADMIN_F_CREATED_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "created_by", NGX_HTTP_APIKEY_ADMIN_F_CREATED_BY,
      NGX_HTTP_APIKEY_ADMIN_STRING },
    { "updated_at", NGX_HTTP_APIKEY_ADMIN_F_UPDATED_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "last_used_at", NGX_HTTP_APIKEY_ADMIN_F_LAST_USED,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "expires_at", NGX_HTTP_APIKEY_ADMIN_F_EXPIRES_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "revoked_at", NGX_HTTP_APIKEY_ADMIN_F_REVOKED_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "meta", NGX_HTTP_APIKEY_ADMIN_F_META, NGX_HTTP_APIKEY_ADMIN_META },
    { "quota", 0, NGX_HTTP_APIKEY_ADMIN_QUOTA },
    { NULL, 0, 0 }
};


static ngx_http_apikey_admin_member_t
    ngx_http_apikey_admin_token_members[] =
{
    { "id", NGX_HTTP_APIKEY_ADMIN_T_ID, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "name", NGX_HTTP_APIKEY_ADMIN_T_NAME, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "prefix", NGX_HTTP_APIKEY_ADMIN_T_PREFIX, NGX_HTTP_APIKEY_ADMIN_STRING },
    { "orgs", NGX_HTTP_APIKEY_ADMIN_T_ORGS, NGX_HTTP_APIKEY_ADMIN_SCOPES },
    { "permissions", NGX_HTTP_APIKEY_ADMIN_T_PERMISSIONS,
      NGX_HTTP_APIKEY_ADMIN_SCOPES },
    { "status", 0, NGX_HTTP_APIKEY_ADMIN_TSTATUS },
    { "created_at", NGX_HTTP_APIKEY_ADMIN_T_CREATED_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "created_by", NGX_HTTP_APIKEY_ADMIN_T_CREATED_BY,
      NGX_HTTP_APIKEY_ADMIN_STRING },
    { "expires_at", NGX_HTTP_APIKEY_ADMIN_T_EXPIRES_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "last_used_at", NGX_HTTP_APIKEY_ADMIN_T_LAST_USED,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { "revoked_at", NGX_HTTP_APIKEY_ADMIN_T_REVOKED_AT,
      NGX_HTTP_APIKEY_ADMIN_TIME },
    { NULL, 0, 0 }
};


/* the key object of docs/admin-api.md; never the raw key or a hash */

json_t *
ngx_http_apikey_admin_key_json(ngx_str_t *f, time_t now)
{
    return ngx_http_apikey_admin_object_json(
                                ngx_http_apikey_admin_key_members, f, now);
}


/* the token object of docs/admin-api.md; never the raw token or a hash */

json_t *
ngx_http_apikey_admin_token_json(ngx_str_t *f, time_t now)
{
    return ngx_http_apikey_admin_object_json(
                                ngx_http_apikey_admin_token_members, f, now);
}


static json_t *
ngx_http_apikey_admin_object_json(ngx_http_apikey_admin_member_t *members,
    ngx_str_t *f, time_t now)
{
    json_t                          *key, *v;
    ngx_http_apikey_admin_member_t  *m;

    key = json_object();
    if (key == NULL) {
        return NULL;
    }

    for (m = members; m->name; m++) {

        switch (m->type) {

        case NGX_HTTP_APIKEY_ADMIN_STRING:
            v = json_stringn(f[m->field].data ? (char *) f[m->field].data : "",
                             f[m->field].len);
            break;

        case NGX_HTTP_APIKEY_ADMIN_TIME:
            v = ngx_http_apikey_admin_time_json(
                                ngx_http_apikey_admin_field_time(&f[m->field]));
            break;

        case NGX_HTTP_APIKEY_ADMIN_SCOPES:
            v = ngx_http_apikey_admin_stored_json(&f[m->field], 0);
            break;

        case NGX_HTTP_APIKEY_ADMIN_META:
            v = ngx_http_apikey_admin_stored_json(&f[m->field], 1);
            break;

        case NGX_HTTP_APIKEY_ADMIN_RATE:
            v = ngx_http_apikey_admin_rate_json(f);
            break;

        case NGX_HTTP_APIKEY_ADMIN_QUOTA:
            v = ngx_http_apikey_admin_quota_json(f, now);
            break;

        case NGX_HTTP_APIKEY_ADMIN_TSTATUS:
            v = json_string(ngx_http_apikey_admin_status(
                                  &f[NGX_HTTP_APIKEY_ADMIN_T_REVOKED_AT],
                                  &f[NGX_HTTP_APIKEY_ADMIN_T_EXPIRES_AT],
                                  now));
            break;

        default: /* NGX_HTTP_APIKEY_ADMIN_STATUS */
            v = json_string(ngx_http_apikey_admin_status(
                                  &f[NGX_HTTP_APIKEY_ADMIN_F_REVOKED_AT],
                                  &f[NGX_HTTP_APIKEY_ADMIN_F_EXPIRES_AT],
                                  now));
            break;
        }

        if (json_object_set_new(key, m->name, v) != 0) {
            json_decref(key);
            return NULL;
        }
    }

    return key;
}


/*
 * {"rate_limit", "quota"} of an organization, from the fields a key's
 * record would hold them in (rate, per, burst, quota and its count)
 */

json_t *
ngx_http_apikey_admin_limits_json(ngx_str_t *f, time_t now)
{
    json_t  *json;

    json = json_object();

    if (json == NULL
        || json_object_set_new(json, "rate_limit",
                               ngx_http_apikey_admin_rate_json(f))
           != 0
        || json_object_set_new(json, "quota",
                               ngx_http_apikey_admin_quota_json(f, now))
           != 0)
    {
        json_decref(json);
        return NULL;
    }

    return json;
}


/* "revoked" if revoked, else "expired" once expires_at has passed */

static const char *
ngx_http_apikey_admin_status(ngx_str_t *revoked, ngx_str_t *expires,
    time_t now)
{
    time_t  exp;

    if (ngx_http_apikey_admin_field_time(revoked)) {
        return "revoked";
    }

    exp = ngx_http_apikey_admin_field_time(expires);

    return (exp && now >= exp) ? "expired" : "active";
}


/*
 * the record keeps scopes as JSON array text and meta as JSON object
 * text; none is the empty one
 */

static json_t *
ngx_http_apikey_admin_stored_json(ngx_str_t *s, ngx_uint_t object)
{
    json_t  *v;

    if (s->len) {
        v = json_loadb((const char *) s->data, s->len, 0, NULL);

        if (object ? json_is_object(v) : json_is_array(v)) {
            return v;
        }

        json_decref(v);
    }

    return object ? json_object() : json_array();
}


/*
 * {"limit", "period", "used", "resets_at"}, or null without a quota: the
 * record's "<limit> <d|m>" and the count the gatekeeper keeps with the
 * key's bucket, "<period> <used>", which counts for the UTC day ("d" and
 * the days since 1970) or month ("m" and 12 * year + month - 1) now is
 * in, and is 0 in any other (docs/data-model.md)
 */

static json_t *
ngx_http_apikey_admin_quota_json(ngx_str_t *f, time_t now)
{
    u_char     *p;
    json_t     *q;
    time_t      ends;
    int64_t     limit, used;
    ngx_tm_t    tm;
    ngx_str_t  *s, *u;
    u_char      id[NGX_INT64_LEN + 2];

    s = &f[NGX_HTTP_APIKEY_ADMIN_F_QUOTA];
    u = &f[NGX_HTTP_APIKEY_ADMIN_F_QUOTA_USED];

    if (s->len < 3 || s->data[s->len - 2] != ' '
        || (s->data[s->len - 1] != 'd' && s->data[s->len - 1] != 'm'))
    {
        return json_null();
    }

    limit = ngx_atoof(s->data, s->len - 2);

    if (limit <= 0) {
        return json_null();
    }

    ngx_gmtime(now, &tm);

    if (s->data[s->len - 1] == 'd') {
        p = ngx_sprintf(id, "d%T", now / 86400);
        ends = (now / 86400 + 1) * 86400;

    } else {
        p = ngx_sprintf(id, "m%i", (ngx_int_t) (tm.ngx_tm_year * 12
                                                + tm.ngx_tm_mon - 1));
        ends = (time_t) ngx_http_apikey_admin_days(
                            tm.ngx_tm_year + (tm.ngx_tm_mon == 12),
                            tm.ngx_tm_mon % 12 + 1, 1) * 86400;
    }

    used = 0;

    if (u->len > (size_t) (p - id) + 1
        && ngx_strncmp(u->data, id, p - id) == 0 && u->data[p - id] == ' ')
    {
        used = ngx_atoof(u->data + (p - id) + 1, u->len - (p - id) - 1);
        used = ngx_max(used, 0);
    }

    q = json_object();

    if (q == NULL
        || json_object_set_new(q, "limit", json_integer(limit)) != 0
        || json_object_set_new(q, "period",
                               json_string(s->data[s->len - 1] == 'd'
                                           ? "day" : "month"))
           != 0
        || json_object_set_new(q, "used", json_integer(used)) != 0
        || json_object_set_new(q, "resets_at",
                               ngx_http_apikey_admin_time_json(ends))
           != 0)
    {
        json_decref(q);
        return NULL;
    }

    return q;
}


/* {"rate": "<N>r/s" or "<N>r/m", "burst": B}, or null when unlimited */

static json_t *
ngx_http_apikey_admin_rate_json(ngx_str_t *f)
{
    u_char     *p;
    json_t     *rate;
    ngx_int_t   n, per, burst;
    u_char      buf[NGX_INT_T_LEN + sizeof("r/s")];

    n = ngx_atoi(f[NGX_HTTP_APIKEY_ADMIN_F_RATE].data,
                 f[NGX_HTTP_APIKEY_ADMIN_F_RATE].len);

    if (n <= 0) {
        return json_null();
    }

    per = ngx_atoi(f[NGX_HTTP_APIKEY_ADMIN_F_PER].data,
                   f[NGX_HTTP_APIKEY_ADMIN_F_PER].len);
    burst = ngx_atoi(f[NGX_HTTP_APIKEY_ADMIN_F_BURST].data,
                     f[NGX_HTTP_APIKEY_ADMIN_F_BURST].len);

    p = ngx_sprintf(buf, "%ir/%s", n, per == 60 ? "m" : "s");

    rate = json_object();

    if (rate == NULL
        || json_object_set_new(rate, "rate",
                               json_stringn((char *) buf, p - buf))
           != 0
        || json_object_set_new(rate, "burst",
                               json_integer(burst > 0 ? burst : n))
           != 0)
    {
        json_decref(rate);
        return NULL;
    }

    return rate;
}


/*
 * a stored event, {"at":<unix time>,...}, as the API shows it; key_name
 * null where none was stored (events written before names were)
 */

json_t *
ngx_http_apikey_admin_event_json(u_char *p, size_t len)
{
    int      rc;
    json_t  *in, *out, *at, *actor, *action, *id, *name;

    in = json_loadb((const char *) p, len, 0, NULL);
    if (in == NULL) {
        return NULL;
    }

    at = json_object_get(in, "at");
    actor = json_object_get(in, "actor");
    action = json_object_get(in, "action");
    id = json_object_get(in, "key_id");
    name = json_object_get(in, "key_name");

    if (!json_is_number(at) || !json_is_string(actor)
        || !json_is_string(action) || (id && !json_is_string(id)))
    {
        json_decref(in);
        return NULL;
    }

    out = json_object();

    if (out != NULL) {
        rc = json_object_set_new(out, "at",
                 ngx_http_apikey_admin_time_json(
                                       (time_t) json_number_value(at)));
        rc |= json_object_set(out, "actor", actor);
        rc |= json_object_set(out, "action", action);
        rc |= json_object_set_new(out, "key_id",
                                  id ? json_incref(id) : json_null());

        rc |= json_object_set_new(out, "key_name", json_is_string(name)
                                                   ? json_incref(name)
                                                   : json_null());

        if (rc != 0) {
            json_decref(out);
            out = NULL;
        }
    }

    json_decref(in);

    return out;
}


/* a 200 with json as its body; json is released */

ngx_int_t
ngx_http_apikey_admin_send_object(ngx_http_request_t *r, json_t *json)
{
    ngx_int_t  rc;
    ngx_str_t  out;

    rc = ngx_http_apikey_admin_dump(r, json, NULL, &out);

    json_decref(json);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_apikey_admin_send_json(r, NGX_HTTP_OK, &out);
}


/* RFC 3339 UTC with seconds; null for 0 */

json_t *
ngx_http_apikey_admin_time_json(time_t t)
{
    u_char    buf[sizeof("9999-12-31T23:59:59Z")];
    ngx_tm_t  tm;

    if (t <= 0) {
        return json_null();
    }

    /* a hand-written record may hold anything: stay within four digits */

    if (t > 253402300799) {
        t = 253402300799;
    }

    ngx_gmtime(t, &tm);

    return json_stringn((char *) buf,
                        ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                                    tm.ngx_tm_year, tm.ngx_tm_mon,
                                    tm.ngx_tm_mday, tm.ngx_tm_hour,
                                    tm.ngx_tm_min, tm.ngx_tm_sec)
                        - buf);
}


/*
 * Writes json compactly into r->pool.  With "raw", the raw key is added
 * as a last member "key" by hand, so that it never passes through
 * jansson's allocations, only through memory the caller wipes.
 */

ngx_int_t
ngx_http_apikey_admin_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *raw, ngx_str_t *out)
{
    return ngx_http_apikey_admin_dump_as(r, json, "key", raw, out);
}


/* the object as compact JSON, with the raw secret "raw" as member "name" */

ngx_int_t
ngx_http_apikey_admin_dump_as(ngx_http_request_t *r, json_t *json,
    const char *name, ngx_str_t *raw, ngx_str_t *out)
{
    u_char  *p;
    size_t   size, len;

    size = json_dumpb(json, NULL, 0, JSON_COMPACT);
    if (size == 0) {
        return NGX_ERROR;
    }

    len = size;

    if (raw) {
        len += sizeof(",\"\":\"\"") - 1 + ngx_strlen(name) + raw->len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (json_dumpb(json, (char *) p, size, JSON_COMPACT) != size) {
        return NGX_ERROR;
    }

    if (raw) {
        /* replaces the closing "}" */
        (void) ngx_sprintf(p + size - 1, ",\"%s\":\"%V\"}", name, raw);
    }

    out->data = p;
    out->len = len;

    return NGX_OK;
}


static time_t
ngx_http_apikey_admin_field_time(ngx_str_t *s)
{
    time_t  t;

    if (s->len == 0) {
        return 0;
    }

    t = ngx_atotm(s->data, s->len);

    return (t == NGX_ERROR) ? 0 : t;
}
