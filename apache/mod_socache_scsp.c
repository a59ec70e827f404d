/*
 * mod_socache_scsp — Apache httpd 2.4 small-object-cache provider "scsp":
 * mod_ssl's session cache (and any other socache consumer) in an scsp
 * segment, so every worker of every host of a pool resumes every session.
 *
 *   LoadModule socache_scsp_module modules/mod_socache_scsp.so
 *   SSLSessionCache scsp:/dev/shm/scsp,context=www
 *   SCSPTicketKeys /dev/shm/scsp            # optional: shared ticket keys
 *
 * Argument: PATH[,context=NAME][,allow_foreign_owner=on,owner=USER,group=GROUP]. PATH is absolute
 * and ends at the first comma. The segment must exist (`scsp create`): the
 * module opens, never creates. It is opened while the configuration is read,
 * in the parent (so `apache2 -t` reports a bad segment), and the workers
 * inherit the mapping; a graceful restart opens it again.
 *
 * Keys. mod_ssl's sessions ("mod_ssl-sess") are stored under the key of
 * scsp_openssl.h, 'O' | len | context | session id, holding the
 * i2d_SSL_SESSION DER mod_ssl hands over, so a session made by Apache
 * resumes on any OpenSSL server using the helper with the same context, and
 * the reverse. Other consumers (SSLStaplingCache, AuthnCacheSOCache, ...)
 * get 'A' | len | consumer name | len | context | id: no namespace ever sees
 * another's entries.
 *
 * Session id context. OpenSSL resumes a session only where the SSL's session
 * id context equals the one stored in the session. mod_ssl sets a per-vhost
 * MD5 on every connection after the ssl pre_handshake hook and again when SNI
 * picks a vhost, so it cannot be set once up front. With context=NAME the
 * module makes NAME the session id context at the two points that matter:
 * every new session is stamped with NAME before it is stored or sealed into
 * a ticket, and when a looked-up session (cache or ticket) carries NAME the
 * connection adopts NAME just before OpenSSL compares them.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "mod_status.h"
#include "mod_ssl.h"
#include "apr_optional_hooks.h"
#include "apr_strings.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "scsp_openssl.h"

#if defined(__has_include) && __has_include("mod_ssl_openssl.h")
#include "mod_ssl_openssl.h"
#else
/* Debian's apache2-dev does not ship mod_ssl_openssl.h; this is the one hook
 * of it used here (httpd 2.4.x modules/ssl/mod_ssl_openssl.h). */
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, init_server,
                          (server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx))
#endif

module AP_MODULE_DECLARE_DATA socache_scsp_module;

#define SESSIONS_CNAME "mod_ssl-sess"
#define TAG_OTHER 0x41 /* 'A': keys of consumers other than mod_ssl's sessions */

struct ap_socache_instance_t {
    const char *path;
    unsigned char context[SSL_MAX_SID_CTX_LENGTH];
    size_t context_len;
    scsp_cache *cache;
    /* Every key begins with this (set by init, from the consumer's name). */
    unsigned char prefix[SCSP_MAX_KEY];
    size_t prefix_len;
};

/* An open segment as the directives name it. */
struct spec {
    const char *path;
    const char *context; /* NULL: none */
    uint32_t flags;
    uint32_t owner; /* with allow_foreign_owner: the uid trusted besides root */
    uint32_t group; /* with SCSP_OPEN_SET_GROUP: the segment's group */
};

/* A user or group given by name or number; -1 (as unsigned) if unknown. */
static int parse_id(const char *value, int is_group, uint32_t *out)
{
    char *end;
    unsigned long n = strtoul(value, &end, 10);
    if (*value != '\0' && *end == '\0' && n < 0xffffffffUL) {
        *out = (uint32_t)n;
        return 1;
    }
    if (is_group) {
        struct group *g = getgrnam(value);
        if (g == NULL)
            return 0;
        *out = (uint32_t)g->gr_gid;
    } else {
        struct passwd *u = getpwnam(value);
        if (u == NULL)
            return 0;
        *out = (uint32_t)u->pw_uid;
    }
    return 1;
}

/* This configuration's SSLSessionCache, if it is scsp (set by init). */
static ap_socache_instance_t *sessions;
/* This configuration's SCSPTicketKeys segment, or NULL. */
static scsp_cache *ticket_keys;
/* mod_ssl's session callbacks, which the module wraps. */
static int (*modssl_new_session)(SSL *, SSL_SESSION *);
static SSL_SESSION *(*modssl_get_session)(SSL *, const unsigned char *, int, int *);
/* Set around mod_ssl's lookup of a TLS 1.3 session: retrieve takes it. */
static __thread int take_next;

static apr_status_t close_cache(void *data)
{
    scsp_cache **cache = data;
    scsp_close(*cache);
    *cache = NULL;
    return APR_SUCCESS;
}

/* The configuration is going (restart, stop): so may mod_ssl's DSO. */
static apr_status_t forget_sessions(void *data)
{
    if (sessions == data) {
        sessions = NULL;
        modssl_new_session = NULL;
        modssl_get_session = NULL;
    }
    return APR_SUCCESS;
}

/*
 * Parse PATH[,name=value]... into *out; NULL or a message for the operator.
 * allow_context: whether context= means something to the directive.
 */
static const char *parse_spec(apr_pool_t *p, const char *arg, int allow_context,
                              struct spec *out)
{
    const char *comma;
    char *params, *param, *state;

    memset(out, 0, sizeof *out);
    if (arg == NULL || *arg == '\0')
        return "scsp: name the segment, e.g. scsp:/dev/shm/scsp (make it first with: "
               "scsp create /dev/shm/scsp --size 64MiB)";
    comma = strchr(arg, ',');
    out->path = comma ? apr_pstrmemdup(p, arg, comma - arg) : apr_pstrdup(p, arg);
    if (out->path[0] != '/')
        return apr_psprintf(p, "scsp: the segment path must be absolute, not '%s'", out->path);
    {
        /* shmcb's PATH(SIZE): a segment's size is set when it is made. */
        size_t len = strlen(out->path);
        const char *open = strrchr(out->path, '(');
        if (len > 0 && out->path[len - 1] == ')' && open != NULL)
            return apr_psprintf(p, "scsp: '%s': scsp takes no size in parentheses (that is "
                                "shmcb's syntax); name the segment alone, scsp:%.*s, and set "
                                "its size when you make it: scsp create %.*s --size 64MiB",
                                out->path, (int)(open - out->path), out->path,
                                (int)(open - out->path), out->path);
    }
    params = apr_pstrdup(p, comma ? comma + 1 : "");
    for (param = apr_strtok(params, ",", &state); param != NULL;
         param = apr_strtok(NULL, ",", &state)) {
        char *eq = strchr(param, '=');
        const char *value = eq ? eq + 1 : "";
        size_t i, n = strlen(value);
        if (eq != NULL)
            *eq = '\0';
        if (allow_context && strcmp(param, "context") == 0) {
            if (n == 0 || n > SSL_MAX_SID_CTX_LENGTH)
                return apr_psprintf(p, "scsp: context '%s' must be 1 to %d characters",
                                    value, SSL_MAX_SID_CTX_LENGTH);
            for (i = 0; i < n; i++)
                if (value[i] <= ' ' || value[i] > '~')
                    return apr_psprintf(p, "scsp: context '%s' may hold only printable "
                                        "characters, no spaces", value);
            out->context = value;
        }
        else if (strcmp(param, "allow_foreign_owner") == 0) {
            if (strcasecmp(value, "on") == 0)
                out->flags |= SCSP_OPEN_ALLOW_FOREIGN_OWNER;
            else if (strcasecmp(value, "off") != 0)
                return apr_psprintf(p, "scsp: allow_foreign_owner takes on or off, not '%s'",
                                    value);
        }
        else if (strcmp(param, "owner") == 0) {
            if (!parse_id(value, 0, &out->owner))
                return apr_psprintf(p, "scsp: owner=%s: no such user (give a name or a uid)",
                                    value);
        }
        else if (strcmp(param, "group") == 0) {
            if (!parse_id(value, 1, &out->group))
                return apr_psprintf(p, "scsp: group=%s: no such group (give a name or a gid)",
                                    value);
            out->flags |= SCSP_OPEN_SET_GROUP;
        }
        else {
            return apr_psprintf(p, "scsp: unknown parameter '%s' after the segment path "
                                "(known: %sallow_foreign_owner=on, owner=USER, group=GROUP; "
                                "the path ends at the first comma)", param,
                                allow_context ? "context=NAME, " : "");
        }
    }
    return NULL;
}

/* Where this configuration's open handles are (scsp_cache **; a slot is
 * NULL once its pool closed it), for the children to prefault. */
static apr_array_header_t *opened;

static apr_status_t forget_opened(void *data)
{
    (void)data;
    opened = NULL;
    return APR_SUCCESS;
}

/* Open the segment (never create it); the pool closes it. */
static const char *open_spec(apr_pool_t *p, const struct spec *spec, scsp_cache **slot)
{
    scsp_options o = SCSP_OPTIONS_INIT;
    struct stat st;
    const char *err;
    int rc;

    o.flags = SCSP_OPEN_NO_CREATE | spec->flags;
    o.owner = spec->owner;
    o.group = spec->group;
    rc = scsp_open(spec->path, &o, slot);
    if (rc != SCSP_OK) {
        if (rc == SCSP_E_IO && errno == ENOENT)
            return apr_psprintf(p, "scsp: no segment at %s; the module opens, never creates: "
                                "make it first with scsp create %s --size 64MiB "
                                "(see docs/apache.md)", spec->path, spec->path);
        err = apr_psprintf(p, "scsp: cannot use the segment: %s", scsp_last_error());
        if (rc == SCSP_E_PERM && lstat(spec->path, &st) == 0 && S_ISREG(st.st_mode) &&
            st.st_uid != geteuid())
            err = apr_pstrcat(p, err, "; for Apache: create the segment as the user that "
                              "starts Apache (the parent opens it, the workers inherit it), "
                              "or add ,allow_foreign_owner=on,owner=USER,group=GROUP after its "
                              "path", NULL);
        return err;
    }
    apr_pool_cleanup_register(p, slot, close_cache, apr_pool_cleanup_null);
    if (opened == NULL) {
        opened = apr_array_make(p, 4, sizeof(scsp_cache **));
        apr_pool_cleanup_register(p, NULL, forget_opened, apr_pool_cleanup_null);
    }
    APR_ARRAY_PUSH(opened, scsp_cache **) = slot;
    return NULL;
}

/* In each child, at its start: guard every segment against its file being
 * truncated (scsp_guard_truncation, after httpd set its own SIGBUS action in
 * the parent: the child then serves without the cache instead of dying at
 * its next handshake), and map every page now (scsp_prefault), so that no
 * handshake pays a page fault for a page of the cache this child has not
 * touched yet; the parent's mapping does not carry over. A failure of
 * either only costs what it would have spared: logged, never fatal. */
static void child_init(apr_pool_t *p, server_rec *s)
{
    int i;
    (void)p;
    for (i = 0; opened != NULL && i < opened->nelts; i++) {
        scsp_cache *c = *APR_ARRAY_IDX(opened, i, scsp_cache **);
        if (c != NULL && scsp_guard_truncation(c) != SCSP_OK)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "scsp: segment not guarded against truncation: %s",
                         scsp_last_error());
        if (c != NULL && scsp_prefault(c) != SCSP_OK)
            /* EINVAL: a kernel before 5.14, nothing to fix */
            ap_log_error(APLOG_MARK, errno == EINVAL ? APLOG_INFO : APLOG_WARNING, 0, s,
                         "scsp: segment not prefaulted, its pages fault in as children "
                         "touch them: %s", scsp_last_error());
    }
}

static const char *scsp_create(ap_socache_instance_t **instance, const char *arg,
                               apr_pool_t *tmp, apr_pool_t *p)
{
    ap_socache_instance_t *inst = apr_pcalloc(p, sizeof *inst);
    struct spec spec;
    const char *err = parse_spec(p, arg, 1, &spec);

    (void)tmp;
    if (err == NULL)
        err = open_spec(p, &spec, &inst->cache);
    if (err != NULL)
        return err;
    inst->path = spec.path;
    if (spec.context != NULL) {
        inst->context_len = strlen(spec.context);
        memcpy(inst->context, spec.context, inst->context_len);
    }
    *instance = inst;
    return NULL;
}

static apr_status_t scsp_init(ap_socache_instance_t *inst, const char *cname,
                              const struct ap_socache_hints *hints, server_rec *s,
                              apr_pool_t *p)
{
    size_t cname_len = strlen(cname);
    unsigned char *k = inst->prefix;

    (void)hints;
    if (inst->cache == NULL)
        return APR_EGENERAL;
    if (strcmp(cname, SESSIONS_CNAME) == 0) {
        *k++ = SCSP_OPENSSL_KEY_TAG; /* the helper's layout: sessions cross server kinds */
        sessions = inst;
        apr_pool_cleanup_register(p, inst, forget_sessions, apr_pool_cleanup_null);
    }
    else {
        if (cname_len > 64) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "scsp: socache consumer name '%s' is too long", cname);
            return APR_EINVAL;
        }
        *k++ = TAG_OTHER;
        *k++ = (unsigned char)cname_len;
        memcpy(k, cname, cname_len);
        k += cname_len;
    }
    *k++ = (unsigned char)inst->context_len;
    memcpy(k, inst->context, inst->context_len);
    k += inst->context_len;
    inst->prefix_len = (size_t)(k - inst->prefix);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "scsp: %s cache in segment %s, context '%.*s'",
                 cname, inst->path, (int)inst->context_len, (const char *)inst->context);
    return APR_SUCCESS;
}

static void scsp_destroy(ap_socache_instance_t *inst, server_rec *s)
{
    (void)s;
    if (sessions == inst)
        sessions = NULL;
    scsp_close(inst->cache);
    inst->cache = NULL;
}

/* The scsp key of a consumer's id; 0 if it does not fit. */
static size_t make_key(const ap_socache_instance_t *inst, const unsigned char *id,
                       unsigned int idlen, unsigned char key[SCSP_MAX_KEY])
{
    if (inst->cache == NULL || inst->prefix_len == 0 || idlen == 0 ||
        inst->prefix_len + idlen > SCSP_MAX_KEY)
        return 0;
    memcpy(key, inst->prefix, inst->prefix_len);
    memcpy(key + inst->prefix_len, id, idlen);
    return inst->prefix_len + idlen;
}

static apr_status_t scsp_store(ap_socache_instance_t *inst, server_rec *s,
                               const unsigned char *id, unsigned int idlen,
                               apr_time_t expiry, unsigned char *data,
                               unsigned int datalen, apr_pool_t *pool)
{
    unsigned char key[SCSP_MAX_KEY];
    size_t key_len = make_key(inst, id, idlen, key);
    apr_time_t left = expiry - apr_time_now();
    apr_int64_t ttl = apr_time_sec(left); /* rounded down: never outlive expiry */
    int rc;

    (void)pool;
    if (key_len == 0)
        return APR_EINVAL;
    if (ttl <= 0) {
        /* Already expired: store nothing, and drop what the id held. */
        (void)scsp_remove(inst->cache, key, key_len);
        return APR_SUCCESS;
    }
    rc = scsp_put(inst->cache, key, key_len, data, datalen,
                  ttl > UINT32_MAX ? UINT32_MAX : (uint32_t)ttl);
    if (rc == SCSP_OK)
        return APR_SUCCESS;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "scsp: store of %u bytes refused: %s",
                 datalen, scsp_last_error());
    return rc == SCSP_E_TOO_LARGE ? APR_ENOSPC : APR_EGENERAL;
}

static apr_status_t scsp_retrieve(ap_socache_instance_t *inst, server_rec *s,
                                  const unsigned char *id, unsigned int idlen,
                                  unsigned char *data, unsigned int *datalen,
                                  apr_pool_t *pool)
{
    unsigned char key[SCSP_MAX_KEY];
    size_t key_len = make_key(inst, id, idlen, key), len = 0;
    int rc;

    (void)pool;
    if (key_len == 0)
        return APR_NOTFOUND;
    rc = (take_next ? scsp_take : scsp_get)(inst->cache, key, key_len, data, *datalen, &len);
    switch (rc) {
    case SCSP_OK:
        *datalen = (unsigned int)len;
        return APR_SUCCESS;
    case SCSP_E_NOT_FOUND:
        return APR_NOTFOUND;
    case SCSP_E_BUFFER:
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "scsp: a %zu-byte entry does not fit the consumer's %u-byte buffer",
                     len, *datalen);
        return APR_ENOSPC;
    default:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "scsp: retrieve failed: %s",
                     scsp_last_error());
        return APR_EGENERAL;
    }
}

static apr_status_t scsp_remove_entry(ap_socache_instance_t *inst, server_rec *s,
                                      const unsigned char *id, unsigned int idlen,
                                      apr_pool_t *pool)
{
    unsigned char key[SCSP_MAX_KEY];
    size_t key_len = make_key(inst, id, idlen, key);

    (void)s, (void)pool;
    if (key_len == 0)
        return APR_NOTFOUND;
    return scsp_remove(inst->cache, key, key_len) == SCSP_OK ? APR_SUCCESS : APR_NOTFOUND;
}

static void scsp_status(ap_socache_instance_t *inst, request_rec *r, int flags)
{
    struct scsp_stats st = SCSP_STATS_INIT;
    int shortform = (flags & AP_STATUS_SHORT) != 0;

    if (inst->cache == NULL || scsp_stats(inst->cache, &st) != SCSP_OK) {
        ap_rputs(shortform ? "CacheType: SCSP\nCacheStatus: unavailable\n"
                           : "cache type: <b>SCSP</b>, statistics unavailable<br>", r);
        return;
    }
    if (shortform) {
        ap_rprintf(r, "CacheType: SCSP\nCacheSegment: %s\nCacheContext: %.*s\n"
                   "CacheSharedMemory: %" APR_UINT64_T_FMT "\nCacheLogFill: %.1f%%\n"
                   "CacheHostId: %" APR_UINT64_T_FMT "\nCacheProcesses: %" APR_UINT64_T_FMT "\n"
                   "CacheStoreCount: %" APR_UINT64_T_FMT "\n"
                   "CacheRetrieveHitCount: %" APR_UINT64_T_FMT "\n"
                   "CacheRetrieveMissCount: %" APR_UINT64_T_FMT "\n"
                   "CacheTakeCount: %" APR_UINT64_T_FMT "\n"
                   "CacheRemoveCount: %" APR_UINT64_T_FMT "\n"
                   "CacheExpireCount: %" APR_UINT64_T_FMT "\n"
                   "CacheDiscardCount: %" APR_UINT64_T_FMT "\n"
                   "CacheTooLargeCount: %" APR_UINT64_T_FMT "\n"
                   "CacheLostCount: %" APR_UINT64_T_FMT "\n"
                   "CacheCorruptCount: %" APR_UINT64_T_FMT "\n",
                   inst->path, (int)inst->context_len,
                   (const char *)inst->context, st.capacity_bytes, 100.0 * st.log_fill,
                   st.host_id, st.processes, st.puts, st.hits, st.misses, st.takes,
                   st.removes, st.expired, st.evictions, st.too_large, st.lost, st.corrupt);
        return;
    }
    ap_rprintf(r, "cache type: <b>SCSP</b>, segment: <b>%s</b>, context: <b>%s</b><br>"
               "session log: <b>%" APR_UINT64_T_FMT "</b> bytes, <b>%.1f%%</b> filled, "
               "host id <b>%" APR_UINT64_T_FMT "</b>, processes attached: <b>%"
               APR_UINT64_T_FMT "</b><br>"
               "stored: <b>%" APR_UINT64_T_FMT "</b>, retrieved: <b>%" APR_UINT64_T_FMT
               "</b> hit, <b>%" APR_UINT64_T_FMT "</b> miss, taken: <b>%" APR_UINT64_T_FMT
               "</b>, removed: <b>%" APR_UINT64_T_FMT "</b><br>"
               "expired on lookup: <b>%" APR_UINT64_T_FMT "</b>, pushed out of the index: <b>%"
               APR_UINT64_T_FMT "</b>, too large: <b>%" APR_UINT64_T_FMT "</b>, lost: <b>%"
               APR_UINT64_T_FMT "</b>, corrupt: <b>%" APR_UINT64_T_FMT "</b><br>",
               ap_escape_html(r->pool, inst->path),
               ap_escape_html(r->pool, apr_pstrmemdup(r->pool, (const char *)inst->context,
                                                      inst->context_len)),
               st.capacity_bytes, 100.0 * st.log_fill, st.host_id, st.processes, st.puts,
               st.hits, st.misses, st.takes, st.removes, st.expired, st.evictions,
               st.too_large, st.lost, st.corrupt);
}

static apr_status_t scsp_iterate(ap_socache_instance_t *inst, server_rec *s, void *userctx,
                                 ap_socache_iterator_t *iterator, apr_pool_t *pool)
{
    (void)inst, (void)userctx, (void)iterator, (void)pool;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "scsp: listing entries is not supported (the segment is a log with a "
                 "lossy index, which cannot enumerate its live entries)");
    return APR_ENOTIMPL;
}

static const ap_socache_provider_t scsp_provider = {
    "scsp",
    0, /* lock-free across processes and threads: no mutex */
    scsp_create,
    scsp_init,
    scsp_destroy,
    scsp_store,
    scsp_retrieve,
    scsp_remove_entry,
    scsp_status,
    scsp_iterate,
};

/* ---- mod_ssl integration ------------------------------------------------ */

/* If sess carries the configured context, make it the connection's session
 * id context, which OpenSSL compares right after the lookup. */
static void adopt_context(SSL *ssl, SSL_SESSION *sess)
{
    unsigned int len = 0;
    const unsigned char *ctx = SSL_SESSION_get0_id_context(sess, &len);
    if (sessions != NULL && sessions->context_len > 0 && len == sessions->context_len &&
        memcmp(ctx, sessions->context, len) == 0)
        (void)SSL_set_session_id_context(ssl, ctx, len);
}

static void stamp_context(SSL_SESSION *sess)
{
    if (sess != NULL && sessions != NULL && sessions->context_len > 0)
        (void)SSL_SESSION_set1_id_context(sess, sessions->context,
                                          (unsigned int)sessions->context_len);
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    /* A TLS 1.3 stateless ticket carries the session: nobody looks its id up
     * (the rule of scsp_openssl.h; mod_ssl would store it anyway). */
    if (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION &&
        (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0 &&
        (SSL_get_max_early_data(ssl) == 0 || (SSL_get_options(ssl) & SSL_OP_NO_ANTI_REPLAY) != 0))
        return 0;
    stamp_context(sess);
    return modssl_new_session(ssl, sess);
}

static SSL_SESSION *get_session(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    SSL_SESSION *sess;
    /* A TLS 1.3 stateful ticket is single use across the pool (RFC 8446
     * 8.1): take it, as the OpenSSL helper and the rustls adapter do. */
    take_next = SSL_version(ssl) == TLS1_3_VERSION;
    sess = modssl_get_session(ssl, id, len, copy);
    take_next = 0;
    if (sess != NULL)
        adopt_context(ssl, sess);
    return sess;
}

static int ticket_generate(SSL *ssl, void *arg)
{
    (void)arg;
    stamp_context(SSL_get_session(ssl));
    return 1;
}

static SSL_TICKET_RETURN ticket_decrypted(SSL *ssl, SSL_SESSION *sess,
                                          const unsigned char *keyname, size_t keyname_len,
                                          SSL_TICKET_STATUS status, void *arg)
{
    (void)keyname, (void)keyname_len, (void)arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
        adopt_context(ssl, sess);
        return SSL_TICKET_RETURN_USE;
    case SSL_TICKET_SUCCESS_RENEW:
        adopt_context(ssl, sess);
        return SSL_TICKET_RETURN_USE_RENEW;
    default: /* no ticket or not ours: what OpenSSL does without a callback */
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

/* mod_ssl's ssl_init_server hook: every SSL_CTX of a TLS vhost, after
 * mod_ssl configured it (session callbacks, ticket key file). */
static int init_server(server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx)
{
    int rc;

    (void)p;
    if (is_proxy)
        return DECLINED;
    if (ticket_keys != NULL) {
        rc = scsp_openssl_attach_ticket_keys(ctx, ticket_keys);
        if (rc != SCSP_OK) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "SCSPTicketKeys: cannot attach the shared ticket keys: %s",
                         scsp_strerror(rc));
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (sessions == NULL || SSL_CTX_sess_get_get_cb(ctx) == NULL)
        return DECLINED;
    if (SSL_CTX_sess_get_get_cb(ctx) != get_session) {
        if (modssl_get_session == NULL) {
            modssl_get_session = SSL_CTX_sess_get_get_cb(ctx);
            modssl_new_session = SSL_CTX_sess_get_new_cb(ctx);
        }
        if (SSL_CTX_sess_get_get_cb(ctx) != modssl_get_session ||
            SSL_CTX_sess_get_new_cb(ctx) != modssl_new_session) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "scsp: this vhost's SSL context has session callbacks other "
                         "than mod_ssl's; another module changed them");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        SSL_CTX_sess_set_get_cb(ctx, get_session);
        SSL_CTX_sess_set_new_cb(ctx, new_session);
    }
    if (sessions->context_len > 0 &&
        !SSL_CTX_set_session_ticket_cb(ctx, ticket_generate, ticket_decrypted, NULL)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "scsp: cannot set the ticket callbacks");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static const char *cmd_ticket_keys(cmd_parms *cmd, void *dcfg, const char *arg)
{
    struct spec spec;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dcfg;
    if (err != NULL)
        return err;
    if (ticket_keys != NULL)
        return "SCSPTicketKeys: given twice; name one segment";
    if (strcasecmp(arg, "off") == 0)
        return NULL;
    err = parse_spec(cmd->pool, arg, 0, &spec);
    if (err == NULL)
        err = open_spec(cmd->pool, &spec, &ticket_keys);
    return err ? apr_pstrcat(cmd->pool, "SCSPTicketKeys: ", err, NULL) : NULL;
}

static const command_rec scsp_cmds[] = {
    AP_INIT_TAKE1("SCSPTicketKeys", cmd_ticket_keys, NULL, RSRC_CONF,
                  "off, or the scsp segment (PATH[,allow_foreign_owner=on,owner=USER,group=GROUP]) whose "
                  "rotating keys encrypt every TLS vhost's session tickets"),
    {NULL}
};

static void register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, AP_SOCACHE_PROVIDER_GROUP, "scsp", AP_SOCACHE_PROVIDER_VERSION,
                         &scsp_provider);
    APR_OPTIONAL_HOOK(ssl, init_server, init_server, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(socache_scsp) = {
    STANDARD20_MODULE_STUFF,
    NULL, /* per-directory config */
    NULL,
    NULL, /* per-server config */
    NULL,
    scsp_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE,
};
