/*
 * sets_test.c — the C ABI on a segment of the sets layout, which a C
 * server opens as it opens any other (here made by the Rust test, as
 * `scsp create --layout sets` makes one): put, get, take, remove, a value
 * too large for the segment's slots, and values shared with Rust; then
 * one created by this program with SCSP_OPEN_LAYOUT_SETS.
 *
 * usage: sets_test PATH
 *   PATH is a sets segment with 256-byte slots holding "rust-key" =
 *   "from-rust"; this program puts "c-key" = "from-c" for the Rust test.
 * Prints "sets_test: N checks passed" and exits 0, or names the failed
 * check and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scsp.h"

static int checks;

#define CHECK(cond)                                                               \
    do {                                                                          \
        checks++;                                                                 \
        if (!(cond)) {                                                            \
            fprintf(stderr, "sets_test: %s:%d: check failed: %s (last error: %s)\n", \
                    __FILE__, __LINE__, #cond, scsp_last_error());                \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    scsp_options o = SCSP_OPTIONS_INIT;
    o.flags = SCSP_OPEN_NO_CREATE;
    scsp_cache *c = NULL;
    CHECK(scsp_open(argv[1], &o, &c) == SCSP_OK && c != NULL);

    uint8_t buf[512], v[256];
    size_t n = sizeof buf;
    CHECK(scsp_get(c, K("rust-key"), buf, sizeof buf, &n) == SCSP_OK);
    CHECK(n == 9 && memcmp(buf, "from-rust", 9) == 0);

    /* A 256-byte slot: a 48-byte header, a key of up to 32 bytes and 176
     * bytes of value. */
    memset(v, 0x5a, sizeof v);
    CHECK(scsp_put(c, K("a-session-id"), v, 176, 300) == SCSP_OK);
    CHECK(scsp_put(c, K("a-session-id"), v, 177, 300) == SCSP_E_TOO_LARGE);
    n = 0;
    CHECK(scsp_get(c, K("a-session-id"), NULL, 0, &n) == SCSP_E_BUFFER && n == 176);
    n = sizeof buf;
    CHECK(scsp_get(c, K("a-session-id"), buf, sizeof buf, &n) == SCSP_OK);
    CHECK(n == 176 && memcmp(buf, v, 176) == 0);
    n = sizeof buf;
    CHECK(scsp_take(c, K("a-session-id"), buf, sizeof buf, &n) == SCSP_OK && n == 176);
    n = sizeof buf;
    CHECK(scsp_take(c, K("a-session-id"), buf, sizeof buf, &n) == SCSP_E_NOT_FOUND);
    CHECK(scsp_put(c, K("gone"), v, 10, 300) == SCSP_OK);
    CHECK(scsp_remove(c, K("gone")) == SCSP_OK);
    CHECK(scsp_remove(c, K("gone")) == SCSP_E_NOT_FOUND);

    struct scsp_stats s = SCSP_STATS_INIT;
    CHECK(scsp_stats(c, &s) == SCSP_OK);
    CHECK(s.puts >= 2 && s.takes == 1 && s.too_large == 1 && s.shards == 1);
    CHECK(s.index_slots * 256 == s.capacity_bytes); /* one way per slot */

    CHECK(scsp_put(c, K("c-key"), (const uint8_t *)"from-c", 6, 300) == SCSP_OK);
    scsp_close(c);

    /* A C program can also create one: PATH.new, with the default slot
     * (432-byte values, 512-byte slots). */
    char fresh[4096];
    snprintf(fresh, sizeof fresh, "%s.new", argv[1]);
    scsp_options no = SCSP_OPTIONS_INIT;
    no.flags = SCSP_OPEN_EXCL | SCSP_OPEN_LAYOUT_SETS;
    no.size_bytes = 1u << 20;
    CHECK(scsp_open(fresh, &no, &c) == SCSP_OK);
    struct scsp_stats f = SCSP_STATS_INIT;
    CHECK(scsp_stats(c, &f) == SCSP_OK);
    CHECK(f.shards == 1 && f.max_value == 432 && f.index_slots * 512 == f.capacity_bytes);
    CHECK(scsp_put(c, K("k"), v, 176, 300) == SCSP_OK);
    scsp_close(c);
    /* An unknown flag bit is still refused. */
    no.flags = 0x100u;
    CHECK(scsp_open(fresh, &no, &c) == SCSP_E_INVAL && c == NULL);
    printf("sets_test: %d checks passed\n", checks);
    return 0;
}
