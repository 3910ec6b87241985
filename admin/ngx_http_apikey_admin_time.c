
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_admin.h"


static ngx_int_t ngx_http_apikey_admin_digits(u_char *p, size_t n);


/*
 * RFC 3339: 2030-01-31T12:00:00Z, fractions and offsets allowed;
 * NGX_ERROR if invalid
 */

time_t
ngx_http_apikey_admin_parse_time(u_char *p, size_t len)
{
    u_char     *last;
    time_t      t;
    ngx_int_t   year, month, day, hour, min, sec, off, oh, om, days, y, era;
    ngx_int_t   yoe, doy, doe, dim;

    static ngx_int_t  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                  31 };

    last = p + len;

    if (len < 20 || p[4] != '-' || p[7] != '-'
        || (p[10] != 'T' && p[10] != 't')
        || p[13] != ':' || p[16] != ':')
    {
        return NGX_ERROR;
    }

    year = ngx_http_apikey_admin_digits(p, 4);
    month = ngx_http_apikey_admin_digits(p + 5, 2);
    day = ngx_http_apikey_admin_digits(p + 8, 2);
    hour = ngx_http_apikey_admin_digits(p + 11, 2);
    min = ngx_http_apikey_admin_digits(p + 14, 2);
    sec = ngx_http_apikey_admin_digits(p + 17, 2);

    if (year < 1970 || year > 9999 || month < 1 || month > 12
        || day < 1 || hour < 0 || hour > 23 || min < 0 || min > 59
        || sec < 0 || sec > 60)
    {
        return NGX_ERROR;
    }

    dim = mdays[month - 1];

    if (month == 2
        && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
    {
        dim = 29;
    }

    if (day > dim) {
        return NGX_ERROR;
    }

    if (sec == 60) {
        sec = 59;
    }

    p += 19;

    if (*p == '.') {
        for (p++; p < last && *p >= '0' && *p <= '9'; p++) { /* void */ }

        if (p[-1] == '.') {
            return NGX_ERROR;
        }
    }

    if (p < last && (*p == 'Z' || *p == 'z')) {
        off = 0;
        p++;

    } else if (last - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        oh = ngx_http_apikey_admin_digits(p + 1, 2);
        om = ngx_http_apikey_admin_digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return NGX_ERROR;
        }

        off = (oh * 60 + om) * 60;

        if (*p == '-') {
            off = -off;
        }

        p += 6;

    } else {
        return NGX_ERROR;
    }

    if (p != last) {
        return NGX_ERROR;
    }

    /* days since 1970-01-01 of a proleptic Gregorian date */

    y = year - (month <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    t = (time_t) days * 86400 + hour * 3600 + min * 60 + sec - off;

    return t;
}


static ngx_int_t
ngx_http_apikey_admin_digits(u_char *p, size_t n)
{
    ngx_int_t  v;

    for (v = 0; n; n--, p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        v = v * 10 + (*p - '0');
    }

    return v;
}
