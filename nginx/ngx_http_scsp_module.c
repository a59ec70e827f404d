/*
 * ngx_http_scsp_module — nginx's TLS sessions and ticket keys in scsp, so
 * that every worker of every nginx of a pool resumes every session.
 *
 *   load_module modules/ngx_http_scsp_module.so;
 *   http {
 *       scsp_session_cache /dev/shm/scsp context=www;  # TLS 1.2 ids, TLS 1.3
 *                                                      # stateful sessions
 *       scsp_ticket_keys on;                           # shared ticket keys
 *       server { listen 443 ssl; ... }                 # inherits; "off" opts out
 *   }
 *
 * See docs/nginx.md. The shared parts are in ngx_scsp_common.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scsp_common.h"


static void *ngx_http_scsp_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_scsp_init_process(ngx_cycle_t *cycle);
static void *ngx_http_scsp_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_scsp_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_scsp_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_scsp_check_contexts(ngx_conf_t *cf,
    ngx_http_core_main_conf_t *cmcf);
static char *ngx_http_scsp_session_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_scsp_ticket_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_scsp_commands[] = {

    { ngx_string("scsp_session_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_scsp_session_cache,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scsp_ticket_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_scsp_ticket_keys,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_scsp_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_scsp_postconfiguration,       /* postconfiguration */

    ngx_http_scsp_create_main_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_scsp_create_srv_conf,         /* create server configuration */
    ngx_http_scsp_merge_srv_conf,          /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_scsp_module = {
    NGX_MODULE_V1,
    &ngx_http_scsp_module_ctx,             /* module context */
    ngx_http_scsp_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_scsp_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_scsp_init_process(ngx_cycle_t *cycle)
{
    /* no http{} block: nothing of ours was configured */
    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    return ngx_scsp_init_process_common(cycle,
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_scsp_module));
}


static void *
ngx_http_scsp_create_main_conf(ngx_conf_t *cf)
{
    return ngx_scsp_create_main_conf_common(cf);
}


static void *
ngx_http_scsp_create_srv_conf(ngx_conf_t *cf)
{
    return ngx_scsp_create_srv_conf_common(cf);
}


static char *
ngx_http_scsp_session_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_scsp_conf_session_cache(cf, conf,
               ngx_http_conf_get_module_main_conf(cf, ngx_http_scsp_module));
}


static char *
ngx_http_scsp_ticket_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_scsp_conf_ticket_keys(cf, conf,
               ngx_http_conf_get_module_main_conf(cf, ngx_http_scsp_module));
}


/*
 * Runs once per server{}, after ngx_http_ssl_module's merge of every server
 * (a dynamic module comes after the static ones), with cf->ctx->srv_conf
 * pointing at this server's configurations.
 */
static char *
ngx_http_scsp_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    char                      *rv;
    ngx_scsp_ssl_view_t        v;
    ngx_scsp_main_conf_t      *mcf;
    ngx_http_ssl_srv_conf_t   *sscf;
    ngx_http_core_srv_conf_t  *cscf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scsp_module);
    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    ngx_memzero(&v, sizeof(ngx_scsp_ssl_view_t));
    v.ctx = sscf->ssl.ctx;
    v.builtin_session_cache = sscf->builtin_session_cache;
    v.shm_zone = sscf->shm_zone;
    v.session_tickets = sscf->session_tickets;
    v.session_ticket_keys = sscf->session_ticket_keys;
    v.server_file = cscf->file_name;
    v.server_line = cscf->line;

    rv = ngx_scsp_merge_common(cf, parent, child, &v);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_scsp_attach(cf, mcf, child, &v);
}


/* Whether two servers sharing a listening address agree on scsp. */
static ngx_int_t
ngx_scsp_same(ngx_scsp_srv_conf_t *a, ngx_scsp_srv_conf_t *b)
{
    if (a->cache != b->cache || a->tickets != b->tickets) {
        return 0;
    }

    if (a->cache
        && (a->cache_seg != b->cache_seg
            || a->context.len != b->context.len
            || ngx_strncmp(a->context.data, b->context.data,
                           a->context.len) != 0))
    {
        return 0;
    }

    if (a->tickets && a->tickets_seg != b->tickets_seg) {
        return 0;
    }

    return 1;
}


/* Servers sharing a context must check client certificates alike. */
static ngx_int_t
ngx_http_scsp_check_contexts(ngx_conf_t *cf, ngx_http_core_main_conf_t *cmcf)
{
    ngx_uint_t                  i, n;
    ngx_scsp_server_t          *s;
    ngx_http_ssl_srv_conf_t    *sscf;
    ngx_http_core_srv_conf_t  **cscfp;

    cscfp = cmcf->servers.elts;
    s = ngx_palloc(cf->temp_pool,
                   (cmcf->servers.nelts + 1) * sizeof(ngx_scsp_server_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    for (i = 0; i < cmcf->servers.nelts; i++) {
        sscf = cscfp[i]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];
        if (sscf->ssl.ctx == NULL) {
            continue;
        }
        s[n].conf = cscfp[i]->ctx->srv_conf[ngx_http_scsp_module.ctx_index];
        s[n].verify = sscf->verify;
        s[n].client_certificate = &sscf->client_certificate;
        s[n].file = cscfp[i]->file_name;
        s[n].line = cscfp[i]->line;
        n++;
    }

    return ngx_scsp_check_contexts(cf, s, n);
}


/*
 * OpenSSL takes the session cache callbacks, cache mode and ticket key
 * callback from the SSL_CTX a connection started with: the default server
 * of its address:port, even after SNI switched to another server's SSL_CTX
 * (SSL_set_SSL_CTX keeps the session_ctx). The helper then reads the segment
 * and context of the server SNI chose. So every TLS server{} sharing an
 * address:port must agree on scsp, or sessions are silently not shared (or,
 * for ticket keys, handshakes fail): refuse such a configuration.
 */
static ngx_int_t
ngx_http_scsp_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                   p, a, s;
    ngx_scsp_srv_conf_t         *dconf, *sconf;
    ngx_http_conf_port_t        *port;
    ngx_http_conf_addr_t        *addr;
    ngx_http_ssl_srv_conf_t     *sscf;
    ngx_http_core_srv_conf_t    *def, **servers;
    ngx_http_core_main_conf_t   *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (ngx_http_scsp_check_contexts(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->ports == NULL) {
        return NGX_OK;
    }

    port = cmcf->ports->elts;
    for (p = 0; p < cmcf->ports->nelts; p++) {

        addr = port[p].addrs.elts;
        for (a = 0; a < port[p].addrs.nelts; a++) {

            if (!addr[a].opt.ssl) {
                continue;
            }

            def = addr[a].default_server;
            dconf = def->ctx->srv_conf[ngx_http_scsp_module.ctx_index];

            servers = addr[a].servers.elts;
            for (s = 0; s < addr[a].servers.nelts; s++) {

                if (servers[s] == def) {
                    continue;
                }

                sscf = servers[s]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];
                if (sscf->ssl.ctx == NULL) {
                    continue;
                }

                sconf = servers[s]->ctx->srv_conf[ngx_http_scsp_module.ctx_index];
                if (ngx_scsp_same(dconf, sconf)) {
                    continue;
                }

                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "the server in %s:%ui and the default server "
                              "in %s:%ui share %V but not their scsp "
                              "settings (scsp_session_cache, "
                              "scsp_ticket_keys): OpenSSL takes the session "
                              "cache and ticket keys of the default server "
                              "for every name on an address; give them the "
                              "same settings, e.g. in http{}",
                              servers[s]->file_name, servers[s]->line,
                              def->file_name, def->line,
                              &addr[a].opt.addr_text);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}
