/*
 * metrics.h - the admin listener's answers, as pure functions: the
 * Prometheus text exposition of the gateway's counters (GET /metrics) and
 * the health verdict (GET /healthz).
 *
 * Input is a snapshot the caller takes on the loop thread; nothing here
 * touches sockets or globals.  No label carries an address, a server name
 * or any other value from a frame: the metric names and label values are
 * all fixed strings of this file.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <panelproto/arena.h>
#include "err.h"
#include "stats.h"

struct gw_metrics {
    struct gw_stats stats;     /* app->stats */
    struct gw_sink_stats sink; /* gw_sink_get_stats */
    uint32_t conns_open;
    uint32_t conns_unauth;     /* not authenticated yet (max_handshakes) */
    size_t registry_pins;
    bool registry_watched;     /* the JetStream engine's bucket watcher runs */
    bool registry_watch_up;    /* ... and is connected and current */
    uint64_t registry_snapshots;
    uint64_t registry_bad_records;
    int64_t started_ms;        /* Unix ms */
    bool draining;
    const char *version;
};

/* Appends the text format (version 0.0.4) to |out|.  Returns 0 or
 * GW_ENOMEM. */
int gw_metrics_render(const struct gw_metrics *m, struct pa_buf *out);

/* 200 when storage is healthy and the queue has room, else 503 with a
 * short reason ("storage failing: ...", "queue full", "draining") in
 * |reason| (at least 1 byte).  "ok" on 200. */
int gw_health(const struct gw_metrics *m, char *reason, size_t n);

#endif /* GW_METRICS_H */
