
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_tally.h"
#include "ngx_http_apikey_bucket.h"
#include "ngx_http_apikey_org.h"


/*
 * What a check's answer says, from wherever it comes: the gate script's
 * reply (ngx_http_apikey_gate.lua), the replica of apikey_cache and the
 * instance's bucket or lease (ngx_http_apikey_bucket.c); the location's
 * environment and scopes applied to it; and the rate numbers of the
 * headers.
 */


/*
 * How far ahead of now a bucket may be (us): far past any limit's (a
 * burst of 1,000,000 at 1r/m is 6e13), and far enough from the end of
 * int64_t that a time plus it, or the headers' sums, cannot overflow.
 */
#define NGX_HTTP_APIKEY_AHEAD_MAX  (1LL << 53)


static void ngx_http_apikey_sibling(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_cache_conf_t *ccf);
static ngx_uint_t ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope,
    size_t len);
static ngx_int_t ngx_http_apikey_parse_gate(ngx_http_apikey_ctx_t *ctx,
    u_char *data, size_t len);
static ngx_int_t ngx_http_apikey_seconds(double us);
static ngx_int_t ngx_http_apikey_retry(ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_read_org(ngx_http_apikey_ctx_t *ctx,
    redisReply *e);
static void ngx_http_apikey_bucket_policy(ngx_http_apikey_policy_t *pol,
    ngx_int_t rate, ngx_int_t per, ngx_int_t burst, int64_t ahead);
static void ngx_http_apikey_quota_policy(ngx_http_apikey_policy_t *pol,
    int64_t quota, int64_t used, ngx_int_t reset, u_char period,
    ngx_uint_t org);


/*
 * {1} for an unknown key, {code, g} when no bucket was consulted,
 * {code, g, ahead} when one was, {0, g, ahead, n, at} when a lease of n
 * tokens was taken at Redis time at (us)
 */

ngx_int_t
ngx_http_apikey_read_reply(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    redisReply *reply)
{
    u_char                       *p;
    double                        held;
    int64_t                       ahead, until;
    redisReply                  **e;
    ngx_http_apikey_main_conf_t  *akmcf;
    u_char                        text[NGX_HTTP_APIKEY_REDIS_TEXT_LEN];

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (reply == NULL) {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        goto lease;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redis gate script failed: \"%*s\"",
                      ngx_http_apikey_redis_text(text, (u_char *) reply->str,
                                                 reply->len) - text,
                      text);
        ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_REPLY]);
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        goto lease;
    }

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1 || reply->elements > 8
        || reply->elements == 4 || reply->elements == 6
        || e[0]->type != REDIS_REPLY_INTEGER
        || e[0]->integer < NGX_HTTP_APIKEY_OK
        || e[0]->integer > NGX_HTTP_APIKEY_QUOTA_OUT
        || (e[0]->integer == NGX_HTTP_APIKEY_QUOTA_OUT
            && reply->elements < 7))
    {
        goto unexpected;
    }

    ctx->quota_out = (e[0]->integer == NGX_HTTP_APIKEY_QUOTA_OUT);
    ctx->result = ctx->quota_out ? NGX_HTTP_APIKEY_LIMITED
                                 : (ngx_uint_t) e[0]->integer;

    if (reply->elements == 1) {
        if (ctx->result != NGX_HTTP_APIKEY_INVALID) {
            goto unexpected;
        }

        goto lease;
    }

    if (e[1]->type != REDIS_REPLY_STRING
        || (reply->elements >= 3
            && (e[2]->type != REDIS_REPLY_INTEGER || e[2]->integer < 0
                || e[2]->integer > NGX_HTTP_APIKEY_AHEAD_MAX))
        || (reply->elements >= 5
            && (e[3]->type != REDIS_REPLY_INTEGER
                || e[3]->integer < (reply->elements == 5)
                || e[3]->integer > (long long) ctx->lease.want
                || e[4]->type != REDIS_REPLY_INTEGER))
        || (reply->elements >= 7
            && (e[5]->type != REDIS_REPLY_INTEGER || e[5]->integer < -1
                || e[6]->type != REDIS_REPLY_INTEGER || e[6]->integer < 0
                || e[6]->integer > 31 * 86400)))
    {
        goto unexpected;
    }

    /* the identity is kept for variables and logs: out of the reply */

    p = ngx_pnalloc(r->pool, e[1]->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, e[1]->str, e[1]->len);

    if (ngx_http_apikey_parse_gate(ctx, p, e[1]->len) != NGX_OK) {
        goto unexpected;
    }

    if (reply->elements >= 7 && e[5]->integer >= 0) {
        if (ctx->quota == 0) {
            goto unexpected;
        }

        ctx->quota_used = e[5]->integer;
        ctx->quota_reset = (ngx_int_t) e[6]->integer;
    }

    /* the organization's limits, when it has any */

    if (reply->elements == 8
        && ngx_http_apikey_read_org(ctx, e[7]) != NGX_OK)
    {
        goto unexpected;
    }

    /*
     * a check that came to its bucket consulted its organization: the
     * replica learns whether it has limits
     */

    if (ctx->cached && !ctx->lease.sibling
        && (ctx->result == NGX_HTTP_APIKEY_OK
            || ctx->result == NGX_HTTP_APIKEY_LIMITED))
    {
        ngx_http_apikey_org_learn(&akmcf->cache, &ctx->org,
                                  reply->elements == 8, 0);
    }

    if (reply->elements >= 3) {
        ahead = e[2]->integer;

        if (reply->elements >= 5 && e[3]->integer > 0) {
            ctx->leased = (ngx_uint_t) e[3]->integer;
            ctx->leased_at = e[4]->integer;
        }

        if (ctx->leased > 1 && ctx->rate > 0) {

            /* the tokens leased past this request's count as the bucket's */

            held = (ctx->leased - 1) * (double) ctx->per * 1000000
                   / ctx->rate;

            ahead = (held < (double) ahead) ? ahead - (int64_t) held : 0;
        }

        ngx_http_apikey_bucket_headers(ctx, ahead);

        if (ctx->result == NGX_HTTP_APIKEY_LIMITED) {

            /* until every policy that refused it has room again */

            ctx->retry_after = ngx_http_apikey_retry(ctx);
        }

        until = 0;

        if (ctx->quota_out && ctx->quota_used >= ctx->quota) {

            /*
             * nothing gives units back before the period ends: the
             * replica answers the key 429 until then, a second short,
             * since the seconds Redis told are whole ones
             */

            if (ctx->quota_reset > 1) {
                until = ngx_http_apikey_cache_now()
                        + (int64_t) (ctx->quota_reset - 1) * 1000000;
            }
        }

        if (ctx->cached) {

            /*
             * as of the reply, the latest time Redis can have answered:
             * the instance never asks again before the token is due, at
             * the cost of answering 429 up to half a round trip late
             */

            ngx_http_apikey_bucket_note(&akmcf->cache, &ctx->rec,
                                        ngx_http_apikey_cache_now()
                                        + e[2]->integer, until);
        }
    }

lease:

    if (ctx->cached && ctx->lease.want) {

        /* no reply, and nothing sent: what the ask gave back is kept */

        ngx_http_apikey_bucket_grant(&akmcf->cache, &ctx->rec, &ctx->lease,
                                     ctx->leased,
                                     (reply == NULL
                                      && !ngx_http_apikey_redis_sent())
                                     ? 0 : ngx_max(ctx->leased_at, 1));
    }

    if (ctx->cached && ctx->lease.sibling
        && ctx->result == NGX_HTTP_APIKEY_LIMITED)
    {
        ngx_http_apikey_sibling(ctx, &akmcf->cache);
    }

    return NGX_OK;

unexpected:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "unexpected reply of the redis gate script");
    ngx_http_apikey_metric_add(errors[NGX_HTTP_APIKEY_M_REPLY]);

    ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;

    goto lease;
}


/*
 * A check sent while its instance asked for the key's lease found the
 * bucket empty, maybe emptied by that lease: it passes with a token of
 * the lease if the instance has one by now.  Redis counted nothing of it
 * (ngx_http_apikey_gate.lua): the lease or the tally counts what it is
 * answered.
 */

static void
ngx_http_apikey_sibling(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_cache_conf_t *ccf)
{
    int64_t    ahead;
    ngx_int_t  rc;

    rc = ngx_http_apikey_bucket_sibling(ccf, &ctx->rec, &ahead);

    if (rc == NGX_OK) {

        /* counted with the lease */

        ctx->result = NGX_HTTP_APIKEY_OK;
        ctx->retry_after = 0;
        ngx_http_apikey_bucket_headers(ctx, ahead);
        return;
    }

    /*
     * the lease is still on its way (granted at another worker, busy):
     * asked once more, three times at most
     */

    if (rc == NGX_AGAIN && ctx->resent < 3) {
        ctx->resend = 1;
        ctx->resent++;
        return;
    }

    ngx_http_apikey_tally_add(ctx->hash, NGX_HTTP_APIKEY_TALLY_LIMITED);
}


/*
 * The replica's answer (apikey_cache), as the gate script would give it:
 * NGX_OK with ctx->result and what the script would have told, or
 * NGX_DECLINED, ctx untouched but for what Redis is to be asked, when
 * Redis must answer.  Online it answers everything but a key whose bucket
 * may hold a token; offline, with Redis unreachable, everything, from
 * the instance's own buckets.  What Redis would have recorded of the
 * check (use, last use) goes to the worker's tally.
 */

ngx_int_t
ngx_http_apikey_local(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx,
    ngx_uint_t offline)
{
    int64_t                       ahead;
    ngx_int_t                     rc;
    ngx_str_t                     g;
    ngx_uint_t                    result, limited, spent;
    ngx_http_apikey_ctx_t         local;
    ngx_http_apikey_main_conf_t  *akmcf;

    akmcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    rc = ngx_http_apikey_cache_find(&akmcf->cache, r->pool, ctx->bin,
                                    offline, &result, &g, &ctx->rec);
    if (rc != NGX_OK) {
        return rc;
    }

    if (result == NGX_HTTP_APIKEY_INVALID) {
        ctx->result = result;
        ngx_http_apikey_metric_add(replica_hits);
        return NGX_OK;
    }

    local = *ctx;

    /* g is the replica's copy, in the request's pool */

    if (ngx_http_apikey_parse_gate(&local, g.data, g.len) != NGX_OK) {
        return NGX_DECLINED;
    }

    local.result = result;
    spent = 0;

    /* the environment and the scopes, as after a redirect */

    ngx_http_apikey_recheck(&local, local.conf);

    /*
     * a key with a quota passes only where Redis counts it: only an
     * instance cut off from Redis lets it through on its own bucket, and
     * its tally then uses the quota
     */

    if (local.result == NGX_HTTP_APIKEY_OK && !offline
        && (local.quota
            || ngx_http_apikey_org_free(&akmcf->cache, &local.org)
               != NGX_OK))
    {

        /*
         * ... unless Redis said its quota is used up until the period
         * ends; a key of an organization with limits (or one the
         * instance knows nothing of yet) likewise goes to Redis, which
         * takes from the organization's too
         */

        if (local.quota
            && ngx_http_apikey_bucket_quota_out(&akmcf->cache, &ctx->rec,
                                                &ahead)
               == NGX_OK)
        {
            local.result = NGX_HTTP_APIKEY_LIMITED;
            local.quota_out = 1;
            local.quota_used = local.quota;
            local.quota_reset = ngx_http_apikey_seconds((double) ahead) + 1;
            local.retry_after = local.quota_reset;

            *ctx = local;

            ngx_http_apikey_metric_add(replica_hits);
            ngx_http_apikey_tally_add(ctx->hash,
                                      NGX_HTTP_APIKEY_TALLY_LIMITED);
            return NGX_OK;
        }

        ctx->cached = 1;

        return NGX_DECLINED;
    }

    if (local.result == NGX_HTTP_APIKEY_OK && local.rate > 0) {
        ctx->cached = 1;

        rc = ngx_http_apikey_bucket_take(&akmcf->cache, &ctx->rec, offline,
                                         &limited, &ahead, &spent,
                                         &ctx->lease);
        if (rc != NGX_OK) {
            return rc;
        }

        if (limited) {
            local.result = NGX_HTTP_APIKEY_LIMITED;
        }

        ngx_http_apikey_bucket_headers(&local, ahead);
    }

    *ctx = local;

    ngx_http_apikey_metric_add(replica_hits);

    if (spent) {

        /* a leased token: the lease counts it */

        return NGX_OK;
    }

    /* what the gate script would have recorded: use, last use */

    ngx_http_apikey_tally_add(ctx->hash,
                              (ctx->result == NGX_HTTP_APIKEY_OK)
                              ? NGX_HTTP_APIKEY_TALLY_ALLOWED
                              : (ctx->result == NGX_HTTP_APIKEY_LIMITED)
                                ? NGX_HTTP_APIKEY_TALLY_LIMITED
                                : NGX_HTTP_APIKEY_TALLY_REFUSED);

    return NGX_OK;
}


void
ngx_http_apikey_recheck(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *akcf)
{
    u_char  *p, *last, *q;

    ctx->conf = akcf;

    if (ctx->result == NGX_HTTP_APIKEY_UNVERIFIED
        && akcf->fail_mode == NGX_HTTP_APIKEY_FAIL_CLOSED)
    {
        ctx->result = NGX_HTTP_APIKEY_UNAVAILABLE;
        return;
    }

    if (ctx->result != NGX_HTTP_APIKEY_OK) {
        return;
    }

    if (akcf->environment.len
        && (akcf->environment.len != ctx->environment.len
            || ngx_strncmp(akcf->environment.data, ctx->environment.data,
                           akcf->environment.len)
               != 0))
    {
        ctx->result = NGX_HTTP_APIKEY_ENVIRONMENT;
        return;
    }

    p = akcf->scopes.data;
    last = p + akcf->scopes.len;

    while (p < last) {
        if (*p == ' ') {
            p++;
            continue;
        }

        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if (!ngx_http_apikey_has_scope(&ctx->scopes, p, q - p)) {
            ctx->result = NGX_HTTP_APIKEY_SCOPE;
            return;
        }

        p = q;
    }
}


static ngx_uint_t
ngx_http_apikey_has_scope(ngx_str_t *scopes, u_char *scope, size_t len)
{
    u_char  *p, *last, *q;

    if (scopes->len == 0) {
        return 0;
    }

    p = scopes->data;
    last = p + scopes->len;

    while (p < last) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            q = last;
        }

        if ((size_t) (q - p) == len && ngx_strncmp(p, scope, len) == 0) {
            return 1;
        }

        p = q + 1;
    }

    return 0;
}


/*
 * The secret's "g" field (docs/data-model.md): a line of check values
 * ending with the environment and the scopes, then id, org, prefix and
 * name, one per line, the key's meta if it has any and its quota if it has
 * one (after its meta, "{}" then); parsed in place (ctx points into data,
 * which must live as long as the request).
 */

static ngx_int_t
ngx_http_apikey_parse_gate(ngx_http_apikey_ctx_t *ctx, u_char *data,
    size_t len)
{
    off_t        quota;
    u_char      *p, *last, *q;
    ngx_int_t    n[3];
    ngx_str_t   *lines[4];
    ngx_uint_t   i;

    lines[0] = &ctx->id;
    lines[1] = &ctx->org;
    lines[2] = &ctx->prefix;
    lines[3] = &ctx->name;

    p = data;
    last = p + len;

    /* rev exp grace rate per burst: nginx needs the last three */

    for (i = 0; i < 6; i++) {
        q = ngx_strlchr(p, last, ' ');
        if (q == NULL) {
            return NGX_DECLINED;
        }

        if (i >= 3) {
            n[i - 3] = ngx_atoi(p, q - p);
            if (n[i - 3] == NGX_ERROR) {
                return NGX_DECLINED;
            }
        }

        p = q + 1;
    }

    ctx->rate = n[0];
    ctx->per = n[1];
    ctx->burst_size = n[2];

    q = ngx_strlchr(p, last, '\n');
    if (q == NULL) {
        return NGX_DECLINED;
    }

    ctx->environment.data = p;

    p = ngx_strlchr(p, q, ' ');

    if (p == NULL) {
        ctx->environment.len = q - ctx->environment.data;

    } else {
        ctx->environment.len = p - ctx->environment.data;
        ctx->scopes.data = p + 1;
        ctx->scopes.len = q - p - 1;
    }

    for (i = 0; i < 4; i++) {
        p = q + 1;

        if (p > last) {
            return NGX_DECLINED;
        }

        q = ngx_strlchr(p, last, '\n');

        if (q == NULL) {
            if (i < 3) {
                return NGX_DECLINED;
            }

            q = last;
        }

        lines[i]->data = p;
        lines[i]->len = q - p;
    }

    /* meta, compact JSON; a key without it has {} */

    ctx->quota = 0;

    if (q == last) {
        ngx_str_set(&ctx->meta, "{}");
        return NGX_OK;
    }

    p = q + 1;
    q = ngx_strlchr(p, last, '\n');

    ctx->meta.data = p;
    ctx->meta.len = (q ? q : last) - p;

    if (q == NULL) {
        return NGX_OK;
    }

    /* the quota, "<limit> <d|m>", after the meta (a key with one has it) */

    p = q + 1;

    if (last - p < 3 || (last[-1] != 'd' && last[-1] != 'm')
        || last[-2] != ' ')
    {
        return NGX_DECLINED;
    }

    quota = ngx_atoof(p, last - 2 - p);

    if (quota <= 0) {
        return NGX_DECLINED;
    }

    ctx->quota = quota;
    ctx->quota_period = last[-1];

    return NGX_OK;
}


/*
 * The rate headers from the key's limit and how far (microseconds) the
 * bucket's theoretical arrival time is ahead of now: the bucket holds
 * burst - ahead / step tokens (docs/data-model.md).
 */

void
ngx_http_apikey_bucket_headers(ngx_http_apikey_ctx_t *ctx, int64_t ahead)
{
    ngx_http_apikey_policy_t  pol;

    if (ctx->rate <= 0 || ctx->per <= 0 || ctx->burst_size <= 0) {
        return;
    }

    ngx_http_apikey_bucket_policy(&pol, ctx->rate, ctx->per,
                                  ctx->burst_size, ahead);

    ctx->burst = ctx->burst_size;
    ctx->remaining = (ngx_int_t) pol.remaining;
    ctx->reset = pol.reset;
    ctx->window = pol.window;
    ctx->next = pol.next;

    if (ctx->result == NGX_HTTP_APIKEY_LIMITED) {
        ctx->retry_after = ngx_max(ctx->next, 1);
    }
}


/*
 * A bucket's numbers: whole tokens left, seconds until one more (0 when
 * full), until full, and to refill it all; whatever the limit a record
 * holds, no sum or cast overflows
 */

static void
ngx_http_apikey_bucket_policy(ngx_http_apikey_policy_t *pol, ngx_int_t rate,
    ngx_int_t per, ngx_int_t burst, int64_t ahead)
{
    double  step, tokens;

    if (ahead < 0) {
        ahead = 0;
    }

    step = (double) per * 1000000 / rate;
    tokens = burst - ahead / step;

    pol->quota = burst;
    pol->remaining = (tokens >= burst) ? burst
                     : (tokens > 0) ? (ngx_int_t) (tokens + 0.001) : 0;
    pol->reset = (ngx_int_t) (ahead / 1000000 + (ahead % 1000000 != 0));
    pol->window = ngx_http_apikey_seconds(burst * step);

    /* one more token once ahead has come down to burst - remaining - 1 */

    pol->next = (pol->remaining < burst)
                ? ngx_http_apikey_seconds(
                      ahead - (burst - pol->remaining - 1) * step)
                : 0;
}


static void
ngx_http_apikey_quota_policy(ngx_http_apikey_policy_t *pol, int64_t quota,
    int64_t used, ngx_int_t reset, u_char period, ngx_uint_t org)
{
    ngx_tm_t  tm;

    static ngx_uint_t  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                   30, 31 };

    if (period == 'd') {
        if (org) {
            ngx_str_set(&pol->name, "org-day");
        } else {
            ngx_str_set(&pol->name, "day");
        }

        pol->window = 86400;

    } else {
        if (org) {
            ngx_str_set(&pol->name, "org-month");
        } else {
            ngx_str_set(&pol->name, "month");
        }

        /* the month's length: the month the period's last second is in */

        ngx_gmtime(ngx_time() + reset - 1, &tm);

        pol->window = 86400 * (mdays[tm.ngx_tm_mon - 1]
                               + (tm.ngx_tm_mon == 2
                                  && tm.ngx_tm_year % 4 == 0
                                  && (tm.ngx_tm_year % 100 != 0
                                      || tm.ngx_tm_year % 400 == 0)));
    }

    pol->quota = quota;
    pol->remaining = ngx_max(quota - used, 0);
    pol->next = reset;
    pol->reset = reset;
}


ngx_uint_t
ngx_http_apikey_policies(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_policy_t *pol)
{
    ngx_uint_t  n;

    n = 0;

    if (ctx->burst >= 0) {
        ngx_str_set(&pol[n].name, "default");
        pol[n].quota = ctx->burst;
        pol[n].window = ctx->window;
        pol[n].remaining = ctx->remaining;
        pol[n].next = ctx->next;
        pol[n].reset = ctx->reset;
        n++;
    }

    if (ctx->org_rate > 0 && ctx->org_per > 0 && ctx->org_burst > 0) {
        ngx_http_apikey_bucket_policy(&pol[n], ctx->org_rate, ctx->org_per,
                                      ctx->org_burst, ctx->org_ahead);
        ngx_str_set(&pol[n].name, "org");
        n++;
    }

    if (ctx->quota > 0 && ctx->quota_used >= 0) {
        ngx_http_apikey_quota_policy(&pol[n], ctx->quota, ctx->quota_used,
                                     ctx->quota_reset, ctx->quota_period, 0);
        n++;
    }

    if (ctx->org_quota > 0) {
        ngx_http_apikey_quota_policy(&pol[n], ctx->org_quota, ctx->org_used,
                                     ctx->org_reset, ctx->org_period, 1);
        n++;
    }

    /* the key's bucket is "default" only while it is the one policy */

    if (n > 1 && ctx->burst >= 0) {
        ngx_str_set(&pol[0].name, "key");
    }

    return n;
}


/*
 * A 429's Retry-After: the seconds until every policy that has nothing
 * left has room again, at least 1
 */

static ngx_int_t
ngx_http_apikey_retry(ngx_http_apikey_ctx_t *ctx)
{
    ngx_int_t                 s;
    ngx_uint_t                i, n;
    ngx_http_apikey_policy_t  pol[NGX_HTTP_APIKEY_POLICIES];

    n = ngx_http_apikey_policies(ctx, pol);
    s = 1;

    for (i = 0; i < n; i++) {
        if (pol[i].remaining == 0 && pol[i].next > s) {
            s = pol[i].next;
        }
    }

    return s;
}


/*
 * The organization's limits as the gate script tells them: "rate per
 * burst ahead quota period used ends", 0 and "-" for what it has not
 */

static ngx_int_t
ngx_http_apikey_read_org(ngx_http_apikey_ctx_t *ctx, redisReply *e)
{
    u_char      *p, *last, *q;
    int64_t      v[8];
    ngx_uint_t   i;

    if (e->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    p = (u_char *) e->str;
    last = p + e->len;

    for (i = 0; i < 8; i++) {
        q = ngx_strlchr(p, last, ' ');

        if (q == NULL) {
            if (i < 7) {
                return NGX_ERROR;
            }

            q = last;
        }

        if (i == 5) {
            if (q - p != 1 || (*p != 'd' && *p != 'm' && *p != '-')) {
                return NGX_ERROR;
            }

            v[i] = *p;

        } else {
            v[i] = ngx_atoof(p, q - p);

            if (v[i] < 0) {
                return NGX_ERROR;
            }
        }

        p = q + 1;
    }

    if (v[0] > NGX_MAX_INT32_VALUE || v[1] > NGX_MAX_INT32_VALUE
        || v[2] > NGX_MAX_INT32_VALUE || v[3] > NGX_HTTP_APIKEY_AHEAD_MAX
        || v[7] > 31 * 86400 || (v[4] > 0 && v[5] == '-'))
    {
        return NGX_ERROR;
    }

    ctx->org_rate = (ngx_int_t) v[0];
    ctx->org_per = (ngx_int_t) v[1];
    ctx->org_burst = (ngx_int_t) v[2];
    ctx->org_ahead = v[3];
    ctx->org_quota = v[4];
    ctx->org_period = (u_char) v[5];
    ctx->org_used = v[6];
    ctx->org_reset = (ngx_int_t) v[7];

    return NGX_OK;
}


/* whole seconds, rounded up, of a non-negative number of microseconds */

static ngx_int_t
ngx_http_apikey_seconds(double us)
{
    ngx_int_t  s;

    us = us / 1000000 - 1e-9;

    if (us <= 0) {
        return 0;
    }

    if (us >= (double) NGX_MAX_INT_T_VALUE) {
        return NGX_MAX_INT_T_VALUE;
    }

    s = (ngx_int_t) us;

    return (s < us) ? s + 1 : s;
}
