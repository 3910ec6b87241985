
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_apikey_key.h"


static const unsigned char  ngx_http_apikey_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const unsigned char  ngx_http_apikey_hex[] = "0123456789abcdef";


static int ngx_http_apikey_digest_hex(unsigned char *dst, unsigned char *bin,
    const unsigned char *p, size_t len, const EVP_MD *md, EVP_MD_CTX *ctx);


int
ngx_http_apikey_prefix_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_APIKEY_PREFIX_MAX) {
        return 0;
    }

    if (p[0] < 'a' || p[0] > 'z') {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))) {
            return 0;
        }
    }

    return 1;
}


uint32_t
ngx_http_apikey_crc32(const unsigned char *p, size_t len)
{
    int              k;
    size_t           i;
    uint32_t         crc, c;
    static uint32_t  table[256];

    /* CRC-32/IEEE, reflected, as zlib's crc32(); the table on first use */

    if (table[1] == 0) {
        for (i = 0; i < 256; i++) {
            c = (uint32_t) i;

            for (k = 0; k < 8; k++) {
                c = (c >> 1) ^ (0xedb88320 & (0 - (c & 1)));
            }

            table[i] = c;
        }
    }

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }

    return crc ^ 0xffffffff;
}


/*
 * Writes the big-endian number num[0..n-1] in base62, left-padded with '0'
 * to width characters; num is destroyed.  The caller guarantees that the
 * number fits in width digits.
 */

void
ngx_http_apikey_base62(unsigned char *dst, size_t width, unsigned char *num,
    size_t n)
{
    size_t    i, w;
    unsigned  rem, cur;

    for (w = width; w > 0; w--) {
        rem = 0;

        for (i = 0; i < n; i++) {
            cur = (rem << 8) | num[i];
            num[i] = (unsigned char) (cur / 62);
            rem = cur % 62;
        }

        dst[w - 1] = ngx_http_apikey_alphabet[rem];
    }
}


int
ngx_http_apikey_key_generate(unsigned char *dst, size_t *len,
    const unsigned char *prefix, size_t prefix_len)
{
    unsigned char   rnd[32], *p;

    if (!ngx_http_apikey_prefix_valid(prefix, prefix_len)) {
        return -1;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return -1;
    }

    p = memcpy(dst, prefix, prefix_len);
    p += prefix_len;
    *p++ = '_';

    ngx_http_apikey_base62(p, NGX_HTTP_APIKEY_RANDOM_LEN, rnd, sizeof(rnd));
    OPENSSL_cleanse(rnd, sizeof(rnd));

    ngx_http_apikey_key_check(p + NGX_HTTP_APIKEY_RANDOM_LEN, p);

    *len = prefix_len + 1 + NGX_HTTP_APIKEY_BODY_LEN;

    return 0;
}


/* the 6 check characters of the 43 random ones: CRC-32 in base62 */

void
ngx_http_apikey_key_check(unsigned char *dst, const unsigned char *random)
{
    uint32_t       c;
    unsigned char  crc[4];

    c = ngx_http_apikey_crc32(random, NGX_HTTP_APIKEY_RANDOM_LEN);

    crc[0] = (unsigned char) (c >> 24);
    crc[1] = (unsigned char) (c >> 16);
    crc[2] = (unsigned char) (c >> 8);
    crc[3] = (unsigned char) c;

    ngx_http_apikey_base62(dst, NGX_HTTP_APIKEY_CHECK_LEN, crc, sizeof(crc));
}


int
ngx_http_apikey_key_valid(const unsigned char *key, size_t len)
{
    size_t          i, plen;
    unsigned char   check[NGX_HTTP_APIKEY_CHECK_LEN];
    const unsigned char  *body;

    if (len <= NGX_HTTP_APIKEY_BODY_LEN + 1 || len > NGX_HTTP_APIKEY_KEY_MAX) {
        return 0;
    }

    plen = len - NGX_HTTP_APIKEY_BODY_LEN - 1;

    if (key[plen] != '_' || !ngx_http_apikey_prefix_valid(key, plen)) {
        return 0;
    }

    body = key + plen + 1;

    for (i = 0; i < NGX_HTTP_APIKEY_BODY_LEN; i++) {
        if (!((body[i] >= '0' && body[i] <= '9')
              || (body[i] >= 'A' && body[i] <= 'Z')
              || (body[i] >= 'a' && body[i] <= 'z')))
        {
            return 0;
        }
    }

    ngx_http_apikey_key_check(check, body);

    return memcmp(check, body + NGX_HTTP_APIKEY_RANDOM_LEN,
                  NGX_HTTP_APIKEY_CHECK_LEN) == 0;
}


/* the SHA-256 digest and context of the process, see below */

static EVP_MD      *ngx_http_apikey_sha256_md;
static EVP_MD_CTX  *ngx_http_apikey_sha256_ctx;


int
ngx_http_apikey_sha256_hex(unsigned char *dst, const unsigned char *p,
    size_t len)
{
    return ngx_http_apikey_sha256(NULL, dst, p, len);
}


int
ngx_http_apikey_sha256(unsigned char *bin, unsigned char *dst,
    const unsigned char *p, size_t len)
{
    EVP_MD      *md;
    EVP_MD_CTX  *ctx;

    md = ngx_http_apikey_sha256_md;
    ctx = ngx_http_apikey_sha256_ctx;

    /*
     * Every gatekept request hashes a key: fetch the digest once and keep
     * one context, instead of EVP_sha256()'s lookup and a new context
     * each time.
     */

    if (ctx == NULL) {
        md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
        ctx = EVP_MD_CTX_new();

        if (md == NULL || ctx == NULL) {
            EVP_MD_free(md);
            EVP_MD_CTX_free(ctx);
            return -1;
        }

        ngx_http_apikey_sha256_md = md;
        ngx_http_apikey_sha256_ctx = ctx;
    }

    return ngx_http_apikey_digest_hex(dst, bin, p, len, md, ctx);
}


void
ngx_http_apikey_sha256_free(void)
{
    EVP_MD_CTX_free(ngx_http_apikey_sha256_ctx);
    EVP_MD_free(ngx_http_apikey_sha256_md);

    ngx_http_apikey_sha256_ctx = NULL;
    ngx_http_apikey_sha256_md = NULL;
}


int
ngx_http_apikey_sha1_hex(unsigned char *dst, const unsigned char *p,
    size_t len)
{
    int          rc;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = ngx_http_apikey_digest_hex(dst, NULL, p, len, EVP_sha1(), ctx);

    EVP_MD_CTX_free(ctx);

    return rc;
}


static int
ngx_http_apikey_digest_hex(unsigned char *dst, unsigned char *bin,
    const unsigned char *p, size_t len, const EVP_MD *md, EVP_MD_CTX *ctx)
{
    unsigned int   i, n;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    if (EVP_DigestInit_ex(ctx, md, NULL) != 1
        || EVP_DigestUpdate(ctx, p, len) != 1
        || EVP_DigestFinal_ex(ctx, buf, &n) != 1)
    {
        return -1;
    }

    if (bin != NULL) {
        memcpy(bin, buf, n);
    }

    for (i = 0; i < n; i++) {
        *dst++ = ngx_http_apikey_hex[buf[i] >> 4];
        *dst++ = ngx_http_apikey_hex[buf[i] & 0xf];
    }

    return 0;
}
