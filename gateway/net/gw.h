/*
 * gw.h - the gateway's process state and per-connection state.
 *
 * One event loop thread owns everything here.  struct gw_app is the process
 * (config, TLS, registry snapshot, sink, listeners, live connections);
 * struct gw_conn is one agent connection: its socket events, TLS context,
 * nghttp2 session, streams and identity.  conn.c owns the socket and TLS
 * side, h2.c the HTTP/2 side.
 */
#ifndef GW_GW_H
#define GW_GW_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <mbedtls/ssl.h>
#include <nghttp2/nghttp2.h>

#include <sqlite3.h>

#include "activity.h"
#include "clock.h"
#include <panelproto/arena.h>
#include "config.h"
#include "err.h"
#include "hello.h"
#include "log.h"
#include "registry.h"
#include "stats.h"

struct gw_tls_global;
struct gw_tls;
struct gw_sink;
struct gw_sink_item;
struct gw_geo;
struct gw_limiter;
struct gw_admin;
struct gw_regkv_watch;

struct gw_app {
    struct event_base *base;
    struct gw_config *cfg;
    char *config_path;
    struct gw_tls_global *tls_global;
    struct gw_tls *tls;       /* for new connections */
    struct gw_registry *reg;  /* current snapshot */
    struct gw_geo *geo;       /* [geo] databases (privacy.h); reopened at reload */
    struct gw_sink *sink;
    int64_t sink_probe_ms;    /* last request let through to a failing sink
                                 (monotonic) */
    struct gw_limiter *limiter; /* rate limiting (limiter.h); NULL = none */
    struct evconnlistener *listeners[GW_MAX_LISTEN];
    unsigned n_listeners;
    struct gw_conn *conns;    /* all live connections */
    uint32_t n_conns;
    /* the connections not authenticated yet (in the handshake, or refused
     * and lingering), oldest first: a full budget (max_handshakes,
     * max_connections) sheds the oldest of them for a new connection */
    struct gw_conn *unauth_oldest, *unauth_newest;
    uint32_t n_unauth;
    int64_t shed_log_ms;      /* monotonic: the last connections_shed line */
    uint64_t shed_unlogged;   /* sheds since that line */
    /* freed memory goes back to the system after a burst of closes
     * (conn.c gw_conn_on_trim) */
    uint32_t conns_peak;      /* most connections open since the last trim */
    struct event *trim_timer;
    uint64_t next_conn_id;
    bool draining;
    struct event *drain_timer;
    struct gw_stats stats;
    size_t body_bytes;        /* memory allocated for request bodies, all
                                 connections (max_total_buffer_bytes) */
    /* refused-handshake log limiter: tokens refilled each second */
    double refusal_tokens;
    int64_t refusal_last_ms;  /* monotonic */
    uint64_t refusal_suppressed;
    /* refused handshakes, aggregated for the activity log */
    struct gw_refusals refusals;
    struct event *activity_timer;
    /* the JetStream engine: the registry bucket's watcher (regkv_watch.h),
     * which hands over each new snapshot; NULL with SQLite */
    struct gw_regkv_watch *reg_watch;
    /* SQLite: registry change detection by meta.registry_generation */
    sqlite3 *reg_db;
    int64_t reg_generation;
    int64_t reg_data_version;      /* PRAGMA data_version at the last read */
    bool reg_db_released;          /* reg_db closed for a storage file
                                      replaced (reopened when it ends) */
    int64_t pin_sweep_ms;          /* monotonic: the last pin-expiry sweep */
    struct event *poll_timer;
    struct event *retention_timer; /* [storage] retention_days */
    struct event *ticket_timer;    /* [tls] ticket_key_file: changes, rotation */
    bool ticket_key_failing;       /* the last look at the key file failed */
    /* out of file descriptors (main.c on_accept_error) */
    int spare_fd;                  /* /dev/null, given up to shed one connection */
    struct event *accept_timer;    /* resumes the paused listeners */
    bool accept_paused;
    int64_t accept_log_ms;         /* monotonic: the last accept_failed line */
    uint64_t accept_suppressed;
    struct gw_admin *admin;        /* [admin] listener (admin.h); NULL = off */
    int64_t started_ms;
    /* the storage alarm (main.c): the current outage, while it lasts */
    int64_t outage_since_ms;       /* wall clock, for the activity row */
    int64_t outage_mono0;          /* monotonic, for its duration */
    uint64_t outage_unavailable0;  /* stats.frames_unavailable at its start */
    uint64_t outage_batches0;      /* sink batch_failures at its start */
    char outage_reason[160];
};

/* main.c: one activity-log row by actor "gateway" (through the sink). */
int gw_app_activity(void *app, const char *action, int64_t server_id, const char *details,
                    int64_t at_ms);

enum gw_conn_state {
    GW_CONN_HANDSHAKE,
    GW_CONN_H2,
    GW_CONN_CLOSING, /* flushing what is left, then close */
    GW_CONN_LINGER,  /* refused: our side shut, draining the peer's bytes so
                        a TCP reset cannot overtake the alert */
};

struct gw_stream;


struct gw_conn {
    struct gw_app *app;
    struct gw_conn *prev, *next;
    struct gw_conn *unauth_prev, *unauth_next; /* app's unauthenticated list */
    bool unauth;        /* in that list */
    uint64_t id;
    int fd;
    enum gw_conn_state state;
    struct event *ev_read;
    struct event *ev_write;
    struct event *ev_flush; /* gw_conn_flush_soon: no fd, made active */
    struct event *timer; /* handshake timeout, then idle timeout */
    bool write_armed;

    struct gw_tls *tls; /* the configuration this connection started with */
    mbedtls_ssl_context ssl; /* set up at the peer's first byte */
    bool ssl_ready;
    bool chain_bad;     /* a certificate in the chain failed verification */
    bool verified;      /* the chain was verified in this handshake (a
                           resumed one verifies nothing) */
    bool identity_ok;   /* the key in c->spki is the peer's by a chain
                           that verified (now or when its ticket was
                           issued): only then is a refusal its server's */
    const char *refusal; /* why the registry refused it, for the log */
    struct gw_hello_check hello; /* the ClientHello's compression methods */

    /* identity, resolved once per connection at the handshake */
    uint8_t spki[GW_SPKI_LEN];
    int64_t server_id;
    char server_name[256];
    bool have_spki;
    bool revoked;       /* revoked at a reload: GOAWAY sent, 403 from now */
    bool unregistered;  /* ... because the server is no longer registered
                           (erased): 403 not_registered, not revoked */
    char peer[64];      /* the agent's address, for logs */

    nghttp2_session *h2;
    struct gw_stream *streams; /* open streams with our state */
    uint32_t n_streams;
    struct pa_buf out;  /* TLS plaintext not yet accepted by mbedtls_ssl_write */
    size_t out_off;
    size_t body_bytes;  /* memory allocated for request bodies on this
                           connection (max_conn_buffer_bytes) */
    /* client stream ids skipped so far (RFC 9113 5.1.1: a lower id that
     * was never opened is a connection error; one that was is closed) */
    int32_t last_client_sid;
    struct {
        int32_t lo, hi;
    } sid_gaps[16];
    unsigned n_sid_gaps;
    int32_t init_win_before; /* peer's INITIAL_WINDOW_SIZE before a SETTINGS */
    bool h2_failed;     /* a fatal HTTP/2 error: only its GOAWAY goes out */
};

/* conn.c */
/* The numeric address and port of a bound socket (fd's getsockname);
 * "?" and 0 when it has none or is not IPv4/IPv6. */
void gw_sockname(int fd, char *host, size_t hostlen, unsigned *port);
void gw_conn_accept(struct gw_app *app, int fd, const struct sockaddr *sa, int salen);
void gw_conn_close(struct gw_conn *c);
/* Pushes nghttp2 output through TLS; closes the connection when both
 * sides are done.  Returns 0, or GW_ECLOSED when |c| was closed (freed):
 * a TLS write or nghttp2 failed, or both sides had finished. */
int gw_conn_flush(struct gw_conn *c);
/* gw_conn_flush, once the loop has run the callbacks already due: the
 * answers one batch of sink completions makes on a connection leave in one
 * TLS record and one send rather than one each (libevent runs an event
 * made active twice once). */
void gw_conn_flush_soon(struct gw_conn *c);
void gw_conn_touch(struct gw_conn *c); /* re-arms the idle timer */
/* Sends GOAWAY (graceful: streams already accepted finish). */
void gw_conn_goaway(struct gw_conn *c, uint32_t error_code, const char *why);
/* GOAWAY to every HTTP/2 connection of |self|'s server, |self| included
 * (flushed by its caller, inside whose callback this runs; the others are
 * flushed here).  Returns how many got one. */
unsigned gw_conn_goaway_server(struct gw_conn *self, uint32_t error_code, const char *why);
void gw_conn_log_ctx(const struct gw_conn *c, struct gw_log_ctx *ctx);
/* app->trim_timer's callback (arg: the app): returns the memory freed by
 * closed connections to the system. */
void gw_conn_on_trim(evutil_socket_t fd, short what, void *arg);

/* h2.c */
int gw_h2_session_new(struct gw_conn *c);
/* Frees stream state and detaches in-flight sink items (the frames are
 * still stored; nobody waits for their answer). */
void gw_h2_streams_free(struct gw_conn *c);

#endif /* GW_GW_H */
