
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_module.h"
#include "ngx_http_apikey_metrics.h"


/*
 * A location with apikey_metrics that nothing restricts logs a warning
 * at start.  What restricts a location is other modules' configuration,
 * whose structures are their own: rather than read them, the directives
 * that restrict (the access module's allow and deny, auth_basic,
 * auth_request, satisfy) are seen as they are read.  For the time the
 * http block is read, their entries in those modules' command tables
 * call ngx_http_apikey_metrics_guarded(), which runs the module's own
 * handler and marks the level (http, server, location, limit_except) in
 * this module's location configuration; the mark is inherited as those
 * modules' settings are.  The tables are put back when the configuration
 * has been read, or has failed to be (with the cycle's temporary pool),
 * before this module can be unloaded.
 *
 * The same way, rewrite's "return" is seen where it is: it answers in
 * the rewrite phase, before the access phase where "apikey on" checks
 * the key, so a location (or an "if" in it) that has both, or inherits
 * the server's return, logs a warning too.
 */


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 off;       /* "off" restricts nothing; for
                                             return: 2 */
    ngx_command_t             *cmd;       /* while wrapped */
    char                    *(*set)(ngx_conf_t *cf, ngx_command_t *cmd,
                                    void *conf);
} ngx_http_apikey_guard_t;


static char *ngx_http_apikey_metrics_guarded(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_apikey_metrics_guard_restore(void *data);


static ngx_http_apikey_guard_t  ngx_http_apikey_guards[] = {
    { ngx_string("allow"), 0, NULL, NULL },
    { ngx_string("deny"), 0, NULL, NULL },
    { ngx_string("auth_basic"), 1, NULL, NULL },
    { ngx_string("auth_request"), 1, NULL, NULL },
    { ngx_string("satisfy"), 0, NULL, NULL },
    { ngx_string("return"), 2, NULL, NULL },
    { ngx_null_string, 0, NULL, NULL }
};


/* before the http block is read: the directives that restrict, wrapped */

ngx_int_t
ngx_http_apikey_metrics_guard_init(ngx_conf_t *cf)
{
    ngx_uint_t                i;
    ngx_module_t             *module;
    ngx_command_t            *cmd;
    ngx_pool_cleanup_t       *cln;
    ngx_http_apikey_guard_t  *g;

    cln = ngx_pool_cleanup_add(cf->temp_pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_apikey_metrics_guard_restore;

    for (i = 0; cf->cycle->modules[i]; i++) {
        module = cf->cycle->modules[i];

        if (module->type != NGX_HTTP_MODULE || module->commands == NULL) {
            continue;
        }

        for (cmd = module->commands; cmd->name.len; cmd++) {

            for (g = ngx_http_apikey_guards; g->name.len; g++) {

                if (g->cmd == NULL
                    && cmd->set != ngx_http_apikey_metrics_guarded
                    && cmd->name.len == g->name.len
                    && ngx_strncmp(cmd->name.data, g->name.data,
                                   g->name.len)
                       == 0)
                {
                    g->cmd = cmd;
                    g->set = cmd->set;
                    cmd->set = ngx_http_apikey_metrics_guarded;
                }
            }
        }
    }

    return NGX_OK;
}


static char *
ngx_http_apikey_metrics_guarded(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                        *rv;
    ngx_str_t                   *value;
    ngx_http_apikey_guard_t     *g;
    ngx_http_apikey_loc_conf_t  *akcf;

    for (g = ngx_http_apikey_guards; g->cmd != cmd; g++) {
        if (g->name.len == 0) {
            return "is not known to apikey_metrics";
        }
    }

    rv = g->set(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    akcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_apikey_module);

    if (g->off == 2) {
        akcf->returns = 1;
        akcf->return_file = cf->conf_file->file.name.data;
        akcf->return_line = cf->conf_file->line;
        return rv;
    }

    value = cf->args->elts;

    if (g->off && cf->args->nelts == 2
        && ngx_strcmp(value[1].data, "off") == 0)
    {
        return rv;
    }

    akcf->restricted = 1;

    return rv;
}


static void
ngx_http_apikey_metrics_guard_restore(void *data)
{
    ngx_http_apikey_guard_t  *g;

    for (g = ngx_http_apikey_guards; g->name.len; g++) {
        if (g->cmd) {
            g->cmd->set = g->set;
            g->cmd = NULL;
        }
    }
}


/* a location merged: apikey_metrics in it, and nothing that restricts */

void
ngx_http_apikey_metrics_guard_check(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *akcf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (akcf->enable == 1 && akcf->returns == 1) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"return\" in %s:%ui answers in the rewrite phase, "
                      "before \"apikey on\" checks the key in the access "
                      "phase: the requests it answers in \"%V\" are not "
                      "checked", akcf->return_file, akcf->return_line,
                      &clcf->name);
    }

    if (akcf->metrics_file == NULL || akcf->restricted == 1) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "\"apikey_metrics\" location \"%V\" has no access "
                  "restriction (allow/deny, auth_basic, auth_request, "
                  "satisfy): anyone who reaches it reads the counters "
                  "in %s:%ui",
                  &clcf->name, akcf->metrics_file, akcf->metrics_line);
}
