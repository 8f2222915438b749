/*
 * main.c - the panelgate daemon: arguments, wiring, signals (reload and
 * drain).  Everything else lives in its own module.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/thread.h>
#include <mbedtls/version.h>
#include <msgpack.h>
#include <sqlite3.h>

#include "admin.h"
#include "alloc.h"
#include "config.h"
#include "gw.h"
#include "limiter.h"
#include "log.h"
#include "privacy.h"
#include "problem.h"
#include "registry.h"
#include "regkv_watch.h"
#include "sink.h"
#include "ticket.h"
#include "tls.h"

#define PANELGATE_VERSION "0.1.0"
#define EX_USAGE 64
#define EX_CONFIG 78

static void usage(FILE *out)
{
    fprintf(out,
            "usage: panelgate --config FILE [--check-config]\n"
            "       panelgate --version | --help\n"
            "\n"
            "The panelgate gateway: an HTTP/2 mTLS terminator that admits registered\n"
            "media-server agents and stores their stats frames.\n"
            "\n"
            "  -c, --config FILE   configuration file (INI; see docs/OPERATIONS.md)\n"
            "      --check-config  load and check the configuration, certificates,\n"
            "                      keys (the ticket key file too: made when\n"
            "                      missing), [geo] databases and the file-descriptor\n"
            "                      limit, then exit (0 = valid)\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads configuration, certificates, CA, registry and\n"
            "geo databases (with storage_engine = jetstream the registry is the\n"
            "cluster's bucket, watched all the time: SIGHUP only sweeps the live\n"
            "connections with it), and re-reads the ticket key file;\n"
            "SIGTERM/SIGINT stop accepting, send GOAWAY, commit every accepted frame,\n"
            "then exit 0.\n"
            "\n"
            "Exit status: 0 ok, 1 runtime failure, 64 usage, 78 configuration error.\n");
}

static void version(void)
{
    printf("panelgate %s (protocol v%d; %s, nghttp2 %s, libevent %s, SQLite %s, msgpack-c %s)\n",
           PANELGATE_VERSION, PA_PROTOCOL_VERSION, MBEDTLS_VERSION_STRING_FULL,
           nghttp2_version(0)->version_str, event_get_version(), sqlite3_libversion(),
           msgpack_version());
}

static const char *registry_path(const struct gw_config *cfg)
{
    return cfg->registry_path ? cfg->registry_path : cfg->sqlite_path;
}

/* ---- listeners ---------------------------------------------------------- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l;
    gw_conn_accept(arg, fd, sa, salen);
}

/* Descriptors the process needs besides one per connection: listeners,
 * the admin listener and its clients, SQLite (database, WAL and shared
 * memory, for the writer and the registry poller), the geo databases,
 * stdio, libevent's own, the spare. */
#define FD_RESERVE 64
/* Out of descriptors: how long the listeners rest before they try again. */
#define ACCEPT_PAUSE_MS 250

/* The soft RLIMIT_NOFILE goes up to the hard one, and max_connections must
 * fit in it.  0, or GW_ECONFIG with a reason. */
static int fit_fd_limit(const struct gw_config *cfg, char *err, size_t errlen)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0; /* nothing to go by */
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = cur;
    }
    uint64_t need = (uint64_t)cfg->max_connections + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)rl.rlim_cur < need)
        return gw_fail(GW_ECONFIG, err, errlen,
                       "[server] max_connections = %u needs %llu file descriptors "
                       "(%d more for the gateway itself), but the limit is %llu: "
                       "raise it (ulimit -n, systemd LimitNOFILE=) or lower max_connections",
                       cfg->max_connections, (unsigned long long)need, FD_RESERVE,
                       (unsigned long long)rl.rlim_cur);
    return 0;
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    (void)fd;
    (void)what;
    app->accept_paused = false;
    if (app->draining)
        return;
    for (unsigned i = 0; i < app->n_listeners; i++)
        evconnlistener_enable(app->listeners[i]);
}

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: the listening
 * socket stays readable, and retrying at once would spin the loop.  The
 * spare descriptor makes room to accept the newest connection and close it
 * (the peer sees a close, not a hang), then every listener rests for
 * ACCEPT_PAUSE_MS.  The log line comes at most once a second, with what it
 * left out. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct gw_app *app = arg;
    int e = EVUTIL_SOCKET_ERROR();
    bool out_of_fds = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;

    if (out_of_fds) {
        if (app->spare_fd >= 0) {
            close(app->spare_fd);
            int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
            if (fd >= 0) {
                close(fd);
                app->stats.conns_refused_limit++;
            }
            app->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        if (!app->accept_paused && app->accept_timer) {
            for (unsigned i = 0; i < app->n_listeners; i++)
                evconnlistener_disable(app->listeners[i]);
            app->accept_paused = true;
            struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
            evtimer_add(app->accept_timer, &tv);
        }
    }
    int64_t now = gw_mono_ms();
    if (app->accept_log_ms != 0 && now - app->accept_log_ms < 1000) {
        app->accept_suppressed++;
        return;
    }
    app->accept_log_ms = now;
    gw_log(GW_LOG_ERROR, NULL, "accept_failed", "%s%s; suppressed_since_last=%llu",
           evutil_socket_error_to_string(e),
           out_of_fds ? ": out of file descriptors, accepts paused" : "",
           (unsigned long long)app->accept_suppressed);
    app->accept_suppressed = 0;
}

static int open_listeners(struct gw_app *app, char *err, size_t errlen)
{
    const struct gw_config *cfg = app->cfg;

    for (unsigned i = 0; i < cfg->n_listen; i++) {
        const struct gw_listen *ls = &cfg->listen[i];
        struct sockaddr_storage ss;
        socklen_t len;
        unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;

        memset(&ss, 0, sizeof ss);
        if (strchr(ls->host, ':')) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(ls->port);
            if (inet_pton(AF_INET6, ls->host, &in6->sin6_addr) != 1)
                goto bad;
            len = sizeof *in6;
            flags |= LEV_OPT_BIND_IPV6ONLY;
        } else {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            in->sin_family = AF_INET;
            in->sin_port = htons(ls->port);
            if (inet_pton(AF_INET, ls->host, &in->sin_addr) != 1)
                goto bad;
            len = sizeof *in;
        }
        struct evconnlistener *l = evconnlistener_new_bind(
            app->base, on_accept, app, flags, 1024, (struct sockaddr *)&ss, (int)len);
        if (!l) {
            snprintf(err, errlen, "cannot listen on %s port %u: %s", ls->host, ls->port,
                     strerror(errno));
            return GW_EIO;
        }
        evconnlistener_set_error_cb(l, on_accept_error); /* arg: app, as on_accept's */
        app->listeners[app->n_listeners++] = l;
        continue;
    bad:
        snprintf(err, errlen, "bad listen address %s", ls->host);
        return GW_ECONFIG;
    }
    return 0;
}

/* Writes "host port" per listener, so tests can use port 0. */
static int write_port_file(struct gw_app *app, char *err, size_t errlen)
{
    const char *path = app->cfg->port_file;
    char tmp[4096];
    FILE *f;

    if (!path)
        return 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "server.port_file %s: %s", path, strerror(errno));
        return GW_EIO;
    }
    for (unsigned i = 0; i < app->n_listeners; i++) {
        char host[INET6_ADDRSTRLEN];
        unsigned port;
        gw_sockname(evconnlistener_get_fd(app->listeners[i]), host, sizeof host, &port);
        fprintf(f, "%s %u\n", host, port);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "server.port_file %s: %s", path, strerror(errno));
        return GW_EIO;
    }
    return 0;
}

/* ---- activity log and registry changes ----------------------------------- */

/* One activity row to the sink, with |server| the name of |server_id|
 * (the JetStream engine stores it in the row; SQLite joins it). */
static int app_activity_named(struct gw_app *app, const char *action, int64_t server_id,
                              const char *server, const char *details, int64_t at_ms)
{
    struct gw_sink_item *it = gw_sink_activity_new(action, server_id, server, details, at_ms);
    int rv = it ? gw_sink_submit(app->sink, it) : GW_ENOMEM;

    if (rv != 0) {
        gw_sink_item_free(it);
        gw_log(GW_LOG_WARN, NULL, "activity_dropped", "could not queue activity row %s",
               action);
    }
    return rv;
}

int gw_app_activity(void *arg, const char *action, int64_t server_id, const char *details,
                    int64_t at_ms)
{
    struct gw_app *app = arg;
    const struct gw_server *srv = server_id > 0 ? gw_registry_by_id(app->reg, server_id) : NULL;
    return app_activity_named(app, action, server_id, srv ? srv->name : NULL, details, at_ms);
}

/* The storage alarm: the sink's failing state changed (loop thread).  An
 * outage is logged once at level error when it begins and once at info
 * when it ends; the activity log gets one "storage_outage" row for the
 * whole outage when it ends (written through the storage that just came
 * back: while it fails, nothing can be written there). */
static void open_registry_poll(struct gw_app *app);

static void on_sink_state(int failing, const struct gw_sink_stats *st, void *arg)
{
    struct gw_app *app = arg;
    int64_t now = gw_now_ms();

    /* A file of the database was deleted or replaced: the poll connection
     * holds the old -wal and -shm open too, and the sink reopens only
     * once every connection of the process to the file has let go. */
    if (failing && st->files_replaced && !app->reg_db_released && app->reg_db != NULL) {
        sqlite3_close(app->reg_db);
        app->reg_db = NULL;
        app->reg_db_released = true;
    }
    if (!failing && app->reg_db_released) {
        /* and the file may be another one now: read the registry anew */
        app->reg_db_released = false;
        open_registry_poll(app);
        app->reg_generation = -1; /* the next poll loads it */
        app->reg_data_version = -1;
    }
    if (failing && app->outage_since_ms != 0)
        return; /* the same outage, now with files_replaced */
    if (failing) {
        app->outage_since_ms = st->failing_since_ms ? st->failing_since_ms : now;
        app->outage_mono0 = gw_mono_ms(); /* the duration, whatever the wall clock does */
        app->outage_unavailable0 = app->stats.frames_unavailable;
        app->outage_batches0 = st->batch_failures ? st->batch_failures - 1 : 0;
        snprintf(app->outage_reason, sizeof app->outage_reason, "%s",
                 st->reason[0] ? st->reason : "storage error");
        gw_log(GW_LOG_ERROR, NULL, "storage_failing",
               "storage is failing: %s; requests get 503 storage_unavailable, one per second "
               "probes storage",
               app->outage_reason);
        return;
    }
    int64_t dur = app->outage_since_ms ? gw_mono_ms() - app->outage_mono0 : 0;
    uint64_t refused = app->stats.frames_unavailable - app->outage_unavailable0;
    uint64_t batches = st->batch_failures - app->outage_batches0;
    gw_log(GW_LOG_INFO, NULL, "storage_recovered",
           "storage accepts frames again after %lld ms: %llu failed batches, %llu requests "
           "answered 503",
           (long long)dur, (unsigned long long)batches, (unsigned long long)refused);
    struct pa_buf d;
    pa_buf_init(&d, &gw_pa_mem);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "{\"since_ms\":%lld,\"until_ms\":%lld,\"duration_ms\":%lld,"
                     "\"failed_batches\":%llu,\"requests_503\":%llu,\"reason\":\"",
                     (long long)app->outage_since_ms, (long long)now, (long long)dur,
                     (unsigned long long)batches, (unsigned long long)refused);
    if (pa_buf_append(&d, head, (size_t)n) == 0 && gw_json_escape(&d, app->outage_reason) == 0 &&
        pa_buf_append(&d, "\"}", 3) == 0)
        gw_app_activity(app, "storage_outage", 0, (const char *)d.data, now);
    else
        gw_log(GW_LOG_WARN, NULL, "activity_dropped", "out of memory for storage_outage");
    pa_buf_cleanup(&d);
    app->outage_since_ms = 0;
}

/* Swaps in |nr| (when not NULL) and disconnects every live connection whose
 * server is no longer admitted: revoked, unregistered, or its pin expired
 * at the end of a rotation overlap.  Returns how many were disconnected. */
static unsigned apply_registry(struct gw_app *app, struct gw_registry *nr, const char *cause)
{
    int64_t now_ms = gw_now_ms();
    unsigned gone = 0;

    if (nr) {
        gw_registry_unref(app->reg);
        app->reg = nr;
    }
    for (struct gw_conn *c = app->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != GW_CONN_H2 || c->revoked)
            continue;
        const char *why;
        if (gw_registry_find(app->reg, c->spki, now_ms / 1000, &why))
            continue;
        struct gw_log_ctx ctx;
        char hex[2 * GW_SPKI_LEN + 1], details[160];
        gw_conn_log_ctx(c, &ctx);
        gw_log(GW_LOG_WARN, &ctx, "disconnected", "reason=%s at %s", why, cause);
        gw_spki_hex(c->spki, hex);
        snprintf(details, sizeof details, "{\"reason\":\"%s\",\"spki_sha256\":\"%s\"}", why,
                 hex);
        /* the connection's name: an erased server is no longer in app->reg */
        app_activity_named(app, "disconnected", c->server_id, c->server_name, details, now_ms);
        c->revoked = true;
        c->unregistered = strcmp(why, "unregistered") == 0;
        app->stats.goaways_revoked++;
        gone++;
        gw_conn_goaway(c, NGHTTP2_NO_ERROR, why);
        gw_conn_flush(c);
    }
    return gone;
}

/* The JetStream engine: the bucket's watcher built snapshot |r| (loop
 * thread); it replaces the one in use at once. */
static void on_registry_snapshot(struct gw_registry *r, void *arg)
{
    struct gw_app *app = arg;
    size_t pins = gw_registry_count(r);
    unsigned gone = apply_registry(app, r, "registry change");
    app->pin_sweep_ms = gw_mono_ms();
    gw_log(GW_LOG_INFO, NULL, "registry_reloaded", "bucket %s: pins=%zu disconnected=%u",
           app->cfg->js_registry_bucket, pins, gone);
}

/* Every poll interval: reload the registry snapshot when panelgatectl has
 * changed it (meta.registry_generation moved), and in any case sweep the
 * live connections, so a pin whose overlap ended stops being admitted. */
/* PRAGMA data_version of the poll connection: it changes when another
 * connection commits to the file (panelgatectl, also the gateway's own
 * writer), and reading it costs no I/O; -1 when it cannot be read. */
static int64_t data_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The sweep of live connections for pins whose rotation overlap ended runs
 * at most this often; a registry change sweeps at once. */
#define PIN_SWEEP_MS 1000

/* Every poll_interval_ms: the registry generation is read only when the
 * file changed since the last look (data_version), a new generation loads
 * the registry and disconnects what it no longer admits. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    struct gw_registry *nr = NULL;
    char err[256];
    int64_t gen = 0, now = gw_mono_ms();
    (void)fd;
    (void)what;

    if (app->draining)
        return;
    int64_t dv = app->reg_db ? data_version(app->reg_db) : -1;
    bool changed = app->reg_db && (dv < 0 || dv != app->reg_data_version);
    if (changed && gw_registry_generation(app->reg_db, &gen, err, sizeof err) == 0) {
        if (gen != app->reg_generation) {
            /* a failed load is tried again at the next poll */
            if (gw_registry_load(registry_path(app->cfg), &nr, err, sizeof err) != 0) {
                gw_log(GW_LOG_ERROR, NULL, "registry_reload_failed", "%s", err);
                return;
            }
            app->reg_generation = gen;
            gw_log(GW_LOG_INFO, NULL, "registry_reloaded", "generation=%lld pins=%zu",
                   (long long)gen, gw_registry_count(nr));
        }
        app->reg_data_version = dv;
    }
    if (!nr && now - app->pin_sweep_ms < PIN_SWEEP_MS)
        return;
    app->pin_sweep_ms = now;
    apply_registry(app, nr, nr ? "registry change" : "pin expiry");
}

static void on_activity_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    (void)fd;
    (void)what;
    gw_refusals_flush(&app->refusals, gw_app_activity, app);
    gw_limiter_flush(app->limiter);
}

/* Every retention_interval_s (and once at start): hands the sink a purge of
 * the frames older than retention_days; the writer thread deletes them in
 * chunks and records "purge".  With the JetStream engine the stream's
 * MaxAge does it instead. */
static void on_retention_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    (void)fd;
    (void)what;
    if (app->draining || app->cfg->retention_days == 0 || gw_config_is_jetstream(app->cfg))
        return;
    int64_t now_ms = gw_now_ms();
    int64_t cutoff = now_ms - (int64_t)app->cfg->retention_days * 86400000;
    struct gw_sink_item *it = gw_sink_purge_new(cutoff, now_ms);
    if (!it || gw_sink_submit(app->sink, it) != 0) {
        gw_sink_item_free(it);
        gw_log(GW_LOG_WARN, NULL, "purge_deferred", "storage queue full; retention runs later");
    }
}

static void log_ticket_keys(struct gw_app *app, const char *event)
{
    struct gw_ticket *tk = gw_tls_global_ticket_keys(app->tls_global);
    char name[9];
    int64_t created;
    if (!tk)
        return;
    gw_ticket_current(tk, name, &created);
    gw_log(GW_LOG_INFO, NULL, event, "file=%s current=%s created=%lld", app->cfg->ticket_key_file,
           name, (long long)created);
}

/* Every ticket_key_check_ms with [tls] ticket_key_file (and at SIGHUP): the
 * key file re-read when another gateway rotated it or a copy was installed,
 * rotated when its current key is due.  A failure keeps the keys in use and
 * is logged once until the file is good again. */
static void check_ticket_keys(struct gw_app *app)
{
    char err[512];
    int changed = 0;
    if (gw_tls_global_refresh_tickets(app->tls_global, &changed, err, sizeof err) != 0) {
        if (!app->ticket_key_failing)
            gw_log(GW_LOG_ERROR, NULL, "ticket_keys_failed", "%s; keeping the keys in use", err);
        app->ticket_key_failing = true;
        return;
    }
    app->ticket_key_failing = false;
    if (changed)
        log_ticket_keys(app, "ticket_keys_changed");
}

static void on_ticket_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check_ticket_keys(arg);
}

static void add_periodic(struct event *ev, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_del(ev);
    if (ms)
        event_add(ev, &tv);
}

static void restart_timers(struct gw_app *app)
{
    add_periodic(app->poll_timer, app->cfg->registry_poll_interval_ms);
    add_periodic(app->activity_timer, app->cfg->activity_interval_ms);
    add_periodic(app->retention_timer, app->cfg->retention_interval_s * 1000u);
    add_periodic(app->ticket_timer,
                 gw_tls_global_ticket_keys(app->tls_global) ? app->cfg->ticket_key_check_ms : 0);
}

/* A read-only connection to the registry for change detection; failure
 * here only disables polling (SIGHUP still reloads). */
static void open_registry_poll(struct gw_app *app)
{
    char err[256];
    const char *path = registry_path(app->cfg);

    if (sqlite3_open_v2(path, &app->reg_db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        gw_registry_generation(app->reg_db, &app->reg_generation, err, sizeof err) != 0) {
        gw_log(GW_LOG_WARN, NULL, "registry_poll_disabled",
               "cannot watch %s for changes; SIGHUP reloads the registry", path);
        sqlite3_close(app->reg_db);
        app->reg_db = NULL;
    }
}

/* ---- reload ---------------------------------------------------------------- */

static void log_geo(const struct gw_app *app)
{
    char desc[256];
    gw_log(GW_LOG_INFO, NULL, "geo_databases", "%s",
           gw_geo_describe(app->geo, desc, sizeof desc));
}

/* Settings that need a restart keep their running values (the key table in
 * config.c says which).  Returns 0 or GW_ENOMEM. */
static int keep_restart_only(struct gw_config *nc, const struct gw_config *oc)
{
    struct gw_reload_kept kept;
    int changed = gw_config_keep_restart_only(nc, oc, &kept);

    if (changed < 0)
        return changed;
    if (changed & GW_RELOAD_LISTEN)
        gw_log(GW_LOG_WARN, NULL, "reload_ignored",
               "listen addresses ([server], [admin]) change only at restart; kept the running %s",
               kept.listen);
    if (changed & GW_RELOAD_STORAGE)
        gw_log(GW_LOG_WARN, NULL, "reload_ignored",
               "storage and session-ticket settings change only at restart; kept the running %s",
               kept.storage);
    return 0;
}

static void reload(struct gw_app *app)
{
    char err[512];
    struct gw_config *nc = gw_calloc(1, sizeof *nc);
    struct gw_tls *nt = NULL;
    struct gw_registry *nr = NULL;
    struct gw_geo *ng = NULL;

    if (!nc || gw_config_defaults(nc) != 0 ||
        gw_config_load(nc, app->config_path, err, sizeof err) != 0 ||
        gw_config_validate(nc, err, sizeof err) != 0) {
        if (!nc)
            snprintf(err, sizeof err, "out of memory");
        gw_log(GW_LOG_ERROR, NULL, "reload_failed", "%s; keeping the running configuration",
               err);
        goto fail;
    }
    if (keep_restart_only(nc, app->cfg) != 0) {
        gw_log(GW_LOG_ERROR, NULL, "reload_failed", "out of memory");
        goto fail;
    }
    /* with the JetStream engine the watcher keeps the registry current:
     * the reload sweeps the connections with the snapshot in use */
    if (gw_tls_new(&nt, app->tls_global, nc, err, sizeof err) != 0 ||
        (app->reg_watch == NULL &&
         gw_registry_load(registry_path(nc), &nr, err, sizeof err) != 0) ||
        gw_geo_open(&ng, nc->country_db, nc->asn_db, err, sizeof err) != 0) {
        gw_log(GW_LOG_ERROR, NULL, "reload_failed", "%s; keeping the running configuration",
               err);
        goto fail;
    }

    gw_tls_unref(app->tls);
    app->tls = nt;
    gw_geo_free(app->geo);
    app->geo = ng;
    log_geo(app);
    gw_config_cleanup(app->cfg);
    gw_free(app->cfg);
    app->cfg = nc;
    gw_log_set_level(nc->log_level);
    restart_timers(app);
    check_ticket_keys(app);
    if (gw_limiter_reload(app->limiter, nc) != 0)
        gw_log(GW_LOG_WARN, NULL, "reload_partial",
               "out of memory resizing the rate-limit tables; they keep their size");

    unsigned gone = apply_registry(app, nr, "reload");
    char details[96];
    snprintf(details, sizeof details, "{\"registry_pins\":%zu,\"disconnected\":%u}",
             gw_registry_count(app->reg), gone);
    gw_app_activity(app, "reload", 0, details, gw_now_ms());
    gw_log(GW_LOG_INFO, NULL, "reloaded", "registry=%zu servers_pinned disconnected=%u",
           gw_registry_count(app->reg), gone);
    return;

fail:
    gw_geo_free(ng);
    gw_tls_unref(nt);
    gw_registry_unref(nr);
    if (nc) {
        gw_config_cleanup(nc);
        gw_free(nc);
    }
}

/* ---- drain ----------------------------------------------------------------- */

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    (void)fd;
    (void)what;
    gw_log(GW_LOG_WARN, NULL, "drain_timeout", "closing %u connections still open",
           app->n_conns);
    event_base_loopexit(app->base, NULL);
}

static void start_drain(struct gw_app *app)
{
    if (app->draining)
        return;
    app->draining = true;
    gw_refusals_flush(&app->refusals, gw_app_activity, app);
    gw_limiter_flush(app->limiter);
    gw_log(GW_LOG_INFO, NULL, "draining", "stopping: connections=%u", app->n_conns);
    /* shutdown_timeout_ms bounds the whole drain, the sink's last commits
     * included: past it, what is still queued fails unwritten */
    gw_sink_set_deadline(app->sink, gw_mono_ms() + app->cfg->shutdown_timeout_ms);
    for (unsigned i = 0; i < app->n_listeners; i++)
        evconnlistener_free(app->listeners[i]);
    app->n_listeners = 0;

    for (struct gw_conn *c = app->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == GW_CONN_HANDSHAKE || c->state == GW_CONN_LINGER) {
            gw_conn_close(c);
        } else if (c->state == GW_CONN_H2) {
            gw_conn_goaway(c, NGHTTP2_NO_ERROR, "shutting down");
            gw_conn_flush(c);
        }
    }
    if (app->n_conns == 0) {
        event_base_loopexit(app->base, NULL);
        return;
    }
    uint32_t ms = app->cfg->shutdown_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    app->drain_timer = evtimer_new(app->base, on_drain_timeout, app);
    if (app->drain_timer)
        evtimer_add(app->drain_timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    if (sig == SIGHUP)
        reload(arg);
    else
        start_drain(arg);
}

/* ---- main -------------------------------------------------------------------- */

static void log_stats(const struct gw_app *app)
{
    const struct gw_stats *s = &app->stats;
    gw_log(GW_LOG_INFO, NULL, "stopped",
           "conns_accepted=%llu handshakes_ok=%llu handshakes_refused=%llu "
           "frames_accepted=%llu frames_duplicate=%llu frames_rejected=%llu "
           "frames_unavailable=%llu handshakes_throttled=%llu frames_rate_limited=%llu "
           "rate_limit_bans=%llu",
           (unsigned long long)s->conns_accepted, (unsigned long long)s->handshakes_ok,
           (unsigned long long)s->handshakes_refused, (unsigned long long)s->frames_accepted,
           (unsigned long long)s->frames_duplicate, (unsigned long long)s->frames_rejected,
           (unsigned long long)s->frames_unavailable, (unsigned long long)s->handshakes_throttled,
           (unsigned long long)s->frames_rate_limited, (unsigned long long)s->rate_limit_bans);
}

/* Viewer IPs pass through this process's memory (docs/PRIVACY.md): no
 * core file (RLIMIT_CORE 0; a core_pattern pipe ignores that limit, but
 * with the default fs.suid_dumpable 0 a non-dumpable process gets no core
 * at all), and no process of the same uid may ptrace it or read
 * /proc/PID/mem: PR_SET_DUMPABLE 0 leaves that to root (CAP_SYS_PTRACE).
 * Done first, before any key or frame is in memory.  0, or -1 with the
 * reason printed. */
static int harden_process(void)
{
    struct rlimit no_core = {0, 0};

    if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
        fprintf(stderr, "panelgate: setrlimit(RLIMIT_CORE, 0): %s\n", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fprintf(stderr, "panelgate: prctl(PR_SET_DUMPABLE, 0): %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct gw_app app;
    const char *config_path = NULL;
    bool check_only = false;
    char err[512];
    int opt, rc = 1;
    struct event *sigs[4] = {NULL};

    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc || !config_path) {
        fprintf(stderr, "panelgate: %s\n",
                optind != argc ? "unexpected argument" : "--config FILE is required");
        usage(stderr);
        return EX_USAGE;
    }

    if (harden_process() != 0)
        return 1;

    memset(&app, 0, sizeof app);
    app.spare_fd = -1;
    app.config_path = gw_strdup(config_path);
    app.cfg = gw_calloc(1, sizeof *app.cfg);
    if (!app.config_path || !app.cfg || gw_config_defaults(app.cfg) != 0) {
        fprintf(stderr, "panelgate: out of memory\n");
        return 1;
    }
    if (gw_config_load(app.cfg, config_path, err, sizeof err) != 0 ||
        gw_config_validate(app.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "panelgate: %s\n", err);
        rc = EX_CONFIG;
        goto out;
    }
    gw_log_set_level(app.cfg->log_level);

    signal(SIGPIPE, SIG_IGN);

    if (fit_fd_limit(app.cfg, err, sizeof err) != 0 ||
        gw_tls_global_new(&app.tls_global, app.cfg, err, sizeof err) != 0 ||
        gw_tls_new(&app.tls, app.tls_global, app.cfg, err, sizeof err) != 0 ||
        gw_geo_open(&app.geo, app.cfg->country_db, app.cfg->asn_db, err, sizeof err) != 0) {
        fprintf(stderr, "panelgate: %s\n", err);
        rc = EX_CONFIG;
        goto out;
    }
    if (check_only) {
        printf("panelgate: configuration %s is valid\n", config_path);
        rc = 0;
        goto out;
    }

    if (evthread_use_pthreads() != 0 || !(app.base = event_base_new())) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "cannot create the event loop");
        goto out;
    }
    app.started_ms = gw_now_ms();
    const struct gw_sink_ops *engine =
        gw_config_is_jetstream(app.cfg) ? &gw_sink_jetstream_ops : &gw_sink_sqlite_ops;
    /* With the engine the registry is the bucket: the watcher's first
     * snapshot holds every record there, or the start fails (never an empty
     * registry by accident), before anything listens; first, so that a
     * cluster without a registry says so.  With SQLite the sink makes the
     * file the registry is then read from. */
    bool js = gw_config_is_jetstream(app.cfg);
    if ((js && gw_regkv_watch_new(&app.reg_watch, &app.reg, app.base, app.cfg,
                                  on_registry_snapshot, &app, err, sizeof err) != 0) ||
        gw_sink_new(&app.sink, app.base, engine, app.cfg, err, sizeof err) != 0 ||
        (!js && gw_registry_load(registry_path(app.cfg), &app.reg, err, sizeof err) != 0) ||
        gw_admin_new(&app.admin, &app, err, sizeof err) != 0 ||
        open_listeners(&app, err, sizeof err) != 0 || write_port_file(&app, err, sizeof err) != 0) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "%s", err);
        goto out;
    }
    gw_sink_on_state(app.sink, on_sink_state, &app);
    gw_refusals_init(&app.refusals);
    if (gw_limiter_new(&app.limiter, app.cfg, gw_app_activity, &app) != 0) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "out of memory for the rate-limit tables");
        goto out;
    }
    if (app.reg_watch == NULL)
        open_registry_poll(&app);
    app.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* see on_accept_error */
    app.poll_timer = event_new(app.base, -1, EV_PERSIST, on_poll, &app);
    app.activity_timer = event_new(app.base, -1, EV_PERSIST, on_activity_timer, &app);
    app.retention_timer = event_new(app.base, -1, EV_PERSIST, on_retention_timer, &app);
    app.accept_timer = evtimer_new(app.base, on_accept_resume, &app);
    app.trim_timer = evtimer_new(app.base, gw_conn_on_trim, &app);
    app.ticket_timer = event_new(app.base, -1, EV_PERSIST, on_ticket_timer, &app);
    if (!app.poll_timer || !app.activity_timer || !app.retention_timer || !app.accept_timer ||
        !app.trim_timer || !app.ticket_timer) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "cannot create timers");
        goto out;
    }
    restart_timers(&app);
    on_retention_timer(-1, 0, &app);
    const int signums[] = {SIGHUP, SIGTERM, SIGINT};
    for (unsigned i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(app.base, signums[i], on_signal, &app);
        if (!sigs[i] || evsignal_add(sigs[i], NULL) != 0) {
            gw_log(GW_LOG_ERROR, NULL, "start_failed", "cannot install signal handlers");
            goto out;
        }
    }
    gw_log(GW_LOG_INFO, NULL, "started", "panelgate %s listeners=%u registry=%zu storage=%s",
           PANELGATE_VERSION, app.n_listeners, gw_registry_count(app.reg),
           app.reg_watch ? "jetstream" : app.cfg->sqlite_path);
    log_geo(&app);
    log_ticket_keys(&app, "ticket_keys");

    if (event_base_dispatch(app.base) < 0) {
        gw_log(GW_LOG_ERROR, NULL, "loop_failed", "event loop error");
        goto out;
    }
    rc = 0;

out:
    while (app.conns)
        gw_conn_close(app.conns);
    for (unsigned i = 0; i < app.n_listeners; i++)
        evconnlistener_free(app.listeners[i]);
    if (app.sink) {
        gw_refusals_flush(&app.refusals, gw_app_activity, &app);
        gw_limiter_flush(app.limiter);
    }
    /* no /metrics or /healthz past this point */
    gw_admin_free(app.admin);
    app.admin = NULL;
    /* commits everything still queued and runs the last completions */
    gw_sink_free(app.sink);
    gw_regkv_watch_free(app.reg_watch); /* no snapshot arrives past this point */
    gw_limiter_free(app.limiter);
    if (app.base)
        log_stats(&app);
    for (unsigned i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (app.drain_timer)
        event_free(app.drain_timer);
    if (app.poll_timer)
        event_free(app.poll_timer);
    if (app.activity_timer)
        event_free(app.activity_timer);
    if (app.retention_timer)
        event_free(app.retention_timer);
    if (app.accept_timer)
        event_free(app.accept_timer);
    if (app.trim_timer)
        event_free(app.trim_timer);
    if (app.ticket_timer)
        event_free(app.ticket_timer);
    if (app.spare_fd >= 0)
        close(app.spare_fd);
    sqlite3_close(app.reg_db);
    gw_registry_unref(app.reg);
    gw_geo_free(app.geo);
    gw_tls_unref(app.tls);
    gw_tls_global_free(app.tls_global);
    if (app.base)
        event_base_free(app.base);
    gw_config_cleanup(app.cfg);
    gw_free(app.cfg);
    gw_free(app.config_path);
    return rc;
}
