/*
 * openssl_wipe_test.c — scsp_openssl.h leaves no session bytes behind on
 * its stack, on the paths a lookup can take: a miss on an expired session,
 * a value that is not a session, a hit, and storing a new session.
 *
 * usage: openssl_wipe_test SEGMENT
 * Prints "openssl_wipe_test: N checks passed" and exits 0, or names the
 * failed check and exits 1.
 *
 * How: each callback is called from one function, and right after it
 * returns another call from the same function reads the stack memory the
 * callback used (dead, not yet reused) looking for a run of the secret
 * byte. Reading that memory is deliberate (a volatile array, never
 * written); the compiler is told not to warn about it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scsp_openssl.h"

#define SECRET 0x5A
#define RUN 16 /* a run this long of SECRET bytes is a leftover value */

static int checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            fprintf(stderr, "openssl_wipe_test: %s:%d: check failed: %s (last error: %s)\n", \
                    __FILE__, __LINE__, #cond, scsp_last_error());                   \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/* The longest run of SECRET bytes in the dead stack below the caller. */
static __attribute__((noinline)) size_t leftover_run(void)
{
    volatile unsigned char probe[64 * 1024];
    size_t i, run = 0, longest = 0;
    for (i = 0; i < sizeof probe; i++) {
        run = probe[i] == SECRET ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    return longest;
}
#pragma GCC diagnostic pop

/* Fill the dead stack with zeros, so a run found later is the callback's. */
static __attribute__((noinline)) void scrub(void)
{
    volatile unsigned char pad[64 * 1024];
    size_t i;
    for (i = 0; i < sizeof pad; i++)
        pad[i] = 0;
}

/* A callee that leaves a secret on its stack, as a careless one would. */
static __attribute__((noinline)) void plant(void)
{
    volatile unsigned char planted[256];
    size_t i;
    for (i = 0; i < sizeof planted; i++)
        planted[i] = SECRET;
}

static const unsigned char CTX_ID[] = "wipe-test";
static const unsigned char SID[32] = "0123456789abcdef0123456789abcdef";

/* The scsp key the helper uses for SID. */
static size_t helper_key(unsigned char key[SCSP_OPENSSL_KEY_MAX])
{
    size_t n = sizeof CTX_ID - 1;
    key[0] = SCSP_OPENSSL_KEY_TAG;
    key[1] = (unsigned char)n;
    memcpy(key + 2, CTX_ID, n);
    memcpy(key + 2 + n, SID, sizeof SID);
    return 2 + n + sizeof SID;
}

static __attribute__((noinline)) SSL_SESSION *lookup(SSL *ssl)
{
    int copy = 1;
    SSL_SESSION *s = scsp_openssl__get_session(ssl, SID, (int)sizeof SID, &copy);
    CHECK(copy == 0);
    return s;
}

static __attribute__((noinline)) void store(SSL *ssl, SSL_SESSION *sess)
{
    CHECK(scsp_openssl__new_session(ssl, sess) == 0);
}

int main(int argc, char **argv)
{
    scsp_cache *cache = NULL;
    SSL_CTX *ctx;
    SSL *ssl;
    SSL_SESSION *sess, *found;
    unsigned char key[SCSP_OPENSSL_KEY_MAX], value[3000], master[48];
    size_t key_len, n = 0;
    int tries;

    if (argc != 2) {
        fprintf(stderr, "usage: openssl_wipe_test SEGMENT\n");
        return 2;
    }
    CHECK(scsp_open(argv[1], NULL, &cache) == SCSP_OK);
    ctx = SSL_CTX_new(TLS_server_method());
    CHECK(ctx != NULL);
    CHECK(scsp_openssl_attach_cache(ctx, cache, CTX_ID, sizeof CTX_ID - 1) == SCSP_OK);
    ssl = SSL_new(ctx);
    CHECK(ssl != NULL);
    key_len = helper_key(key);
    memset(value, SECRET, sizeof value);

    /* The test sees a leftover when there is one: a value a callee left
     * in its stack memory is found. */
    scrub();
    plant();
    CHECK(leftover_run() >= RUN);

    /* 1. A miss on an expired session: no byte of it on the stack. */
    CHECK(scsp_put(cache, key, key_len, value, sizeof value, 1) == SCSP_OK);
    for (tries = 0; tries < 60; tries++) {
        if (scsp_get(cache, key, key_len, NULL, 0, &n) == SCSP_E_NOT_FOUND)
            break;
        usleep(100 * 1000); /* it lives 1 to 2 s */
    }
    CHECK(tries < 60);
    scrub();
    CHECK(lookup(ssl) == NULL);
    CHECK(leftover_run() < RUN);

    /* 2. A live value that is not a session (d2i fails): wiped. */
    CHECK(scsp_put(cache, key, key_len, value, sizeof value, 60) == SCSP_OK);
    scrub();
    CHECK(lookup(ssl) == NULL);
    CHECK(leftover_run() < RUN);

    /* 3. Storing a TLS 1.2 session whose master secret is SECRET bytes:
     * the serialised copy is wiped. */
    sess = SSL_SESSION_new();
    CHECK(sess != NULL);
    memset(master, SECRET, sizeof master);
    CHECK(SSL_SESSION_set1_master_key(sess, master, sizeof master) == 1);
    CHECK(SSL_SESSION_set1_id(sess, SID, sizeof SID) == 1);
    CHECK(SSL_SESSION_set_protocol_version(sess, TLS1_2_VERSION) == 1);
    CHECK(SSL_SESSION_set_cipher(sess, SSL_CIPHER_find(ssl, (const unsigned char *)"\xc0\x2f")) == 1);
    CHECK(SSL_SESSION_set1_id_context(sess, CTX_ID, sizeof CTX_ID - 1) == 1);
    (void)SSL_SESSION_set_time(sess, (long)time(NULL));
    (void)SSL_SESSION_set_timeout(sess, 300);
    scrub();
    store(ssl, sess);
    CHECK(leftover_run() < RUN);
    /* It was stored, master secret and all. */
    {
        unsigned char *got = malloc(8192);
        CHECK(got != NULL);
        CHECK(scsp_get(cache, key, key_len, got, 8192, &n) == SCSP_OK && n > sizeof master);
        CHECK(memmem(got, n, master, sizeof master) != NULL);
        OPENSSL_cleanse(got, 8192);
        free(got);
    }

    /* 4. A hit: the session comes back, its serialised form does not stay. */
    scrub();
    found = lookup(ssl);
    CHECK(found != NULL);
    CHECK(leftover_run() < RUN);
    {
        unsigned char back[48];
        CHECK(SSL_SESSION_get_master_key(found, back, sizeof back) == sizeof back);
        CHECK(memcmp(back, master, sizeof back) == 0);
        OPENSSL_cleanse(back, sizeof back);
    }

    SSL_SESSION_free(found);
    SSL_SESSION_free(sess);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    scsp_close(cache);
    OPENSSL_cleanse(master, sizeof master);
    printf("openssl_wipe_test: %d checks passed\n", checks);
    return 0;
}
