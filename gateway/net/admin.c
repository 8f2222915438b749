/*
 * admin.c - the admin listener (admin.h) over libevent's evhttp.
 *
 * The handlers run on the loop thread, so they read app->stats directly;
 * the sink's counters come from gw_sink_get_stats (under its lock).  The
 * answers are built by metrics.c.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "alloc.h"
#include "gw.h"
#include "log.h"
#include "metrics.h"
#include "regkv_watch.h"
#include "sink.h"

#define ADMIN_VERSION "0.1.0"

struct gw_admin {
    struct gw_app *app;
    struct evhttp *http;
    unsigned port; /* bound: the configured one, or the system's pick for 0 */
};

void gw_admin_snapshot(struct gw_app *app, struct gw_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->stats = app->stats;
    gw_sink_get_stats(app->sink, &m->sink);
    m->conns_open = app->n_conns;
    m->conns_unauth = app->n_unauth;
    m->registry_pins = gw_registry_count(app->reg);
    if (app->reg_watch != NULL) {
        struct gw_regkv_watch_stats ws;
        gw_regkv_watch_get_stats(app->reg_watch, &ws);
        m->registry_watched = true;
        m->registry_watch_up = ws.up;
        m->registry_snapshots = ws.snapshots;
        m->registry_bad_records = ws.bad_records;
    }
    m->started_ms = app->started_ms;
    m->draining = app->draining;
    m->version = ADMIN_VERSION;
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const void *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (b != NULL && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, reason, b);
    if (b != NULL)
        evbuffer_free(b);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct gw_admin *a = arg;
    struct gw_metrics m;
    struct pa_buf out;

    pa_buf_init(&out, &gw_pa_mem);
    gw_admin_snapshot(a->app, &m);
    if (gw_metrics_render(&m, &out) != 0) {
        reply(req, 500, "Internal Server Error", "text/plain; charset=utf-8", "out of memory\n",
              14);
    } else {
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    }
    pa_buf_cleanup(&out);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    struct gw_admin *a = arg;
    struct gw_metrics m;
    char reason[200], body[210];

    gw_admin_snapshot(a->app, &m);
    int code = gw_health(&m, reason, sizeof reason);
    int n = snprintf(body, sizeof body, "%s\n", reason);
    reply(req, code, code == 200 ? "OK" : "Service Unavailable", "text/plain; charset=utf-8",
          body, n > 0 ? (size_t)n : 0);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply(req, 404, "Not Found", "text/plain; charset=utf-8", "not found: /metrics, /healthz\n",
          30);
}

int gw_admin_new(struct gw_admin **out, struct gw_app *app, char *err, size_t errlen)
{
    const struct gw_config *cfg = app->cfg;
    struct gw_admin *a = NULL;
    int rv = GW_ENOMEM;

    *out = NULL;
    if (!cfg->admin_on)
        return 0;
    a = gw_calloc(1, sizeof *a);
    if (a == NULL || (a->http = evhttp_new(app->base)) == NULL) {
        snprintf(err, errlen, "[admin]: out of memory");
        goto fail;
    }
    a->app = app;
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 0);
    evhttp_set_timeout(a->http, 10);
    if (evhttp_set_cb(a->http, "/metrics", on_metrics, a) != 0 ||
        evhttp_set_cb(a->http, "/healthz", on_healthz, a) != 0) {
        snprintf(err, errlen, "[admin]: cannot register handlers");
        rv = GW_EINTERNAL;
        goto fail;
    }
    evhttp_set_gencb(a->http, on_other, a);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(a->http, cfg->admin_listen.host, cfg->admin_listen.port);
    if (bs == NULL) {
        snprintf(err, errlen, "[admin] listen: cannot listen on %s port %u",
                 cfg->admin_listen.host, cfg->admin_listen.port);
        rv = GW_EIO;
        goto fail;
    }
    char host[INET6_ADDRSTRLEN];
    gw_sockname(evhttp_bound_socket_get_fd(bs), host, sizeof host, &a->port);
    gw_log(GW_LOG_INFO, NULL, "admin_listening", "%s%s%s:%u (GET /metrics, /healthz)",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", a->port);
    *out = a;
    return 0;
fail:
    gw_admin_free(a);
    return rv;
}

unsigned gw_admin_port(const struct gw_admin *a)
{
    return a != NULL ? a->port : 0;
}

void gw_admin_free(struct gw_admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http);
    gw_free(a);
}
