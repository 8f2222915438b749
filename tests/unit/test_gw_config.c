/*
 * test_gw_config.c - defaults, the INI file and validation (config.c).
 *
 * Every file is written into a fresh mkdtemp directory, removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "config.h"

#define TLS_OK "[tls]\ncert_file = /etc/pg/gw.crt\nkey_file = /etc/pg/gw.key\n" \
               "client_ca_file = /etc/pg/ca.crt\n"

struct fx {
    char dir[64];
    char path[128];
    int n_files;
    struct gw_config c;
    char err[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/test_gw_config.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];
    for (int i = 0; i < f->n_files; i++) {
        snprintf(p, sizeof p, "%s/f%d.conf", f->dir, i);
        unlink(p);
    }
    rmdir(f->dir);
    gw_config_cleanup(&f->c);
    free(f);
    return 0;
}

/* Writes |body| to a new file in the fixture directory; f->path names it. */
static const char *put(struct fx *f, const char *body)
{
    snprintf(f->path, sizeof f->path, "%s/f%d.conf", f->dir, f->n_files++);
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(body, 1, strlen(body), fp), strlen(body));
    assert_int_equal(fclose(fp), 0);
    return f->path;
}

/* Loads |body| over fresh defaults; returns gw_config_load's result. */
static int load(struct fx *f, const char *body)
{
    gw_config_cleanup(&f->c);
    assert_int_equal(gw_config_defaults(&f->c), 0);
    f->err[0] = '\0';
    return gw_config_load(&f->c, put(f, body), f->err, sizeof f->err);
}

static void set_tls(struct gw_config *c)
{
    c->cert_file = strdup("/x/gw.crt");
    c->key_file = strdup("/x/gw.key");
    c->client_ca_file = strdup("/x/ca.crt");
    assert_true(c->cert_file && c->key_file && c->client_ca_file);
}

/* ------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    struct fx *f = *state;
    struct gw_config *c = &f->c;
    struct pa_frame_limits lim;

    assert_int_equal(gw_config_defaults(c), 0);
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[0].host, "0.0.0.0");
    assert_int_equal(c->listen[0].port, 8443);
    assert_string_equal(c->listen[1].host, "::");
    assert_int_equal(c->listen[1].port, 8443);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_handshakes, 2500);
    assert_int_equal(c->handshake_timeout_ms, 10000);
    assert_int_equal(c->idle_timeout_ms, 120000);
    assert_int_equal(c->request_timeout_ms, 30000);
    assert_int_equal(c->shutdown_timeout_ms, 30000);
    assert_null(c->port_file);
    assert_null(c->cert_file);
    assert_true(c->session_tickets);
    assert_int_equal(c->ticket_lifetime_s, 86400);
    assert_null(c->ciphersuites);
    assert_int_equal(c->max_concurrent_streams, 100);
    assert_int_equal(c->max_header_list_size, 16384);
    assert_int_equal(c->initial_window_size, 1048576);
    assert_int_equal(c->stream_reset_burst, 1000);
    assert_int_equal(c->stream_reset_rate, 33);
    assert_int_equal(c->max_continuations, 8);
    memset(&lim, 0, sizeof lim); /* padding */
    pa_frame_limits_default(&lim);
    assert_memory_equal(&c->frame, &lim, sizeof lim);
    assert_int_equal(c->max_body_bytes, c->frame.max_frame_bytes);
    assert_int_equal(c->max_body_bytes, 4u << 20);
    assert_int_equal(c->max_conn_buffer_bytes, 16u << 20);
    assert_string_equal(c->storage_engine, "sqlite");
    assert_string_equal(c->sqlite_path, "panelgate.db");
    assert_int_equal(c->sqlite_synchronous, GW_SYNC_FULL);
    assert_int_equal(c->queue_max_frames, 4096);
    assert_int_equal(c->queue_max_bytes, 64u << 20);
    assert_int_equal(c->batch_max_frames, 512);
    assert_int_equal(c->commit_delay_ms, 5);
    assert_int_equal(c->busy_timeout_ms, 5000);
    assert_int_equal(c->retry_after_s, 5);
    assert_null(c->registry_path);
    assert_false(gw_config_is_jetstream(c));
    assert_null(c->js_servers);
    assert_string_equal(c->js_stream, "PANELGATE_FRAMES");
    assert_string_equal(c->js_subject_prefix, "panelgate.frames");
    assert_string_equal(c->js_consumer, "panelgate-store");
    assert_string_equal(c->js_registry_bucket, "panelgate_registry");
    assert_string_equal(c->js_activity_stream, "PANELGATE_ACTIVITY");
    assert_string_equal(c->js_activity_prefix, "panelgate.activity");
    assert_int_equal(c->js_replicas, 3);
    assert_int_equal(c->js_duplicate_window_s, 120);
    assert_int_equal(c->js_max_in_flight, 1024);
    assert_int_equal(c->js_publish_timeout_ms, 5000);
    assert_int_equal(c->js_connect_timeout_ms, 5000);
    assert_int_equal(c->js_ack_wait_ms, 30000);
    assert_int_equal(c->log_level, GW_LOG_INFO);
    assert_int_equal(c->refusal_log_per_s, 10);
    assert_int_equal(c->rl.frames_per_s, 5);
    assert_int_equal(c->rl.frames_burst, 50);
    assert_int_equal(c->rl.bytes_per_s, 8u << 20);
    assert_int_equal(c->rl.bytes_burst, 32u << 20);
    assert_int_equal(c->rl_global_frames_per_s, 20000);
    assert_int_equal(c->rl_global_frames_burst, 40000);
    assert_int_equal(c->rl_handshakes_per_s, 10);
    assert_int_equal(c->rl_handshakes_burst, 40);
    assert_int_equal(c->rl_addr_table_size, 8192);
    assert_int_equal(c->rl_server_table_size, 16384);
    assert_int_equal(c->rl_abuse_threshold, 100);
    assert_int_equal(c->rl_abuse_window_s, 10);
    assert_int_equal(c->rl_ban_s, 60);
    for (int k = 0; k < GW_RL_N_KINDS; k++)
        assert_int_equal(c->rl_kind[k].set, 0);
    assert_null(c->rl_servers);
    assert_int_equal(c->n_rl_servers, 0);

    /* only the three TLS paths are missing, named in order */
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[tls] cert_file: required"));
    c->cert_file = strdup("/x/gw.crt");
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[tls] key_file: required"));
    c->key_file = strdup("/x/gw.key");
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[tls] client_ca_file: required"));
    c->client_ca_file = strdup("/x/ca.crt");
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);
    assert_int_equal(gw_config_validate(c, NULL, 0), 0);
}

static void test_full_file(void **state)
{
    struct fx *f = *state;
    struct gw_config *c = &f->c;
    static const char body[] =
        "\xEF\xBB\xBF; panelgate test config\r\n"
        "# every key, none at its default\n"
        "[server]\n"
        "listen = 127.0.0.1:0, [::1]:9443 , [0:0::0:1]:9444,10.1.2.3:65535\n"
        "max_connections = 500\n"
        "  handshake_timeout_ms = 2500   ; indented, inline comment\n"
        "idle_timeout_ms = 60000\n"
        "request_timeout_ms = 1000\n"
        "shutdown_timeout_ms = 7000\n"
        "port_file = /run/pg/ports\n"
        "\n"
        "[tls]\n"
        "cert_file = /etc/pg/gw.crt\n"
        "key_file = /etc/pg/gw.key\n"
        "client_ca_file = /etc/pg/ca.crt\n"
        "session_tickets = Off\n"
        "ticket_lifetime_s = 3600\n"
        "ciphersuites = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
        "[http2]\n"
        "max_concurrent_streams = 1000\n"
        "max_header_list_size = 8k\n"
        "initial_window_size = 65535\n"
        "stream_reset_burst = 50\n"
        "stream_reset_rate = 5\n"
        "max_continuations = 0\n"
        "max_body_bytes = 1M\n"
        "max_conn_buffer_bytes = 3m\n"
        "[frame]\n"
        "max_frame_bytes = 2m\n"
        "max_arena_bytes = 1G\n"
        "max_depth = 9\n"
        "max_name_len = 128\n"
        "max_str_len = 512\n"
        "max_server_ips = 8\n"
        "max_vhosts = 4\n"
        "max_apps = 40\n"
        "max_instances = 400\n"
        "max_streams = 4000\n"
        "max_conns = 0\n"
        "max_config_nodes = 10\n"
        "max_unknown_keys = 0\n"
        "[storage]\n"
        "storage_engine = sqlite\n"
        "sqlite_path = /var/lib/panelgate/pg.db\n"
        "sqlite_synchronous = normal\n"
        "queue_max_frames = 100\n"
        "queue_max_bytes = 16m\n"
        "batch_max_frames = 100\n"
        "commit_delay_ms = 100\n"
        "busy_timeout_ms = 1\n"
        "retry_after_s = 30\n"
        "[registry]\n"
        "registry_path = /var/lib/panelgate/registry.db\n"
        "[log]\n"
        "log_level = debug\n"
        "refusal_log_per_s = 0\n";

    assert_int_equal(load(f, body), 0);
    assert_string_equal(f->err, "");
    assert_int_equal(c->n_listen, 4);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 0);
    assert_string_equal(c->listen[1].host, "::1");
    assert_int_equal(c->listen[1].port, 9443);
    assert_string_equal(c->listen[2].host, "::1"); /* canonical form */
    assert_int_equal(c->listen[2].port, 9444);
    assert_string_equal(c->listen[3].host, "10.1.2.3");
    assert_int_equal(c->listen[3].port, 65535);
    assert_int_equal(c->max_connections, 500);
    assert_int_equal(c->max_handshakes, 125); /* a quarter, not set in the file */
    assert_int_equal(c->handshake_timeout_ms, 2500);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->request_timeout_ms, 1000);
    assert_int_equal(c->shutdown_timeout_ms, 7000);
    assert_string_equal(c->port_file, "/run/pg/ports");
    assert_string_equal(c->cert_file, "/etc/pg/gw.crt");
    assert_string_equal(c->key_file, "/etc/pg/gw.key");
    assert_string_equal(c->client_ca_file, "/etc/pg/ca.crt");
    assert_false(c->session_tickets);
    assert_int_equal(c->ticket_lifetime_s, 3600);
    assert_string_equal(c->ciphersuites, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    assert_int_equal(c->max_concurrent_streams, 1000);
    assert_int_equal(c->max_header_list_size, 8192);
    assert_int_equal(c->initial_window_size, 65535);
    assert_int_equal(c->stream_reset_burst, 50);
    assert_int_equal(c->stream_reset_rate, 5);
    assert_int_equal(c->max_continuations, 0);
    assert_int_equal(c->max_body_bytes, 1u << 20);
    assert_int_equal(c->max_conn_buffer_bytes, 3u << 20);
    assert_int_equal(c->frame.max_frame_bytes, 2u << 20);
    assert_int_equal(c->frame.max_arena_bytes, 1u << 30);
    assert_int_equal(c->frame.max_depth, 9);
    assert_int_equal(c->frame.max_name_len, 128);
    assert_int_equal(c->frame.max_str_len, 512);
    assert_int_equal(c->frame.max_server_ips, 8);
    assert_int_equal(c->frame.max_vhosts, 4);
    assert_int_equal(c->frame.max_apps, 40);
    assert_int_equal(c->frame.max_instances, 400);
    assert_int_equal(c->frame.max_streams, 4000);
    assert_int_equal(c->frame.max_conns, 0);
    assert_int_equal(c->frame.max_config_nodes, 10);
    assert_int_equal(c->frame.max_unknown_keys, 0);
    assert_string_equal(c->storage_engine, "sqlite");
    assert_string_equal(c->sqlite_path, "/var/lib/panelgate/pg.db");
    assert_int_equal(c->sqlite_synchronous, GW_SYNC_NORMAL);
    assert_int_equal(c->queue_max_frames, 100);
    assert_int_equal(c->queue_max_bytes, 16u << 20);
    assert_int_equal(c->batch_max_frames, 100);
    assert_int_equal(c->commit_delay_ms, 100);
    assert_int_equal(c->busy_timeout_ms, 1);
    assert_int_equal(c->retry_after_s, 30);
    assert_string_equal(c->registry_path, "/var/lib/panelgate/registry.db");
    assert_int_equal(c->log_level, GW_LOG_DEBUG);
    assert_int_equal(c->refusal_log_per_s, 0);

    /* an empty value unsets an optional string */
    assert_int_equal(load(f, TLS_OK "ciphersuites =\n[server]\nport_file=\n"), 0);
    assert_null(c->ciphersuites);
    assert_null(c->port_file);
}

struct bad {
    const char *body;
    int line;
    const char *where;  /* "[section] key" or "" */
    const char *reason; /* substring of the reason */
};

static const struct bad bad_cases[] = {
    {"[server]\nmax_connection = 5\n", 2, "[server] max_connection", "unknown key"},
    {TLS_OK "[servers]\nmax_connections = 5\n", 5, "[servers]", "unknown section"},
    {"[server]\n[bogus]\n", 2, "[bogus]", "unknown section"},
    {"[server] extra\n", 1, "[server]", "unexpected text"},
    {"max_connections = 5\n", 1, "max_connections", "outside any [section]"},
    {"[server]\n\nmax_connections = 12x\n", 3, "[server] max_connections", "not a whole number"},
    {"[server]\nmax_connections = -1\n", 2, "[server] max_connections", "negative"},
    {"[server]\nmax_connections = +1\n", 2, "[server] max_connections", "not a whole number"},
    {"[server]\nmax_connections =\n", 2, "[server] max_connections", "empty value"},
    {"[server]\nmax_connections = 99999999999999999999999\n", 2, "[server] max_connections",
     "too large"},
    {"[http2]\nmax_concurrent_streams = 1001\n", 2, "[http2] max_concurrent_streams",
     "out of range 1..1000"},
    {"[http2]\nmax_concurrent_streams = 0\n", 2, "[http2] max_concurrent_streams",
     "out of range"},
    {"[http2]\ninitial_window_size = 65534\n", 2, "[http2] initial_window_size", "out of range"},
    {"[http2]\ninitial_window_size = 2g\n", 2, "[http2] initial_window_size", "out of range"},
    {"[server]\nidle_timeout_ms = 0\n", 2, "[server] idle_timeout_ms", "out of range"},
    {"[storage]\nqueue_max_frames = 0\n", 2, "[storage] queue_max_frames", "out of range"},
    {"[frame]\nmax_depth = 5\n", 2, "[frame] max_depth", "out of range 9..64"},
    {"[tls]\nsession_tickets = maybe\n", 2, "[tls] session_tickets", "not a boolean"},
    {"[server]\nlisten = 1.2.3.4\n", 2, "[server] listen", "missing ':PORT'"},
    {"[server]\nlisten = [::1]8443\n", 2, "[server] listen", "expected ':PORT' after ']'"},
    {"[server]\nlisten = [::1:8443\n", 2, "[server] listen", "missing ']'"},
    {"[server]\nlisten = localhost:8443\n", 2, "[server] listen", "not a numeric IPv4"},
    {"[server]\nlisten = [ip6-localhost]:8443\n", 2, "[server] listen", "not a numeric IPv6"},
    {"[server]\nlisten = ::1:8443\n", 2, "[server] listen", "brackets"},
    {"[server]\nlisten = 1.2.3.4:65536\n", 2, "[server] listen", "port"},
    {"[server]\nlisten = 1.2.3.4:\n", 2, "[server] listen", "port"},
    {"[server]\nlisten = 1.2.3.4:80,\n", 2, "[server] listen", "empty address"},
    {"[server]\nlisten = 1.2.3.4:80, 1.2.3.4:80\n", 2, "[server] listen", "listed twice"},
    {"[server]\nlisten = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,"
     "127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,127.0.0.1:9\n",
     2, "[server] listen", "more than 8"},
    {"[server]\nmax_connections = 5\n; a comment\nmax_connections = 6\n", 4,
     "[server] max_connections", "duplicate key (first set on line 2)"},
    {"[server]\nmax_connections = 5\n[tls]\n[server]\nmax_connections = 6\n", 5,
     "[server] max_connections", "duplicate key"},
    {"[storage]\nqueue_max_bytes = 64x\n", 2, "[storage] queue_max_bytes", "bad size suffix"},
    {"[storage]\nqueue_max_bytes = 64MiB\n", 2, "[storage] queue_max_bytes", "bad size suffix"},
    {"[server]\nmax_connections = 5k\n", 2, "[server] max_connections", "not a whole number"},
    {"[storage]\nstorage_engine = mysql\n", 2, "[storage] storage_engine",
     "unknown engine 'mysql' (sqlite or jetstream)"},
    {"[jetstream]\nreplicas = 6\n", 2, "[jetstream] replicas", "out of range 1..5"},
    {"[jetstream]\nreplicas = 0\n", 2, "[jetstream] replicas", "out of range 1..5"},
    {"[jetstream]\nack_wait_ms = 99\n", 2, "[jetstream] ack_wait_ms",
     "out of range 100..3600000"},
    {"[storage]\nsqlite_synchronous = off\n", 2, "[storage] sqlite_synchronous",
     "normal or full"},
    {"[log]\nlog_level = verbose\n", 2, "[log] log_level", "not a log level"},
    {"[server]\nthis line has no equals sign\n", 2, "", "syntax error"},
    {"[ratelimit]\nframes_burst = 0\n", 2, "[ratelimit] frames_burst", "out of range 1.."},
    {"[ratelimit]\nbytes_per_s = 65g\n", 2, "[ratelimit] bytes_per_s", "out of range"},
    {"[ratelimit]\nban_s = 0\n", 2, "[ratelimit] ban_s", "out of range 1..86400"},
    {"[ratelimit]\naddr_table_size = 7\n", 2, "[ratelimit] addr_table_size", "out of range"},
    {"[ratelimit.nimble]\nframes_per_s = 1\nglobal_frames_per_s = 3\n", 3,
     "[ratelimit.nimble] global_frames_per_s", "unknown key (an override takes"},
    {"[ratelimit.wowza]\nframes_burst = 0\n", 2, "[ratelimit.wowza] frames_burst",
     "out of range"},
    {"[ratelimit.wowza]\nbytes_burst = 1x\n", 2, "[ratelimit.wowza] bytes_burst",
     "bad size suffix"},
    {"[ratelimit.wowza]\nframes_per_s = 1\n[log]\n[ratelimit.wowza]\nframes_per_s = 2\n", 5,
     "[ratelimit.wowza] frames_per_s", "duplicate key (first set on line 2)"},
    {"[ratelimit.server a-1]\nframes_per_s = 1\n[ratelimit.server b]\n"
     "[ratelimit.server a-1]\nframes_per_s = 2\n",
     5, "[ratelimit.server a-1] frames_per_s", "duplicate key (first set on line 2)"},
    {"[ratelimit.server x]\nban_s = 3\n", 2, "[ratelimit.server x] ban_s", "unknown key"},
    {"[ratelimit.server]\n", 1, "[ratelimit.server]", "needs a server name"},
    {"[ratelimit.server   ]\n", 1, "[ratelimit.server]", "needs a server name"},
    {"[ratelimit.server -x]\n", 1, "[ratelimit.server -x]", "not a server name"},
    {"[ratelimit.server a b]\n", 1, "[ratelimit.server a b]", "not a server name"},
    {"[ratelimit.serverx]\n", 1, "[ratelimit.serverx]", "unknown section"},
    {"[ratelimit.kaltura]\n", 1, "[ratelimit.kaltura]", "unknown section"},
    {"[ratelimit.server x] y\n", 1, "[ratelimit.server x]", "unexpected text"},
    {"[server\n", 1, "", "syntax error"},
};

static void test_errors(void **state)
{
    struct fx *f = *state;
    char want[512];

    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad *b = &bad_cases[i];
        int rc = load(f, b->body);
        if (b->where[0] != '\0')
            snprintf(want, sizeof want, "%s:%d: %s: ", f->path, b->line, b->where);
        else
            snprintf(want, sizeof want, "%s:%d: ", f->path, b->line);
        if (rc != GW_ECONFIG || strncmp(f->err, want, strlen(want)) != 0 ||
            strstr(f->err + strlen(want), b->reason) == NULL) {
            print_error("case %zu: rc=%d\n  got  '%s'\n  want '%s...%s'\n", i, rc, f->err, want,
                        b->reason);
            fail();
        }
    }
}

static void test_long_line_and_nul(void **state)
{
    struct fx *f = *state;
    char body[400];
    char want[256];

    /* inih's line buffer is 200 bytes: longer lines are refused, not split */
    snprintf(body, sizeof body, "[server]\nport_file = /%0300d\n", 0);
    assert_int_equal(load(f, body), GW_ECONFIG);
    snprintf(want, sizeof want, "%s:2: line longer than", f->path);
    assert_non_null(strstr(f->err, want));

    /* a NUL byte cannot sneak a value past the parser */
    FILE *fp;
    snprintf(f->path, sizeof f->path, "%s/f%d.conf", f->dir, f->n_files++);
    fp = fopen(f->path, "wb");
    assert_non_null(fp);
    fwrite("[log]\nlog_level = info\0garbage\n", 1, 31, fp);
    fclose(fp);
    gw_config_cleanup(&f->c);
    assert_int_equal(gw_config_defaults(&f->c), 0);
    assert_int_equal(gw_config_load(&f->c, f->path, f->err, sizeof f->err), GW_ECONFIG);
    snprintf(want, sizeof want, "%s:2: NUL byte", f->path);
    assert_non_null(strstr(f->err, want));
}

static void test_size_suffixes(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *v;
        size_t want;
    } cases[] = {
        {"0", 0},          {"1", 1},           {"4096", 4096},     {"4k", 4096},
        {"4K", 4096},      {"3m", 3u << 20},   {"3M", 3u << 20},   {"2g", 2ull << 30},
        {"2G", 2ull << 30}, {"64G", 64ull << 30}, {"007", 7},
    };
    char body[256];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* queue_max_bytes has a minimum of 1 and must hold one body */
        snprintf(body, sizeof body,
                 TLS_OK "[http2]\nmax_body_bytes = 1\n[storage]\nqueue_max_bytes = %s\n",
                 cases[i].v);
        int rc = load(f, body);
        if (cases[i].want == 0) {
            assert_int_equal(rc, GW_ECONFIG);
            assert_non_null(strstr(f->err, "out of range"));
            continue;
        }
        if (rc != 0)
            print_error("case %s: %s\n", cases[i].v, f->err);
        assert_int_equal(rc, 0);
        assert_int_equal(f->c.queue_max_bytes, cases[i].want);
    }
    assert_int_equal(load(f, TLS_OK "[storage]\nqueue_max_bytes = 65g\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "out of range"));
    assert_int_equal(load(f, TLS_OK "[storage]\nqueue_max_bytes = 99999999999G\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "too large"));
    assert_int_equal(load(f, TLS_OK "[http2]\nmax_header_list_size = 1m\n"), 0);
    assert_int_equal(f->c.max_header_list_size, 1u << 20);
}

static void test_max_body_follows_frame(void **state)
{
    struct fx *f = *state;
    char want[256];

    assert_int_equal(load(f, TLS_OK "[frame]\nmax_frame_bytes = 1m\n"), 0);
    assert_int_equal(f->c.frame.max_frame_bytes, 1u << 20);
    assert_int_equal(f->c.max_body_bytes, 1u << 20);

    assert_int_equal(load(f, TLS_OK "[frame]\nmax_frame_bytes = 8m\n"), 0);
    assert_int_equal(f->c.max_body_bytes, 8u << 20);

    /* a body that follows the frame limit must still fit the buffers */
    assert_int_equal(load(f, TLS_OK "[frame]\nmax_frame_bytes = 32m\n"), GW_ECONFIG);
    snprintf(want, sizeof want, "%s: [http2] max_conn_buffer_bytes: ", f->path);
    assert_int_equal(strncmp(f->err, want, strlen(want)), 0);
    assert_int_equal(load(f, TLS_OK "[http2]\nmax_conn_buffer_bytes = 64m\n"
                                    "[frame]\nmax_frame_bytes = 32m\n"),
                     0);
    assert_int_equal(f->c.max_body_bytes, 32u << 20);

    assert_int_equal(load(f, TLS_OK "[http2]\nmax_body_bytes = 512k\n"
                                    "[frame]\nmax_frame_bytes = 1m\n"),
                     0);
    assert_int_equal(f->c.max_body_bytes, 512u << 10);
    assert_int_equal(f->c.frame.max_frame_bytes, 1u << 20);

    /* larger than the frame limit: a file-wide error naming the key */
    assert_int_equal(load(f, TLS_OK "[http2]\nmax_body_bytes = 8m\n"), GW_ECONFIG);
    snprintf(want, sizeof want, "%s: [http2] max_body_bytes: ", f->path);
    assert_int_equal(strncmp(f->err, want, strlen(want)), 0);
    assert_non_null(strstr(f->err, "max_frame_bytes"));

    /* a body must fit the queue */
    assert_int_equal(load(f, TLS_OK "[storage]\nqueue_max_bytes = 1m\n"), GW_ECONFIG);
    snprintf(want, sizeof want, "%s: [storage] queue_max_bytes: ", f->path);
    assert_int_equal(strncmp(f->err, want, strlen(want)), 0);
}

/* [server] max_handshakes follows max_connections (a quarter, at least 1)
 * unless it is set, and may not exceed it. */
static void test_max_handshakes_follows_connections(void **state)
{
    struct fx *f = *state;
    char want[600];

    assert_int_equal(load(f, TLS_OK "[server]\nmax_connections = 64\n"), 0);
    assert_int_equal(f->c.max_handshakes, 16);
    assert_int_equal(load(f, TLS_OK "[server]\nmax_connections = 3\n"), 0);
    assert_int_equal(f->c.max_handshakes, 1);
    assert_int_equal(load(f, TLS_OK "[server]\nmax_connections = 64\nmax_handshakes = 64\n"), 0);
    assert_int_equal(f->c.max_handshakes, 64);
    assert_int_equal(load(f, TLS_OK "[server]\nmax_handshakes = 7\n"), 0);
    assert_int_equal(f->c.max_handshakes, 7);
    assert_int_equal(f->c.max_connections, 10000);

    assert_int_equal(load(f, TLS_OK "[server]\nmax_connections = 64\nmax_handshakes = 65\n"),
                     GW_ECONFIG);
    snprintf(want, sizeof want, "%s: [server] max_handshakes: 65 is larger than max_connections (64)",
             f->path);
    assert_string_equal(f->err, want);
    assert_int_equal(load(f, TLS_OK "[server]\nmax_handshakes = 0\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[server] max_handshakes"));
    assert_non_null(strstr(f->err, "out of range 1..1000000"));
}

static void test_validate(void **state)
{
    struct fx *f = *state;
    struct gw_config *c = &f->c;

    assert_int_equal(gw_config_defaults(c), 0);
    set_tls(c);
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);

    c->frame.max_depth = 5;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[frame] max_depth"));
    c->frame.max_depth = 65;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[frame] max_depth"));
    c->frame.max_depth = 16;

    c->frame.max_name_len = 0;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[frame] max_name_len"));
    c->frame.max_name_len = 255;

    c->batch_max_frames = c->queue_max_frames + 1;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[storage] batch_max_frames"));
    c->batch_max_frames = c->queue_max_frames;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);

    c->request_timeout_ms = 0;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[server] request_timeout_ms"));
    c->request_timeout_ms = 1;

    c->initial_window_size = 2147483648u;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[http2] initial_window_size"));
    c->initial_window_size = 65535;

    c->n_listen = 0;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[server] listen"));
    c->n_listen = 1;
    strcpy(c->listen[0].host, "example.com");
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[server] listen"));
    strcpy(c->listen[0].host, "::1");

    c->sqlite_synchronous = (enum gw_sqlite_sync)7;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[storage] sqlite_synchronous"));
    c->sqlite_synchronous = GW_SYNC_NORMAL;

    free(c->sqlite_path);
    c->sqlite_path = NULL;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[storage] sqlite_path: required"));
    c->sqlite_path = strdup("x.db");
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);

    /* loading: the same check with the file name in front */
    char want[256];
    assert_int_equal(load(f, "[server]\nmax_connections = 5\n"), GW_ECONFIG);
    snprintf(want, sizeof want, "%s: [tls] cert_file: required", f->path);
    assert_int_equal(strncmp(f->err, want, strlen(want)), 0);
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    char path[160];

    snprintf(path, sizeof path, "%s/does-not-exist.conf", f->dir);
    assert_int_equal(gw_config_defaults(&f->c), 0);
    assert_int_equal(gw_config_load(&f->c, path, f->err, sizeof f->err), GW_EIO);
    assert_int_equal(strncmp(f->err, path, strlen(path)), 0);
    assert_non_null(strstr(f->err, "cannot open"));

    /* a directory is not a config file either */
    assert_int_equal(gw_config_load(&f->c, f->dir, f->err, sizeof f->err), GW_EIO);
    assert_int_equal(strncmp(f->err, f->dir, strlen(f->dir)), 0);

    /* no error buffer: still fails cleanly */
    assert_int_equal(gw_config_load(&f->c, path, NULL, 0), GW_EIO);
}

static void test_listen_replaces_default(void **state)
{
    struct fx *f = *state;

    assert_int_equal(load(f, TLS_OK "[server]\nlisten = [::]:0\n"), 0);
    assert_int_equal(f->c.n_listen, 1);
    assert_string_equal(f->c.listen[0].host, "::");
    assert_int_equal(f->c.listen[0].port, 0);

    /* two ephemeral listeners on one address are fine */
    assert_int_equal(load(f, TLS_OK "[server]\nlisten = 127.0.0.1:0,127.0.0.1:0\n"), 0);
    assert_int_equal(f->c.n_listen, 2);

    /* a failed list leaves the default list in place */
    assert_int_equal(load(f, "[server]\nlisten = 127.0.0.1:1, nope:2\n"), GW_ECONFIG);
    assert_int_equal(f->c.n_listen, 2);
    assert_string_equal(f->c.listen[0].host, "0.0.0.0");
}

static void test_cleanup_safe(void **state)
{
    struct fx *f = *state;
    struct gw_config z;

    memset(&z, 0, sizeof z);
    gw_config_cleanup(&z);
    gw_config_cleanup(&z);
    gw_config_cleanup(NULL);

    /* half-filled after an error: strings set before it are freed */
    assert_int_equal(load(f, TLS_OK "[storage]\nsqlite_path = /a/b\nqueue_max_frames = x\n"), GW_ECONFIG);
    assert_string_equal(f->c.sqlite_path, "/a/b");
    gw_config_cleanup(&f->c);
    gw_config_cleanup(&f->c);
    assert_null(f->c.cert_file);
    assert_null(f->c.sqlite_path);
    assert_null(f->c.storage_engine);
}

/* Every string field of struct gw_config, of config |c|. */
#define JS_STRINGS(c)                                                                      \
    &c.port_file, &c.cert_file, &c.key_file, &c.client_ca_file, &c.ciphersuites,            \
        &c.ticket_key_file,                                                                \
        &c.storage_engine, &c.sqlite_path, &c.registry_path, &c.country_db, &c.asn_db,       \
        &c.js_servers, &c.js_tls_ca_file, &c.js_tls_cert_file, &c.js_tls_key_file,          \
        &c.js_user, &c.js_password, &c.js_token, &c.js_creds_file, &c.js_stream,            \
        &c.js_subject_prefix, &c.js_consumer, &c.js_registry_bucket, &c.js_activity_stream,      \
        &c.js_activity_prefix

/* Compares two configs: strings by value, everything else byte for byte
 * (both start from gw_config_defaults' zeroed struct, so padding agrees). */
static void assert_config_equal(const struct gw_config *a, const struct gw_config *b)
{
    struct gw_config x = *a, y = *b;
    char **xs[] = {JS_STRINGS(x)};
    char **ys[] = {JS_STRINGS(y)};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        if (*xs[i] == NULL || *ys[i] == NULL)
            assert_ptr_equal(*xs[i], *ys[i]);
        else
            assert_string_equal(*xs[i], *ys[i]);
        *xs[i] = *ys[i] = NULL;
    }
    assert_int_equal(x.n_rl_servers, y.n_rl_servers);
    if (x.n_rl_servers)
        assert_memory_equal(x.rl_servers, y.rl_servers, x.n_rl_servers * sizeof *x.rl_servers);
    x.rl_servers = y.rl_servers = NULL;
    assert_memory_equal(&x, &y, sizeof x);
}

/* gateway/panelgate.conf.sample loads, and its commented-out settings are
 * exactly the defaults: uncommenting every "#key = value" changes nothing. */
static void test_sample_file(void **state)
{
    struct fx *f = *state;
    char path[512], line[512], *body = NULL;
    const char *data = getenv("PANELGATE_TEST_DATA");
    struct gw_config want;
    size_t len = 0, n;
    FILE *fp;

    if (data != NULL && *data != '\0')
        snprintf(path, sizeof path, "%s/../../gateway/panelgate.conf.sample", data);
    else
        snprintf(path, sizeof path, "gateway/panelgate.conf.sample");
    fp = fopen(path, "r");
    if (fp == NULL) {
        print_message("sample not found at %s, skipped\n", path);
        skip();
    }
    assert_int_equal(gw_config_defaults(&want), 0);
    want.cert_file = strdup("/etc/panelgate/gateway.crt");
    want.key_file = strdup("/etc/panelgate/gateway.key");
    want.client_ca_file = strdup("/etc/panelgate/agent-ca.crt");

    assert_int_equal(gw_config_defaults(&f->c), 0);
    if (gw_config_load(&f->c, path, f->err, sizeof f->err) != 0)
        print_error("%s\n", f->err);
    assert_string_equal(f->err, "");
    assert_config_equal(&f->c, &want);

    int settings = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        const char *l = line;
        if (l[0] == '#' && l[1] >= 'a' && l[1] <= 'z') {
            l++;
            settings++;
        }
        n = strlen(l);
        body = realloc(body, len + n + 1);
        assert_non_null(body);
        memcpy(body + len, l, n + 1);
        len += n;
    }
    fclose(fp);
    /* every key (91) but the three TLS paths: a new key must join the sample */
    assert_int_equal(settings, 88);
    int rc = load(f, body);
    free(body);
    if (rc != 0)
        print_error("uncommented sample: %s\n", f->err);
    assert_int_equal(rc, 0);
    assert_config_equal(&f->c, &want);
    gw_config_cleanup(&want);
}

/* [jetstream]: the engine needs servers; URLs, subject prefix, stream and
 * consumer names and credential kinds are checked. */
static void test_jetstream_section(void **state)
{
    struct fx *f = *state;
    struct gw_config *c = &f->c;
    static const struct {
        const char *body, *reason;
    } bad[] = {
        {"[storage]\nstorage_engine = jetstream\n",
         "[jetstream] servers: required when [storage] storage_engine = jetstream"},
        {"[jetstream]\nservers = http://a:1\n", "entry 1 is not a nats:// or tls:// URL"},
        {"[jetstream]\nservers = nats://a:1, b:2\n", "entry 2 is not a nats:// or tls://"},
        {"[jetstream]\nservers = nats://u:p@a:1\n", "entry 1: only scheme://HOST:PORT"},
        {"[jetstream]\nservers = nats://a:1,\n", "servers: entry 2 is empty"},
        {"[jetstream]\nservers = ,nats://a:1\n", "servers: entry 1 is empty"},
        {"[jetstream]\nsubject_prefix = panelgate.*\n", "subject_prefix: not a NATS subject"},
        {"[jetstream]\nsubject_prefix = a.>\n", "subject_prefix: not a NATS subject"},
        {"[jetstream]\nsubject_prefix = a..b\n", "subject_prefix: not a NATS subject"},
        {"[jetstream]\nsubject_prefix = a.b.\n", "subject_prefix: not a NATS subject"},
        {"[jetstream]\nstream = A.B\n", "stream: not a stream name"},
        {"[jetstream]\nconsumer = a b\n", "consumer: not a consumer name"},
        {"[jetstream]\ntoken = t\ncreds_file = /x.creds\n", "one kind of credentials"},
        {"[jetstream]\nuser = u\npassword = p\ntoken = t\n", "one kind of credentials"},
        {"[storage]\nstorage_engine = jetstream\n[jetstream]\nservers = nats://a:1\n"
         "tls_cert_file = /c\n",
         "tls_cert_file and tls_key_file: set both or neither"},
        {"[storage]\nstorage_engine = jetstream\n[jetstream]\nservers = nats://a:1\n"
         "password = p\n",
         "password: set without user"},
        {"[jetstream]\nstream =\n", "[jetstream] stream: required"},
        {"[jetstream]\nregistry_bucket = a.b\n", "registry_bucket: not a bucket name"},
        {"[jetstream]\nregistry_bucket = a b\n", "registry_bucket: not a bucket name"},
        {"[jetstream]\nactivity_stream = A.B\n", "activity_stream: not a stream name"},
        {"[jetstream]\nactivity_stream = PANELGATE_FRAMES\n",
         "activity_stream: the same stream as stream"},
        {"[jetstream]\nactivity_subject_prefix = a.*\n",
         "activity_subject_prefix: not a NATS subject"},
        {"[jetstream]\nactivity_subject_prefix = panelgate\n",
         "activity_subject_prefix: overlaps subject_prefix"},
        {"[jetstream]\nactivity_subject_prefix = panelgate.frames.x\n",
         "activity_subject_prefix: overlaps subject_prefix"},
        {"[jetstream]\nregistry_bucket =\n", "[jetstream] registry_bucket: required"},
    };
    char body[512];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, TLS_OK "%s", bad[i].body);
        if (load(f, body) != GW_ECONFIG || strstr(f->err, bad[i].reason) == NULL)
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].reason, f->err);
    }

    assert_int_equal(load(f, TLS_OK "[storage]\nstorage_engine = jetstream\n"
                                    "[jetstream]\nservers = nats://10.0.0.1:4222 , "
                                    "tls://nats-2.example:4222\nreplicas = 5\n"
                                    "user = gw\npassword = secret\n"
                                    "subject_prefix = edge.frames-1\nstream = EDGE\n"),
                     0);
    assert_true(gw_config_is_jetstream(c));
    assert_string_equal(c->js_servers, "nats://10.0.0.1:4222 , tls://nats-2.example:4222");
    assert_int_equal(c->js_replicas, 5);
    assert_string_equal(c->js_subject_prefix, "edge.frames-1");
    assert_string_equal(c->js_stream, "EDGE");
    assert_string_equal(c->js_user, "gw");
}

/* gw_config_js_urls, the one parser of [jetstream] servers (the config
 * checks it, js.c connects with it): the URLs in order, NUL-terminated,
 * spaces trimmed; tls set by any tls:// URL; each refusal names its entry;
 * 64 URLs at most; an allocation failure is GW_ENOMEM. */
static void test_js_urls(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        unsigned n;
        bool tls;
        const char *first, *last, *reason;
    } cases[] = {
        {"nats://a:1", 1, false, "nats://a:1", "nats://a:1", NULL},
        {" nats://a:1 ,\ttls://b.example:4222\t", 2, true, "nats://a:1", "tls://b.example:4222",
         NULL},
        {"tls://[::1]:4222,nats://10.0.0.1:4222,nats://c:3", 3, true, "tls://[::1]:4222",
         "nats://c:3", NULL},
        {"", 0, false, NULL, NULL, "[jetstream] servers: not set"},
        {"http://a:1", 0, false, NULL, NULL, "entry 1 is not a nats:// or tls:// URL"},
        {"nats://", 0, false, NULL, NULL, "entry 1 is not a nats:// or tls:// URL"},
        {"nats://a:1, b:2", 0, false, NULL, NULL, "entry 2 is not a nats:// or tls://"},
        {"nats://a:1,nats://u:p@b:1", 0, false, NULL, NULL, "entry 2: only scheme://HOST:PORT"},
        {"nats://a:1/x", 0, false, NULL, NULL, "entry 1: only scheme://HOST:PORT"},
        {"nats://a :1", 0, false, NULL, NULL, "entry 1: only scheme://HOST:PORT"},
        {"nats://a:1,", 0, false, NULL, NULL, "servers: entry 2 is empty"},
        {",nats://a:1", 0, false, NULL, NULL, "servers: entry 1 is empty"},
        {"nats://a:1,  ,nats://b:1", 0, false, NULL, NULL, "servers: entry 2 is empty"},
    };
    struct gw_js_urls u;
    char err[256];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        int rv = gw_config_js_urls(cases[i].v, &u, err, sizeof err);
        if (cases[i].reason != NULL) {
            if (rv != GW_ECONFIG || strstr(err, cases[i].reason) == NULL)
                fail_msg("case %zu: want \"%s\", got %d \"%s\"", i, cases[i].reason, rv, err);
        } else {
            if (rv != 0)
                fail_msg("case %zu: %s", i, err);
            assert_int_equal(u.n, cases[i].n);
            assert_int_equal(u.tls, cases[i].tls);
            assert_string_equal(u.url[0], cases[i].first);
            assert_string_equal(u.url[u.n - 1], cases[i].last);
        }
        gw_config_js_urls_cleanup(&u);
    }
    assert_int_equal(gw_config_js_urls(NULL, &u, err, sizeof err), GW_ECONFIG);
    gw_config_js_urls_cleanup(&u);

    /* 64 URLs, then 65 */
    char list[64 * 16 + 32] = "";
    for (int i = 0; i < 64; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%snats://h%d:1", i ? "," : "",
                 i);
    assert_int_equal(gw_config_js_urls(list, &u, err, sizeof err), 0);
    assert_int_equal(u.n, 64);
    assert_string_equal(u.url[63], "nats://h63:1");
    gw_config_js_urls_cleanup(&u);
    strcat(list, ",nats://h64:1");
    assert_int_equal(gw_config_js_urls(list, &u, err, sizeof err), GW_ECONFIG);
    assert_non_null(strstr(err, "at most 64 URLs"));
    gw_config_js_urls_cleanup(&u);

    gw_alloc_fail_nth(1);
    assert_int_equal(gw_config_js_urls("nats://a:1", &u, err, sizeof err), GW_ENOMEM);
    gw_config_js_urls_cleanup(&u);
    gw_alloc_fail_nth(0);
}

/* [ratelimit], [ratelimit.KIND] and [ratelimit.server NAME]: values, merging
 * of repeated sections, names longer than inih's section buffer, and the
 * bytes_burst cross-check. */
static void test_ratelimit_sections(void **state)
{
    struct fx *f = *state;
    struct gw_config *c = &f->c;
    char body[1024], longname[121];

    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(body, sizeof body,
             TLS_OK "[ratelimit]\n"
                    "frames_per_s = 0\n"
                    "bytes_burst = 4m\n"
                    "abuse_threshold = 0\n"
                    "[ratelimit.nimble]\n"
                    "frames_per_s = 7\n"
                    "bytes_per_s = 1k\n"
                    "[ratelimit.server edge-1]   ; the busy one\n"
                    "frames_burst = 500\n"
                    "[ratelimit.wowza]\n"
                    "bytes_burst = 1g\n"
                    "[ratelimit.server %s]\n"
                    "frames_per_s = 1\n"
                    "  [ ratelimit.server edge-1 ]\n",
             longname);
    /* a section name is compared as written: "[ ratelimit.server" is not one */
    assert_int_equal(load(f, body), GW_ECONFIG);
    assert_non_null(strstr(f->err, "unknown section"));

    snprintf(body, sizeof body,
             TLS_OK "[ratelimit]\n"
                    "frames_per_s = 0\n"
                    "bytes_burst = 4m\n"
                    "abuse_threshold = 0\n"
                    "[ratelimit.nimble]\n"
                    "frames_per_s = 7\n"
                    "bytes_per_s = 1k\n"
                    "[ratelimit.server edge-1]   ; the busy one\n"
                    "frames_burst = 500\n"
                    "[ratelimit.wowza]\n"
                    "bytes_burst = 1g\n"
                    "[ratelimit.server %s]\n"
                    "frames_per_s = 1\n"
                    "[ratelimit.server\tedge-1 ]\n"
                    "bytes_per_s = 0\n",
             longname);
    assert_int_equal(load(f, body), 0);
    assert_string_equal(f->err, "");
    assert_int_equal(c->rl.frames_per_s, 0);
    assert_int_equal(c->rl.bytes_burst, 4u << 20);
    assert_int_equal(c->rl_abuse_threshold, 0);
    assert_int_equal(c->rl_kind[GW_RL_KIND_NIMBLE].set,
                     GW_RL_SET_FRAMES_PER_S | GW_RL_SET_BYTES_PER_S);
    assert_int_equal(c->rl_kind[GW_RL_KIND_NIMBLE].v.frames_per_s, 7);
    assert_int_equal(c->rl_kind[GW_RL_KIND_NIMBLE].v.bytes_per_s, 1024);
    assert_int_equal(c->rl_kind[GW_RL_KIND_WOWZA].set, GW_RL_SET_BYTES_BURST);
    assert_int_equal(c->rl_kind[GW_RL_KIND_WOWZA].v.bytes_burst, 1u << 30);
    assert_int_equal(c->n_rl_servers, 2);
    assert_string_equal(c->rl_servers[0].name, "edge-1");
    assert_int_equal(c->rl_servers[0].o.set, GW_RL_SET_FRAMES_BURST | GW_RL_SET_BYTES_PER_S);
    assert_int_equal(c->rl_servers[0].o.v.frames_burst, 500);
    assert_int_equal(c->rl_servers[0].o.v.bytes_per_s, 0);
    assert_string_equal(c->rl_servers[1].name, longname);
    assert_int_equal(c->rl_servers[1].o.set, GW_RL_SET_FRAMES_PER_S);
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);

    /* many servers: the list grows; cleanup frees it */
    char *big = malloc(64 * 1024);
    size_t n = (size_t)snprintf(big, 64 * 1024, TLS_OK);
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(big + n, 64 * 1024 - n, "[ratelimit.server s%d]\nframes_per_s = %d\n",
                              i, i);
    assert_int_equal(load(f, big), 0);
    free(big);
    assert_int_equal(c->n_rl_servers, 1000);
    assert_string_equal(c->rl_servers[999].name, "s999");
    assert_int_equal(c->rl_servers[999].o.v.frames_per_s, 999);

    /* every bytes_burst holds the largest body */
    assert_int_equal(load(f, TLS_OK "[ratelimit]\nbytes_burst = 1m\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[ratelimit] bytes_burst: 1048576 is smaller than [http2] "
                                   "max_body_bytes (4194304)"));
    assert_int_equal(
        load(f, TLS_OK "[http2]\nmax_body_bytes = 1m\n[ratelimit]\nbytes_burst = 1m\n"), 0);
    assert_int_equal(load(f, TLS_OK "[ratelimit.wowza]\nbytes_burst = 100k\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[ratelimit.wowza] bytes_burst: 102400 is smaller"));
    assert_int_equal(load(f, TLS_OK "[ratelimit.server z]\nbytes_burst = 1\n"), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[ratelimit.server z] bytes_burst: 1 is smaller"));
    /* ... a cross-check names the file, without a line */
    assert_int_equal(strncmp(f->err, f->path, strlen(f->path)), 0);
    assert_int_equal(strncmp(f->err + strlen(f->path), ": [", 3), 0);

    /* validate() checks overrides built in code too */
    assert_int_equal(load(f, TLS_OK), 0);
    c->rl_kind[GW_RL_KIND_NIMBLE].set = GW_RL_SET_FRAMES_BURST;
    c->rl_kind[GW_RL_KIND_NIMBLE].v.frames_burst = 0;
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), GW_ECONFIG);
    assert_non_null(strstr(f->err, "[ratelimit.nimble] frames_burst: 0 is out of range"));
}

/* ------------------------------------------------------------ reload */

/* assert_config_equal's comparison, as a predicate. */
static bool config_same(const struct gw_config *a, const struct gw_config *b)
{
    struct gw_config x = *a, y = *b;
    char **xs[] = {JS_STRINGS(x)};
    char **ys[] = {JS_STRINGS(y)};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        if (*xs[i] == NULL || *ys[i] == NULL ? *xs[i] != *ys[i] : strcmp(*xs[i], *ys[i]) != 0)
            return false;
        *xs[i] = *ys[i] = NULL;
    }
    if (x.n_rl_servers != y.n_rl_servers ||
        (x.n_rl_servers &&
         memcmp(x.rl_servers, y.rl_servers, x.n_rl_servers * sizeof *x.rl_servers) != 0))
        return false;
    x.rl_servers = y.rl_servers = NULL;
    return memcmp(&x, &y, sizeof x) == 0;
}

/* Every key of the table, with two values a reload may see it change
 * between, and its group: 0 = a reload applies it, else the GW_RELOAD_*
 * group that keeps the running value.  NULL values: the file accepts one
 * value only, the test changes the loaded string itself. */
struct reload_case {
    const char *section, *name, *running, *loaded;
    unsigned group;
};

static const struct reload_case reload_cases[] = {
    {"server", "listen", "127.0.0.1:1", "127.0.0.1:1, [::1]:2", GW_RELOAD_LISTEN},
    {"server", "max_connections", "100", "200", 0},
    {"server", "max_handshakes", "10", "20", 0},
    {"server", "handshake_timeout_ms", "100", "200", 0},
    {"server", "idle_timeout_ms", "100", "200", 0},
    {"server", "request_timeout_ms", "100", "200", 0},
    {"server", "shutdown_timeout_ms", "100", "200", 0},
    {"server", "port_file", "/run/pg/a", "/run/pg/b", GW_RELOAD_LISTEN},
    {"tls", "cert_file", "/etc/pg/a.crt", "/etc/pg/b.crt", 0},
    {"tls", "key_file", "/etc/pg/a.key", "/etc/pg/b.key", 0},
    {"tls", "client_ca_file", "/etc/pg/a-ca.crt", "/etc/pg/b-ca.crt", 0},
    {"tls", "session_tickets", "on", "off", GW_RELOAD_STORAGE},
    {"tls", "ticket_lifetime_s", "100", "200", GW_RELOAD_STORAGE},
    {"tls", "ticket_key_file", "/var/lib/pg/a.key", "/var/lib/pg/b.key", GW_RELOAD_STORAGE},
    {"tls", "ticket_key_check_ms", "1000", "5000", 0},
    {"tls", "ciphersuites", "", "TLS-AES-128-GCM-SHA256", 0},
    {"http2", "max_concurrent_streams", "10", "20", 0},
    {"http2", "max_header_list_size", "2k", "4k", 0},
    {"http2", "initial_window_size", "65535", "128k", 0},
    {"http2", "stream_reset_burst", "10", "20", 0},
    {"http2", "stream_reset_rate", "10", "20", 0},
    {"http2", "max_continuations", "1", "2", 0},
    {"http2", "max_body_bytes", "1m", "2m", 0},
    {"http2", "max_conn_buffer_bytes", "32m", "64m", 0},
    {"http2", "max_total_buffer_bytes", "64m", "128m", 0},
    {"frame", "max_frame_bytes", "8m", "16m", 0},
    {"frame", "max_arena_bytes", "64m", "128m", 0},
    {"frame", "max_depth", "10", "20", 0},
    {"frame", "max_name_len", "100", "200", 0},
    {"frame", "max_str_len", "100", "200", 0},
    {"frame", "max_server_ips", "1", "2", 0},
    {"frame", "max_vhosts", "1", "2", 0},
    {"frame", "max_apps", "1", "2", 0},
    {"frame", "max_instances", "1", "2", 0},
    {"frame", "max_streams", "1", "2", 0},
    {"frame", "max_conns", "1", "2", 0},
    {"frame", "max_config_nodes", "1", "2", 0},
    {"frame", "max_unknown_keys", "1", "2", 0},
    {"storage", "storage_engine", NULL, NULL, GW_RELOAD_STORAGE},
    {"storage", "sqlite_path", "/var/lib/pg/a.db", "/var/lib/pg/b.db", GW_RELOAD_STORAGE},
    {"storage", "sqlite_synchronous", "normal", "full", GW_RELOAD_STORAGE},
    {"storage", "queue_max_frames", "1000", "2000", GW_RELOAD_STORAGE},
    {"storage", "queue_max_bytes", "32m", "128m", GW_RELOAD_STORAGE},
    {"storage", "batch_max_frames", "100", "200", GW_RELOAD_STORAGE},
    {"storage", "commit_delay_ms", "0", "20", GW_RELOAD_STORAGE},
    {"storage", "busy_timeout_ms", "100", "200", GW_RELOAD_STORAGE},
    {"storage", "retry_after_s", "10", "20", 0},
    {"storage", "retention_days", "1", "2", 0},
    {"storage", "retention_interval_s", "10", "20", 0},
    {"storage", "file_check_interval_ms", "0", "500", GW_RELOAD_STORAGE},
    {"jetstream", "servers", "nats://127.0.0.1:4222", "nats://a:1, tls://b:2", GW_RELOAD_STORAGE},
    {"jetstream", "tls_ca_file", "", "/etc/pg/nats-ca.crt", GW_RELOAD_STORAGE},
    {"jetstream", "tls_cert_file", "/etc/pg/a.crt", "/etc/pg/b.crt", GW_RELOAD_STORAGE},
    {"jetstream", "tls_key_file", "/etc/pg/a.key", "/etc/pg/b.key", GW_RELOAD_STORAGE},
    {"jetstream", "user", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "password", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "token", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "creds_file", "/etc/pg/a.creds", "/etc/pg/b.creds", GW_RELOAD_STORAGE},
    {"jetstream", "stream", "A", "B", GW_RELOAD_STORAGE},
    {"jetstream", "subject_prefix", "a.b", "c", GW_RELOAD_STORAGE},
    {"jetstream", "consumer", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "registry_bucket", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "activity_stream", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "activity_subject_prefix", "a", "b", GW_RELOAD_STORAGE},
    {"jetstream", "replicas", "1", "5", GW_RELOAD_STORAGE},
    {"jetstream", "duplicate_window_s", "10", "20", GW_RELOAD_STORAGE},
    {"jetstream", "max_in_flight", "10", "20", GW_RELOAD_STORAGE},
    {"jetstream", "publish_timeout_ms", "100", "200", GW_RELOAD_STORAGE},
    {"jetstream", "connect_timeout_ms", "100", "200", GW_RELOAD_STORAGE},
    {"jetstream", "ack_wait_ms", "1000", "2000", GW_RELOAD_STORAGE},
    {"geo", "country_db", "/geo/a.mmdb", "/geo/b.mmdb", 0},
    {"geo", "asn_db", "", "/geo/asn.mmdb", 0},
    /* the regression: unset (= sqlite_path) while running, set in the file */
    {"registry", "registry_path", "", "/var/lib/pg/registry.db", GW_RELOAD_STORAGE},
    {"registry", "poll_interval_ms", "0", "100", 0},
    {"ratelimit", "frames_per_s", "1", "2", 0},
    {"ratelimit", "frames_burst", "1", "2", 0},
    {"ratelimit", "bytes_per_s", "1k", "2k", 0},
    {"ratelimit", "bytes_burst", "32m", "64m", 0},
    {"ratelimit", "global_frames_per_s", "1", "2", 0},
    {"ratelimit", "global_frames_burst", "1", "2", 0},
    {"ratelimit", "handshakes_per_s_per_addr", "1", "2", 0},
    {"ratelimit", "handshakes_burst_per_addr", "1", "2", 0},
    {"ratelimit", "addr_table_size", "8", "16", 0},
    {"ratelimit", "server_table_size", "8", "16", 0},
    {"ratelimit", "abuse_threshold", "1", "2", 0},
    {"ratelimit", "abuse_window_s", "1", "2", 0},
    {"ratelimit", "ban_s", "1", "2", 0},
    {"admin", "listen", "127.0.0.1:9", "", GW_RELOAD_LISTEN},
    {"log", "log_level", "warn", "error", 0},
    {"log", "refusal_log_per_s", "1", "2", 0},
    {"log", "activity_interval_ms", "100", "200", 0},
};

/* Loads a file that sets the TLS paths and |k| = |v| (the default when v is
 * NULL) over fresh defaults into |c|. */
static void load_case(struct fx *f, struct gw_config *c, const struct reload_case *k,
                      const char *v)
{
    static const char *const tls[] = {"cert_file", "key_file", "client_ca_file"};
    char body[512];
    size_t n = (size_t)snprintf(body, sizeof body, "[tls]\n");

    for (size_t i = 0; i < 3; i++)
        if (strcmp(k->section, "tls") != 0 || strcmp(k->name, tls[i]) != 0)
            n += (size_t)snprintf(body + n, sizeof body - n, "%s = /etc/pg/%s\n", tls[i], tls[i]);
    if (v != NULL)
        snprintf(body + n, sizeof body - n, "[%s]\n%s = %s\n", k->section, k->name, v);
    assert_int_equal(gw_config_defaults(c), 0);
    if (gw_config_load(c, put(f, body), f->err, sizeof f->err) != 0)
        print_error("[%s] %s: %s\n", k->section, k->name, f->err);
    assert_string_equal(f->err, "");
}

/* Each key on its own: a reload that changes it keeps the running value
 * when the key is restart only (and names it), and takes the new one
 * otherwise. */
static void test_reload_each_key(void **state)
{
    struct fx *f = *state;
    const size_t n_cases = sizeof reload_cases / sizeof reload_cases[0];
    struct gw_reload_kept kept;

    /* every key (91, as in test_sample_file): a new key must join the list */
    assert_int_equal(n_cases, 91);
    for (size_t i = 0; i < n_cases; i++) {
        const struct reload_case *k = &reload_cases[i];
        struct gw_config running, loaded, want;
        char name[96];

        load_case(f, &running, k, k->running);
        load_case(f, &loaded, k, k->loaded);
        load_case(f, &want, k, k->loaded);
        if (k->running == NULL) {
            free(loaded.storage_engine);
            free(want.storage_engine);
            loaded.storage_engine = strdup("other");
            want.storage_engine = strdup("other");
            assert_true(loaded.storage_engine && want.storage_engine);
        }
        /* the two files do differ in this key */
        if (config_same(&running, &loaded))
            fail_msg("[%s] %s: the two values load the same", k->section, k->name);

        int rc = gw_config_keep_restart_only(&loaded, &running, &kept);
        if (rc != (int)k->group)
            fail_msg("[%s] %s: groups %d, want %u", k->section, k->name, rc, k->group);
        snprintf(name, sizeof name, "[%s] %s", k->section, k->name);
        assert_string_equal(kept.listen, k->group == GW_RELOAD_LISTEN ? name : "");
        assert_string_equal(kept.storage, k->group == GW_RELOAD_STORAGE ? name : "");
        if (!config_same(&loaded, k->group ? &running : &want))
            fail_msg("[%s] %s: %s after the reload", k->section, k->name,
                     k->group ? "not the running value" : "not the new value");
        /* a kept string is a copy: it outlives the running config */
        gw_config_cleanup(&running);
        load_case(f, &running, k, k->running);
        if (k->group && !config_same(&loaded, &running))
            fail_msg("[%s] %s: the kept value went with the running config", k->section,
                     k->name);
        gw_config_cleanup(&running);
        gw_config_cleanup(&want);
        gw_config_cleanup(&loaded);
    }
}

/* A reload that changes several keys at once, restart-only and live ones;
 * then one that changes nothing. */
static void test_reload_mixed(void **state)
{
    struct fx *f = *state;
    struct gw_config running;
    struct gw_config *c = &f->c;
    struct gw_reload_kept kept;
    static const char old_body[] =
        TLS_OK "[server]\nlisten = 127.0.0.1:8443\nport_file = /run/pg/ports\n"
               "[storage]\nsqlite_path = /var/lib/pg/pg.db\n"
               "[registry]\nregistry_path = /var/lib/pg/registry.db\n"
               "[admin]\nlisten = 127.0.0.1:8445\n";
    static const char new_body[] =
        TLS_OK "session_tickets = off\n"
               "[server]\nlisten = [::1]:9443\nport_file = /run/pg/ports\nmax_connections = 7\n"
               "[storage]\nsqlite_path = /var/lib/pg/other.db\nqueue_max_frames = 1000\n"
               "retry_after_s = 9\n"
               "[registry]\npoll_interval_ms = 0\n"
               "[ratelimit]\nframes_per_s = 3\n[ratelimit.server edge-1]\nframes_burst = 5\n"
               "[admin]\nlisten = [::1]:8445\n"
               "[log]\nlog_level = error\n";

    assert_int_equal(gw_config_defaults(&running), 0);
    assert_int_equal(gw_config_load(&running, put(f, old_body), f->err, sizeof f->err), 0);
    assert_int_equal(load(f, new_body), 0);

    assert_int_equal(gw_config_keep_restart_only(c, &running, &kept),
                     GW_RELOAD_LISTEN | GW_RELOAD_STORAGE);
    assert_string_equal(kept.listen, "[server] listen, [admin] listen");
    assert_string_equal(kept.storage, "[tls] session_tickets, [storage] sqlite_path, "
                                      "[storage] queue_max_frames, [registry] registry_path");
    /* restart only: the running values */
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 8443);
    assert_true(c->admin_on);
    assert_string_equal(c->admin_listen.host, "127.0.0.1");
    assert_true(c->session_tickets);
    assert_string_equal(c->sqlite_path, "/var/lib/pg/pg.db");
    assert_int_equal(c->queue_max_frames, 4096);
    assert_string_equal(c->registry_path, "/var/lib/pg/registry.db");
    assert_ptr_not_equal(c->registry_path, running.registry_path);
    assert_string_equal(c->port_file, "/run/pg/ports");
    /* live: the new values */
    assert_int_equal(c->max_connections, 7);
    assert_int_equal(c->retry_after_s, 9);
    assert_int_equal(c->registry_poll_interval_ms, 0);
    assert_int_equal(c->rl.frames_per_s, 3);
    assert_int_equal(c->n_rl_servers, 1);
    assert_string_equal(c->rl_servers[0].name, "edge-1");
    assert_int_equal(c->log_level, GW_LOG_ERROR);
    assert_int_equal(gw_config_validate(c, f->err, sizeof f->err), 0);

    /* the same reload again: nothing left to keep */
    assert_int_equal(gw_config_keep_restart_only(c, &running, &kept), 0);
    assert_string_equal(kept.listen, "");
    assert_string_equal(kept.storage, "");
    assert_int_equal(gw_config_keep_restart_only(c, &running, NULL), 0);

    /* the same file: nothing changed */
    assert_int_equal(load(f, old_body), 0);
    assert_int_equal(gw_config_keep_restart_only(c, &running, &kept), 0);
    assert_true(config_same(c, &running));

    /* registry_path set while running, unset in the file: kept */
    assert_int_equal(load(f, TLS_OK "[server]\nlisten = 127.0.0.1:8443\nport_file = /run/pg/ports\n"
                                    "[storage]\nsqlite_path = /var/lib/pg/pg.db\n"
                                    "[admin]\nlisten = 127.0.0.1:8445\n"),
                     0);
    assert_null(c->registry_path);
    assert_int_equal(gw_config_keep_restart_only(c, &running, &kept), GW_RELOAD_STORAGE);
    assert_string_equal(kept.storage, "[registry] registry_path");
    assert_string_equal(c->registry_path, "/var/lib/pg/registry.db");
    gw_config_cleanup(&running);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(gw_log_level_parse("debug"), GW_LOG_DEBUG);
    assert_int_equal(gw_log_level_parse("info"), GW_LOG_INFO);
    assert_int_equal(gw_log_level_parse("WARN"), GW_LOG_WARN);
    assert_int_equal(gw_log_level_parse("error"), GW_LOG_ERROR);
    assert_int_equal(gw_log_level_parse("warning"), GW_EINVAL);
    assert_int_equal(gw_log_level_parse(""), GW_EINVAL);
    assert_int_equal(gw_log_level_parse(NULL), GW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_and_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_body_follows_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_handshakes_follows_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_replaces_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jetstream_section, setup, teardown),
        cmocka_unit_test(test_js_urls),
        cmocka_unit_test_setup_teardown(test_ratelimit_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_each_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_mixed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
