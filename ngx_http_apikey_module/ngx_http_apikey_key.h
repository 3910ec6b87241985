
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#ifndef _NGX_HTTP_APIKEY_KEY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_KEY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_APIKEY_PREFIX_MAX      16
#define NGX_HTTP_APIKEY_RANDOM_LEN      43
#define NGX_HTTP_APIKEY_CHECK_LEN       6
#define NGX_HTTP_APIKEY_BODY_LEN                                              \
    (NGX_HTTP_APIKEY_RANDOM_LEN + NGX_HTTP_APIKEY_CHECK_LEN)
#define NGX_HTTP_APIKEY_KEY_MAX                                               \
    (NGX_HTTP_APIKEY_PREFIX_MAX + 1 + NGX_HTTP_APIKEY_BODY_LEN)
#define NGX_HTTP_APIKEY_HASH_LEN        64
#define NGX_HTTP_APIKEY_DISPLAY_LEN     8


/*
 * The key codec works on plain byte strings and depends on OpenSSL only,
 * so that the same file builds into the module and into the unit tests.
 */

int ngx_http_apikey_prefix_valid(const unsigned char *p, size_t len);
uint32_t ngx_http_apikey_crc32(const unsigned char *p, size_t len);
void ngx_http_apikey_base62(unsigned char *dst, size_t width,
    unsigned char *num, size_t n);
void ngx_http_apikey_key_check(unsigned char *dst,
    const unsigned char *random);
int ngx_http_apikey_key_generate(unsigned char *dst, size_t *len,
    const unsigned char *prefix, size_t prefix_len);
int ngx_http_apikey_key_valid(const unsigned char *key, size_t len);
int ngx_http_apikey_sha256_hex(unsigned char *dst, const unsigned char *p,
    size_t len);
/* the same, with the 32 bytes of the digest in bin too */
int ngx_http_apikey_sha256(unsigned char *bin, unsigned char *dst,
    const unsigned char *p, size_t len);
/* frees what ngx_http_apikey_sha256_hex() keeps for the process */
void ngx_http_apikey_sha256_free(void);
int ngx_http_apikey_sha1_hex(unsigned char *dst, const unsigned char *p,
    size_t len);


#endif /* _NGX_HTTP_APIKEY_KEY_H_INCLUDED_ */
