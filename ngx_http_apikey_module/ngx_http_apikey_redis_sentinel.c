
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_redis.h"


/*
 * Redis Sentinel, per worker: asks every configured Sentinel in turn
 * for the primary (SENTINEL MASTER) and follows the one that knows the
 * latest failover (the highest config-epoch): a Sentinel that has not
 * yet heard of a failover still names the old primary, which, restarted,
 * says it is a primary until the Sentinels convert it.  It keeps a
 * subscription to one of them for +switch-master.  Every call is made on
 * hiredis's async API driven by nginx's events, with nginx timers for the
 * timeouts, like the connection to the primary itself.
 */


#define NGX_HTTP_APIKEY_SENTINEL_RESUBSCRIBE  1000


typedef struct {
    ngx_http_apikey_redis_conf_t      *conf;
    ngx_log_t                         *log;

    redisAsyncContext                 *ask;       /* the query under way */
    ngx_uint_t                         asked;     /* the Sentinel it asks */
    ngx_uint_t                         good;      /* the last that answered */
    ngx_event_t                        timer;

    u_char                             host[NGX_SOCKADDR_STRLEN + 1];
    size_t                             hlen;      /* 0: no answer yet */
    in_port_t                          port;
    int64_t                            epoch;
    ngx_uint_t                         best;
    int64_t                            known;     /* highest epoch followed */
    ngx_uint_t                         answered;  /* in this round */
    u_char                             older[NGX_SOCKADDR_STRLEN + 1];
    size_t                             olen;      /* 0: none */
    in_port_t                          oport;

    redisAsyncContext                 *sub;       /* +switch-master */
    ngx_uint_t                         subbed;
    ngx_event_t                        resubscribe;

    unsigned                           exiting:1;
} ngx_http_apikey_sentinel_t;


static void ngx_http_apikey_sentinel_ask(ngx_uint_t i);
static void ngx_http_apikey_sentinel_answer(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_apikey_sentinel_auth(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_apikey_sentinel_next(const char *reason);
static void ngx_http_apikey_sentinel_timeout(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_on_connect(const redisAsyncContext *ac,
    int status);
static redisAsyncContext *ngx_http_apikey_sentinel_connect(ngx_uint_t i,
    redisConnectCallback *on_connect);
static void ngx_http_apikey_sentinel_subscribe(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_message(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_apikey_sentinel_sub_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_apikey_sentinel_unsubscribed(const char *reason);
static ngx_int_t ngx_http_apikey_sentinel_address(u_char *p, size_t len,
    u_char *host, size_t *hlen, in_port_t *port);


static ngx_http_apikey_sentinel_t  ngx_http_apikey_sentinel;


void
ngx_http_apikey_sentinel_init(ngx_http_apikey_redis_conf_t *rcf,
    ngx_log_t *log)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    ngx_memzero(st, sizeof(ngx_http_apikey_sentinel_t));

    st->conf = rcf;
    st->log = log;
    st->known = -1;

    st->timer.handler = ngx_http_apikey_sentinel_timeout;
    st->timer.log = log;
    st->timer.data = st;
    st->timer.cancelable = 1;

    st->resubscribe.handler = ngx_http_apikey_sentinel_subscribe;
    st->resubscribe.log = log;
    st->resubscribe.data = st;
    st->resubscribe.cancelable = 1;
}


void
ngx_http_apikey_sentinel_exit(void)
{
    redisAsyncContext           *ac;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->conf == NULL) {
        return;
    }

    st->exiting = 1;

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    if (st->resubscribe.timer_set) {
        ngx_del_timer(&st->resubscribe);
    }

    ac = st->ask;
    st->ask = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }

    ac = st->sub;
    st->sub = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }
}


/*
 * Starts asking for the primary, from the Sentinel that answered last;
 * the answer goes to ngx_http_apikey_redis_primary().
 */

void
ngx_http_apikey_sentinel_discover(void)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->ask != NULL) {
        return;
    }

    st->hlen = 0;
    st->olen = 0;
    st->answered = 0;

    ngx_http_apikey_sentinel_ask(0);
}


static void
ngx_http_apikey_sentinel_ask(ngx_uint_t n)
{
    const char                  *argv[3];
    size_t                       argvlen[3];
    ngx_uint_t                   i;
    redisAsyncContext           *ac;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (n == st->conf->sentinels->nelts) {

        /*
         * every Sentinel asked: the latest primary any of them knows.
         * One that names a primary of an older failover than the worker
         * already followed has not heard of the latest (or, restarted, of
         * any): believed only when every Sentinel says so, as after the
         * Sentinels themselves were set up afresh; else the worker asks
         * again, as when none answers
         */

        if (st->hlen == 0 && st->olen
            && st->answered == st->conf->sentinels->nelts)
        {
            ngx_memcpy(st->host, st->older, st->olen + 1);
            st->hlen = st->olen;
            st->port = st->oport;
            st->known = -1;
        }

        if (st->hlen == 0) {
            ngx_http_apikey_redis_primary(NULL, 0, 0);
            return;
        }

        if (st->epoch > st->known) {
            st->known = st->epoch;
        }

        st->good = st->best;

        if (st->sub == NULL && !st->resubscribe.timer_set) {
            st->subbed = st->good;
            ngx_http_apikey_sentinel_subscribe(&st->resubscribe);
        }

        ngx_http_apikey_redis_primary(st->host, st->hlen, st->port);
        return;
    }

    i = (st->good + n) % st->conf->sentinels->nelts;

    st->asked = n;

    ac = ngx_http_apikey_sentinel_connect(i,
                                          ngx_http_apikey_sentinel_on_connect);
    if (ac == NULL) {
        ngx_http_apikey_sentinel_ask(n + 1);
        return;
    }

    st->ask = ac;

    argv[0] = "SENTINEL";
    argvlen[0] = sizeof("SENTINEL") - 1;
    argv[1] = "MASTER";
    argvlen[1] = sizeof("MASTER") - 1;
    argv[2] = (const char *) st->conf->sentinel_name.data;
    argvlen[2] = st->conf->sentinel_name.len;

    if (redisAsyncCommandArgv(ac, ngx_http_apikey_sentinel_answer, NULL,
                              3, argv, argvlen)
        != REDIS_OK)
    {
        ngx_http_apikey_sentinel_next("cannot send the query");
        return;
    }

    ngx_add_timer(&st->timer, st->conf->timeout);
}


static void
ngx_http_apikey_sentinel_auth(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply  *rr = reply;

    if (rr == NULL || ngx_http_apikey_sentinel.exiting) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_apikey_sentinel.log, 0,
                      "redis sentinel AUTH failed: %*s",
                      (size_t) rr->len, rr->str);
    }
}


static void
ngx_http_apikey_sentinel_answer(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    int64_t                      epoch;
    in_port_t                    port;
    ngx_uint_t                   i;
    redisReply                  *rr, *f, *v, *ip, *pt;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;
    rr = reply;

    if (ac != st->ask || st->exiting) {
        return;
    }

    if (rr == NULL) {

        /* the connection is gone, and hiredis frees the context */

        st->ask = NULL;
        ngx_http_apikey_sentinel_next(ac->errstr[0] ? ac->errstr
                                                    : "connection closed");
        return;
    }

    /* SENTINEL MASTER: field, value, field, value ... */

    ip = NULL;
    pt = NULL;
    epoch = -1;

    for (i = 0; rr->type == REDIS_REPLY_ARRAY && i + 1 < rr->elements;
         i += 2)
    {
        f = rr->element[i];
        v = rr->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (f->len == 2 && ngx_strncmp(f->str, "ip", 2) == 0) {
            ip = v;

        } else if (f->len == 4 && ngx_strncmp(f->str, "port", 4) == 0) {
            pt = v;

        } else if (f->len == 12
                   && ngx_strncmp(f->str, "config-epoch", 12) == 0)
        {
            epoch = ngx_atoi((u_char *) v->str, v->len);
        }
    }

    if (ip == NULL || pt == NULL || ip->len > NGX_SOCKADDR_STRLEN) {
        ngx_http_apikey_sentinel_next(rr->type == REDIS_REPLY_ERROR
                                      ? rr->str : "no primary of that name");
        return;
    }

    port = (in_port_t) ngx_atoi((u_char *) pt->str, pt->len);

    if (port == 0 || port == (in_port_t) NGX_ERROR) {
        ngx_http_apikey_sentinel_next("a bad port");
        return;
    }

    st->answered++;

    if (epoch < st->known) {
        ngx_log_error(NGX_LOG_INFO, st->log, 0,
                      "redis sentinel %V names a primary of an older "
                      "failover (config-epoch %L, followed %L)",
                      &((ngx_http_apikey_redis_addr_t *)
                        st->conf->sentinels->elts)
                           [(st->good + st->asked)
                            % st->conf->sentinels->nelts].text,
                      epoch, st->known);

        ngx_memcpy(st->older, ip->str, ip->len);
        st->older[ip->len] = '\0';
        st->olen = ip->len;
        st->oport = port;

    } else if (st->hlen == 0 || epoch > st->epoch) {
        ngx_memcpy(st->host, ip->str, ip->len);
        st->host[ip->len] = '\0';
        st->hlen = ip->len;
        st->port = port;
        st->epoch = epoch;
        st->best = (st->good + st->asked) % st->conf->sentinels->nelts;
    }

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    st->ask = NULL;
    redisAsyncFree(ac);

    ngx_http_apikey_sentinel_ask(st->asked + 1);
}


/* the Sentinel asked did not answer: ask the next one */

static void
ngx_http_apikey_sentinel_next(const char *reason)
{
    redisAsyncContext                 *ac;
    ngx_http_apikey_sentinel_t        *st;
    ngx_http_apikey_redis_addr_t      *sa;

    st = &ngx_http_apikey_sentinel;

    sa = st->conf->sentinels->elts;

    ngx_log_error(NGX_LOG_INFO, st->log, 0,
                  "redis sentinel %V did not name the primary of \"%V\": %s",
                  &sa[(st->good + st->asked) % st->conf->sentinels->nelts]
                      .text,
                  &st->conf->sentinel_name, reason);

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    ac = st->ask;
    st->ask = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }

    ngx_http_apikey_sentinel_ask(st->asked + 1);
}


static void
ngx_http_apikey_sentinel_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_sentinel_next("timed out");
}


static void
ngx_http_apikey_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK && ac == ngx_http_apikey_sentinel.ask) {

        /* hiredis frees the context itself after this */

        ngx_http_apikey_sentinel.ask = NULL;
        ngx_http_apikey_sentinel_next(ac->errstr);
    }
}


/* a connection to Sentinel i, authenticated where a password is set */

static redisAsyncContext *
ngx_http_apikey_sentinel_connect(ngx_uint_t i,
    redisConnectCallback *on_connect)
{
    const char                    *argv[2];
    size_t                         argvlen[2];
    redisAsyncContext             *ac;
    ngx_http_apikey_sentinel_t    *st;
    ngx_http_apikey_redis_addr_t  *sa;

    st = &ngx_http_apikey_sentinel;
    sa = st->conf->sentinels->elts;

    ac = redisAsyncConnect((const char *) sa[i].host.data, sa[i].port);

    if (ac == NULL) {
        return NULL;
    }

    if (ac->err || ngx_http_apikey_redis_attach(ac, st->log) != NGX_OK) {
        redisAsyncFree(ac);
        return NULL;
    }

    redisAsyncSetConnectCallback(ac, on_connect);

    if (st->conf->sentinel_password.len) {
        argv[0] = "AUTH";
        argvlen[0] = sizeof("AUTH") - 1;
        argv[1] = (const char *) st->conf->sentinel_password.data;
        argvlen[1] = st->conf->sentinel_password.len;

        redisAsyncCommandArgv(ac, ngx_http_apikey_sentinel_auth, NULL,
                              2, argv, argvlen);
    }

    return ac;
}


static void
ngx_http_apikey_sentinel_subscribe(ngx_event_t *ev)
{
    const char                  *argv[2];
    size_t                       argvlen[2];
    redisAsyncContext           *ac;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ac = ngx_http_apikey_sentinel_connect(st->subbed,
                                          ngx_http_apikey_sentinel_sub_connect);
    if (ac == NULL) {
        ngx_http_apikey_sentinel_unsubscribed("cannot connect");
        return;
    }

    st->sub = ac;

    argv[0] = "SUBSCRIBE";
    argvlen[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = "+switch-master";
    argvlen[1] = sizeof("+switch-master") - 1;

    if (redisAsyncCommandArgv(ac, ngx_http_apikey_sentinel_message, NULL,
                              2, argv, argvlen)
        != REDIS_OK)
    {
        redisAsyncFree(ac);
        ngx_http_apikey_sentinel_unsubscribed("cannot subscribe");
    }
}


/* "+switch-master" messages: "<name> <old ip> <old port> <ip> <port>" */

static void
ngx_http_apikey_sentinel_message(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    u_char                      *p, *last;
    u_char                       host[NGX_SOCKADDR_STRLEN + 1];
    size_t                       hlen;
    in_port_t                    port;
    redisReply                  *rr;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;
    rr = reply;

    if (ac != st->sub || st->exiting) {
        return;
    }

    if (rr == NULL) {

        /* the connection is gone, and hiredis frees the context */

        ngx_http_apikey_sentinel_unsubscribed(ac->errstr[0]
                                              ? ac->errstr
                                              : "connection closed");
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY
        || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[0]->len != sizeof("message") - 1
        || ngx_strncmp(rr->element[0]->str, "message", 7) != 0
        || rr->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    p = (u_char *) rr->element[2]->str;
    last = p + rr->element[2]->len;

    if ((size_t) (last - p) <= st->conf->sentinel_name.len
        || ngx_strncmp(p, st->conf->sentinel_name.data,
                       st->conf->sentinel_name.len)
           != 0
        || p[st->conf->sentinel_name.len] != ' ')
    {
        return;
    }

    /* skip the name and the old address */

    p += st->conf->sentinel_name.len + 1;

    p = ngx_strlchr(p, last, ' ');
    if (p == NULL) {
        goto invalid;
    }

    p = ngx_strlchr(p + 1, last, ' ');
    if (p == NULL) {
        goto invalid;
    }

    p++;

    if (ngx_http_apikey_sentinel_address(p, last - p, host, &hlen, &port)
        != NGX_OK)
    {
        goto invalid;
    }

    ngx_http_apikey_redis_switch(host, hlen, port);

    return;

invalid:

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "redis sentinel sent a bad +switch-master: \"%*s\"",
                  (size_t) rr->element[2]->len, rr->element[2]->str);
}


static void
ngx_http_apikey_sentinel_sub_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK && ac == ngx_http_apikey_sentinel.sub) {
        ngx_http_apikey_sentinel_unsubscribed(ac->errstr);
    }
}


/*
 * the subscription is gone (hiredis frees its context): subscribe to the
 * next Sentinel a bit later
 */

static void
ngx_http_apikey_sentinel_unsubscribed(const char *reason)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    st->sub = NULL;

    if (st->exiting) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, st->log, 0,
                  "redis sentinel subscription for \"%V\" lost: %s",
                  &st->conf->sentinel_name, reason);

    st->subbed = (st->subbed + 1) % st->conf->sentinels->nelts;

    if (!st->resubscribe.timer_set
        && !ngx_exiting && !ngx_terminate && !ngx_quit)
    {
        ngx_add_timer(&st->resubscribe,
                      NGX_HTTP_APIKEY_SENTINEL_RESUBSCRIBE);
    }
}


/* "<ip> <port>" into a NUL-terminated host and a port */

static ngx_int_t
ngx_http_apikey_sentinel_address(u_char *p, size_t len, u_char *host,
    size_t *hlen, in_port_t *port)
{
    u_char     *sp, *last;
    ngx_int_t   n;

    last = p + len;

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL || sp == p || (size_t) (sp - p) > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    n = ngx_atoi(sp + 1, last - sp - 1);
    if (n <= 0 || n > 65535) {
        return NGX_ERROR;
    }

    *hlen = sp - p;
    ngx_memcpy(host, p, *hlen);
    host[*hlen] = '\0';
    *port = (in_port_t) n;

    return NGX_OK;
}
