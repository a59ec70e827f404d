/*
 * scsp_openssl.h — share TLS sessions between OpenSSL server processes.
 *
 * Header-only (static inline): libscsp never links OpenSSL; this file is
 * compiled into your server against the OpenSSL you already use (3.0+).
 *
 *     scsp_cache *cache;
 *     scsp_open("/dev/shm/scsp", NULL, &cache);            // once, before fork()
 *     SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());      // in each worker
 *     scsp_openssl_attach_cache(ctx, cache, (const unsigned char *)"web", 3);
 *
 * Link: cc server.c $(pkg-config --cflags --libs scsp-openssl)
 *
 * WHAT IT DOES
 *   scsp_openssl_attach_cache() makes the SSL_CTX keep its server-side
 *   session cache in scsp instead of process memory: new sessions are
 *   serialised with i2d_SSL_SESSION and stored under their session id; a
 *   resuming client's id is looked up in scsp and d2i_SSL_SESSION'd; removed
 *   sessions are removed from scsp. Any worker process resumes sessions made
 *   by any other. It covers TLS 1.2 session ids, which stay reusable until
 *   they expire, and TLS 1.3 stateful tickets (SSL_OP_NO_TICKET, or early
 *   data under anti-replay), which are single-use: the get callback takes
 *   (scsp_take) a TLS 1.3 session, so it resumes once on a host, and once
 *   in a bridged pool except within the replication delay (RFC 8446,
 *   section 8.1; docs/tickets.md, "Single use ... in a pool"; the client
 *   gets a new ticket on that resumption). Use scsp_openssl_attach_ticket_keys() for stateless
 *   tickets. A session is stored for its remaining lifetime, at most
 *   SCSP_MAX_TTL_SECS (7 days).
 *
 * SESSION ID CONTEXT
 *   ctx_id (at most 32 bytes, SSL_MAX_SID_CTX_LENGTH) names the service: it
 *   is set as the SSL_CTX's session id context and mixed into every scsp key,
 *   so two services sharing one segment never resume each other's sessions.
 *   Give every SSL_CTX of one service the same ctx_id. NULL/0 is allowed for a
 *   segment used by a single service.
 *
 * OWNERSHIP AND LIFETIME
 *   The SSL_CTX keeps a pointer to cache (not a copy); close the cache only
 *   after every SSL_CTX attached to it is freed. The helper's own small
 *   record is freed with the SSL_CTX. If an SNI callback switches an SSL to
 *   another SSL_CTX, attach that SSL_CTX too, with the same cache and ctx_id.
 *
 * SECRETS
 *   Serialised sessions hold the session master secret, ticket keys encrypt
 *   every ticket: every buffer the helper uses for them (its stack buffers,
 *   heap copies, the ticket key it fetched, and the session-id keys) is
 *   wiped (OPENSSL_cleanse) on every path before the callback returns,
 *   including when a lookup misses or an OpenSSL call fails. Copies made
 *   outside the helper are beyond its reach: OpenSSL's temporaries, and
 *   with lazy symbol binding the dynamic linker's save of the vector
 *   registers on the stack; link with -Wl,-z,now (docs/c-api.md).
 *
 * RETURN VALUES
 *   SCSP_OK, SCSP_E_INVAL (NULL ctx or cache, ctx_id_len > 32, NULL ctx_id
 *   with a non-zero length), SCSP_E_OPENSSL (an OpenSSL call failed).
 */
#ifndef SCSP_OPENSSL_H
#define SCSP_OPENSSL_H

#include "scsp.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* First byte of every scsp key the helper writes: OpenSSL session, layout 1.
 * A key is: tag, ctx_id_len, ctx_id bytes, session id bytes. */
#define SCSP_OPENSSL_KEY_TAG 0x4f /* 'O' */
#define SCSP_OPENSSL_KEY_MAX (2 + SSL_MAX_SID_CTX_LENGTH + SSL_MAX_SSL_SESSION_ID_LENGTH)

/* What the helper hangs on an SSL_CTX (ex_data), freed with the SSL_CTX. */
typedef struct scsp_openssl_state {
    scsp_cache *cache;
    size_t ctx_id_len;
    unsigned char ctx_id[SSL_MAX_SID_CTX_LENGTH];
} scsp_openssl_state;

static inline void scsp_openssl__free_state(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
                                     int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL) {
        OPENSSL_cleanse(ptr, sizeof(scsp_openssl_state));
        free(ptr);
    }
}

static inline int *scsp_openssl__index_slot(void)
{
    static int index = -1;
    return &index;
}

static inline void scsp_openssl__make_index(void)
{
    *scsp_openssl__index_slot() =
        SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, scsp_openssl__free_state);
}

/* The ex_data index of the helper's state (made once, thread-safely). */
static inline int scsp_openssl__index(void)
{
    static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
    if (!CRYPTO_THREAD_run_once(&once, scsp_openssl__make_index))
        return -1;
    return *scsp_openssl__index_slot();
}

static inline scsp_openssl_state *scsp_openssl__state(SSL_CTX *ctx)
{
    int idx = scsp_openssl__index();
    if (ctx == NULL || idx < 0)
        return NULL;
    return (scsp_openssl_state *)SSL_CTX_get_ex_data(ctx, idx);
}

/* Find or make the state for ctx; the first attach sets cache and ctx_id. */
static inline int scsp_openssl__bind(SSL_CTX *ctx, scsp_cache *cache,
                                     const unsigned char *ctx_id, size_t ctx_id_len,
                                     scsp_openssl_state **out)
{
    scsp_openssl_state *st;
    int idx;
    if (ctx == NULL || cache == NULL || ctx_id_len > SSL_MAX_SID_CTX_LENGTH ||
        (ctx_id == NULL && ctx_id_len != 0))
        return SCSP_E_INVAL;
    idx = scsp_openssl__index();
    if (idx < 0)
        return SCSP_E_OPENSSL;
    st = (scsp_openssl_state *)SSL_CTX_get_ex_data(ctx, idx);
    if (st == NULL) {
        st = (scsp_openssl_state *)calloc(1, sizeof *st);
        if (st == NULL)
            return SCSP_E_OPENSSL;
        if (!SSL_CTX_set_ex_data(ctx, idx, st)) {
            free(st);
            return SCSP_E_OPENSSL;
        }
    }
    st->cache = cache;
    if (ctx_id != NULL) {
        memcpy(st->ctx_id, ctx_id, ctx_id_len);
        st->ctx_id_len = ctx_id_len;
    }
    *out = st;
    return SCSP_OK;
}

/* Build the scsp key for a session id; returns its length, 0 if invalid. */
static inline size_t scsp_openssl__key(const scsp_openssl_state *st,
                                       const unsigned char *sid, size_t sid_len,
                                       unsigned char key[SCSP_OPENSSL_KEY_MAX])
{
    if (sid == NULL || sid_len == 0 || sid_len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return 0;
    key[0] = SCSP_OPENSSL_KEY_TAG;
    key[1] = (unsigned char)st->ctx_id_len;
    memcpy(key + 2, st->ctx_id, st->ctx_id_len);
    memcpy(key + 2 + st->ctx_id_len, sid, sid_len);
    return 2 + st->ctx_id_len + sid_len;
}

/* new_session_cb: store the serialised session for its remaining lifetime
 * (scsp keeps it at most SCSP_MAX_TTL_SECS, 7 days). */
static inline int scsp_openssl__new_session(SSL *ssl, SSL_SESSION *sess)
{
    unsigned char key[SCSP_OPENSSL_KEY_MAX], small[4096], *der = NULL, *p;
    unsigned int sid_len = 0;
    const unsigned char *sid = SSL_SESSION_get_id(sess, &sid_len);
    scsp_openssl_state *st = scsp_openssl__state(SSL_get_SSL_CTX(ssl));
    size_t key_len = 0;
    long left;
    int der_len = 0;

    if (st == NULL)
        return 0;
    /* A TLS 1.3 stateless ticket carries the whole session: nobody will
     * ever look its id up, so storing it would only evict useful entries.
     * (OpenSSL makes TLS 1.3 tickets stateful with SSL_OP_NO_TICKET, or with
     * early data under anti-replay; those are stored.) */
    if (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION &&
        (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0 &&
        (SSL_get_max_early_data(ssl) == 0 || (SSL_get_options(ssl) & SSL_OP_NO_ANTI_REPLAY) != 0))
        return 0;
    key_len = scsp_openssl__key(st, sid, sid_len, key);
    der_len = i2d_SSL_SESSION(sess, NULL);
    if (key_len == 0 || der_len <= 0)
        goto done;
    der = (size_t)der_len <= sizeof small ? small : (unsigned char *)malloc((size_t)der_len);
    if (der == NULL)
        goto done;
    p = der;
    if (i2d_SSL_SESSION(sess, &p) == der_len) {
        left = SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess) - (long)time(NULL);
        if (left > 0)
            (void)scsp_put(st->cache, key, key_len, der, (size_t)der_len,
                           left > (long)SCSP_MAX_TTL_SECS ? SCSP_MAX_TTL_SECS : (uint32_t)left);
    }
done:
    /* Every buffer that held the session (or its id) is wiped, on every
     * path: a failed i2d may have written part of it. */
    if (der != NULL && der != small) {
        OPENSSL_cleanse(der, (size_t)der_len);
        free(der);
    }
    OPENSSL_cleanse(small, sizeof small);
    OPENSSL_cleanse(key, sizeof key);
    return 0; /* we keep no reference to sess */
}

/* get_session_cb: look a session id up in scsp (OpenSSL 3 signature). */
static inline SSL_SESSION *scsp_openssl__get_session(SSL *ssl, const unsigned char *id,
                                              int id_len, int *copy)
{
    unsigned char key[SCSP_OPENSSL_KEY_MAX], small[4096], *buf = small;
    const unsigned char *p;
    scsp_openssl_state *st = scsp_openssl__state(SSL_get_SSL_CTX(ssl));
    SSL_SESSION *sess = NULL;
    size_t key_len = 0, len = 0, cap = sizeof small;
    int rc = SCSP_E_NOT_FOUND;

    /* A TLS 1.3 stateful session (ticket) may be resumed once: take it, so
     * that no other worker (and no other connection) can resume it again,
     * as RFC 8446 (section 8.1) asks of single-use tickets and as the rustls
     * adapter does. TLS 1.2 session ids stay reusable. With early data under
     * anti-replay, the taken session is also put in this SSL_CTX's internal
     * store, where OpenSSL's replay check (SSL_CTX_remove_session) must find
     * it or it refuses to resume. */
    int tls13 = SSL_version(ssl) == TLS1_3_VERSION;
    int early_data = tls13 && SSL_get_max_early_data(ssl) > 0 &&
                     (SSL_get_options(ssl) & SSL_OP_NO_ANTI_REPLAY) == 0;
    int (*fetch)(scsp_cache *, const uint8_t *, size_t, uint8_t *, size_t, size_t *) =
        tls13 ? scsp_take : scsp_get;

    *copy = 0; /* the session we return is new; OpenSSL owns it */
    if (st == NULL || id_len <= 0)
        return NULL;
    key_len = scsp_openssl__key(st, id, (size_t)id_len, key);
    if (key_len == 0)
        goto done;
    rc = fetch(st->cache, key, key_len, buf, cap, &len);
    if (rc == SCSP_E_BUFFER) { /* nothing was copied, nothing taken */
        cap = len;
        buf = (unsigned char *)malloc(cap);
        if (buf == NULL) {
            buf = small;
            cap = sizeof small;
            goto done;
        }
        rc = fetch(st->cache, key, key_len, buf, cap, &len);
    }
    if (rc == SCSP_OK && len > 0) {
        p = buf;
        sess = d2i_SSL_SESSION(NULL, &p, (long)len);
        if (sess != NULL && early_data)
            (void)SSL_CTX_add_session(SSL_get_SSL_CTX(ssl), sess);
    }
done:
    /* Wipe every buffer, whatever happened: the whole buffer unless the
     * value's length is known (libscsp writes only the value's bytes). */
    OPENSSL_cleanse(buf, rc == SCSP_OK && len <= cap ? len : cap);
    if (buf != small) {
        free(buf);
        OPENSSL_cleanse(small, sizeof small);
    }
    OPENSSL_cleanse(key, sizeof key);
    return sess;
}

/* remove_session_cb: the session is no longer resumable anywhere. */
static inline void scsp_openssl__remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
    unsigned char key[SCSP_OPENSSL_KEY_MAX];
    unsigned int sid_len = 0;
    const unsigned char *sid = SSL_SESSION_get_id(sess, &sid_len);
    scsp_openssl_state *st = scsp_openssl__state(ctx);
    size_t key_len;

    if (st == NULL)
        return;
    key_len = scsp_openssl__key(st, sid, sid_len, key);
    if (key_len != 0)
        (void)scsp_remove(st->cache, key, key_len);
}

/*
 * Keep ctx's server session cache in scsp: installs the new/get/remove
 * session callbacks and sets SSL_SESS_CACHE_SERVER |
 * SSL_SESS_CACHE_NO_INTERNAL_STORE, and ctx_id as the session id context.
 * Call once per SSL_CTX, before it accepts connections.
 */
static inline int scsp_openssl_attach_cache(SSL_CTX *ctx, scsp_cache *cache,
                                            const unsigned char *ctx_id, size_t ctx_id_len)
{
    scsp_openssl_state *st = NULL;
    int rc = scsp_openssl__bind(ctx, cache, ctx_id, ctx_id_len, &st);
    if (rc != SCSP_OK)
        return rc;
    if (ctx_id_len > 0 &&
        !SSL_CTX_set_session_id_context(ctx, ctx_id, (unsigned int)ctx_id_len))
        return SCSP_E_OPENSSL;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, scsp_openssl__new_session);
    SSL_CTX_sess_set_get_cb(ctx, scsp_openssl__get_session);
    SSL_CTX_sess_set_remove_cb(ctx, scsp_openssl__remove_session);
    return SCSP_OK;
}

/* Set the HMAC-SHA256 key on OpenSSL's MAC context. */
static inline int scsp_openssl__set_mac(EVP_MAC_CTX *hctx, const scsp_ticket_key *k)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[3];
    int ok;
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                                  (void *)k->hmac_key, sizeof k->hmac_key);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[2] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_CTX_set_params(hctx, params);
    /* The params only point at the key, but hold its address: wipe them. */
    OPENSSL_cleanse(params, sizeof params);
    return ok;
}

/*
 * The ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb). Returns, as
 * OpenSSL expects: 1 ticket key set up; 2 decrypted with an older key (or
 * under TLS 1.3), issue a new ticket; 0 unknown key (full handshake) or no
 * ticket; -1 error.
 */
static inline int scsp_openssl__ticket_key_cb(SSL *ssl, unsigned char key_name[16],
                                              unsigned char iv[EVP_MAX_IV_LENGTH],
                                              EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                                              int enc)
{
    scsp_openssl_state *st = scsp_openssl__state(SSL_get_SSL_CTX(ssl));
    const EVP_CIPHER *aes = EVP_aes_256_cbc();
    scsp_ticket_key k;
    int ret = -1, rc;

    if (st == NULL)
        return enc ? -1 : 0;
    memset(&k, 0, sizeof k);
    if (enc) {
        /* New ticket: current key, fresh random IV. */
        if (scsp_ticket_key_current(st->cache, &k) != SCSP_OK) {
            ret = 0; /* no key: issue no ticket, the handshake still succeeds */
            goto done;
        }
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) == 1 &&
            EVP_EncryptInit_ex(cctx, aes, NULL, k.aes_key, iv) == 1 &&
            scsp_openssl__set_mac(hctx, &k) == 1)
            ret = 1;
    } else {
        /* Resumption: find the key the ticket names; OpenSSL read the IV. */
        rc = scsp_ticket_key_find(st->cache, key_name, &k);
        if (rc != SCSP_OK) {
            ret = 0; /* unknown or retired key: full handshake */
            goto done;
        }
        if (scsp_openssl__set_mac(hctx, &k) == 1 &&
            EVP_DecryptInit_ex(cctx, aes, NULL, k.aes_key, iv) == 1)
            /* 2 asks OpenSSL for a fresh ticket: always under TLS 1.3, whose
             * clients use each ticket once (RFC 8446 C.4) and would run dry,
             * since OpenSSL issues none after a resumption otherwise. */
            ret = (k.flags & SCSP_TICKET_KEY_CURRENT) && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
done:
    OPENSSL_cleanse(&k, sizeof k); /* on every path: the key is secret */
    return ret;
}

/*
 * Encrypt and decrypt ctx's session tickets (TLS 1.2 and 1.3 stateless
 * tickets) with the segment's shared, rotating key ring, so a ticket issued
 * by any worker resumes on any other. Tickets must not be disabled
 * (SSL_OP_NO_TICKET) for this to matter. May be combined with
 * scsp_openssl_attach_cache (same cache). Call once per SSL_CTX. Lowers the
 * SSL_CTX's session timeout, which OpenSSL announces as the ticket lifetime,
 * to the ring's ticket lifetime if it is longer (scsp_ticket_lifetime).
 */
static inline int scsp_openssl_attach_ticket_keys(SSL_CTX *ctx, scsp_cache *cache)
{
    scsp_openssl_state *st = NULL;
    uint32_t lifetime = 0;
    int rc = scsp_openssl__bind(ctx, cache, NULL, 0, &st);
    if (rc != SCSP_OK)
        return rc;
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, scsp_openssl__ticket_key_cb) != 1)
        return SCSP_E_OPENSSL;
    /* OpenSSL announces the session timeout as the ticket lifetime: keep it
     * within what the key ring still decrypts. */
    rc = scsp_ticket_lifetime(cache, &lifetime);
    if (rc != SCSP_OK)
        return rc;
    if (SSL_CTX_get_timeout(ctx) > (long)lifetime)
        (void)SSL_CTX_set_timeout(ctx, (long)lifetime);
    return SCSP_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* SCSP_OPENSSL_H */
