
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * The module's key codec as a command, for the unit tests and for the test
 * helper that writes keys the way the admin API does:
 *
 *   apikey-key gen PREFIX        a new key
 *   apikey-key check KEY         exit 0 if shape and checksum are right
 *   apikey-key hash KEY          lowercase hex SHA-256
 *   apikey-key body HEX64        base62 body + check for a given 32-byte number
 *   apikey-key crc STRING        CRC-32 in decimal
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_apikey_key.h"


static int
usage(void)
{
    fprintf(stderr, "usage: apikey-key gen PREFIX | check KEY | hash KEY"
                    " | body HEX64 | crc STRING\n");
    return 2;
}


static int
body(const char *hex)
{
    size_t         i;
    unsigned int   v;
    unsigned char  num[32], out[NGX_HTTP_APIKEY_BODY_LEN + 1];

    if (strlen(hex) != 64) {
        return usage();
    }

    for (i = 0; i < 32; i++) {
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return usage();
        }
        num[i] = (unsigned char) v;
    }

    ngx_http_apikey_base62(out, NGX_HTTP_APIKEY_RANDOM_LEN, num, sizeof(num));
    ngx_http_apikey_key_check(out + NGX_HTTP_APIKEY_RANDOM_LEN, out);
    out[NGX_HTTP_APIKEY_BODY_LEN] = '\0';

    printf("%s\n", out);

    return 0;
}


int
main(int argc, char **argv)
{
    size_t         len;
    unsigned char  key[NGX_HTTP_APIKEY_KEY_MAX + 1];
    unsigned char  hex[NGX_HTTP_APIKEY_HASH_LEN + 1];

    if (argc != 3) {
        return usage();
    }

    if (strcmp(argv[1], "gen") == 0) {
        if (ngx_http_apikey_key_generate(key, &len, (unsigned char *) argv[2],
                                         strlen(argv[2]))
            != 0)
        {
            fprintf(stderr, "apikey-key: invalid prefix\n");
            return 1;
        }

        printf("%.*s\n", (int) len, key);
        return 0;
    }

    if (strcmp(argv[1], "check") == 0) {
        return ngx_http_apikey_key_valid((unsigned char *) argv[2],
                                         strlen(argv[2]))
               ? 0 : 1;
    }

    if (strcmp(argv[1], "hash") == 0) {
        if (ngx_http_apikey_sha256_hex(hex, (unsigned char *) argv[2],
                                       strlen(argv[2]))
            != 0)
        {
            return 1;
        }

        hex[NGX_HTTP_APIKEY_HASH_LEN] = '\0';
        printf("%s\n", hex);
        return 0;
    }

    if (strcmp(argv[1], "body") == 0) {
        return body(argv[2]);
    }

    if (strcmp(argv[1], "crc") == 0) {
        printf("%lu\n", (unsigned long) ngx_http_apikey_crc32(
                            (unsigned char *) argv[2], strlen(argv[2])));
        return 0;
    }

    return usage();
}
