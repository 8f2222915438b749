/*
 * stats.h - the gateway's counters: what the loop thread counts (struct
 * gw_stats), what the sink reports (struct gw_sink_stats), and the statuses
 * requests are answered with.  Plain data, so that metrics.c can render
 * them without knowing the connection or the sink that keeps them.
 */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stddef.h>
#include <stdint.h>

#define GW_N_STATUS 12

/* Counters, on the loop thread only. */
struct gw_stats {
    uint64_t conns_accepted;
    uint64_t conns_refused_limit;  /* over max_connections or draining */
    uint64_t conns_shed_handshakes; /* unauthenticated, closed for a new
                                       connection: max_handshakes full */
    uint64_t conns_shed_limit;     /* ... max_connections full */
    uint64_t handshakes_ok;
    uint64_t handshakes_resumed;
    uint64_t handshakes_refused;   /* any TLS/identity failure */
    uint64_t refused_unregistered;
    uint64_t refused_revoked;
    uint64_t refused_alpn;
    uint64_t handshake_timeouts;
    uint64_t frames_accepted;      /* 202 sent (stored or duplicate) */
    uint64_t frames_duplicate;
    uint64_t frames_rejected;      /* 4xx for a frame */
    uint64_t frames_unavailable;   /* 503 */
    uint64_t frames_failed;        /* 500: storage refused this frame */
    uint64_t goaways_revoked;
    uint64_t handshakes_throttled; /* closed at accept: per-address limit */
    uint64_t frames_rate_limited;  /* 429 */
    uint64_t rate_limit_bans;
    /* answers to requests by status: gw_status_codes[i] -> responses[i];
     * the last slot counts any other status */
    uint64_t responses[GW_N_STATUS + 1];
};

/* The statuses the gateway answers with, for responses[] (metrics.c). */
extern const int gw_status_codes[GW_N_STATUS];

static inline void gw_stats_count_status(struct gw_stats *st, int status)
{
    unsigned i = 0;
    while (i < GW_N_STATUS && gw_status_codes[i] != status)
        i++;
    st->responses[i]++;
}

/* Items per batch handed to the backend (panelgate_sink_batch_frames):
 * slot i < GW_SINK_BATCH_BUCKETS - 1 counts the batches of at most 2^i
 * items (and more than 2^(i-1)), the last one those of more than 1024. */
#define GW_SINK_BATCH_BUCKETS 12

static inline unsigned gw_sink_batch_bucket(size_t n)
{
    unsigned i = 0;
    while (i < GW_SINK_BATCH_BUCKETS - 1 && ((size_t)1 << i) < n)
        i++;
    return i;
}

/* Counters and state for metrics and health (a consistent snapshot). */
struct gw_sink_stats {
    uint64_t batches;          /* write_batch calls */
    uint64_t batch_failures;   /* ... that failed */
    uint64_t batch_items[GW_SINK_BATCH_BUCKETS]; /* write_batch calls by
                                  their item count (gw_sink_batch_bucket) */
    uint64_t batch_items_sum;  /* items in them */
    uint64_t items_stored;     /* items completed GW_SINK_STORED (frames,
                                  activity rows, purges) */
    uint64_t frames_stored;    /* frames among them */
    uint64_t frames_duplicate; /* frames completed GW_SINK_DUPLICATE */
    uint64_t items_failed;     /* items completed GW_SINK_FAILED */
    uint64_t items_rejected;   /* items completed GW_SINK_REJECTED: refused
                                  alone, the rest of their batch committed */
    uint64_t items_refused;    /* items completed GW_SINK_UNREGISTERED or
                                  GW_SINK_REVOKED: their server was erased
                                  or revoked before they could commit */
    uint64_t outages;          /* times the sink started failing */
    int failing;               /* the last batch failed */
    int64_t failing_since_ms;  /* when the current outage began (0 = none) */
    size_t queue_frames, queue_bytes;         /* pending now */
    size_t queue_max_frames, queue_max_bytes; /* the bounds */
    char reason[160];          /* the backend's last error while failing */
    int files_replaced;        /* the outage is a file of the database
                                  deleted or replaced under the gateway:
                                  other connections to it in the process
                                  must let go of it (and reopen after) */
    uint64_t reopens;          /* times the backend reopened its database
                                  after such a replacement */
    /* a networked engine's connection (JetStream): engine_connected is -1
     * for an engine without one (SQLite) */
    int engine_connected;         /* 1 connected now, 0 not, -1 n/a */
    uint64_t engine_disconnects;  /* times the connection was lost */
    uint64_t engine_reconnects;   /* times it came back */
};

#endif /* GW_STATS_H */
