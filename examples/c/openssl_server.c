/*
 * openssl_server.c — a small prefork OpenSSL TLS server whose workers share
 * sessions (and ticket keys) through scsp. Each worker listens on its own
 * port, so a client (or a test) can pick which worker it talks to; every
 * worker answers "worker <pid> new|reused" and closes.
 *
 *   cc -o openssl_server openssl_server.c $(pkg-config --cflags --libs scsp-openssl)
 *   ./openssl_server --cert cert.pem --key key.pem --port 8443 --workers 4
 *   openssl s_client -connect 127.0.0.1:8443 -sess_out s.pem -ign_eof </dev/null
 *   openssl s_client -connect 127.0.0.1:8444 -sess_in  s.pem -ign_eof </dev/null  # "Reused"
 *
 * Options:
 *   --cert FILE --key FILE     certificate chain and private key (PEM)
 *   --addr IP                  loopback address to listen on (default 127.0.0.1)
 *   --port N                   first port; worker i listens on N+i (0: any free port)
 *   --workers N                worker processes (default 2)
 *   --tls 1.2|1.3|any          protocol version (default any)
 *   --cache on|off             session cache in scsp (default on)
 *   --tickets shared|local|off stateless tickets with scsp's shared keys, with
 *                              each worker's own OpenSSL keys, or none (default shared)
 *   --segment PATH             scsp segment (default /dev/shm/scsp-openssl-example)
 *   --early-data N             accept up to N bytes of TLS 1.3 early data (default 0);
 *                              sessions then resume once (OpenSSL's anti-replay)
 *
 * On start it prints "worker <i> port <port>" per worker, then each worker
 * prints "worker <i> pid <pid> ready". SIGTERM or SIGINT stops everything.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "scsp.h"
#include "scsp_openssl.h"

#define MAX_WORKERS 64

struct config {
    const char *cert, *key, *segment, *tls, *cache, *tickets, *addr;
    int port, workers, early_data;
};

static void usage(const char *why)
{
    fprintf(stderr, "openssl_server: %s\n"
                    "usage: openssl_server --cert FILE --key FILE [--addr IP] [--port N] [--workers N]\n"
                    "       [--tls 1.2|1.3|any] [--cache on|off] [--tickets shared|local|off]\n"
                    "       [--segment PATH] [--early-data N]\n", why);
    exit(2);
}

static int one_of(const char *v, const char *a, const char *b, const char *c)
{
    return strcmp(v, a) == 0 || strcmp(v, b) == 0 || (c != NULL && strcmp(v, c) == 0);
}

static void parse(int argc, char **argv, struct config *cfg)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            usage("every option takes a value");
        i++;
        if (strcmp(flag, "--cert") == 0) cfg->cert = val;
        else if (strcmp(flag, "--key") == 0) cfg->key = val;
        else if (strcmp(flag, "--segment") == 0) cfg->segment = val;
        else if (strcmp(flag, "--tls") == 0) cfg->tls = val;
        else if (strcmp(flag, "--cache") == 0) cfg->cache = val;
        else if (strcmp(flag, "--tickets") == 0) cfg->tickets = val;
        else if (strcmp(flag, "--addr") == 0) cfg->addr = val;
        else if (strcmp(flag, "--port") == 0) cfg->port = atoi(val);
        else if (strcmp(flag, "--workers") == 0) cfg->workers = atoi(val);
        else if (strcmp(flag, "--early-data") == 0) cfg->early_data = atoi(val);
        else usage("unknown option");
    }
    if (cfg->cert == NULL || cfg->key == NULL) usage("--cert and --key are required");
    if (cfg->workers < 1 || cfg->workers > MAX_WORKERS) usage("--workers must be 1..64");
    if (cfg->early_data < 0) usage("--early-data must be 0 or more bytes");
    if (cfg->port < 0 || cfg->port + cfg->workers > 65536) usage("--port out of range");
    if (!one_of(cfg->tls, "1.2", "1.3", "any")) usage("--tls must be 1.2, 1.3 or any");
    if (!one_of(cfg->cache, "on", "off", NULL)) usage("--cache must be on or off");
    if (!one_of(cfg->tickets, "shared", "local", "off")) usage("--tickets must be shared, local or off");
    {
        struct in_addr ip;
        if (inet_pton(AF_INET, cfg->addr, &ip) != 1 || (ntohl(ip.s_addr) >> 24) != 127)
            usage("--addr must be an IPv4 loopback address (127.x.y.z)");
    }
}

static int listen_on(const char *addr, int port)
{
    struct sockaddr_in a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) /* checked loopback in parse() */
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    return getsockname(fd, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
}

/* Each worker builds its own SSL_CTX after fork(): nothing is shared between
 * workers except what scsp shares. */
static SSL_CTX *make_ctx(const struct config *cfg, scsp_cache *cache)
{
    static const unsigned char ctx_id[] = "scsp-example";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc;
    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1)
        goto fail;
    if (strcmp(cfg->tls, "1.2") == 0) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    } else if (strcmp(cfg->tls, "1.3") == 0) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    }
    if (strcmp(cfg->cache, "on") == 0) {
        rc = scsp_openssl_attach_cache(ctx, cache, ctx_id, sizeof ctx_id - 1);
        if (rc != SCSP_OK) {
            fprintf(stderr, "scsp_openssl_attach_cache: %s\n", scsp_strerror(rc));
            goto fail;
        }
    } else {
        /* Still name the service so resumption is allowed at all. */
        SSL_CTX_set_session_id_context(ctx, ctx_id, sizeof ctx_id - 1);
    }
    if (cfg->early_data > 0 && !SSL_CTX_set_max_early_data(ctx, (uint32_t)cfg->early_data))
        goto fail;
    if (strcmp(cfg->tickets, "off") == 0) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    } else if (strcmp(cfg->tickets, "shared") == 0) {
        rc = scsp_openssl_attach_ticket_keys(ctx, cache);
        if (rc != SCSP_OK) {
            fprintf(stderr, "scsp_openssl_attach_ticket_keys: %s\n", scsp_strerror(rc));
            goto fail;
        }
    }
    return ctx;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
}

static void serve_one(SSL_CTX *ctx, int fd)
{
    struct timeval tv = {5, 0};
    char reply[64];
    SSL *ssl;
    int n;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto done;
    if (SSL_accept(ssl) == 1) {
        n = snprintf(reply, sizeof reply, "worker %ld %s\n", (long)getpid(),
                     SSL_session_reused(ssl) ? "reused" : "new");
        if (SSL_write(ssl, reply, n) == n)
            SSL_shutdown(ssl);
    }
done:
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

static void worker(const struct config *cfg, scsp_cache *cache, int index, int lfd)
{
    SSL_CTX *ctx;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the master */
    signal(SIGPIPE, SIG_IGN);
    /* The master's mapping does not carry over the fork: map every page now
     * rather than fault them in during handshakes. Optional; a failure (a
     * kernel before 5.14) only means those faults come later. */
    if (scsp_prefault(cache) != SCSP_OK)
        fprintf(stderr, "worker %d: %s\n", index, scsp_last_error());
    ctx = make_ctx(cfg, cache);
    if (ctx == NULL)
        _exit(1);
    printf("worker %d pid %ld ready\n", index, (long)getpid());
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            serve_one(ctx, fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            _exit(1);
    }
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
    struct config cfg = {NULL, NULL, "/dev/shm/scsp-openssl-example", "any", "on", "shared", "127.0.0.1", 0, 2, 0};
    pid_t pids[MAX_WORKERS];
    int fds[MAX_WORKERS], i, rc, status;
    scsp_cache *cache = NULL;
    struct sigaction sa;

    parse(argc, argv, &cfg);
    /* Open the segment once; every forked worker inherits the handle. */
    rc = scsp_open(cfg.segment, NULL, &cache);
    if (rc != SCSP_OK) {
        fprintf(stderr, "scsp_open %s: %s\n", cfg.segment, scsp_last_error());
        return 1;
    }
    for (i = 0; i < cfg.workers; i++) {
        fds[i] = listen_on(cfg.addr, cfg.port == 0 ? 0 : cfg.port + i);
        if (fds[i] < 0) {
            perror("listen");
            return 1;
        }
        printf("worker %d port %d\n", i, bound_port(fds[i]));
    }
    fflush(stdout);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (i = 0; i < cfg.workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            worker(&cfg, cache, i, fds[i]);
        }
        if (pids[i] < 0) {
            perror("fork");
            stop = 1;
            cfg.workers = i;
            break;
        }
    }
    /* Master: wait for a signal or a dead worker, then stop everyone. */
    while (!stop) {
        pid_t dead = waitpid(-1, &status, 0);
        if (dead > 0) {
            fprintf(stderr, "openssl_server: worker %ld exited; stopping\n", (long)dead);
            for (i = 0; i < cfg.workers; i++)
                if (pids[i] == dead)
                    pids[i] = 0;
            break;
        }
    }
    for (i = 0; i < cfg.workers; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (i = 0; i < cfg.workers; i++)
        if (pids[i] > 0)
            waitpid(pids[i], &status, 0);
    scsp_close(cache);
    return 0;
}
