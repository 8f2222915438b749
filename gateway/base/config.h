/*
 * config.h - the gateway's settings: defaults, the INI file, validation.
 *
 * Pure: no sockets, no globals.  A reload parses into a fresh struct and
 * swaps it in only when the whole file is valid.  Every setting is listed,
 * with its default and range, in docs/OPERATIONS.md and
 * gateway/panelgate.conf.sample.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <panelproto/frame.h>

#include "err.h"

#define GW_MAX_LISTEN 8

enum gw_log_level {
    GW_LOG_DEBUG = 0,
    GW_LOG_INFO = 1,
    GW_LOG_WARN = 2,
    GW_LOG_ERROR = 3,
};

struct gw_listen {
    char host[64]; /* numeric IPv4 or IPv6 address, no brackets */
    uint16_t port;  /* 0 = ephemeral (tests) */
};

enum gw_sqlite_sync {
    GW_SYNC_NORMAL = 1,
    GW_SYNC_FULL = 2,
};

/* [ratelimit]: one registered server's limits, shared by all of its
 * connections.  A rate of 0 means unlimited. */
struct gw_rl_limits {
    uint32_t frames_per_s; /* 5 */
    uint32_t frames_burst; /* 50 */
    size_t bytes_per_s;    /* 8 MiB */
    size_t bytes_burst;    /* 32 MiB; at least http2.max_body_bytes */
};

/* Which keys of an override section are set (the rest fall through). */
#define GW_RL_SET_FRAMES_PER_S 1u
#define GW_RL_SET_FRAMES_BURST 2u
#define GW_RL_SET_BYTES_PER_S 4u
#define GW_RL_SET_BYTES_BURST 8u

struct gw_rl_override {
    unsigned set; /* GW_RL_SET_* */
    struct gw_rl_limits v;
};

/* [ratelimit.server NAME] */
struct gw_rl_server_override {
    char name[256];
    struct gw_rl_override o;
};

/* [ratelimit.nimble], [ratelimit.wowza]: gw_rl_kind_names[k] */
enum { GW_RL_KIND_NIMBLE, GW_RL_KIND_WOWZA, GW_RL_N_KINDS };
extern const char *const gw_rl_kind_names[GW_RL_N_KINDS];

#define GW_RL_MAX_SERVER_OVERRIDES 4096

/* The handshake budget unless [server] max_handshakes is set: a quarter of
 * max_connections, at least 1 (docs/OPERATIONS.md says why). */
#define GW_DEFAULT_MAX_HANDSHAKES(max_conns) ((max_conns) / 4 > 0 ? (max_conns) / 4 : 1)

struct gw_config {
    /* [server] */
    struct gw_listen listen[GW_MAX_LISTEN]; /* listen = 0.0.0.0:8443, [::]:8443 */
    unsigned n_listen;
    uint32_t max_connections;      /* 10000 */
    uint32_t max_handshakes;       /* = GW_DEFAULT_MAX_HANDSHAKES(max_connections)
                                      unless set: connections not yet
                                      authenticated (handshake, or refused
                                      and lingering) */
    uint32_t handshake_timeout_ms; /* 10000 */
    uint32_t idle_timeout_ms;      /* 120000 */
    uint32_t request_timeout_ms;   /* 30000 */
    uint32_t shutdown_timeout_ms;  /* 30000: SIGTERM drain budget */
    char *port_file;               /* NULL; write "host port\n" per listener
                                      once bound (tests use port 0) */

    /* [tls] */
    char *cert_file;             /* required: gateway certificate chain (PEM) */
    char *key_file;              /* required: its private key (PEM) */
    char *client_ca_file;        /* required: CA(s) that sign agent certs */
    bool session_tickets;        /* true */
    uint32_t ticket_lifetime_s;  /* 86400; ticket keys rotate each lifetime */
    char *ticket_key_file;       /* NULL = ticket keys in memory only; else
                                    the shared key file (net/ticket.h) */
    uint32_t ticket_key_check_ms; /* 1000: how often the key file is looked
                                     at for changes and rotation */
    char *ciphersuites;          /* NULL = built-in order (ChaCha20 first);
                                    else comma-separated IANA names */

    /* [http2] */
    uint32_t max_concurrent_streams; /* 100 */
    uint32_t max_header_list_size;   /* 16384 bytes */
    uint32_t initial_window_size;    /* 1048576 bytes */
    uint32_t stream_reset_burst;     /* 1000 (rapid-reset protection) */
    uint32_t stream_reset_rate;      /* 33 per second */
    uint32_t max_continuations;      /* 8 */
    size_t max_body_bytes;           /* = frame.max_frame_bytes (4 MiB) */
    size_t max_conn_buffer_bytes;    /* 16 MiB: request bodies buffered on
                                        one connection at once */
    size_t max_total_buffer_bytes;   /* 256 MiB: request bodies buffered on
                                        all connections together */

    /* [frame] — the decoder limits, keys named as in struct pa_frame_limits */
    struct pa_frame_limits frame;

    /* [storage] */
    char *storage_engine;          /* "sqlite" */
    char *sqlite_path;             /* "panelgate.db" */
    enum gw_sqlite_sync sqlite_synchronous; /* full */
    uint32_t queue_max_frames;     /* 4096 */
    size_t queue_max_bytes;        /* 64 MiB */
    uint32_t batch_max_frames;     /* 512: frames per group commit */
    uint32_t commit_delay_ms;      /* 5: how long the writer waits for a
                                      batch to fill before it commits
                                      fewer (sink.c); 0 = at once */
    /* The SQLite writer's page cache (2000 KiB), mmap_size (0) and
     * wal_autocheckpoint (1000 pages): SQLite's defaults.  Not file keys:
     * bench/sink_bench.c varies them (--cache-kib, --mmap-mib,
     * --wal-autocheckpoint); none paid off there (docs/STORAGE.md). */
    size_t sqlite_cache_size;
    size_t sqlite_mmap_size;
    uint32_t sqlite_wal_autocheckpoint;
    uint32_t busy_timeout_ms;      /* 5000 */
    uint32_t retry_after_s;        /* 5: retry-after on 503 */
    uint32_t retention_days;       /* 0 = keep frames forever */
    uint32_t retention_interval_s; /* 3600: how often retention runs */
    uint32_t file_check_interval_ms; /* 1000: how often an idle writer checks
                                        that the database, -wal and -shm
                                        files are still the ones it opened
                                        (also before every commit); 0 =
                                        only before commits */
    bool store_samples;            /* true: write the derived tables
                                      (docs/STORAGE.md).  Not a file key:
                                      bench/sink_bench.c turns it off to
                                      measure the frames table alone */
    bool no_registry_check;        /* false: the SQLite backend stores an
                                      item only while its server is
                                      registered (and active, for a frame),
                                      read in the batch's transaction.  Not
                                      a file key: panelgate-store sets it,
                                      its database has no registry */

    /* [jetstream] — the JetStream engine (storage_engine = jetstream;
     * docs/STORAGE.md has the message contract).  Strings are heap copies
     * or NULL; every key is restart only. */
    char *js_servers;           /* required with the engine: comma-separated
                                   nats:// or tls:// URLs */
    char *js_tls_ca_file;       /* NULL = the system's CAs (tls:// only) */
    char *js_tls_cert_file;     /* client certificate (with js_tls_key_file) */
    char *js_tls_key_file;
    char *js_user;              /* credentials: one kind at most of */
    char *js_password;          /*   user/password, */
    char *js_token;             /*   token, */
    char *js_creds_file;        /*   a .creds file (JWT + nkey seed) */
    char *js_stream;            /* "PANELGATE_FRAMES" */
    char *js_subject_prefix;    /* "panelgate.frames": subjects PREFIX.<id> */
    char *js_consumer;          /* "panelgate-store": the store's durable */
    char *js_registry_bucket;   /* "panelgate_registry": the registry's KV bucket */
    char *js_activity_stream;   /* "PANELGATE_ACTIVITY": the activity log */
    char *js_activity_prefix;   /* "panelgate.activity": subjects PREFIX.<id> */
    uint32_t js_replicas;       /* 3 (1..5) */
    uint32_t js_duplicate_window_s; /* 120 */
    uint32_t js_max_in_flight;  /* 1024 publishes awaiting their ack */
    uint32_t js_publish_timeout_ms; /* 5000 */
    uint32_t js_connect_timeout_ms; /* 5000 */
    uint32_t js_ack_wait_ms;    /* 30000: the store consumer's ack wait */

    /* [geo] — MaxMind-format databases for the privacy reduction; when
     * unset, viewer connections are reduced to plain counts */
    char *country_db; /* e.g. GeoLite2-Country.mmdb; NULL = none */
    char *asn_db;     /* e.g. GeoLite2-ASN.mmdb; NULL = none */

    /* [registry] */
    char *registry_path; /* NULL = sqlite_path (one file holds both) */
    uint32_t registry_poll_interval_ms; /* 2000; 0 = only SIGHUP reloads it */

    /* [ratelimit] (ratelimit.h) */
    struct gw_rl_limits rl;            /* per server, unless overridden */
    uint32_t rl_global_frames_per_s;   /* 20000; 0 = unlimited */
    uint32_t rl_global_frames_burst;   /* 40000 */
    uint32_t rl_handshakes_per_s;      /* 10 new connections per source
                                          address (IPv6: per /64); 0 = off */
    uint32_t rl_handshakes_burst;      /* 40 */
    uint32_t rl_addr_table_size;       /* 8192 source addresses tracked */
    uint32_t rl_server_table_size;     /* 16384 servers tracked */
    uint32_t rl_abuse_threshold;       /* 100 429s within abuse_window_s
                                          start a ban; 0 = never */
    uint32_t rl_abuse_window_s;        /* 10 */
    uint32_t rl_ban_s;                 /* 60 */
    /* [ratelimit.nimble], [ratelimit.wowza], [ratelimit.server NAME] */
    struct gw_rl_override rl_kind[GW_RL_N_KINDS];
    struct gw_rl_server_override *rl_servers; /* heap, n_rl_servers */
    uint32_t n_rl_servers;

    /* [admin] */
    struct gw_listen admin_listen; /* 127.0.0.1:8445 */
    bool admin_on;                 /* false when "listen =" is empty */

    /* [log] */
    enum gw_log_level log_level;         /* info */
    uint32_t refusal_log_per_s;          /* 10: refused-handshake log lines
                                            per second, the rest counted */
    uint32_t activity_interval_ms;       /* 60000: refused handshakes are
                                            written to the activity log,
                                            aggregated, this often */
};

/* Fills every default.  Strings are heap copies (or NULL).  Returns 0 or
 * GW_ENOMEM. */
int gw_config_defaults(struct gw_config *c);

/* Reads |path| over the defaults already in |c|.  On error returns
 * GW_ECONFIG (GW_EIO: the file cannot be read; GW_ENOMEM) and writes "FILE:LINE: [section] key: reason" (or "FILE: reason" for file-wide
 * problems such as a missing required key) into err; |c| is then
 * half-filled and must only be cleaned up. */
int gw_config_load(struct gw_config *c, const char *path, char *err, size_t errlen);

/* Cross-field checks after loading (required keys present, ranges).
 * Returns 0 or GW_ECONFIG with the reason in err. */
int gw_config_validate(const struct gw_config *c, char *err, size_t errlen);

void gw_config_cleanup(struct gw_config *c);

/* The keys a reload cannot change, in two groups (docs/OPERATIONS.md
 * section 3): */
#define GW_RELOAD_LISTEN 1u  /* [server] listen, port_file; [admin] listen */
#define GW_RELOAD_STORAGE 2u /* [storage] storage_engine, sqlite_path,
                                sqlite_synchronous, queue_max_frames,
                                queue_max_bytes, batch_max_frames,
                                commit_delay_ms, busy_timeout_ms; [tls] session_tickets,
                                ticket_lifetime_s, ticket_key_file;
                                [registry] registry_path;
                                every [jetstream] key */

#define GW_RELOAD_KEYS_LEN 384

/* The keys of each group whose value a reload kept: "[server] listen,
 * [admin] listen", "" when none (truncated past GW_RELOAD_KEYS_LEN). */
struct gw_reload_kept {
    char listen[GW_RELOAD_KEYS_LEN];
    char storage[GW_RELOAD_KEYS_LEN];
};

/* For a reload: every key of |nc| (just loaded) that changes only at
 * restart and differs from the running |oc| gets |oc|'s value back
 * (strings copied).  Fills |kept| when not NULL.  Returns the GW_RELOAD_*
 * groups that differed (0 = none), or GW_ENOMEM: |nc| is then
 * half-restored and must only be cleaned up. */
int gw_config_keep_restart_only(struct gw_config *nc, const struct gw_config *oc,
                                struct gw_reload_kept *kept);

/* [jetstream] servers, parsed: comma-separated nats://HOST:PORT or
 * tls://HOST:PORT URLs, spaces around each ignored.  A URL may not carry
 * credentials (user:password@: they have keys of their own and stay out
 * of the logs), a path or a space; no entry may be empty. */
#define GW_JS_MAX_URLS 64
struct gw_js_urls {
    char *buf;                         /* owns the strings url[] points to */
    const char *url[GW_JS_MAX_URLS];   /* "nats://HOST:PORT", in the given order */
    unsigned n;                        /* 1..GW_JS_MAX_URLS */
    bool tls;                          /* one of them at least is tls:// */
};

/* Parses |v| into |out| (the caller's storage).  Returns 0, GW_ECONFIG
 * with the reason in err ("[jetstream] servers: entry 2 is not a nats://
 * or tls:// URL"), or GW_ENOMEM.  |out| must be cleaned up after either. */
int gw_config_js_urls(const char *v, struct gw_js_urls *out, char *err, size_t errlen);
void gw_config_js_urls_cleanup(struct gw_js_urls *u);

/* The engines [storage] storage_engine names. */
#define GW_ENGINE_SQLITE "sqlite"
#define GW_ENGINE_JETSTREAM "jetstream"

/* True when |c| stores frames in JetStream. */
bool gw_config_is_jetstream(const struct gw_config *c);

/* "debug" | "info" | "warn" | "error" -> level; GW_EINVAL when unknown. */
int gw_log_level_parse(const char *s);

#endif /* GW_CONFIG_H */
