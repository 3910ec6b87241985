
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: what a worker makes of Sentinels and of the server
 * they name.  The two files are included to reach their static
 * functions: the replies to SENTINEL MASTER over rounds of one to three
 * Sentinels (ngx_http_apikey_redis_sentinel.c), +switch-master messages,
 * the address and port a Sentinel sends, a Sentinel's AUTH, and the
 * handshake's replies of ngx_http_apikey_redis_link.c (AUTH, SELECT,
 * ROLE, PING).  No
 * connection is made: the ones these would close are not open.
 *
 * Asserted: an address taken is one the Sentinel sent, of a port from 1
 * to 65535 as it was written; the primary the worker follows is such an
 * address; a round asks each Sentinel once; a server's text is logged
 * escaped (the log of fuzz_nginx.c).
 */


#include "ngx_http_apikey_redis_sentinel.c"
#include "ngx_http_apikey_redis_link.c"

#include "fuzz_nginx.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void ngx_http_apikey_fuzz_found(void);
static void ngx_http_apikey_fuzz_switched(void);
static void ngx_http_apikey_fuzz_master(ngx_http_apikey_fuzz_in_t *in);
static void ngx_http_apikey_fuzz_address(ngx_http_apikey_fuzz_in_t *in);
static void ngx_http_apikey_fuzz_handshake(ngx_http_apikey_fuzz_in_t *in);
static void ngx_http_apikey_fuzz_taken(ngx_http_apikey_sentinel_addr_t *addr);


static ngx_uint_t  ngx_http_apikey_fuzz_told;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_uint_t                     i, b, n;
    redisReply                    *reply;
    ngx_addr_t                    *sa;
    ngx_pool_t                    *pool;
    ngx_http_apikey_redis_t       *rd;
    ngx_http_apikey_fuzz_in_t      in;
    ngx_http_apikey_sentinel_t    *st;
    ngx_http_apikey_redis_conf_t  *rcf;

    ngx_http_apikey_fuzz_init();

    in.pos = data;
    in.last = data + size;

    pool = ngx_create_pool(4096, &ngx_http_apikey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    rcf = ngx_pcalloc(pool, sizeof(ngx_http_apikey_redis_conf_t));
    if (rcf == NULL) {
        abort();
    }

    b = ngx_http_apikey_fuzz_byte(&in);
    n = 1 + (b >> 1) % 3;

    if (b & 1) {
        ngx_str_set(&rcf->sentinel_name, "mymaster");

    } else {
        ngx_str_set(&rcf->sentinel_name, "m");
    }

    ngx_str_set(&rcf->address, "sentinel");
    rcf->timeout = 100;

    rcf->sentinels = ngx_array_create(pool, n, sizeof(ngx_addr_t));
    if (rcf->sentinels == NULL) {
        abort();
    }

    sa = ngx_array_push_n(rcf->sentinels, n);
    if (sa == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        ngx_memzero(&sa[i], sizeof(ngx_addr_t));
        ngx_str_set(&sa[i].name, "127.0.0.1:26379");
    }

    ngx_http_apikey_sentinel_init(rcf, &ngx_http_apikey_fuzz_log,
                                  ngx_http_apikey_fuzz_found,
                                  ngx_http_apikey_fuzz_switched);

    st = &ngx_http_apikey_sentinel;

    /* done() subscribes only when no subscription is under way */

    st->resubscribe.timer_set = 1;

    rd = &ngx_http_apikey_redis[0];

    ngx_memzero(rd, sizeof(ngx_http_apikey_redis_t));

    rd->conf = rcf;
    rd->name = "gate";
    rd->log = &ngx_http_apikey_fuzz_log;
    rd->conn.data = rd;
    ngx_str_set(&rd->conn.name, "127.0.0.1:6379");
    ngx_queue_init(&rd->waiting);
    ngx_queue_init(&rd->conn.cmds);

    rd->auth.handler = ngx_http_apikey_redis_auth_reply;
    rd->select.handler = ngx_http_apikey_redis_select_reply;
    rd->role.handler = ngx_http_apikey_redis_role_reply;
    rd->ping.handler = ngx_http_apikey_redis_ping_reply;

    while (in.pos < in.last) {

        b = ngx_http_apikey_fuzz_byte(&in);

        switch (b % 4) {

        case 0:
            ngx_http_apikey_fuzz_master(&in);
            break;

        case 1:
            reply = ngx_http_apikey_fuzz_reply(&in);

            if (reply != NULL) {
                n = ngx_http_apikey_fuzz_told;

                st->sub.handler(&st->sub, NGX_HTTP_APIKEY_REDIS_CONN_PUSH,
                                NULL, reply);

                if (ngx_http_apikey_fuzz_told != n) {
                    ngx_http_apikey_fuzz_taken(&st->primary);
                }

                ngx_http_apikey_redis_reply_free(reply);
            }

            break;

        case 2:
            ngx_http_apikey_fuzz_address(&in);
            break;

        default:
            ngx_http_apikey_fuzz_handshake(&in);
            break;
        }

        if (st->asked > rcf->sentinels->nelts) {
            abort();
        }

        if (st->state == NGX_HTTP_APIKEY_SENTINEL_KNOWN
            && (st->addr.sockaddr != &st->primary.sockaddr.sockaddr
                || st->addr.name.data != st->primary.text))
        {
            abort();
        }
    }

    if (st->next.posted) {
        ngx_delete_posted_event(&st->next);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_http_apikey_fuzz_found(void)
{
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (st->state == NGX_HTTP_APIKEY_SENTINEL_KNOWN) {
        ngx_http_apikey_fuzz_taken(&st->primary);
    }
}


static void
ngx_http_apikey_fuzz_switched(void)
{
    ngx_http_apikey_fuzz_told++;
}


/*
 * A Sentinel's answer to SENTINEL MASTER (or none: the query timed out
 * or its connection closed), in a round that asks each Sentinel once
 */

static void
ngx_http_apikey_fuzz_master(ngx_http_apikey_fuzz_in_t *in)
{
    ngx_addr_t                  *addr;
    redisReply                  *reply;
    ngx_http_apikey_sentinel_t  *st;

    st = &ngx_http_apikey_sentinel;

    if (!st->asking) {

        /* a round begins, or the primary known is asked for */

        if (ngx_http_apikey_sentinel_primary(&addr) != NGX_AGAIN) {
            ngx_http_apikey_sentinel_forget();
            (void) ngx_http_apikey_sentinel_primary(&addr);
        }
    }

    if (st->next.posted) {
        ngx_delete_posted_event(&st->next);
    }

    reply = (ngx_http_apikey_fuzz_byte(in) & 1)
            ? ngx_http_apikey_fuzz_reply(in) : NULL;

    if (reply == NULL) {
        st->why = "timed out";
    }

    st->ask_master.handler(&st->ask_master, reply);

    ngx_http_apikey_redis_reply_free(reply);

    if (st->next.posted) {
        ngx_delete_posted_event(&st->next);
    }

    /* the next Sentinel, or the round's end */

    if (st->asked == st->conf->sentinels->nelts) {
        ngx_http_apikey_sentinel_ask(&st->next);
    }
}


/* host and port as a Sentinel sends them */

static void
ngx_http_apikey_fuzz_address(ngx_http_apikey_fuzz_in_t *in)
{
    ngx_int_t                         n;
    ngx_str_t                         host, port;
    ngx_http_apikey_sentinel_addr_t   addr;

    host = ngx_http_apikey_fuzz_bytes(in, ngx_http_apikey_fuzz_byte(in) % 64);
    port = ngx_http_apikey_fuzz_bytes(in, ngx_http_apikey_fuzz_byte(in) % 12);

    if (ngx_http_apikey_sentinel_address(host.data, host.len, port.data,
                                         port.len, &addr)
        != NGX_OK)
    {
        return;
    }

    n = ngx_atoi(port.data, port.len);

    if (n < 1 || n > 65535) {
        abort();
    }

    ngx_http_apikey_fuzz_taken(&addr);

    if (ngx_inet_get_port(&addr.sockaddr.sockaddr) != (in_port_t) n) {
        abort();
    }
}


/* the handshake's replies, on a connection that is not open */

static void
ngx_http_apikey_fuzz_handshake(ngx_http_apikey_fuzz_in_t *in)
{
    ngx_uint_t                    b;
    redisReply                   *reply;
    ngx_http_apikey_redis_t      *rd;
    ngx_http_apikey_redis_cmd_t  *cmd;

    rd = &ngx_http_apikey_redis[0];

    b = ngx_http_apikey_fuzz_byte(in);

    switch (b % 5) {
    case 0:
        cmd = &rd->auth;
        break;
    case 1:
        cmd = &rd->select;
        break;
    case 2:
        cmd = &rd->role;
        break;
    case 3:
        cmd = &rd->ping;
        break;
    default:
        cmd = &ngx_http_apikey_sentinel.ask_auth;
        break;
    }

    rd->failed = (b >> 3) & 1;

    reply = ngx_http_apikey_fuzz_reply(in);

    cmd->handler(cmd, reply);

    if (cmd == &rd->role && rd->replicas > NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX)
    {
        abort();
    }

    ngx_http_apikey_redis_reply_free(reply);
}


/* an address taken: of a port in range, and written as it is */

static void
ngx_http_apikey_fuzz_taken(ngx_http_apikey_sentinel_addr_t *addr)
{
    in_port_t  port;
    u_char     text[NGX_SOCKADDR_STRLEN];

    if (addr->sockaddr.sockaddr.sa_family != AF_INET
        && addr->sockaddr.sockaddr.sa_family != AF_INET6)
    {
        abort();
    }

    port = ngx_inet_get_port(&addr->sockaddr.sockaddr);

    if (port == 0 || addr->len == 0 || addr->len > NGX_SOCKADDR_STRLEN
        || addr->len != ngx_sock_ntop(&addr->sockaddr.sockaddr, addr->socklen,
                                      text, NGX_SOCKADDR_STRLEN, 1)
        || ngx_memcmp(text, addr->text, addr->len) != 0)
    {
        abort();
    }
}
