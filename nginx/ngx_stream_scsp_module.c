/*
 * ngx_stream_scsp_module — the same as ngx_stream_scsp_module for TLS that
 * nginx terminates in the stream{} block ("listen ... ssl").
 *
 *   load_module modules/ngx_stream_module.so;       # first: this one needs it
 *   load_module modules/ngx_stream_scsp_module.so;
 *   stream {
 *       scsp_session_cache /dev/shm/scsp context=imap;
 *       scsp_ticket_keys on;
 *       server { listen 993 ssl; proxy_pass ...; }
 *   }
 *
 * A stream server has its own address (no SNI switching between servers in
 * nginx 1.22), so there is no default-server check as in the http module.
 * See docs/nginx.md. The shared parts are in ngx_scsp_common.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <ngx_stream_ssl_module.h>

#include "ngx_scsp_common.h"


static void *ngx_stream_scsp_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_stream_scsp_init_process(ngx_cycle_t *cycle);
static void *ngx_stream_scsp_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_scsp_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_stream_scsp_postconfiguration(ngx_conf_t *cf);
static char *ngx_stream_scsp_session_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_scsp_ticket_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_stream_scsp_commands[] = {

    { ngx_string("scsp_session_cache"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_scsp_session_cache,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scsp_ticket_keys"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_scsp_ticket_keys,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_scsp_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_scsp_postconfiguration,     /* postconfiguration */

    ngx_stream_scsp_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_scsp_create_srv_conf,       /* create server configuration */
    ngx_stream_scsp_merge_srv_conf         /* merge server configuration */
};


ngx_module_t  ngx_stream_scsp_module = {
    NGX_MODULE_V1,
    &ngx_stream_scsp_module_ctx,             /* module context */
    ngx_stream_scsp_commands,                /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_stream_scsp_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_stream_scsp_init_process(ngx_cycle_t *cycle)
{
    /* no stream{} block: nothing of ours was configured */
    if (cycle->conf_ctx[ngx_stream_module.index] == NULL) {
        return NGX_OK;
    }

    return ngx_scsp_init_process_common(cycle,
               ngx_stream_cycle_get_module_main_conf(cycle,
                                                   ngx_stream_scsp_module));
}


static void *
ngx_stream_scsp_create_main_conf(ngx_conf_t *cf)
{
    return ngx_scsp_create_main_conf_common(cf);
}


static void *
ngx_stream_scsp_create_srv_conf(ngx_conf_t *cf)
{
    return ngx_scsp_create_srv_conf_common(cf);
}


static char *
ngx_stream_scsp_session_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_scsp_conf_session_cache(cf, conf,
               ngx_stream_conf_get_module_main_conf(cf, ngx_stream_scsp_module));
}


static char *
ngx_stream_scsp_ticket_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_scsp_conf_ticket_keys(cf, conf,
               ngx_stream_conf_get_module_main_conf(cf, ngx_stream_scsp_module));
}


/*
 * Runs once per server{}, after ngx_stream_ssl_module's merge of every server
 * (a dynamic module comes after the static ones), with cf->ctx->srv_conf
 * pointing at this server's configurations.
 */
static char *
ngx_stream_scsp_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    char                      *rv;
    ngx_scsp_ssl_view_t        v;
    ngx_scsp_main_conf_t      *mcf;
    ngx_stream_ssl_conf_t     *sscf;
    ngx_stream_core_srv_conf_t *cscf;

    mcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_scsp_module);
    sscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_ssl_module);
    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

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


/* Servers sharing a context must check client certificates alike. */
static ngx_int_t
ngx_stream_scsp_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                     i, n;
    ngx_scsp_server_t             *s;
    ngx_stream_ssl_conf_t         *sscf;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    cscfp = cmcf->servers.elts;
    s = ngx_palloc(cf->temp_pool,
                   (cmcf->servers.nelts + 1) * sizeof(ngx_scsp_server_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    for (i = 0; i < cmcf->servers.nelts; i++) {
        sscf = cscfp[i]->ctx->srv_conf[ngx_stream_ssl_module.ctx_index];
        if (sscf->ssl.ctx == NULL) {
            continue;
        }
        s[n].conf = cscfp[i]->ctx->srv_conf[ngx_stream_scsp_module.ctx_index];
        s[n].verify = sscf->verify;
        s[n].client_certificate = &sscf->client_certificate;
        s[n].file = cscfp[i]->file_name;
        s[n].line = cscfp[i]->line;
        n++;
    }

    return ngx_scsp_check_contexts(cf, s, n);
}
