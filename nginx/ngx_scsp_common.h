/*
 * ngx_scsp_common.h — what the http and stream scsp modules share: the
 * directives' parsing, the per-cycle list of open segments, inheritance and
 * attaching scsp to an SSL_CTX.
 *
 * Included by ngx_http_scsp_module.c and ngx_stream_scsp_module.c; every
 * function is static, so each module (.so) keeps its own copy and exports
 * nothing but its ngx_module_t.
 *
 * Life of a segment handle:
 *   - "scsp_session_cache PATH" / "scsp_ticket_keys PATH" open PATH while the
 *     configuration is read, in the master (so "nginx -t" checks it), once per
 *     path and cycle, never creating it (SCSP_OPEN_NO_CREATE).
 *   - The workers fork from the master and inherit the mapping.
 *   - The handle is closed by a cleanup on the cycle's pool: when the old
 *     cycle goes after "nginx -s reload" (the new cycle has opened the path
 *     again, following a segment that was replaced), when a worker exits, or
 *     when a configuration fails to load. That cleanup is registered while
 *     the directive is read, before ngx_http_ssl_module (or the stream one)
 *     creates its SSL_CTXs during the merge, so it runs after they are
 *     freed: the pool runs cleanups newest first.
 */

#ifndef NGX_SCSP_COMMON_H
#define NGX_SCSP_COMMON_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <scsp_openssl.h>


typedef struct {
    ngx_str_t              path;     /* NUL-terminated */
    scsp_cache            *cache;
} ngx_scsp_segment_t;


typedef struct {
    ngx_array_t            segments; /* ngx_scsp_segment_t *, one per path */
    ngx_uint_t             tickets_warned;
} ngx_scsp_main_conf_t;


typedef struct {
    /* scsp_session_cache PATH [context=NAME] | off */
    ngx_flag_t             cache;       /* 1, 0 (off) or NGX_CONF_UNSET */
    ngx_scsp_segment_t    *cache_seg;
    ngx_str_t              context;     /* empty: keep nginx's own session
                                           id context, no key prefix */
    u_char                *cache_file;
    ngx_uint_t             cache_line;

    /* scsp_ticket_keys on | off | PATH */
    ngx_flag_t             tickets;     /* 1, 0 (off) or NGX_CONF_UNSET */
    ngx_scsp_segment_t    *tickets_seg; /* PATH given, or resolved at merge;
                                           NULL: the session cache's */
    u_char                *tickets_file;
    ngx_uint_t             tickets_line;
} ngx_scsp_srv_conf_t;


/* What the SSL module of the protocol (http or stream) decided for a server. */
typedef struct {
    SSL_CTX               *ctx;         /* NULL: no TLS in this server */
    ssize_t                builtin_session_cache;
    ngx_shm_zone_t        *shm_zone;
    ngx_flag_t             session_tickets;
    ngx_array_t           *session_ticket_keys;
    u_char                *server_file; /* where the server{} block starts */
    ngx_uint_t             server_line;
} ngx_scsp_ssl_view_t;


static void *
ngx_scsp_create_main_conf_common(ngx_conf_t *cf)
{
    ngx_scsp_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_scsp_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->segments, cf->pool, 2,
                       sizeof(ngx_scsp_segment_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return mcf;
}


static void *
ngx_scsp_create_srv_conf_common(ngx_conf_t *cf)
{
    ngx_scsp_srv_conf_t  *conf;

    /* ngx_pcalloc: cache_seg, tickets_seg, context, files and lines are
     * NULL / empty / 0 */
    conf = ngx_pcalloc(cf->pool, sizeof(ngx_scsp_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->cache = NGX_CONF_UNSET;
    conf->tickets = NGX_CONF_UNSET;

    return conf;
}


static void
ngx_scsp_cleanup_segment(void *data)
{
    ngx_scsp_segment_t  *seg = data;

    if (seg->cache != NULL) {
        scsp_close(seg->cache);
        seg->cache = NULL;
    }
}


/*
 * In each worker, at its start: guard every segment against its file being
 * truncated (scsp_guard_truncation: the worker then serves without the
 * cache instead of dying of SIGBUS at its next handshake), and map every
 * page now (scsp_prefault), so that no handshake pays a page fault for a
 * page of the cache this worker has not touched yet. The master's mapping
 * does not carry over: a forked worker starts with none of the pages
 * mapped. A failure of either only costs what it would have spared, so it
 * is logged, never fatal.
 */
static ngx_int_t
ngx_scsp_init_process_common(ngx_cycle_t *cycle, ngx_scsp_main_conf_t *mcf)
{
    ngx_uint_t            i;
    ngx_uint_t            level;
    ngx_scsp_segment_t  **segp;
    int                   rc;

    /* cache managers and loaders (NGX_PROCESS_HELPER) serve no handshake */
    if (mcf == NULL || ngx_process == NGX_PROCESS_HELPER) {
        return NGX_OK;
    }

    segp = mcf->segments.elts;

    for (i = 0; i < mcf->segments.nelts; i++) {
        if (segp[i]->cache == NULL) {
            continue;
        }

        if (scsp_guard_truncation(segp[i]->cache) != SCSP_OK) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "scsp: segment \"%V\" not guarded against "
                          "truncation: %s", &segp[i]->path,
                          scsp_last_error());
        }

        rc = scsp_prefault(segp[i]->cache);

        if (rc != SCSP_OK) {
            /* EINVAL: a kernel before 5.14, nothing to fix */
            level = (errno == EINVAL) ? NGX_LOG_INFO : NGX_LOG_WARN;
            ngx_log_error(level, cycle->log, 0,
                          "scsp: segment \"%V\" not prefaulted, its pages "
                          "fault in as workers touch them: %s",
                          &segp[i]->path, scsp_last_error());
        }
    }

    return NGX_OK;
}


/*
 * The segment at path, opened once per cycle (servers naming the same path
 * share one handle). Logs what is wrong and returns NULL on failure.
 */
static ngx_scsp_segment_t *
ngx_scsp_segment(ngx_conf_t *cf, ngx_scsp_main_conf_t *mcf, ngx_str_t *path)
{
    int                   rc, err;
    const char           *hint, *why;
    ngx_uint_t            i;
    scsp_cache           *cache;
    scsp_options          opts = SCSP_OPTIONS_INIT;
    ngx_pool_cleanup_t   *cln;
    ngx_scsp_segment_t   *seg, **segp;

    if (path->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": empty segment path",
                           &((ngx_str_t *) cf->args->elts)[0]);
        return NULL;
    }

    if (path->data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the segment path \"%V\" must be absolute, "
                           "e.g. /dev/shm/scsp",
                           &((ngx_str_t *) cf->args->elts)[0], path);
        return NULL;
    }

    if (ngx_strlen(path->data) != path->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the segment path contains a NUL byte",
                           &((ngx_str_t *) cf->args->elts)[0]);
        return NULL;
    }

    segp = mcf->segments.elts;
    for (i = 0; i < mcf->segments.nelts; i++) {
        if (segp[i]->path.len == path->len
            && ngx_strncmp(segp[i]->path.data, path->data, path->len) == 0)
        {
            return segp[i];
        }
    }

    /* the cleanup first, so that a handle is never left without one */
    seg = ngx_pcalloc(cf->pool, sizeof(ngx_scsp_segment_t));
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (seg == NULL || cln == NULL) {
        return NULL;
    }

    seg->path.len = path->len;
    seg->path.data = ngx_pnalloc(cf->pool, path->len + 1);
    if (seg->path.data == NULL) {
        return NULL;
    }
    ngx_memcpy(seg->path.data, path->data, path->len);
    seg->path.data[path->len] = '\0';

    /* Never create: a segment made by nginx would take defaults (host id 1,
     * 64 MiB) that the pool's bridge and sizing do not expect. */
    opts.flags = SCSP_OPEN_NO_CREATE;

    cache = NULL;
    rc = scsp_open((const char *) seg->path.data, &opts, &cache);
    err = errno;

    if (rc != SCSP_OK) {
        why = scsp_last_error();
        if (why == NULL || why[0] == '\0') {
            why = scsp_strerror(rc);
        }

        switch (rc) {
        case SCSP_E_IO:
            hint = (err == ENOENT)
                   ? "; nginx never creates a segment: create it first "
                     "with \"scsp create PATH --size SIZE\" (docs/nginx.md)"
                   : "";
            break;
        case SCSP_E_PERM:
            hint = "; nginx opens it in its master process: the segment must "
                   "be owned by the user that starts nginx, not be writable "
                   "by others and be named by its real path (docs/nginx.md)";
            break;
        case SCSP_E_CORRUPT:
            hint = "; if the path is right, recreate the segment with "
                   "\"scsp create\"";
            break;
        case SCSP_E_VERSION:
            hint = "; make it with the scsp command of the release this "
                   "module was built from (docs/nginx.md, Upgrades)";
            break;
        default:
            hint = "";
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": cannot open segment \"%V\" (uid %d): "
                           "%s%s",
                           &((ngx_str_t *) cf->args->elts)[0], &seg->path,
                           (int) geteuid(), why, hint);
        return NULL;
    }

    seg->cache = cache;
    cln->handler = ngx_scsp_cleanup_segment;
    cln->data = seg;

    segp = ngx_array_push(&mcf->segments);
    if (segp == NULL) {
        return NULL;
    }
    *segp = seg;

    return seg;
}


static char *
ngx_scsp_conf_session_cache(ngx_conf_t *cf, ngx_scsp_srv_conf_t *conf,
    ngx_scsp_main_conf_t *mcf)
{
    ngx_str_t            *value, ctx;
    ngx_uint_t            i, have_ctx;
    ngx_scsp_segment_t   *seg;

    value = cf->args->elts;

    if (conf->cache != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"scsp_session_cache off\" takes no "
                               "parameters, \"%V\" given", &value[2]);
            return NGX_CONF_ERROR;
        }
        conf->cache = 0;
        conf->cache_file = cf->conf_file->file.name.data;
        conf->cache_line = cf->conf_file->line;
        return NGX_CONF_OK;
    }

    ngx_str_null(&ctx);
    have_ctx = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len >= 8
            && ngx_strncmp(value[i].data, "context=", 8) == 0)
        {
            if (have_ctx) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"scsp_session_cache\": context= "
                                   "given twice");
                return NGX_CONF_ERROR;
            }
            have_ctx = 1;
            ctx.data = value[i].data + 8;
            ctx.len = value[i].len - 8;

            if (ctx.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"scsp_session_cache\": empty context=; "
                                   "name the service (1 to %d bytes, e.g. "
                                   "context=www), or leave context= out to "
                                   "keep nginx's own session id context",
                                   SSL_MAX_SID_CTX_LENGTH);
                return NGX_CONF_ERROR;
            }

            if (ctx.len > SSL_MAX_SID_CTX_LENGTH) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"scsp_session_cache\": context \"%V\" "
                                   "is %uz bytes long, the most is %d "
                                   "(SSL_MAX_SID_CTX_LENGTH)",
                                   &ctx, ctx.len, SSL_MAX_SID_CTX_LENGTH);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scsp_session_cache\": unknown parameter \"%V\"; "
                           "use \"scsp_session_cache PATH [context=NAME]\" "
                           "or \"scsp_session_cache off\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    seg = ngx_scsp_segment(cf, mcf, &value[1]);
    if (seg == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->cache = 1;
    conf->cache_seg = seg;
    conf->context = ctx;
    conf->cache_file = cf->conf_file->file.name.data;
    conf->cache_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static char *
ngx_scsp_conf_ticket_keys(ngx_conf_t *cf, ngx_scsp_srv_conf_t *conf,
    ngx_scsp_main_conf_t *mcf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (conf->tickets != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    conf->tickets_file = cf->conf_file->file.name.data;
    conf->tickets_line = cf->conf_file->line;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        conf->tickets = 0;
        return NGX_CONF_OK;
    }

    if (value[1].len == 2 && ngx_strncmp(value[1].data, "on", 2) == 0) {
        conf->tickets = 1;
        conf->tickets_seg = NULL; /* the session cache's, found at merge */
        return NGX_CONF_OK;
    }

    if (value[1].len > 0 && value[1].data[0] == '/') {
        conf->tickets_seg = ngx_scsp_segment(cf, mcf, &value[1]);
        if (conf->tickets_seg == NULL) {
            return NGX_CONF_ERROR;
        }
        conf->tickets = 1;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"scsp_ticket_keys\": invalid value \"%V\"; use on "
                       "(the segment of \"scsp_session_cache\"), off, or an "
                       "absolute segment path", &value[1]);
    return NGX_CONF_ERROR;
}


/* Inherit from the enclosing level and check what goes together. */
static char *
ngx_scsp_merge_common(ngx_conf_t *cf, ngx_scsp_srv_conf_t *prev,
    ngx_scsp_srv_conf_t *conf, ngx_scsp_ssl_view_t *v)
{
    if (conf->cache == NGX_CONF_UNSET) {
        if (prev->cache == NGX_CONF_UNSET) {
            conf->cache = 0;
        } else {
            conf->cache = prev->cache;
            conf->cache_seg = prev->cache_seg;
            conf->context = prev->context;
            conf->cache_file = prev->cache_file;
            conf->cache_line = prev->cache_line;
        }
    }

    if (conf->tickets == NGX_CONF_UNSET) {
        if (prev->tickets == NGX_CONF_UNSET) {
            conf->tickets = 0;
        } else {
            conf->tickets = prev->tickets;
            conf->tickets_seg = prev->tickets_seg;
            conf->tickets_file = prev->tickets_file;
            conf->tickets_line = prev->tickets_line;
        }
    }

    if (conf->tickets && conf->tickets_seg == NULL) {
        if (!conf->cache) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"scsp_ticket_keys on\" in %s:%ui needs a segment, "
                          "and no \"scsp_session_cache PATH\" applies to the "
                          "server in %s:%ui; add one, or name the segment: "
                          "\"scsp_ticket_keys PATH\"",
                          conf->tickets_file, conf->tickets_line,
                          v->server_file, v->server_line);
            return NGX_CONF_ERROR;
        }
        conf->tickets_seg = conf->cache_seg;
    }

    if (conf->tickets && conf->cache && conf->tickets_seg != conf->cache_seg) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scsp_ticket_keys\" in %s:%ui names segment \"%V\" "
                      "but \"scsp_session_cache\" in %s:%ui names \"%V\" for "
                      "the server in %s:%ui; one server uses one segment: use "
                      "\"scsp_ticket_keys on\"",
                      conf->tickets_file, conf->tickets_line,
                      &conf->tickets_seg->path, conf->cache_file,
                      conf->cache_line, &conf->cache_seg->path,
                      v->server_file, v->server_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Attach scsp to the server's SSL_CTX. Runs in this module's merge, after
 * the SSL module's merge has set its own session cache mode, callbacks and
 * session id context (ngx_ssl_session_cache), so what is set here wins.
 */
static char *
ngx_scsp_attach(ngx_conf_t *cf, ngx_scsp_main_conf_t *mcf,
    ngx_scsp_srv_conf_t *conf, ngx_scsp_ssl_view_t *v)
{
    int          rc;
    const char  *what;

    if (v->ctx == NULL || (!conf->cache && !conf->tickets)) {
        return NGX_CONF_OK;
    }

    if (conf->cache) {
        what = NULL;
        if (v->shm_zone != NULL) {
            what = "ssl_session_cache shared";
        } else if (v->builtin_session_cache >= 0
                   || v->builtin_session_cache == NGX_SSL_DFLT_BUILTIN_SCACHE)
        {
            what = "ssl_session_cache builtin";
        } else if (v->builtin_session_cache == NGX_SSL_NO_SCACHE) {
            what = "ssl_session_cache off";
        }

        if (what != NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"scsp_session_cache\" in %s:%ui conflicts with "
                          "\"%s\" in the server in %s:%ui: scsp replaces "
                          "nginx's session cache; remove \"ssl_session_cache\""
                          " (or set \"scsp_session_cache off\" in that server)",
                          conf->cache_file, conf->cache_line, what,
                          v->server_file, v->server_line);
            return NGX_CONF_ERROR;
        }
    }

    if (conf->tickets && v->session_ticket_keys != NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scsp_ticket_keys\" in %s:%ui conflicts with "
                      "\"ssl_session_ticket_key\" in the server in %s:%ui: "
                      "scsp keeps the ticket keys in the segment and rotates "
                      "them; remove \"ssl_session_ticket_key\" (or set "
                      "\"scsp_ticket_keys off\" in that server)",
                      conf->tickets_file, conf->tickets_line,
                      v->server_file, v->server_line);
        return NGX_CONF_ERROR;
    }

    if (conf->cache) {
        rc = scsp_openssl_attach_cache(v->ctx, conf->cache_seg->cache,
                                       conf->context.data,
                                       conf->context.len);
        if (rc != SCSP_OK) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "scsp_openssl_attach_cache(\"%V\") failed for the "
                          "server in %s:%ui: %s",
                          &conf->cache_seg->path, v->server_file,
                          v->server_line, scsp_strerror(rc));
            return NGX_CONF_ERROR;
        }
    }

    if (conf->tickets) {
        if (!v->session_tickets) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"scsp_ticket_keys\" in %s:%ui has no effect in "
                          "the server in %s:%ui: \"ssl_session_tickets\" is "
                          "off there",
                          conf->tickets_file, conf->tickets_line,
                          v->server_file, v->server_line);
        }

        rc = scsp_openssl_attach_ticket_keys(v->ctx, conf->tickets_seg->cache);
        if (rc != SCSP_OK) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "scsp_openssl_attach_ticket_keys(\"%V\") failed "
                          "for the server in %s:%ui: %s",
                          &conf->tickets_seg->path, v->server_file,
                          v->server_line, scsp_strerror(rc));
            return NGX_CONF_ERROR;
        }

    } else if (v->session_tickets && v->session_ticket_keys == NULL
               && !mcf->tickets_warned)
    {
        /* once per configuration: the usual oversight */
        mcf->tickets_warned = 1;
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"scsp_session_cache\" in %s:%ui: session tickets are "
                      "on with this nginx's own ticket keys in the server in "
                      "%s:%ui, so TLS 1.3 clients (and TLS 1.2 clients with "
                      "tickets) resume only on this nginx; add "
                      "\"scsp_ticket_keys on\" to share tickets too, or "
                      "\"ssl_session_tickets off\" to use the session cache",
                      conf->cache_file, conf->cache_line,
                      v->server_file, v->server_line);
    }

    return NGX_CONF_OK;
}



/* A TLS server as the context check below sees it. */
typedef struct {
    ngx_scsp_srv_conf_t   *conf;
    ngx_uint_t             verify;              /* ssl_verify_client */
    ngx_str_t             *client_certificate;  /* its CA list */
    u_char                *file;
    ngx_uint_t             line;
} ngx_scsp_server_t;


/*
 * nginx mixes the client CA list into its session id context, so that a
 * session made where one CA vouched for the client never resumes where
 * another must. context= replaces that context (so that other servers and
 * other hosts can share it): refuse two servers that share a segment and a
 * context but check client certificates differently, since a session of one
 * would resume at the other without its check.
 */
static ngx_int_t
ngx_scsp_check_contexts(ngx_conf_t *cf, ngx_scsp_server_t *s, ngx_uint_t n)
{
    ngx_uint_t            i, j;
    ngx_scsp_srv_conf_t  *a, *b;

    for (i = 0; i < n; i++) {
        a = s[i].conf;
        if (!a->cache || a->context.len == 0) {
            continue;
        }

        for (j = 0; j < i; j++) {
            b = s[j].conf;
            if (!b->cache || b->cache_seg != a->cache_seg
                || b->context.len != a->context.len
                || ngx_strncmp(b->context.data, a->context.data,
                               a->context.len) != 0)
            {
                continue;
            }

            if (s[i].verify == s[j].verify
                && (s[i].verify == 0
                    || (s[i].client_certificate->len
                        == s[j].client_certificate->len
                        && ngx_strncmp(s[i].client_certificate->data,
                                       s[j].client_certificate->data,
                                       s[i].client_certificate->len) == 0)))
            {
                continue;
            }

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the servers in %s:%ui and %s:%ui share "
                          "\"scsp_session_cache\" context \"%V\" but verify "
                          "client certificates differently "
                          "(ssl_verify_client, ssl_client_certificate): a "
                          "session of one would resume at the other without "
                          "its check; give them different context= values",
                          s[j].file, s[j].line, s[i].file, s[i].line,
                          &a->context);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}

#endif /* NGX_SCSP_COMMON_H */
