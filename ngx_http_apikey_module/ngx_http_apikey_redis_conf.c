
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


/*
 * apikey_redis address [db=N] [user=U] [password=P] [namespace=NS]
 *     [sentinel=host:port ...] [sentinel_password=P];
 *
 * address is host:port, unix:/path or sentinel:NAME.  Names are resolved
 * here, once, at start.  A parameter is never echoed with its value in an
 * error: it may hold a password.
 */


typedef struct {
    ngx_str_t                      name;      /* with its "=" */
    ngx_uint_t                     offset;    /* of its ngx_str_t, or -1 */
} ngx_http_apikey_redis_param_t;


static char *ngx_http_apikey_redis_address(ngx_conf_t *cf, ngx_str_t *text,
    ngx_addr_t *addr, ngx_str_t *host, in_port_t *port);
static void ngx_http_apikey_redis_param_error(ngx_conf_t *cf,
    const char *what, ngx_str_t *value);


#define NGX_HTTP_APIKEY_REDIS_PARAM_DB        0
#define NGX_HTTP_APIKEY_REDIS_PARAM_SENTINEL  1

static ngx_http_apikey_redis_param_t  ngx_http_apikey_redis_params[] = {
    { ngx_string("db="), (ngx_uint_t) -1 },
    { ngx_string("sentinel="), (ngx_uint_t) -1 },
    { ngx_string("user="), offsetof(ngx_http_apikey_redis_conf_t, user) },
    { ngx_string("password="),
      offsetof(ngx_http_apikey_redis_conf_t, password) },
    { ngx_string("namespace="), offsetof(ngx_http_apikey_redis_conf_t, ns) },
    { ngx_string("sentinel_password="),
      offsetof(ngx_http_apikey_redis_conf_t, sentinel_password) },
    { ngx_null_string, 0 }
};


char *
ngx_http_apikey_redis_directive(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf)
{
    ngx_str_t                      *value, s, *field;
    ngx_uint_t                      i, k, seen;
    ngx_addr_t                     *sa;
    ngx_http_apikey_redis_host_t   *sh;
    ngx_http_apikey_redis_param_t  *p;

    value = cf->args->elts;

    rcf->address = value[1];

    if (value[1].len > 9 && ngx_strncmp(value[1].data, "sentinel:", 9) == 0) {
        rcf->sentinel_name.len = value[1].len - 9;
        rcf->sentinel_name.data = value[1].data + 9;

        rcf->sentinels = ngx_array_create(cf->pool, 3, sizeof(ngx_addr_t));
        if (rcf->sentinels == NULL) {
            return NGX_CONF_ERROR;
        }

        rcf->sentinel_hosts = ngx_array_create(cf->pool, 3,
                                         sizeof(ngx_http_apikey_redis_host_t));
        if (rcf->sentinel_hosts == NULL) {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_http_apikey_redis_address(cf, &value[1], &rcf->addr,
                                             &rcf->host, &rcf->port)
               != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    seen = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        for (k = 0, p = ngx_http_apikey_redis_params; p->name.len; k++, p++) {
            if (value[i].len >= p->name.len
                && ngx_strncmp(value[i].data, p->name.data, p->name.len) == 0)
            {
                break;
            }
        }

        if (p->name.len == 0) {
            ngx_http_apikey_redis_param_error(cf, "unknown", &value[i]);
            return NGX_CONF_ERROR;
        }

        if ((seen & (1 << k)) && k != NGX_HTTP_APIKEY_REDIS_PARAM_SENTINEL) {
            ngx_http_apikey_redis_param_error(cf, "duplicate", &value[i]);
            return NGX_CONF_ERROR;
        }

        seen |= 1 << k;

        s.len = value[i].len - p->name.len;
        s.data = value[i].data + p->name.len;

        if (s.len == 0) {
            ngx_http_apikey_redis_param_error(cf, "invalid", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (p->offset != (ngx_uint_t) -1) {
            field = (ngx_str_t *) ((u_char *) rcf + p->offset);
            *field = s;
            continue;
        }

        if (k == NGX_HTTP_APIKEY_REDIS_PARAM_DB) {
            rcf->db = ngx_atoi(s.data, s.len);

            if (rcf->db == NGX_ERROR) {
                ngx_http_apikey_redis_param_error(cf, "invalid", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        /* sentinel=host:port */

        if (rcf->sentinels == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs \"sentinel:NAME\" as the "
                               "address of \"apikey_redis\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        sa = ngx_array_push(rcf->sentinels);
        sh = ngx_array_push(rcf->sentinel_hosts);
        if (sa == NULL || sh == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(sh, sizeof(ngx_http_apikey_redis_host_t));

        if (ngx_http_apikey_redis_address(cf, &s, sa, &sh->host, &sh->port)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (rcf->sentinels && rcf->sentinels->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" of \"apikey_redis\" needs at least one "
                           "\"sentinel=host:port\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinel_password.len && !rcf->sentinels) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_password=\" of \"apikey_redis\" "
                           "needs \"sentinel:NAME\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->user.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" of \"apikey_redis\" needs \"password=\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* host:port or unix:/path, resolved here (at start) */

static char *
ngx_http_apikey_redis_address(ngx_conf_t *cf, ngx_str_t *text,
    ngx_addr_t *addr, ngx_str_t *host, in_port_t *port)
{
    ngx_url_t  u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;
    u.default_port = 6379;

    /* the main address's name waits for the http block's resolver */
    u.no_resolve = (host != NULL);

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"apikey_redis\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 && host != NULL && u.uri.len == 0 && u.host.len) {
        *host = u.host;
        *port = u.port;
        addr->name = *text;
        return NGX_CONF_OK;
    }

    if (u.naddrs == 0 || u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"apikey_redis\"",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    /* named as written: the host a TLS certificate must be for */

    *addr = u.addrs[0];
    addr->name = *text;

    return NGX_CONF_OK;
}


/*
 * The main address's host name, at the end of the http block: left to
 * its resolver, which a worker asks for each connection, or else resolved
 * now, once (the only lookup that may block: the master's, at start).
 */

char *
ngx_http_apikey_redis_resolve_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf, ngx_resolver_t *resolver)
{
    ngx_uint_t                     i;
    ngx_addr_t                    *sa;
    ngx_http_apikey_redis_host_t  *sh;

    /* the http block's own, not the one nginx makes with no server */

    if (resolver != NULL && resolver->connections.nelts) {
        rcf->resolver = resolver;
        return NGX_CONF_OK;
    }

    if (rcf->host.len
        && ngx_http_apikey_redis_address(cf, &rcf->address, &rcf->addr,
                                         NULL, NULL)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinels == NULL) {
        return NGX_CONF_OK;
    }

    sa = rcf->sentinels->elts;
    sh = rcf->sentinel_hosts->elts;

    for (i = 0; i < rcf->sentinels->nelts; i++) {

        if (sh[i].host.len == 0) {
            continue;
        }

        if (ngx_http_apikey_redis_address(cf, &sa[i].name, &sa[i], NULL,
                                          NULL)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        sh[i].host.len = 0;
    }

    return NGX_CONF_OK;
}


/* "what parameter": the name and "=", never the value */

static void
ngx_http_apikey_redis_param_error(ngx_conf_t *cf, const char *what,
    ngx_str_t *value)
{
    u_char                         *eq, *p, *last;
    size_t                          len;
    ngx_http_apikey_redis_param_t  *param;
    u_char                          text[NGX_MAX_CONF_ERRSTR];

    eq = ngx_strlchr(value->data, value->data + value->len, '=');
    len = eq ? (size_t) (eq + 1 - value->data) : value->len;

    /* the parameters there are, after an unknown one */

    p = text;
    last = text + sizeof(text);

    if (what[0] == 'u') {
        p = ngx_slprintf(p, last, ": give");

        for (param = ngx_http_apikey_redis_params; param->name.len; param++) {
            p = ngx_slprintf(p, last, " %V...", &param->name);
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "%s parameter \"%*s%s\" in \"apikey_redis\"%*s",
                       what, len, value->data, eq ? "..." : "", p - text,
                       text);
}
