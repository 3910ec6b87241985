
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_conn.h"


/*
 * TLS to Redis, Sentinels and Cluster nodes (apikey_redis_ssl and its
 * kin): the client context, made once with the configuration, and the
 * check of a server's certificate and name once a handshake is done.
 * The handshake itself is the connection's (ngx_http_apikey_redis_conn.c),
 * on nginx's own OpenSSL.  As proxy_ssl_verify does, the handshake takes
 * any certificate and the check after it decides: a connection whose
 * server fails it is closed with the reason, which its owner logs.
 */


#if (NGX_SSL)

static ngx_uint_t ngx_http_apikey_redis_ssl_is_ip(ngx_str_t *name);


char *
ngx_http_apikey_redis_ssl_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf)
{
    ngx_ssl_t           *ssl;
    ngx_pool_cleanup_t  *cln;

    if (!rcf->ssl) {
        return NGX_CONF_OK;
    }

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    /*
     * a write that must be tried again may be tried from another place:
     * the connection's output buffer grows as commands are queued
     */

    SSL_CTX_set_mode(ssl->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (rcf->ssl_verify && rcf->ssl_name.len == 0
        && rcf->addr.sockaddr && rcf->addr.sockaddr->sa_family == AF_UNIX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis_ssl_verify\" over a UNIX-domain "
                           "socket needs \"apikey_redis_ssl_name\": the name "
                           "the server's certificate is for");
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl_certificate.len) {

        if (rcf->ssl_certificate_key.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"apikey_redis_ssl_certificate_key\" for "
                               "\"apikey_redis_ssl_certificate\" \"%V\"",
                               &rcf->ssl_certificate);
            return NGX_CONF_ERROR;
        }

        if (ngx_ssl_certificate(cf, ssl, &rcf->ssl_certificate,
                                &rcf->ssl_certificate_key, NULL)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (rcf->ssl_verify) {

        if (ngx_ssl_trusted_certificate(cf, ssl,
                                        &rcf->ssl_trusted_certificate, 9)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* without a file of its own: the system's CA bundle */

        if (rcf->ssl_trusted_certificate.len == 0
            && SSL_CTX_set_default_verify_paths(ssl->ctx) != 1)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "apikey_redis_ssl: the system's CA certificates "
                          "could not be loaded");
            return NGX_CONF_ERROR;
        }
    }

    rcf->ssl_ctx = ssl;

    return NGX_CONF_OK;
}


/*
 * The name a server's certificate must hold: apikey_redis_ssl_name, else
 * the host of the address connected to ("host:port", "[v6]:port").
 */

void
ngx_http_apikey_redis_ssl_name(ngx_http_apikey_redis_conf_t *rcf,
    ngx_str_t *address, ngx_str_t *name)
{
    u_char  *colon;

    if (rcf->ssl_name.len) {
        *name = rcf->ssl_name;
        return;
    }

    *name = *address;

    colon = NULL;

    if (name->len && name->data[0] == '[') {
        colon = ngx_strlchr(name->data, name->data + name->len, ']');

        if (colon) {
            name->data++;
            name->len = colon - name->data;
        }

        return;
    }

    colon = ngx_strlchr(name->data, name->data + name->len, ':');

    if (colon) {
        name->len = colon - name->data;
    }
}


/*
 * Sets the name the server is asked for (SNI) on a connection whose TLS
 * has begun: a host name, never an address.
 */

void
ngx_http_apikey_redis_ssl_sni(ngx_connection_t *c, ngx_str_t *name)
{
    u_char  host[256];

    if (name->len == 0 || name->len >= sizeof(host)
        || ngx_http_apikey_redis_ssl_is_ip(name))
    {
        return;
    }

    ngx_memcpy(host, name->data, name->len);
    host[name->len] = '\0';

    (void) SSL_set_tlsext_host_name(c->ssl->connection, (char *) host);
}


/*
 * NULL when the server's certificate is signed by a trusted CA and is
 * for the name; else why not, in a buffer valid until the next call.
 */

const char *
ngx_http_apikey_redis_ssl_check(ngx_connection_t *c, ngx_str_t *name)
{
    int           ok;
    long          rc;
    X509         *cert;
    static u_char  reason[NGX_HTTP_APIKEY_REDIS_TEXT_LEN + 96];
    u_char        text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    u_char        host[256];

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        *ngx_snprintf(reason, sizeof(reason) - 1,
                      "the server's certificate did not verify: %s (%l)",
                      X509_verify_cert_error_string(rc), rc)
            = '\0';
        return (const char *) reason;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);

    if (cert == NULL) {
        return "the server sent no certificate";
    }

    ok = 0;

    if (name->len && name->len < sizeof(host)) {
        ngx_memcpy(host, name->data, name->len);
        host[name->len] = '\0';

        ok = ngx_http_apikey_redis_ssl_is_ip(name)
             ? X509_check_ip_asc(cert, (char *) host, 0)
             : X509_check_host(cert, (char *) host, name->len, 0, NULL);
    }

    X509_free(cert);

    if (ok == 1) {
        return NULL;
    }

    *ngx_snprintf(reason, sizeof(reason) - 1,
                  "the server's certificate is not for \"%*s\"",
                  ngx_http_apikey_redis_text(text, name->data, name->len)
                  - text,
                  text)
        = '\0';

    return (const char *) reason;
}


static ngx_uint_t
ngx_http_apikey_redis_ssl_is_ip(ngx_str_t *name)
{
    u_char  host[64];

    if (name->len >= sizeof(host)) {
        return 0;
    }

    ngx_memcpy(host, name->data, name->len);
    host[name->len] = '\0';

    if (ngx_inet_addr(host, name->len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    {
    struct in6_addr  a6;

    if (ngx_inet6_addr(host, name->len, a6.s6_addr) == NGX_OK) {
        return 1;
    }
    }
#endif

    return 0;
}


#else


char *
ngx_http_apikey_redis_ssl_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_conf_t *rcf)
{
    if (rcf->ssl) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis_ssl\" needs nginx built with "
                           "OpenSSL");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


#endif
