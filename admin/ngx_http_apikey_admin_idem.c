
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "ngx_http_apikey_admin.h"


/*
 * Idempotency-Key (SPEC section 5, docs/data-model.md "Idempotency
 * records").  The header of a POST names a record in Redis that the
 * change script writes in the same atomic step as the change; a retry
 * with the same key, token and body gets its answer again.
 *
 * Everything the record holds that could not be told to anyone is sealed
 * under keys derived from the Idempotency-Key, which never leaves nginx:
 *
 *   record id  HKDF-SHA256(key, salt "ngx_http_apikey idempotency",
 *              info "record" 0 token name), hex: NS idem:<id>, so that
 *              one token's key is no other's;
 *   sealed     salt (16 random bytes) | nonce (12) | AES-256-GCM of the
 *              new raw key | tag (16), the AES key HKDF-SHA256(key,
 *              salt, info "seal" 0 token name), the record id and the
 *              fingerprint authenticated with it.
 *
 * The fingerprint, SHA-256 of the operation, organization, key id and
 * the body in canonical JSON (members sorted, no spaces), tells a retry
 * from another request with the same Idempotency-Key.
 */


#define NGX_HTTP_APIKEY_ADMIN_IDEM_MAX    255
#define NGX_HTTP_APIKEY_ADMIN_SALT_LEN    16
#define NGX_HTTP_APIKEY_ADMIN_NONCE_LEN   12
#define NGX_HTTP_APIKEY_ADMIN_TAG_LEN     16
#define NGX_HTTP_APIKEY_ADMIN_AES_LEN     32

#define NGX_HTTP_APIKEY_ADMIN_SEALED_MIN                                      \
    (NGX_HTTP_APIKEY_ADMIN_SALT_LEN + NGX_HTTP_APIKEY_ADMIN_NONCE_LEN         \
     + NGX_HTTP_APIKEY_ADMIN_TAG_LEN)


static ngx_int_t ngx_http_apikey_admin_hkdf(ngx_http_apikey_admin_ctx_t *ctx,
    u_char *salt, size_t salt_len, const char *label, u_char *out,
    size_t len);
static ngx_int_t ngx_http_apikey_admin_fingerprint(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_apikey_admin_gcm(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_uint_t enc, u_char *salt, u_char *nonce, u_char *in, size_t len,
    u_char *out, u_char *tag);


static ngx_str_t  ngx_http_apikey_admin_idem_name =
    ngx_string("idempotency-key");


/*
 * The Idempotency-Key header of a POST into ctx->idem: none, or one of 1
 * to 255 visible ASCII characters; NGX_DECLINED (ctx->err set) otherwise
 */

ngx_int_t
ngx_http_apikey_admin_idem_header(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char           *p, *last;
    ngx_uint_t        n;
    ngx_table_elt_t  *h;

    h = ngx_http_apikey_header_in(r, &ngx_http_apikey_admin_idem_name, &n);

    if (n > 1) {
        return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                           "invalid_idempotency_key",
                                           "Idempotency-Key is given twice");
    }

    if (h != NULL) {
        ctx->idem = h->value;
    }

    if (ctx->idem.data == NULL) {
        return NGX_OK;
    }

    p = ctx->idem.data;
    last = p + ctx->idem.len;

    if (ctx->idem.len == 0
        || ctx->idem.len > NGX_HTTP_APIKEY_ADMIN_IDEM_MAX)
    {
        goto invalid;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            goto invalid;
        }
    }

    return NGX_OK;

invalid:

    return ngx_http_apikey_admin_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                       "invalid_idempotency_key",
                                       "Idempotency-Key must be 1 to %d "
                                       "visible ASCII characters",
                                       NGX_HTTP_APIKEY_ADMIN_IDEM_MAX);
}


/* the record's id and the request's fingerprint, once the body is read */

ngx_int_t
ngx_http_apikey_admin_idem_prepare(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *body)
{
    u_char  id[32];

    static u_char  salt[] = "ngx_http_apikey idempotency";

    if (ctx->idem.data == NULL) {
        return NGX_OK;
    }

    if (ngx_http_apikey_admin_hkdf(ctx, salt, sizeof(salt) - 1, "record",
                                   id, sizeof(id))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->idem_id.data = ngx_pnalloc(r->pool, 2 * sizeof(id));
    if (ctx->idem_id.data == NULL) {
        return NGX_ERROR;
    }

    ctx->idem_id.len = ngx_hex_dump(ctx->idem_id.data, id, sizeof(id))
                       - ctx->idem_id.data;

    return ngx_http_apikey_admin_fingerprint(r, ctx, body);
}


/*
 * SHA-256, hex, of "<operation> <org> <id>\n" and the body in canonical
 * JSON (the body has been parsed and found valid: an empty one is {})
 */

static ngx_int_t
ngx_http_apikey_admin_fingerprint(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, ngx_str_t *body)
{
    u_char      *p, *text;
    char        *json;
    size_t       len;
    json_t      *root;
    ngx_int_t    rc;
    ngx_str_t    id;

    root = body->len ? json_loadb((char *) body->data, body->len, 0, NULL)
                     : json_object();
    if (root == NULL) {
        return NGX_ERROR;
    }

    json = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);

    json_decref(root);

    if (json == NULL) {
        return NGX_ERROR;
    }

    len = NGX_INT_T_LEN + ctx->org.len + ctx->id.len
          + sizeof("  \n") - 1 + ngx_strlen(json);

    text = ngx_pnalloc(r->pool, len);
    if (text == NULL) {
        ngx_free(json);
        return NGX_ERROR;
    }

    /* a create has no id yet: "%V" of { 0, NULL } would memcpy from NULL */

    id = ctx->id;

    if (id.data == NULL) {
        ngx_str_set(&id, "");
    }

    p = ngx_sprintf(text, "%ui %V %V\n%s", ctx->operation, &ctx->org, &id,
                    json);

    ngx_free(json);

    ctx->idem_fp.data = ngx_pnalloc(r->pool, NGX_HTTP_APIKEY_HASH_LEN);
    if (ctx->idem_fp.data == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_apikey_sha256_hex(ctx->idem_fp.data, text, p - text);

    ctx->idem_fp.len = NGX_HTTP_APIKEY_HASH_LEN;

    return (rc == 0) ? NGX_OK : NGX_ERROR;
}


/* the new raw key, sealed for the record (r->pool) */

ngx_int_t
ngx_http_apikey_admin_seal(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char  *p;

    if (ctx->idem.data == NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_HTTP_APIKEY_ADMIN_SEALED_MIN + ctx->raw.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (RAND_bytes(p, NGX_HTTP_APIKEY_ADMIN_SALT_LEN
                      + NGX_HTTP_APIKEY_ADMIN_NONCE_LEN)
        != 1)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey admin: RAND_bytes() failed");
        return NGX_ERROR;
    }

    if (ngx_http_apikey_admin_gcm(ctx, 1, p,
                                  p + NGX_HTTP_APIKEY_ADMIN_SALT_LEN,
                                  ctx->raw.data, ctx->raw.len,
                                  p + NGX_HTTP_APIKEY_ADMIN_SALT_LEN
                                  + NGX_HTTP_APIKEY_ADMIN_NONCE_LEN,
                                  p + NGX_HTTP_APIKEY_ADMIN_SALT_LEN
                                  + NGX_HTTP_APIKEY_ADMIN_NONCE_LEN
                                  + ctx->raw.len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->sealed.data = p;
    ctx->sealed.len = NGX_HTTP_APIKEY_ADMIN_SEALED_MIN + ctx->raw.len;

    return NGX_OK;
}


/*
 * A retry's raw key: the first call's, unsealed into ctx->raw (wiped with
 * the pool).  NGX_DECLINED: it does not open with this Idempotency-Key.
 */

ngx_int_t
ngx_http_apikey_admin_unseal(ngx_http_request_t *r,
    ngx_http_apikey_admin_ctx_t *ctx, u_char *p, size_t len)
{
    size_t   n;
    u_char  *salt, *nonce, *in;

    if (ctx->idem.data == NULL || ctx->raw.data == NULL
        || len <= NGX_HTTP_APIKEY_ADMIN_SEALED_MIN
        || len - NGX_HTTP_APIKEY_ADMIN_SEALED_MIN > NGX_HTTP_APIKEY_KEY_MAX)
    {
        return NGX_DECLINED;
    }

    n = len - NGX_HTTP_APIKEY_ADMIN_SEALED_MIN;

    salt = p;
    nonce = salt + NGX_HTTP_APIKEY_ADMIN_SALT_LEN;
    in = nonce + NGX_HTTP_APIKEY_ADMIN_NONCE_LEN;

    if (ngx_http_apikey_admin_gcm(ctx, 0, salt, nonce, in, n, ctx->raw.data,
                                  in + n)
        != NGX_OK)
    {
        ngx_explicit_memzero(ctx->raw.data, NGX_HTTP_APIKEY_KEY_MAX);
        return NGX_DECLINED;
    }

    ctx->raw.len = n;

    return NGX_OK;
}


/*
 * HKDF-SHA256 of the Idempotency-Key, info "<label>" 0 "<token name>",
 * and for a management token 0 "<its id>" (names need not be unique)
 */

static ngx_int_t
ngx_http_apikey_admin_hkdf(ngx_http_apikey_admin_ctx_t *ctx, u_char *salt,
    size_t salt_len, const char *label, u_char *out, size_t len)
{
    u_char        *p;
    ngx_int_t      rc;
    EVP_PKEY_CTX  *pctx;
    u_char         info[16 + NGX_HTTP_APIKEY_ADMIN_SEGMENT_MAX + 1
                        + NGX_HTTP_APIKEY_ADMIN_ID_LEN];

    p = ngx_cpystrn(info, (u_char *) label, 16);
    p++;        /* the 0 ngx_cpystrn() wrote ends the label */
    p = ngx_cpymem(p, ctx->token->name.data,
                   ngx_min(ctx->token->name.len,
                           NGX_HTTP_APIKEY_ADMIN_SEGMENT_MAX));

    if (ctx->token->id.len) {
        *p++ = '\0';
        p = ngx_cpymem(p, ctx->token->id.data,
                       ngx_min(ctx->token->id.len,
                               NGX_HTTP_APIKEY_ADMIN_ID_LEN));
    }

    pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (pctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_PKEY_derive_init(pctx) > 0
        && EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) > 0
        && EVP_PKEY_CTX_set1_hkdf_salt(pctx, salt, (int) salt_len) > 0
        && EVP_PKEY_CTX_set1_hkdf_key(pctx, ctx->idem.data,
                                      (int) ctx->idem.len)
           > 0
        && EVP_PKEY_CTX_add1_hkdf_info(pctx, info, (int) (p - info)) > 0
        && EVP_PKEY_derive(pctx, out, &len) > 0)
    {
        rc = NGX_OK;
    }

    EVP_PKEY_CTX_free(pctx);

    return rc;
}


/*
 * AES-256-GCM under the key derived with the salt; the record id and the
 * fingerprint are authenticated with the text.  Decrypts (enc 0) only if
 * the tag matches.
 */

static ngx_int_t
ngx_http_apikey_admin_gcm(ngx_http_apikey_admin_ctx_t *ctx, ngx_uint_t enc,
    u_char *salt, u_char *nonce, u_char *in, size_t len, u_char *out,
    u_char *tag)
{
    int                n;
    ngx_int_t          rc;
    EVP_CIPHER_CTX    *c;
    u_char             key[NGX_HTTP_APIKEY_ADMIN_AES_LEN];

    if (ngx_http_apikey_admin_hkdf(ctx, salt, NGX_HTTP_APIKEY_ADMIN_SALT_LEN,
                                   "seal", key, sizeof(key))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    c = EVP_CIPHER_CTX_new();
    if (c == NULL) {
        ngx_explicit_memzero(key, sizeof(key));
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, (int) enc)
        <= 0
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN,
                               NGX_HTTP_APIKEY_ADMIN_NONCE_LEN, NULL)
           <= 0
        || EVP_CipherInit_ex(c, NULL, NULL, key, nonce, (int) enc) <= 0
        || EVP_CipherUpdate(c, NULL, &n, ctx->idem_id.data,
                            (int) ctx->idem_id.len)
           <= 0
        || EVP_CipherUpdate(c, NULL, &n, ctx->idem_fp.data,
                            (int) ctx->idem_fp.len)
           <= 0
        || EVP_CipherUpdate(c, out, &n, in, (int) len) <= 0)
    {
        goto done;
    }

    if (enc) {
        if (EVP_CipherFinal_ex(c, out + n, &n) > 0
            && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG,
                                   NGX_HTTP_APIKEY_ADMIN_TAG_LEN, tag)
               > 0)
        {
            rc = NGX_OK;
        }

    } else {
        if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
                                NGX_HTTP_APIKEY_ADMIN_TAG_LEN, tag)
            > 0
            && EVP_CipherFinal_ex(c, out + n, &n) > 0)
        {
            rc = NGX_OK;
        }
    }

done:

    EVP_CIPHER_CTX_free(c);
    ngx_explicit_memzero(key, sizeof(key));

    return rc;
}
