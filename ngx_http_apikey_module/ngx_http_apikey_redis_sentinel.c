
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_conn.h"
#include "ngx_http_apikey_redis_name.h"
#include "ngx_http_apikey_timer.h"


/*
 * Redis Sentinel, per worker: asks every configured Sentinel in turn
 * for the primary (SENTINEL MASTER) and follows the one that knows the
 * latest failover (the highest config-epoch): a Sentinel that has not
 * yet heard of a failover still names the old primary, which, restarted,
 * says it is a primary until the Sentinels convert it.  It keeps a
 * subscription to one of them for +switch-master.  Its connections are
 * the module's own (ngx_http_apikey_redis_conn.c); it tells the links of
 * the answer through the handlers they gave it.
 *
 * Sentinels are trusted as the network between them and nginx is: the
 * address one names is used only after the server there answers ROLE as
 * a primary with the configured credentials (ngx_http_apikey_redis_link.c),
 * and what a Sentinel says is escaped before it is logged.  A Sentinel
 * must name the primary by address: a host name is not resolved.
 */


#define NGX_HTTP_APIKEY_SENTINEL_RESUBSCRIBE  1000

#define NGX_HTTP_APIKEY_SENTINEL_UNKNOWN  0
#define NGX_HTTP_APIKEY_SENTINEL_KNOWN    1
#define NGX_HTTP_APIKEY_SENTINEL_NONE     2


typedef struct {
    ngx_sockaddr_t                     sockaddr;
    socklen_t                          socklen;
    u_char                             text[NGX_SOCKADDR_STRLEN];
    size_t                             len;
} ngx_http_apikey_sentinel_addr_t;


typedef struct {
    ngx_http_apikey_redis_conf_t      *conf;
    ngx_log_t                         *log;
    ngx_http_apikey_sentinel_pt        found;
    ngx_http_apikey_sentinel_pt        switched;

    ngx_http_apikey_redis_conn_t       ask;      /* the query under way */
    ngx_http_apikey_redis_cmd_t        ask_auth;
    ngx_http_apikey_redis_cmd_t        ask_master;
    ngx_uint_t                         asked;    /* the n-th of the round */
    ngx_uint_t                         good;     /* the last that answered */
    ngx_event_t                        timer;
    ngx_event_t                        next;

    ngx_http_apikey_sentinel_addr_t    best;     /* the round's answer */
    int64_t                            epoch;
    ngx_uint_t                         best_at;
    ngx_http_apikey_sentinel_addr_t    older;
    ngx_uint_t                         answered;
    int64_t                            known;    /* highest epoch followed */
    const char                        *why;      /* the query failed */

    ngx_uint_t                         state;
    ngx_http_apikey_sentinel_addr_t    primary;
    ngx_addr_t                         addr;

    ngx_http_apikey_redis_conn_t       sub;      /* +switch-master */
    ngx_http_apikey_redis_cmd_t        sub_auth;
    ngx_http_apikey_redis_cmd_t        sub_cmd;
    ngx_uint_t                         subbed;
    ngx_event_t                        resubscribe;

    ngx_http_apikey_redis_name_t      *names;    /* of each Sentinel, or
                                                    NULL: no resolver */

    unsigned                           asking:1;
    unsigned                           has_best:1;
    unsigned                           has_older:1;
    unsigned                           exiting:1;
} ngx_http_apikey_sentinel_t;


static void ngx_http_apikey_sentinel_ask(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_done(void);
static void ngx_http_apikey_sentinel_auth_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_apikey_sentinel_master_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_apikey_sentinel_next(const char *reason,
    redisReply *reply);
static void ngx_http_apikey_sentinel_timeout(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_ask_event(
    ngx_http_apikey_redis_conn_t *rc, ngx_uint_t event, const char *reason,
    redisReply *reply);
static ngx_int_t ngx_http_apikey_sentinel_connect(
    ngx_http_apikey_redis_conn_t *rc, ngx_uint_t i,
    ngx_http_apikey_redis_cmd_t *auth);
static void ngx_http_apikey_sentinel_subscribe(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_sub_reply(
    ngx_http_apikey_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_apikey_sentinel_sub_event(
    ngx_http_apikey_redis_conn_t *rc, ngx_uint_t event, const char *reason,
    redisReply *reply);
static void ngx_http_apikey_sentinel_message(redisReply *rr);
static void ngx_http_apikey_sentinel_unsubscribed(const char *reason);
static ngx_int_t ngx_http_apikey_sentinel_address(u_char *host, size_t hlen,
    u_char *port, size_t plen, ngx_http_apikey_sentinel_addr_t *addr);
static ngx_str_t *ngx_http_apikey_sentinel_name(ngx_uint_t i);
static void ngx_http_apikey_sentinel_resolved(ngx_http_apikey_redis_name_t *n,
    const char *error);


static ngx_http_apikey_sentinel_t  ngx_http_apikey_sentinel;


void
ngx_http_apikey_sentinel_init(ngx_http_apikey_redis_conf_t *rcf,
    ngx_log_t *log, ngx_http_apikey_sentinel_pt found,
    ngx_http_apikey_sentinel_pt switched)
{
    ngx_uint_t                     i, n;
    ngx_addr_t                    *sa;
    ngx_http_apikey_sentinel_t    *st;
    ngx_http_apikey_redis_host_t  *sh;

    st = &ngx_http_apikey_sentinel;

    ngx_memzero(st, sizeof(ngx_http_apikey_sentinel_t));

    st->conf = rcf;
    st->log = log;
    st->found = found;
    st->switched = switched;
    st->known = -1;

    ngx_http_apikey_timer_init(&st->timer, ngx_http_apikey_sentinel_timeout,
                               st, log);
    ngx_http_apikey_timer_init(&st->next, ngx_http_apikey_sentinel_ask, st,
                               log);
    ngx_http_apikey_timer_init(&st->resubscribe,
                               ngx_http_apikey_sentinel_subscribe, st, log);

    st->ask.handler = ngx_http_apikey_sentinel_ask_event;
    st->ask.data = st;
    st->ask_auth.handler = ngx_http_apikey_sentinel_auth_reply;
    st->ask_master.handler = ngx_http_apikey_sentinel_master_reply;

    st->sub.handler = ngx_http_apikey_sentinel_sub_event;
    st->sub.data = st;
    st->sub_auth.handler = ngx_http_apikey_sentinel_auth_reply;
    st->sub_cmd.handler = ngx_http_apikey_sentinel_sub_reply;

    ngx_queue_init(&st->ask.cmds);
    ngx_queue_init(&st->sub.cmds);

    /*
     * Sentinels' host names, with a resolver in the http block: each
     * connection to one uses its last address and asks for a fresh one
     */

    if (rcf->resolver == NULL) {
        return;
    }

    n = rcf->sentinels->nelts;
    sh = rcf->sentinel_hosts->elts;
    sa = rcf->sentinels->elts;

    st->names = ngx_calloc(n * sizeof(ngx_http_apikey_redis_name_t), log);
    if (st->names == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        st->names[i].host = sh[i].host;
        st->names[i].port = sh[i].port;
        st->names[i].name = sa[i].name;
        st->names[i].handler = ngx_http_apikey_sentinel_resolved;
        st->names[i].data = st;

        if (sh[i].host.len) {
            (void) ngx_http_apikey_redis_name_resolve(&st->names[i],
                          rcf->resolver, ngx_max(rcf->timeout, 1000));
        }
    }
}


/* a Sentinel's fresh address is kept for its next connection */

static void
ngx_http_apikey_sentinel_resolved(ngx_http_apikey_redis_name_t *n,
    const char *error)
{
    if (error != NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_http_apikey_sentinel.log, 0,
                      "redis sentinel %V: %s", &n->name, error);
        return;
    }

    n->addr.name = n->name;
}


void
ngx_http_apikey_sentinel_exit(void)
{
    ngx_uint_t                   i;
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

    if (st->next.posted) {
        ngx_delete_posted_event(&st->next);
    }

    ngx_http_apikey_redis_conn_free(&st->ask);
    ngx_http_apikey_redis_conn_free(&st->sub);

    if (st->names) {
        for (i = 0; i < st->conf->sentinels->nelts; i++) {
            ngx_http_apikey_redis_name_cancel(&st->names[i]);
        }

        ngx_free(st->names);
        st->names = NULL;
    }
}


ngx_int_t
ngx_http_apikey_sentinel_primary(ngx_addr_t **addr)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    switch (st->state) {

    case NGX_HTTP_APIKEY_SENTINEL_KNOWN:
        *addr = &st->addr;
        return NGX_OK;

    case NGX_HTTP_APIKEY_SENTINEL_NONE:
        return NGX_DECLINED;

    default:
        break;
    }

    if (!st->asking) {

        /* a round: every Sentinel, from the one that answered last */

        st->asking = 1;
        st->asked = 0;
        st->answered = 0;
        st->has_best = 0;
        st->has_older = 0;

        ngx_post_event(&st->next, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


void
ngx_http_apikey_sentinel_forget(void)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (!st->asking) {
        st->state = NGX_HTTP_APIKEY_SENTINEL_UNKNOWN;
    }
}


static void
ngx_http_apikey_sentinel_ask(ngx_event_t *ev)
{
    size_t                       argvlen[3];
    const char                  *argv[3];
    ngx_uint_t                   i, n;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->exiting) {
        return;
    }

    n = st->conf->sentinels->nelts;

    if (st->asked == n) {
        ngx_http_apikey_sentinel_done();
        return;
    }

    i = (st->good + st->asked) % n;
    st->why = NULL;

    if (ngx_http_apikey_sentinel_connect(&st->ask, i, &st->ask_auth)
        != NGX_OK)
    {
        ngx_http_apikey_sentinel_next("cannot connect", NULL);
        return;
    }

    argv[0] = "SENTINEL";
    argvlen[0] = sizeof("SENTINEL") - 1;
    argv[1] = "MASTER";
    argvlen[1] = sizeof("MASTER") - 1;
    argv[2] = (const char *) st->conf->sentinel_name.data;
    argvlen[2] = st->conf->sentinel_name.len;

    if (ngx_http_apikey_redis_conn_argv(&st->ask, 3, argv, argvlen,
                                        &st->ask_master)
        != NGX_OK)
    {
        ngx_http_apikey_sentinel_next("cannot send the query", NULL);
        return;
    }

    ngx_add_timer(&st->timer, st->conf->timeout);
}


/*
 * Every Sentinel asked: the latest primary any of them knows.  One that
 * names a primary of an older failover than the worker already followed
 * has not heard of the latest (or, restarted, of any): believed only when
 * every Sentinel says so, as after the Sentinels themselves were set up
 * afresh; else the worker asks again, as when none answers.
 */

static void
ngx_http_apikey_sentinel_done(void)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    st->asking = 0;

    if (!st->has_best && st->has_older
        && st->answered == st->conf->sentinels->nelts)
    {
        st->best = st->older;
        st->has_best = 1;
        st->known = -1;
    }

    if (!st->has_best) {
        st->state = NGX_HTTP_APIKEY_SENTINEL_NONE;

        ngx_log_error(NGX_LOG_INFO, st->log, 0,
                      "redis: no sentinel named the primary of \"%V\"",
                      &st->conf->sentinel_name);

        st->found();
        return;
    }

    if (st->epoch > st->known) {
        st->known = st->epoch;
    }

    st->good = st->best_at;

    if (st->state != NGX_HTTP_APIKEY_SENTINEL_KNOWN
        && (st->primary.len != st->best.len
            || ngx_memcmp(st->primary.text, st->best.text, st->best.len)
               != 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                      "redis primary of \"%V\" is %*s",
                      &st->conf->sentinel_name, st->best.len, st->best.text);
    }

    st->primary = st->best;
    st->addr.sockaddr = &st->primary.sockaddr.sockaddr;
    st->addr.socklen = st->primary.socklen;
    st->addr.name.data = st->primary.text;
    st->addr.name.len = st->primary.len;
    st->state = NGX_HTTP_APIKEY_SENTINEL_KNOWN;

    if (!ngx_http_apikey_redis_conn_is_open(&st->sub)
        && !st->resubscribe.timer_set)
    {
        st->subbed = st->good;
        ngx_http_apikey_sentinel_subscribe(&st->resubscribe);
    }

    st->found();
}


static void
ngx_http_apikey_sentinel_auth_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    u_char  text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR
        || ngx_http_apikey_sentinel.exiting)
    {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_apikey_sentinel.log, 0,
                  "redis sentinel AUTH failed: \"%*s\"",
                  ngx_http_apikey_redis_text(text, (u_char *) rr->str,
                                             rr->len) - text,
                  text);
}


/* SENTINEL MASTER: field, value, field, value ... */

static void
ngx_http_apikey_sentinel_master_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *rr)
{
    int64_t                           epoch;
    ngx_uint_t                        i;
    redisReply                       *f, *v, *ip, *pt;
    ngx_http_apikey_sentinel_t       *st;
    ngx_http_apikey_sentinel_addr_t   addr;

    st = &ngx_http_apikey_sentinel;

    if (st->exiting) {
        return;
    }

    if (rr == NULL) {
        ngx_http_apikey_sentinel_next(st->why ? st->why
                                              : "the connection closed",
                                      NULL);
        return;
    }

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

    if (ip == NULL || pt == NULL) {
        ngx_http_apikey_sentinel_next("no primary of that name",
                                      rr->type == REDIS_REPLY_ERROR
                                      ? rr : NULL);
        return;
    }

    if (ngx_http_apikey_sentinel_address((u_char *) ip->str, ip->len,
                                         (u_char *) pt->str, pt->len, &addr)
        != NGX_OK)
    {
        ngx_http_apikey_sentinel_next("not an address and port", ip);
        return;
    }

    st->answered++;

    if (epoch < st->known) {
        ngx_log_error(NGX_LOG_INFO, st->log, 0,
                      "redis sentinel %V names a primary of an older "
                      "failover (config-epoch %L, followed %L)",
                      ngx_http_apikey_sentinel_name(st->asked), epoch,
                      st->known);

        st->older = addr;
        st->has_older = 1;

    } else if (!st->has_best || epoch > st->epoch) {
        st->best = addr;
        st->has_best = 1;
        st->epoch = epoch;
        st->best_at = (st->good + st->asked) % st->conf->sentinels->nelts;
    }

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    ngx_http_apikey_redis_conn_close(&st->ask, "asked");

    st->asked++;
    ngx_post_event(&st->next, &ngx_posted_events);
}


/* the Sentinel asked did not answer: ask the next one */

static void
ngx_http_apikey_sentinel_next(const char *reason, redisReply *rr)
{
    u_char                       text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    size_t                       len;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    len = (rr != NULL)
          ? (size_t) (ngx_http_apikey_redis_text(text, (u_char *) rr->str,
                                                 rr->len)
                      - text)
          : 0;

    ngx_log_error(NGX_LOG_INFO, st->log, 0,
                  "redis sentinel %V did not name the primary of \"%V\": "
                  "%s%s%*s%s", ngx_http_apikey_sentinel_name(st->asked),
                  &st->conf->sentinel_name, reason, len ? " (\"" : "",
                  len, text, len ? "\")" : "");

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    ngx_http_apikey_redis_conn_close(&st->ask, "no answer");

    st->asked++;

    if (!st->next.posted) {
        ngx_post_event(&st->next, &ngx_posted_events);
    }
}


/* the query's NULL reply goes on to the next Sentinel */

static void
ngx_http_apikey_sentinel_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_sentinel.why = "timed out";
    ngx_http_apikey_redis_conn_close(&ngx_http_apikey_sentinel.ask,
                                     "timed out");
}


static void
ngx_http_apikey_sentinel_ask_event(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t event, const char *reason, redisReply *reply)
{
    /*
     * a closed query is answered through its command's NULL reply, which
     * comes next: it tells why (a failed TLS check, say), unless a timeout
     * said so first
     */

    if (event == NGX_HTTP_APIKEY_REDIS_CONN_CLOSED
        && ngx_http_apikey_sentinel.why == NULL)
    {
        ngx_http_apikey_sentinel.why = reason;
    }

    if (event == NGX_HTTP_APIKEY_REDIS_CONN_PUSH) {
        ngx_http_apikey_redis_conn_close(rc, "a reply no query asked for");
    }
}


/* a connection to Sentinel i, authenticated where a password is set */

static ngx_int_t
ngx_http_apikey_sentinel_connect(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t i, ngx_http_apikey_redis_cmd_t *auth)
{
    size_t                         argvlen[2];
    const char                    *argv[2];
    ngx_addr_t                    *sa;
    ngx_http_apikey_sentinel_t    *st;
    ngx_http_apikey_redis_name_t  *n;

    st = &ngx_http_apikey_sentinel;
    sa = &((ngx_addr_t *) st->conf->sentinels->elts)[i];

    if (st->names && st->names[i].host.len) {
        n = &st->names[i];

        /* the last address found, and a fresh one for the next time */

        sa = n->addr.sockaddr ? &n->addr : NULL;

        (void) ngx_http_apikey_redis_name_resolve(n, st->conf->resolver,
                                        ngx_max(st->conf->timeout, 1000));

        if (sa == NULL) {
            return NGX_ERROR;
        }
    }

    rc->name = sa->name;

#if (NGX_SSL)
    rc->ssl = st->conf->ssl_ctx;
    rc->ssl_verify = st->conf->ssl_verify ? 1 : 0;
    ngx_http_apikey_redis_ssl_name(st->conf, &sa->name, &rc->ssl_name);
#endif

    if (ngx_http_apikey_redis_conn_open(rc, sa->sockaddr, sa->socklen,
                                        st->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (st->conf->sentinel_password.len == 0) {
        return NGX_OK;
    }

    argv[0] = "AUTH";
    argvlen[0] = sizeof("AUTH") - 1;
    argv[1] = (const char *) st->conf->sentinel_password.data;
    argvlen[1] = st->conf->sentinel_password.len;

    if (ngx_http_apikey_redis_conn_argv(rc, 2, argv, argvlen, auth)
        != NGX_OK)
    {
        ngx_http_apikey_redis_conn_close(rc, "cannot send AUTH");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_sentinel_subscribe(ngx_event_t *ev)
{
    size_t                       argvlen[2];
    const char                  *argv[2];
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_http_apikey_sentinel_connect(&st->sub, st->subbed, &st->sub_auth)
        != NGX_OK)
    {
        ngx_http_apikey_sentinel_unsubscribed("cannot connect");
        return;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = "+switch-master";
    argvlen[1] = sizeof("+switch-master") - 1;

    if (ngx_http_apikey_redis_conn_argv(&st->sub, 2, argv, argvlen,
                                        &st->sub_cmd)
        != NGX_OK)
    {
        ngx_http_apikey_redis_conn_close(&st->sub, "cannot subscribe");
    }
}


/* the subscription's confirmation, or its first message */

static void
ngx_http_apikey_sentinel_sub_reply(ngx_http_apikey_redis_cmd_t *cmd,
    redisReply *reply)
{
    if (reply != NULL) {
        ngx_http_apikey_sentinel_message(reply);
    }
}


static void
ngx_http_apikey_sentinel_sub_event(ngx_http_apikey_redis_conn_t *rc,
    ngx_uint_t event, const char *reason, redisReply *reply)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    switch (event) {

    case NGX_HTTP_APIKEY_REDIS_CONN_PUSH:
        ngx_http_apikey_sentinel_message(reply);
        return;

    case NGX_HTTP_APIKEY_REDIS_CONN_EXITING:
        st->exiting = 1;
        ngx_http_apikey_redis_conn_close(rc, "nginx is exiting");
        return;

    default: /* NGX_HTTP_APIKEY_REDIS_CONN_CLOSED */
        ngx_http_apikey_sentinel_unsubscribed(reason);
        return;
    }
}


/* "+switch-master" messages: "<name> <old ip> <old port> <ip> <port>" */

static void
ngx_http_apikey_sentinel_message(redisReply *rr)
{
    u_char                           *p, *last, *host, *port;
    u_char                            text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];
    ngx_http_apikey_sentinel_t       *st;
    ngx_http_apikey_sentinel_addr_t   addr;

    st = &ngx_http_apikey_sentinel;

    if (st->exiting
        || rr->type != REDIS_REPLY_ARRAY
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

    host = p + 1;

    port = ngx_strlchr(host, last, ' ');
    if (port == NULL) {
        goto invalid;
    }

    port++;

    if (ngx_http_apikey_sentinel_address(host, port - 1 - host, port,
                                         last - port, &addr)
        != NGX_OK)
    {
        goto invalid;
    }

    if (st->state == NGX_HTTP_APIKEY_SENTINEL_KNOWN
        && st->primary.len == addr.len
        && ngx_memcmp(st->primary.text, addr.text, addr.len) == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                  "redis primary of \"%V\" switched to %*s",
                  &st->conf->sentinel_name, addr.len, addr.text);

    st->primary = addr;
    st->addr.sockaddr = &st->primary.sockaddr.sockaddr;
    st->addr.socklen = st->primary.socklen;
    st->addr.name.data = st->primary.text;
    st->addr.name.len = st->primary.len;
    st->state = NGX_HTTP_APIKEY_SENTINEL_KNOWN;

    st->switched();

    return;

invalid:

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "redis sentinel sent a bad +switch-master: \"%*s\"",
                  ngx_http_apikey_redis_text(text,
                                             (u_char *) rr->element[2]->str,
                                             rr->element[2]->len) - text,
                  text);
}


/* the subscription is gone: subscribe to the next Sentinel a bit later */

static void
ngx_http_apikey_sentinel_unsubscribed(const char *reason)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

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


/*
 * An address and a port a Sentinel sent, into a socket address: the
 * port is checked as a number before it becomes one of 16 bits, and a
 * host that is not an IPv4 or IPv6 address is refused (no name is
 * resolved in a worker)
 */

static ngx_int_t
ngx_http_apikey_sentinel_address(u_char *host, size_t hlen, u_char *port,
    size_t plen, ngx_http_apikey_sentinel_addr_t *addr)
{
    ngx_int_t             n;
    in_addr_t             in;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    n = ngx_atoi(port, plen);

    if (n < 1 || n > 65535 || hlen == 0 || hlen > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    ngx_memzero(addr, sizeof(ngx_http_apikey_sentinel_addr_t));

    in = ngx_inet_addr(host, hlen);

    if (in != INADDR_NONE) {
        sin = &addr->sockaddr.sockaddr_in;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((in_port_t) n);
        sin->sin_addr.s_addr = in;
        addr->socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(host, hlen,
                              addr->sockaddr.sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        sin6 = &addr->sockaddr.sockaddr_in6;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((in_port_t) n);
        addr->socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        return NGX_ERROR;
    }

    addr->len = ngx_sock_ntop(&addr->sockaddr.sockaddr, addr->socklen,
                              addr->text, NGX_SOCKADDR_STRLEN, 1);

    return NGX_OK;
}


/* the Sentinel the n-th query of the round asks, for logs */

static ngx_str_t *
ngx_http_apikey_sentinel_name(ngx_uint_t n)
{
    ngx_addr_t                  *sa;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;
    sa = st->conf->sentinels->elts;

    return &sa[(st->good + n) % st->conf->sentinels->nelts].name;
}
