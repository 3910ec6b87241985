
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_redis_conn.h"


/*
 * hiredis's reply parser with object functions of our own: a reply's
 * headers announce how many elements an array holds before any of them
 * comes, and hiredis's own functions allocate that at once (a header of
 * "*2147483647" asks for 16 GB).  Ours count what a reply has made so far
 * against a budget (the reader's privdata) and refuse past it, which
 * hiredis reports as a reader error: the connection is then closed.  The
 * objects are hiredis's redisReply, made as hiredis makes them, so that
 * freeReplyObject() could free them too.
 */


static void *ngx_http_apikey_redis_reader_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_apikey_redis_reader_array(const redisReadTask *task,
    int elements);
static void *ngx_http_apikey_redis_reader_integer(const redisReadTask *task,
    long long value);
static void *ngx_http_apikey_redis_reader_nil(const redisReadTask *task);
static redisReply *ngx_http_apikey_redis_reader_object(
    const redisReadTask *task, int type, size_t size);


static redisReplyObjectFunctions  ngx_http_apikey_redis_reader_fn = {
    ngx_http_apikey_redis_reader_string,
    ngx_http_apikey_redis_reader_array,
    ngx_http_apikey_redis_reader_integer,
    ngx_http_apikey_redis_reader_nil,
    ngx_http_apikey_redis_reply_free
};


redisReader *
ngx_http_apikey_redis_reader_create(size_t *budget)
{
    redisReader  *reader;

    reader = redisReaderCreateWithFunctions(&ngx_http_apikey_redis_reader_fn);
    if (reader == NULL) {
        return NULL;
    }

    reader->privdata = budget;

    return reader;
}


void
ngx_http_apikey_redis_reply_free(void *reply)
{
    size_t       i;
    redisReply  *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ARRAY && rr->element != NULL) {
        for (i = 0; i < rr->elements; i++) {
            ngx_http_apikey_redis_reply_free(rr->element[i]);
        }

        free(rr->element);
    }

    free(rr->str);
    free(rr);
}


/*
 * A new object, charged to the reply's budget, and hung into its parent
 * array as hiredis's own functions do.
 */

static redisReply *
ngx_http_apikey_redis_reader_object(const redisReadTask *task, int type,
    size_t size)
{
    size_t      *budget;
    redisReply  *rr, *parent;

    budget = task->privdata;

    size += sizeof(redisReply);

    if (budget == NULL || *budget < size) {
        return NULL;
    }

    rr = calloc(1, sizeof(redisReply));
    if (rr == NULL) {
        return NULL;
    }

    *budget -= size;

    rr->type = type;

    if (task->parent != NULL) {
        parent = task->parent->obj;
        parent->element[task->idx] = rr;
    }

    return rr;
}


static void *
ngx_http_apikey_redis_reader_string(const redisReadTask *task, char *str,
    size_t len)
{
    redisReply  *rr;

    if (len > NGX_HTTP_APIKEY_REDIS_STRING_MAX) {
        return NULL;
    }

    rr = ngx_http_apikey_redis_reader_object(task, task->type, len + 1);
    if (rr == NULL) {
        return NULL;
    }

    rr->str = malloc(len + 1);
    if (rr->str == NULL) {
        if (task->parent != NULL) {
            ((redisReply *) task->parent->obj)->element[task->idx] = NULL;
        }

        free(rr);
        return NULL;
    }

    ngx_memcpy(rr->str, str, len);
    rr->str[len] = '\0';
    rr->len = len;

    return rr;
}


static void *
ngx_http_apikey_redis_reader_array(const redisReadTask *task, int elements)
{
    redisReply  *rr;

    if (elements < 0 || elements > NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX) {
        return NULL;
    }

    rr = ngx_http_apikey_redis_reader_object(task, REDIS_REPLY_ARRAY,
                                           elements * sizeof(redisReply *));
    if (rr == NULL) {
        return NULL;
    }

    if (elements > 0) {
        rr->element = calloc(elements, sizeof(redisReply *));
        if (rr->element == NULL) {
            if (task->parent != NULL) {
                ((redisReply *) task->parent->obj)->element[task->idx] = NULL;
            }

            free(rr);
            return NULL;
        }
    }

    rr->elements = elements;

    return rr;
}


static void *
ngx_http_apikey_redis_reader_integer(const redisReadTask *task,
    long long value)
{
    redisReply  *rr;

    rr = ngx_http_apikey_redis_reader_object(task, REDIS_REPLY_INTEGER, 0);
    if (rr == NULL) {
        return NULL;
    }

    rr->integer = value;

    return rr;
}


static void *
ngx_http_apikey_redis_reader_nil(const redisReadTask *task)
{
    return ngx_http_apikey_redis_reader_object(task, REDIS_REPLY_NIL, 0);
}


/*
 * Text a server sent, for a log line: printable ASCII as is, anything
 * else as \xHH, at most NGX_HTTP_APIKEY_REDIS_TEXT_MAX bytes of it, so
 * that no reply can forge or flood log lines.  buf holds 4 bytes per
 * byte of text plus 3; returns the end of what was written.
 */

u_char *
ngx_http_apikey_redis_text(u_char *buf, u_char *text, size_t len)
{
    u_char         c, *p;
    size_t         i;
    static u_char  hex[] = "0123456789abcdef";

    p = buf;

    for (i = 0; i < len && i < NGX_HTTP_APIKEY_REDIS_TEXT_MAX; i++) {
        c = text[i];

        if (c >= 0x20 && c < 0x7f && c != '\\') {
            *p++ = c;
            continue;
        }

        *p++ = '\\';
        *p++ = 'x';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0xf];
    }

    if (len > NGX_HTTP_APIKEY_REDIS_TEXT_MAX) {
        *p++ = '.';
        *p++ = '.';
        *p++ = '.';
    }

    return p;
}
