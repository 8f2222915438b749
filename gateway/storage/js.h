/*
 * js.h - the connection to NATS JetStream, from [jetstream] of the config:
 * every server URL, TLS, one kind of credentials, reconnecting forever;
 * and "ensure the stream" (create it, or check that the one there matches).
 *
 * Shared by the gateway's JetStream sink (sink_jetstream.c) and the store
 * consumer (panelgate-store).  Returns GW_E* codes with the reason in
 * (err, errlen); never prints.  Connection events (lost, back, closed) go
 * to an optional callback, on a libnats thread.
 */
#ifndef GW_JS_H
#define GW_JS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "err.h"

struct gw_config;
struct gw_js;

/* What the connection did (gw_js_event_fn). */
enum gw_js_event {
    GW_JS_DISCONNECTED = 1, /* lost its server; reconnecting */
    GW_JS_RECONNECTED = 2,  /* connected again (url: to which) */
    GW_JS_CLOSED = 3,       /* closed for good (only gw_js_free closes it) */
};

/* Called on a libnats thread, without any lock of ours held: it must be
 * quick and thread-safe (gw_log is).  |url| is the server's URL (no
 * credentials: the config refuses them in URLs) or "" when none. */
typedef void (*gw_js_event_fn)(enum gw_js_event ev, const char *url, void *ud);

/* Counters and state, safe to read from any thread. */
struct gw_js_stats {
    bool connected;        /* connected right now */
    uint64_t disconnects;  /* times the connection was lost */
    uint64_t reconnects;   /* times it came back */
};

/* Connects to [jetstream] servers of |cfg| (all URLs, in random order),
 * with TLS and credentials as configured, connect_timeout_ms per attempt;
 * afterwards the client reconnects forever (a 250 ms wait between rounds
 * of the URL list) and buffers nothing while disconnected (publishes fail
 * at once).  |name| is the client name the servers show ("panelgate",
 * "panelgate-store").  |fn| may be NULL.  On success *out owns the
 * connection and a JetStream context whose API requests time out after
 * connect_timeout_ms.  Returns 0, GW_ECONFIG (a setting libnats refused:
 * a TLS or creds file), GW_ESTORAGE (no server answered, or the TLS
 * handshake or the credentials failed: err names the cause and the keys
 * to check, never a secret), GW_ENOMEM. */
int gw_js_connect(struct gw_js **out, const struct gw_config *cfg, const char *name,
                  gw_js_event_fn fn, void *ud, char *err, size_t errlen);

/* Creates the stream of |cfg| when missing, else compares it with what
 * |cfg| asks for (docs/OPERATIONS.md, [jetstream], lists which differences
 * are errors and which warnings).  Errors: returns GW_ECONFIG with every
 * one named in err ("jetstream: stream S: replicas: configured 3, stream
 * has 1; ...").  Warnings (the stream is usable): returns 0 and writes
 * them into |warn| ("" when none).  GW_ESTORAGE: the cluster did not
 * answer (no JetStream, no leader, timeout), with the reason. */
int gw_js_ensure_stream(struct gw_js *j, const struct gw_config *cfg, char *warn,
                        size_t warnlen, char *err, size_t errlen);

/* The library's handles, owned by |j| (valid until gw_js_free). */
natsConnection *gw_js_nc(struct gw_js *j);
jsCtx *gw_js_ctx(struct gw_js *j);

/* True while connected to a server. */
bool gw_js_connected(struct gw_js *j);
void gw_js_get_stats(struct gw_js *j, struct gw_js_stats *out);

/* The subject of server |server_id|'s frames: "<subject_prefix>.<id>".
 * Returns 0, or GW_EINVAL when it does not fit in n bytes. */
int gw_js_subject(const struct gw_config *cfg, int64_t server_id, char *buf, size_t n);

/* A libnats status as a GW_E* code: NATS_NO_MEMORY GW_ENOMEM, the
 * connection and JetStream failures GW_ESTORAGE, anything else
 * GW_EINTERNAL. */
int gw_js_error(natsStatus s);

/* Closes the connection (waiting for libnats' threads to let go of it)
 * and frees everything.  NULL is allowed. */
void gw_js_free(struct gw_js *j);

#endif /* GW_JS_H */
