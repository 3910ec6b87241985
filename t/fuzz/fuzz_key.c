
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the key codec on any bytes.  A key the codec calls
 * valid must have the shape of SPEC section 2 and survive a round trip:
 * the check characters computed again from its random part are its own.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_apikey_key.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         plen;
    uint32_t       crc;
    const uint8_t  *us;
    unsigned char  check[NGX_HTTP_APIKEY_CHECK_LEN];
    unsigned char  hex[NGX_HTTP_APIKEY_HASH_LEN];

    crc = ngx_http_apikey_crc32(data, size);
    (void) crc;

    (void) ngx_http_apikey_prefix_valid(data, size);

    if (!ngx_http_apikey_key_valid(data, size)) {
        return 0;
    }

    us = memchr(data, '_', size);

    if (us == NULL) {
        abort();
    }

    plen = us - data;

    if (size != plen + 1 + NGX_HTTP_APIKEY_BODY_LEN
        || !ngx_http_apikey_prefix_valid(data, plen))
    {
        abort();
    }

    ngx_http_apikey_key_check(check, us + 1);

    if (memcmp(check, us + 1 + NGX_HTTP_APIKEY_RANDOM_LEN,
               NGX_HTTP_APIKEY_CHECK_LEN)
        != 0)
    {
        abort();
    }

    if (ngx_http_apikey_sha256_hex(hex, data, size) != 0) {
        abort();
    }

    return 0;
}
