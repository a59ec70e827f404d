/*
 * abi_test.c — every entry point of scsp.h given NULL pointers, zero
 * lengths, oversized values and small buffers returns the documented code;
 * plus threads, fork, and values shared with a Rust process.
 *
 * usage: abi_test DIR
 *   DIR is an empty scratch directory. DIR/shared is a segment made by the
 *   Rust test holding "rust-key" = "from-rust"; this program checks it and
 *   puts "c-key" = "from-c" for the Rust test to read back.
 * Prints "abi_test: N checks passed" and exits 0, or names the failed check
 * and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <setjmp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scsp.h"

_Static_assert(sizeof(scsp_options) == 56, "scsp_options layout is ABI");
_Static_assert(sizeof(struct scsp_stats) == 168, "scsp_stats layout is ABI");
_Static_assert(sizeof(scsp_ticket_key) == 96, "scsp_ticket_key layout is ABI");

static int checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            fprintf(stderr, "abi_test: %s:%d: check failed: %s (last error: %s)\n", \
                    __FILE__, __LINE__, #cond, scsp_last_error());               \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

static char dir[PATH_MAX];

/* DIR/name, in a static buffer: copy it before calling again. */
static const char *in_dir(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void check_static_strings(void)
{
    int codes[] = {SCSP_OK, SCSP_E_NOT_FOUND, SCSP_E_BUFFER, SCSP_E_TOO_LARGE, SCSP_E_INVAL,
                   SCSP_E_CORRUPT, SCSP_E_VERSION, SCSP_E_EXISTS, SCSP_E_PERM, SCSP_E_IO,
                   SCSP_E_INTERNAL, SCSP_E_OPENSSL};
    size_t i, j, n = sizeof codes / sizeof codes[0];
    CHECK(scsp_abi_version() == SCSP_ABI_VERSION);
    CHECK(scsp_version() != NULL && strchr(scsp_version(), '.') != NULL);
    CHECK(scsp_last_error() != NULL);
    for (i = 0; i < n; i++) {
        CHECK(scsp_strerror(codes[i]) != NULL && scsp_strerror(codes[i])[0] != '\0');
        CHECK(strcmp(scsp_strerror(codes[i]), scsp_strerror(12345)) != 0);
        for (j = 0; j < i; j++)
            CHECK(strcmp(scsp_strerror(codes[i]), scsp_strerror(codes[j])) != 0);
    }
    CHECK(strcmp(scsp_strerror(12345), "unknown scsp error code") == 0);
}

static void check_open_errors(void)
{
    scsp_cache *c = (scsp_cache *)&c; /* non-NULL garbage: must be reset to NULL */
    scsp_options o = SCSP_OPTIONS_INIT;
    FILE *f;
    char junk[8192], target[PATH_MAX + 64];

    CHECK(scsp_open(in_dir("x"), NULL, NULL) == SCSP_E_INVAL);
    CHECK(scsp_open(NULL, NULL, &c) == SCSP_E_INVAL && c == NULL);
    CHECK(strstr(scsp_last_error(), "path is NULL") != NULL);
    CHECK(scsp_open("", NULL, &c) == SCSP_E_INVAL && c == NULL);

    o.struct_size = 0;
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    CHECK(strstr(scsp_last_error(), "struct_size") != NULL);
    o.struct_size = sizeof o;
    o.flags = 0x100;
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    o.flags = SCSP_OPEN_NO_CREATE | SCSP_OPEN_EXCL;
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    o.flags = 0;
    o.typical_value = 1; /* below 64 */
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    CHECK(strstr(scsp_last_error(), "typical value") != NULL);
    o.typical_value = 0;
    o.shards = 3; /* not a power of two */
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL && c == NULL);
    CHECK(strstr(scsp_last_error(), "shards") != NULL);
    o.shards = 0;
    o.max_value = 1u << 20; /* over the 64 KiB limit */
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    o.max_value = 0;
    o.ticket_period_secs = 60;
    o.ticket_lifetime_secs = 121; /* over twice the period */
    CHECK(scsp_open(in_dir("x"), &o, &c) == SCSP_E_INVAL);
    CHECK(strstr(scsp_last_error(), "lifetime") != NULL);
    o.ticket_period_secs = o.ticket_lifetime_secs = 0;

    /* Missing file with NO_CREATE: SCSP_E_IO and errno ENOENT. */
    o.flags = SCSP_OPEN_NO_CREATE;
    errno = 0;
    CHECK(scsp_open(in_dir("missing"), &o, &c) == SCSP_E_IO && errno == ENOENT && c == NULL);
    errno = 0;
    CHECK(scsp_open(in_dir("no/such/dir"), NULL, &c) == SCSP_E_IO && errno == ENOENT);

    /* A file that is not a segment. */
    memset(junk, 'j', sizeof junk);
    f = fopen(in_dir("junk"), "w");
    CHECK(f != NULL && fwrite(junk, 1, sizeof junk, f) == sizeof junk);
    fclose(f);
    CHECK(chmod(in_dir("junk"), 0600) == 0);
    CHECK(scsp_open(in_dir("junk"), NULL, &c) == SCSP_E_CORRUPT && c == NULL);
    /* EXCL on an existing file. */
    o.flags = SCSP_OPEN_EXCL;
    CHECK(scsp_open(in_dir("junk"), &o, &c) == SCSP_E_EXISTS);
    /* ... whatever its mode: never advice to chmod some other file. */
    CHECK(chmod(in_dir("junk"), 0644) == 0);
    CHECK(scsp_open(in_dir("junk"), NULL, &c) == SCSP_E_CORRUPT && c == NULL);
    /* A world-writable segment is refused. */
    o.flags = 0;
    o.size_bytes = 1u << 20;
    o.shards = 2;
    CHECK(scsp_open(in_dir("modes"), &o, &c) == SCSP_OK);
    scsp_close(c);
    c = NULL;
    CHECK(chmod(in_dir("modes"), 0666) == 0);
    CHECK(scsp_open(in_dir("modes"), NULL, &c) == SCSP_E_PERM);
    CHECK(strstr(scsp_last_error(), "chmod o-rwx") != NULL);
    /* Readable by others is refused too: sessions are secrets. */
    CHECK(chmod(in_dir("modes"), 0604) == 0);
    CHECK(scsp_open(in_dir("modes"), NULL, &c) == SCSP_E_PERM && c == NULL);
    CHECK(strstr(scsp_last_error(), "read it") != NULL);
    snprintf(target, sizeof target, "%s", in_dir("shared"));
    CHECK(symlink(target, in_dir("link")) == 0);
    CHECK(scsp_open(in_dir("link"), NULL, &c) == SCSP_E_PERM && c == NULL);
}

/* Each bad option is refused with a message naming the opts-> field. */
static void bad_size(scsp_options *x) { x->size_bytes = 4096; }
static void bad_max_value(scsp_options *x) { x->max_value = 1000; }
static void bad_shards(scsp_options *x) { x->shards = 3; }
static void bad_mode_other(scsp_options *x) { x->mode = 0604; }
static void bad_mode_group(scsp_options *x) { x->mode = 0640; }
static void bad_mode_exec(scsp_options *x) { x->mode = 0700; }
static void bad_sets_shards(scsp_options *x) { x->flags = SCSP_OPEN_LAYOUT_SETS; x->shards = 4; }
static void bad_sets_typical(scsp_options *x) { x->flags = SCSP_OPEN_LAYOUT_SETS; x->typical_value = 300; }
static void bad_typical(scsp_options *x) { x->typical_value = 16; }
static void bad_lifetime(scsp_options *x) { x->ticket_period_secs = 60; x->ticket_lifetime_secs = 121; }
static void bad_reserved(scsp_options *x) { x->reserved = 1; }

static void check_field_names(void)
{
    static const struct {
        void (*set)(scsp_options *);
        const char *names;
    } cases[] = {
        {bad_size, "opts->size_bytes"},
        {bad_max_value, "opts->max_value"},
        {bad_shards, "opts->shards"},
        {bad_mode_other, "opts->mode"},
        {bad_mode_group, "opts->mode"},
        {bad_mode_exec, "opts->mode"},
        {bad_sets_shards, "opts->shards"},
        {bad_sets_typical, "opts->typical_value"},
        {bad_typical, "opts->typical_value"},
        {bad_lifetime, "opts->ticket_lifetime_secs"},
        {bad_reserved, "opts->reserved"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        scsp_cache *c = (scsp_cache *)&c;
        scsp_options o = SCSP_OPTIONS_INIT;
        cases[i].set(&o);
        CHECK(scsp_open(in_dir("fields"), &o, &c) == SCSP_E_INVAL && c == NULL);
        if (strstr(scsp_last_error(), cases[i].names) == NULL) {
            fprintf(stderr, "abi_test: case %zu: \"%s\" does not name %s\n", i,
                    scsp_last_error(), cases[i].names);
            CHECK(0);
        }
        /* Only the field at fault is named. */
        CHECK(cases[i].set == bad_size || strstr(scsp_last_error(), "size_bytes") == NULL);
    }
    /* The other-read mode says what to use instead. */
    {
        scsp_cache *c = NULL;
        scsp_options o = SCSP_OPTIONS_INIT;
        o.mode = 0644;
        CHECK(scsp_open(in_dir("fields"), &o, &c) == SCSP_E_INVAL);
        CHECK(strstr(scsp_last_error(), "660") != NULL);
    }
}

/* A caller built against the version-1 header (48 bytes, no .owner)
 * still opens; bytes past its struct_size are not read. */
static void check_version_1_options(void)
{
    scsp_cache *c = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    o.struct_size = 48;
    o.size_bytes = 1u << 20;
    o.shards = 2;
    o.max_value = 1024;
    o.reserved = 0xdead; /* outside a version-1 struct: ignored */
    CHECK(scsp_open(in_dir("v1"), &o, &c) == SCSP_OK && c != NULL);
    scsp_close(c);
}

static scsp_cache *open_small(const char *name)
{
    scsp_cache *c = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    o.flags = SCSP_OPEN_EXCL;
    o.size_bytes = 1u << 20;
    o.shards = 2;
    o.max_value = 1024;
    CHECK(scsp_open(in_dir(name), &o, &c) == SCSP_OK && c != NULL);
    return c;
}

static void check_put(scsp_cache *c)
{
    static uint8_t big[1 << 16], key255[255], key256[256];
    size_t n = 0;
    uint8_t buf[8];
    memset(key255, 'k', sizeof key255);
    memset(key256, 'k', sizeof key256);

    CHECK(scsp_put(NULL, K("k"), K("v"), 60) == SCSP_E_INVAL);
    CHECK(scsp_put(c, NULL, 1, K("v"), 60) == SCSP_E_INVAL);
    CHECK(scsp_put(c, K(""), K("v"), 60) == SCSP_E_INVAL);
    CHECK(scsp_put(c, key256, sizeof key256, K("v"), 60) == SCSP_E_INVAL);
    CHECK(strstr(scsp_last_error(), "255") != NULL);
    CHECK(scsp_put(c, key255, sizeof key255, K("v"), 60) == SCSP_OK);
    CHECK(scsp_put(c, K("k"), NULL, 5, 60) == SCSP_E_INVAL);
    CHECK(scsp_put(c, K("k"), K("v"), 0) == SCSP_E_INVAL);
    /* A TTL over SCSP_MAX_TTL_SECS is clamped, not refused (the Rust side
     * checks the expiry of the ones put in check_rust_interop). */
    CHECK(scsp_put(c, K("k"), K("v"), UINT32_MAX) == SCSP_OK);
    CHECK(scsp_put(c, K("k"), K("v"), SCSP_MAX_TTL_SECS + 1) == SCSP_OK);
    CHECK(SCSP_MAX_TTL_SECS == 7u * 24 * 3600);
    CHECK(scsp_put(c, K("k"), big, 1025, 60) == SCSP_E_TOO_LARGE);
    CHECK(scsp_put(c, K("k"), big, SIZE_MAX, 60) == SCSP_E_TOO_LARGE);
    CHECK(scsp_put(c, K("max"), big, 1024, 60) == SCSP_OK);
    /* An empty value is a value. */
    CHECK(scsp_put(c, K("empty"), NULL, 0, 60) == SCSP_OK);
    CHECK(scsp_get(c, K("empty"), buf, sizeof buf, &n) == SCSP_OK && n == 0);
    CHECK(scsp_get(c, K("empty"), NULL, 0, &n) == SCSP_OK && n == 0);
}

static void check_get_and_take(scsp_cache *c)
{
    uint8_t small[4], exact[11], huge[1024], key[8] = "overlap";
    size_t n = 99;

    CHECK(scsp_put(c, K("hello"), K("hello world"), 60) == SCSP_OK);
    /* Argument errors, for both. */
    CHECK(scsp_get(NULL, K("hello"), exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_get(c, NULL, 5, exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_get(c, K(""), exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_get(c, huge, 256, exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_get(c, K("hello"), exact, sizeof exact, NULL) == SCSP_E_INVAL);
    CHECK(scsp_get(c, K("hello"), NULL, 10, &n) == SCSP_E_INVAL);
    CHECK(scsp_get(c, key, 7, key, sizeof key, &n) == SCSP_E_INVAL);
    CHECK(scsp_take(NULL, K("hello"), exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_take(c, NULL, 5, exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_take(c, K(""), exact, sizeof exact, &n) == SCSP_E_INVAL);
    CHECK(scsp_take(c, K("hello"), exact, sizeof exact, NULL) == SCSP_E_INVAL);
    CHECK(scsp_take(c, K("hello"), NULL, 10, &n) == SCSP_E_INVAL);

    /* Size query and small buffers: SCSP_E_BUFFER with the size needed,
     * nothing copied, nothing taken. */
    n = 0;
    CHECK(scsp_get(c, K("hello"), NULL, 0, &n) == SCSP_E_BUFFER && n == 11);
    memset(small, 0xAA, sizeof small);
    n = 0;
    CHECK(scsp_get(c, K("hello"), small, sizeof small, &n) == SCSP_E_BUFFER && n == 11);
    CHECK(small[0] == 0xAA && small[3] == 0xAA);
    n = 0;
    CHECK(scsp_take(c, K("hello"), small, sizeof small, &n) == SCSP_E_BUFFER && n == 11);
    CHECK(scsp_get(c, K("hello"), exact, sizeof exact, &n) == SCSP_OK && n == 11);
    CHECK(memcmp(exact, "hello world", 11) == 0);
    /* A capacity larger than the buffer's real size is clamped to max_value. */
    CHECK(scsp_get(c, K("hello"), huge, SIZE_MAX, &n) == SCSP_OK && n == 11);

    /* Misses. */
    n = 99;
    CHECK(scsp_get(c, K("absent"), exact, sizeof exact, &n) == SCSP_E_NOT_FOUND && n == 0);
    n = 99;
    CHECK(scsp_take(c, K("absent"), exact, sizeof exact, &n) == SCSP_E_NOT_FOUND && n == 0);

    /* An expired value is never copied: the buffer keeps its pattern. */
    {
        uint8_t pattern[64];
        int tries;
        CHECK(scsp_put(c, K("short-lived"), K("SECRET-SESSION-BYTES"), 1) == SCSP_OK);
        for (tries = 0; tries < 50; tries++) {
            memset(pattern, 0xAA, sizeof pattern);
            if (scsp_get(c, K("short-lived"), pattern, sizeof pattern, &n) == SCSP_E_NOT_FOUND)
                break;
            usleep(100 * 1000); /* the entry lives 1 to 2 s */
        }
        CHECK(tries < 50 && n == 0);
        CHECK(memchr(pattern, 'S', sizeof pattern) == NULL && pattern[0] == 0xAA &&
              pattern[sizeof pattern - 1] == 0xAA);
        memset(pattern, 0xAA, sizeof pattern);
        CHECK(scsp_take(c, K("short-lived"), pattern, sizeof pattern, &n) == SCSP_E_NOT_FOUND);
        CHECK(pattern[0] == 0xAA && pattern[19] == 0xAA);
    }

    /* take hands the value out exactly once. */
    memset(exact, 0, sizeof exact);
    CHECK(scsp_take(c, K("hello"), exact, sizeof exact, &n) == SCSP_OK && n == 11);
    CHECK(memcmp(exact, "hello world", 11) == 0);
    CHECK(scsp_take(c, K("hello"), exact, sizeof exact, &n) == SCSP_E_NOT_FOUND);
    CHECK(scsp_get(c, K("hello"), exact, sizeof exact, &n) == SCSP_E_NOT_FOUND);
}

static void check_remove_and_stats(scsp_cache *c)
{
    struct scsp_stats s = SCSP_STATS_INIT;
    uint8_t buf[16];
    size_t n;

    CHECK(scsp_remove(NULL, K("k")) == SCSP_E_INVAL);
    CHECK(scsp_remove(c, NULL, 1) == SCSP_E_INVAL);
    CHECK(scsp_remove(c, K("")) == SCSP_E_INVAL);
    CHECK(scsp_put(c, K("gone"), K("soon"), 60) == SCSP_OK);
    CHECK(scsp_remove(c, K("gone")) == SCSP_OK);
    CHECK(scsp_remove(c, K("gone")) == SCSP_E_NOT_FOUND);
    CHECK(scsp_get(c, K("gone"), buf, sizeof buf, &n) == SCSP_E_NOT_FOUND);

    CHECK(scsp_stats(NULL, &s) == SCSP_E_INVAL);
    CHECK(scsp_stats(c, NULL) == SCSP_E_INVAL);
    s.struct_size = 8;
    CHECK(scsp_stats(c, &s) == SCSP_E_INVAL);
    s.struct_size = sizeof s;
    CHECK(scsp_stats(c, &s) == SCSP_OK);
    CHECK(s.struct_size == sizeof s);
    CHECK(s.max_value == 1024 && s.shards == 2 && s.capacity_bytes == (1u << 20));
    CHECK(s.puts >= 4 && s.hits >= 3 && s.misses >= 3 && s.too_large >= 1);
    CHECK(s.removes == 2 && s.takes == 1 && s.processes >= 1);
    CHECK(s.log_fill > 0.0 && s.log_fill <= 1.0);
}

static void check_replaced(void)
{
    scsp_cache *c = open_small("replaced");
    scsp_cache *again = NULL;
    CHECK(scsp_replaced(NULL) == SCSP_E_INVAL);
    CHECK(scsp_replaced(c) == 0);
    /* An upgrade: the file is removed and a new segment made at the path. */
    CHECK(unlink(in_dir("replaced")) == 0);
    CHECK(scsp_replaced(c) == 1);
    again = open_small("replaced");
    CHECK(scsp_replaced(c) == 1);
    CHECK(scsp_replaced(again) == 0);
    /* The old handle still works, on the old file. */
    CHECK(scsp_put(c, K("k"), K("v"), 60) == SCSP_OK);
    scsp_close(again);
    scsp_close(c);
}

/* In a child: use a segment whose file is then truncated under it, with
 * or without the guard (guarded < 0: without, and only close it, as a
 * server's master closes its old handle on reload; 2: with, and grow the
 * file back before any access). Returns the child's wait status. */
static int truncated_in_child(const char *name, int guarded)
{
    int status = 0;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        scsp_cache *c = open_small(name);
        uint8_t buf[64];
        size_t n = 0;
        struct stat whole;
        if (scsp_put(c, K("k"), K("v"), 60) != SCSP_OK)
            _exit(2);
        if (guarded > 0 && (scsp_guard_truncation(c) != SCSP_OK
                        || scsp_guard_truncation(c) != SCSP_OK))
            _exit(3);
        /* A server that sets its own SIGBUS action afterwards, then guards
         * again (as a worker does at its start): the guard is back. */
        if (guarded > 0 && (signal(SIGBUS, SIG_DFL) == SIG_ERR || scsp_guard_truncation(c) != SCSP_OK))
            _exit(4);
        if (stat(in_dir(name), &whole) != 0 || scsp_replaced(c) != 0
            || truncate(in_dir(name), 0) != 0)
            _exit(5);
        if (guarded < 0) {
            scsp_close(c);
            _exit(0);
        }
        /* Cut and grown back before any access: the header is gone, and
         * the process is told to reopen all the same. */
        if (guarded == 2) {
            if (truncate(in_dir(name), whole.st_size) != 0 || scsp_replaced(c) != 1)
                _exit(8);
            _exit(0);
        }
        if (scsp_get(c, K("k"), buf, sizeof buf, &n) != SCSP_E_NOT_FOUND)
            _exit(6);
        (void)scsp_put(c, K("k2"), K("v2"), 60);
        if (scsp_replaced(c) != 1)
            _exit(7);
        scsp_close(c);
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* A SIGBUS that is not scsp's: a page of another file cut under its
 * mapping. */
static void foreign_sigbus(const char *name)
{
    volatile char *p;
    int fd = open(in_dir(name), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        _exit(20);
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
        _exit(21);
    close(fd);
    (void)p[0];
}

static sigjmp_buf recovered;
static void recovering_handler(int sig)
{
    (void)sig;
    siglongjmp(recovered, 1);
}

static struct sigaction chained_to;
/* Hands every fault to the action it replaced, as crash reporters do. */
static void chaining_handler(int sig, siginfo_t *info, void *ctx)
{
    if (chained_to.sa_flags & SA_SIGINFO)
        chained_to.sa_sigaction(sig, info, ctx);
    else if (chained_to.sa_handler != SIG_DFL && chained_to.sa_handler != SIG_IGN)
        chained_to.sa_handler(sig);
    else
        signal(sig, SIG_DFL);
}

/* In a child: the guard beside the process's own SIGBUS handlers. */
static int foreign_in_child(const char *name, int chaining)
{
    int status = 0;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        scsp_cache *c = open_small(name);
        uint8_t buf[64];
        size_t n = 0;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        alarm(10); /* a fault bounced between handlers must not hang */
        if (!chaining) {
            /* A handler that recovers, installed first: a fault elsewhere
             * goes to it, and the guard stays for the segment. */
            sa.sa_handler = recovering_handler;
            if (sigaction(SIGBUS, &sa, NULL) != 0 || scsp_guard_truncation(c) != SCSP_OK)
                _exit(10);
            if (sigsetjmp(recovered, 1) == 0) {
                foreign_sigbus("foreign-recovered");
                _exit(11);
            }
            if (truncate(in_dir(name), 0) != 0
                || scsp_get(c, K("k"), buf, sizeof buf, &n) != SCSP_E_NOT_FOUND
                || scsp_replaced(c) != 1)
                _exit(12);
            _exit(0);
        }
        /* A handler that chains to the guard it replaced, and the guard
         * installed again over it: a fault elsewhere ends the process as
         * a SIGBUS, bounced back and forth a few times at most. */
        sa.sa_sigaction = chaining_handler;
        sa.sa_flags = SA_SIGINFO;
        if (scsp_guard_truncation(c) != SCSP_OK || sigaction(SIGBUS, &sa, &chained_to) != 0
            || scsp_guard_truncation(c) != SCSP_OK)
            _exit(13);
        foreign_sigbus("foreign-chained");
        _exit(14);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* A truncated segment kills a process that did not ask for the guard
 * (SIGBUS), and one that did reads it as empty and is told to reopen. */
static void check_guard_truncation(void)
{
    int status;
    CHECK(scsp_guard_truncation(NULL) == SCSP_E_INVAL);
    status = truncated_in_child("cut-unguarded", 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
    /* Closing the handle, though, touches nothing the file no longer backs. */
    status = truncated_in_child("cut-closed", -1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    status = foreign_in_child("cut-beside-recovering", 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "abi_test: beside a recovering handler: status %#x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    status = foreign_in_child("cut-beside-chaining", 1);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS)
        fprintf(stderr, "abi_test: beside a chaining handler: status %#x\n", status);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
    status = truncated_in_child("cut-regrown", 2);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    status = truncated_in_child("cut-guarded", 1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "abi_test: guarded child: status %#x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void check_prefault(void)
{
    scsp_cache *c = open_small("prefault");
    int rc;
    errno = 0;
    CHECK(scsp_prefault(NULL) == SCSP_E_INVAL);
    rc = scsp_prefault(c);
    /* EINVAL: a kernel before 5.14, which has no MADV_POPULATE_READ. */
    CHECK(rc == SCSP_OK || (rc == SCSP_E_IO && errno == EINVAL &&
                            strstr(scsp_last_error(), "5.14") != NULL));
    CHECK(scsp_put(c, K("k"), K("v"), 60) == SCSP_OK);
    scsp_close(c);
}

static void check_ticket_key_arguments(scsp_cache *c)
{
    scsp_ticket_key k;
    uint8_t name[16] = {0};
    uint32_t secs = 0;
    CHECK(scsp_ticket_key_current(NULL, &k) == SCSP_E_INVAL);
    CHECK(scsp_ticket_key_current(c, NULL) == SCSP_E_INVAL);
    CHECK(scsp_ticket_key_find(NULL, name, &k) == SCSP_E_INVAL);
    CHECK(scsp_ticket_key_find(c, NULL, &k) == SCSP_E_INVAL);
    CHECK(scsp_ticket_key_find(c, name, NULL) == SCSP_E_INVAL);
    CHECK(scsp_ticket_key_find(c, name, &k) == SCSP_E_NOT_FOUND);
    CHECK(scsp_ticket_lifetime(NULL, &secs) == SCSP_E_INVAL);
    CHECK(scsp_ticket_lifetime(c, NULL) == SCSP_E_INVAL);
    CHECK(scsp_ticket_lifetime(c, &secs) == SCSP_OK && secs == 12 * 3600); /* the default */
}

static int all_zero(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* A handle asking for another rotation policy than the one the segment
 * stores gets no key, from any ticket call, and a message naming both
 * policies, every time it asks. */
static void check_other_policy(const scsp_options *stored, const uint8_t name[16])
{
    scsp_cache *c = NULL;
    scsp_options o = *stored;
    scsp_ticket_key k;
    uint32_t secs = 0;
    int i;
    o.flags = SCSP_OPEN_NO_CREATE;
    o.ticket_period_secs = 3;
    o.ticket_lifetime_secs = 6;
    CHECK(scsp_open(in_dir("rotating"), &o, &c) == SCSP_OK);
    for (i = 0; i < 2; i++) {
        CHECK(scsp_ticket_key_current(c, &k) == SCSP_E_INVAL);
        CHECK(strstr(scsp_last_error(), "rotate every 2 s") != NULL);
        CHECK(strstr(scsp_last_error(), "asks for 3 s") != NULL);
        CHECK(scsp_ticket_key_find(c, name, &k) == SCSP_E_INVAL);
        CHECK(scsp_ticket_lifetime(c, &secs) == SCSP_E_INVAL);
    }
    scsp_close(c);
}

/* The current key is found by its name, flagged current, and is the same
 * key for every handle on the segment. Wiped after use, as documented. */
static void check_ticket_keys(scsp_cache *c)
{
    scsp_ticket_key cur, found, again;
    scsp_cache *other = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    CHECK(scsp_ticket_key_current(c, &cur) == SCSP_OK);
    CHECK(cur.flags == SCSP_TICKET_KEY_CURRENT);
    CHECK(!all_zero(cur.name, 16) && !all_zero(cur.aes_key, 32) && !all_zero(cur.hmac_key, 32));
    CHECK(memcmp(cur.aes_key, cur.hmac_key, 32) != 0 && cur.created > 0);
    CHECK(scsp_ticket_key_find(c, cur.name, &found) == SCSP_OK);
    CHECK(found.flags == SCSP_TICKET_KEY_CURRENT);
    CHECK(memcmp(&found, &cur, sizeof cur) == 0);
    o.flags = SCSP_OPEN_NO_CREATE;
    CHECK(scsp_open(in_dir("small"), &o, &other) == SCSP_OK);
    CHECK(scsp_ticket_key_current(other, &again) == SCSP_OK);
    CHECK(memcmp(&again, &cur, sizeof cur) == 0);
    scsp_close(other);
    found.name[0] ^= 1;
    CHECK(scsp_ticket_key_find(c, found.name, &found) == SCSP_E_NOT_FOUND);
    explicit_bzero(&cur, sizeof cur);
    explicit_bzero(&found, sizeof found);
    explicit_bzero(&again, sizeof again);
}

struct thread_arg {
    scsp_cache *c;
    int id, ok;
};

static void *hammer(void *p)
{
    struct thread_arg *a = (struct thread_arg *)p;
    char key[32], val[32], got[32];
    size_t n;
    int i;
    a->ok = 1;
    for (i = 0; i < 500; i++) {
        int kl = snprintf(key, sizeof key, "t%d-%d", a->id, i);
        int vl = snprintf(val, sizeof val, "value-%d-%d", a->id, i);
        if (scsp_put(a->c, (uint8_t *)key, (size_t)kl, (uint8_t *)val, (size_t)vl, 60) != SCSP_OK ||
            scsp_get(a->c, (uint8_t *)key, (size_t)kl, (uint8_t *)got, sizeof got, &n) != SCSP_OK ||
            n != (size_t)vl || memcmp(got, val, n) != 0)
            a->ok = 0;
    }
    return NULL;
}

static void check_threads(scsp_cache *c)
{
    pthread_t t[4];
    struct thread_arg a[4];
    int i;
    for (i = 0; i < 4; i++) {
        a[i].c = c;
        a[i].id = i;
        CHECK(pthread_create(&t[i], NULL, hammer, &a[i]) == 0);
    }
    for (i = 0; i < 4; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(a[i].ok);
    }
}

/* The handle survives fork(): the child sees the parent's value through its
 * copy, writes one the parent sees, and counts in a slot of its own. */
static void check_fork(scsp_cache *c)
{
    uint8_t buf[32];
    size_t n = 0;
    int status;
    pid_t pid;
    CHECK(scsp_put(c, K("from-parent"), K("p"), 60) == SCSP_OK);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct scsp_stats s = SCSP_STATS_INIT;
        int ok = scsp_get(c, K("from-parent"), buf, sizeof buf, &n) == SCSP_OK && n == 1 &&
                 buf[0] == 'p' && scsp_put(c, K("from-child"), K("c"), 60) == SCSP_OK &&
                 scsp_stats(c, &s) == SCSP_OK && s.processes >= 2;
        scsp_close(c);
        _exit(ok ? 0 : 1);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(scsp_get(c, K("from-child"), buf, sizeof buf, &n) == SCSP_OK && n == 1 && buf[0] == 'c');
}

/* After a rotation the previous key still decrypts but is not current, so
 * an OpenSSL callback renews the ticket (returns 2). Period 2 s, lifetime
 * 4 s: the old key stays findable for 4 s after the rotation is seen. */
static void check_ticket_key_rotation(void)
{
    scsp_cache *c = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    scsp_ticket_key old, cur, found;
    struct timespec tick = {0, 50 * 1000 * 1000};
    uint32_t secs = 0;
    int i;
    o.size_bytes = 1u << 20;
    o.shards = 2;
    o.ticket_period_secs = 2;
    o.ticket_lifetime_secs = 4;
    CHECK(scsp_open(in_dir("rotating"), &o, &c) == SCSP_OK);
    CHECK(scsp_ticket_lifetime(c, &secs) == SCSP_OK && secs == 4);
    CHECK(scsp_ticket_key_current(c, &old) == SCSP_OK);
    for (i = 0; i < 200; i++) { /* bounded: at most ~10 s */
        CHECK(scsp_ticket_key_current(c, &cur) == SCSP_OK);
        if (memcmp(cur.name, old.name, 16) != 0)
            break;
        nanosleep(&tick, NULL);
    }
    CHECK(memcmp(cur.name, old.name, 16) != 0);
    CHECK(cur.created > old.created);
    CHECK(scsp_ticket_key_find(c, old.name, &found) == SCSP_OK);
    CHECK(found.flags == 0 && memcmp(found.aes_key, old.aes_key, 32) == 0);
    CHECK(scsp_ticket_key_find(c, cur.name, &found) == SCSP_OK);
    CHECK(found.flags == SCSP_TICKET_KEY_CURRENT);
    check_other_policy(&o, cur.name);
    explicit_bzero(&old, sizeof old);
    explicit_bzero(&cur, sizeof cur);
    explicit_bzero(&found, sizeof found);
    scsp_close(c);
}

/* typical_value sizes a new segment's index: 1 MiB of log has one slot per
 * 64 B by default, and about four per 1104-byte entry for 1 KiB values. */
static void check_typical_value(void)
{
    scsp_cache *c = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    struct scsp_stats s = SCSP_STATS_INIT;
    o.size_bytes = 1u << 20;
    o.shards = 2;
    o.max_value = 1024;
    CHECK(scsp_open(in_dir("typical-default"), &o, &c) == SCSP_OK);
    CHECK(scsp_stats(c, &s) == SCSP_OK && s.index_slots == 16384);
    scsp_close(c);
    o.typical_value = 1024;
    CHECK(scsp_open(in_dir("typical-1k"), &o, &c) == SCSP_OK);
    CHECK(scsp_stats(c, &s) == SCSP_OK && s.index_slots == 4096);
    scsp_close(c);
    o.typical_value = 2048; /* over max_value */
    c = NULL;
    CHECK(scsp_open(in_dir("typical-bad"), &o, &c) == SCSP_E_INVAL && c == NULL);
    CHECK(strstr(scsp_last_error(), "typical value") != NULL);
}

/* Values cross the language boundary both ways through one segment. */
static void check_rust_interop(void)
{
    scsp_cache *c = NULL;
    scsp_options o = SCSP_OPTIONS_INIT;
    uint8_t buf[64];
    size_t n = 0;
    o.flags = SCSP_OPEN_NO_CREATE;
    CHECK(scsp_open(in_dir("shared"), &o, &c) == SCSP_OK);
    CHECK(scsp_get(c, K("rust-key"), buf, sizeof buf, &n) == SCSP_OK);
    CHECK(n == 9 && memcmp(buf, "from-rust", 9) == 0);
    CHECK(scsp_put(c, K("c-key"), K("from-c"), 300) == SCSP_OK);
    /* TTLs beyond 7 days: the Rust test reads back their expiry. */
    CHECK(scsp_put(c, K("c-ttl-max"), K("v"), UINT32_MAX) == SCSP_OK);
    CHECK(scsp_put(c, K("c-ttl-7d+1"), K("v"), SCSP_MAX_TTL_SECS + 1) == SCSP_OK);
    CHECK(scsp_put(c, K("c-ttl-7d"), K("v"), SCSP_MAX_TTL_SECS) == SCSP_OK);
    /* The ticket key ring is shared with Rust: publish the (public) name of
     * the current key for the Rust test to compare with its own. */
    {
        scsp_ticket_key k;
        CHECK(scsp_ticket_key_current(c, &k) == SCSP_OK);
        CHECK(scsp_put(c, K("c-ticket-key-name"), k.name, 16, 300) == SCSP_OK);
        explicit_bzero(&k, sizeof k);
    }
    scsp_close(c);
}

int main(int argc, char **argv)
{
    scsp_cache *c;
    if (argc != 2) {
        fprintf(stderr, "usage: abi_test DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    check_static_strings();
    check_open_errors();
    check_field_names();
    check_version_1_options();
    c = open_small("small");
    check_put(c);
    check_get_and_take(c);
    check_remove_and_stats(c);
    check_ticket_key_arguments(c);
    check_ticket_keys(c);
    check_threads(c);
    check_fork(c);
    scsp_close(c);
    scsp_close(NULL);
    check_ticket_key_rotation();
    check_typical_value();
    check_replaced();
    check_guard_truncation();
    check_prefault();
    check_rust_interop();
    printf("abi_test: %d checks passed\n", checks);
    return 0;
}
