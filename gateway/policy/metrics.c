/*
 * metrics.c - Prometheus text exposition and the health verdict
 * (metrics.h).  Pure.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* The order of struct gw_stats.responses[]. */
const int gw_status_codes[GW_N_STATUS] = {202, 400, 403, 404, 405, 408,
                                          413, 415, 429, 431, 500, 503};

struct out {
    struct pa_buf *b;
    int oom;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(struct out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || pa_buf_append(o->b, line, (size_t)n) != 0)
        o->oom = 1;
}

/* HELP and TYPE lines of one family. */
static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    put(o, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "gauge", help);
    put(o, "%s %" PRIu64 "\n", name, v);
}

int gw_metrics_render(const struct gw_metrics *m, struct pa_buf *out)
{
    struct out o = {.b = out};
    const struct gw_stats *s = &m->stats;
    const struct gw_sink_stats *k = &m->sink;
    size_t len0 = out->len;

    family(&o, "panelgate_build_info", "gauge", "Version of the running gateway.");
    put(&o, "panelgate_build_info{version=\"%s\"} 1\n", m->version ? m->version : "unknown");
    gauge(&o, "panelgate_start_time_seconds", "Unix time the gateway started.",
          (uint64_t)(m->started_ms > 0 ? m->started_ms / 1000 : 0));
    gauge(&o, "panelgate_draining", "1 while the gateway stops (SIGTERM).", m->draining);

    /* connections and handshakes */
    counter(&o, "panelgate_connections_accepted_total", "TCP connections accepted.",
            s->conns_accepted);
    counter(&o, "panelgate_connections_refused_total",
            "Connections closed at accept: over max_connections or draining.",
            s->conns_refused_limit);
    counter(&o, "panelgate_connections_throttled_total",
            "Connections closed at accept by the per-address limit.", s->handshakes_throttled);
    family(&o, "panelgate_connections_shed_total", "counter",
           "Unauthenticated connections closed to make room for a new one, by the budget "
           "that was full.");
    put(&o, "panelgate_connections_shed_total{reason=\"max_handshakes\"} %" PRIu64 "\n",
        s->conns_shed_handshakes);
    put(&o, "panelgate_connections_shed_total{reason=\"max_connections\"} %" PRIu64 "\n",
        s->conns_shed_limit);
    gauge(&o, "panelgate_connections_open", "Agent connections open now.", m->conns_open);
    gauge(&o, "panelgate_connections_handshaking",
          "Connections open now that have not authenticated yet (max_handshakes).",
          m->conns_unauth);
    family(&o, "panelgate_handshakes_total", "counter",
           "Completed TLS handshakes, by full or resumed.");
    put(&o, "panelgate_handshakes_total{resumed=\"false\"} %" PRIu64 "\n",
        s->handshakes_ok >= s->handshakes_resumed ? s->handshakes_ok - s->handshakes_resumed : 0);
    put(&o, "panelgate_handshakes_total{resumed=\"true\"} %" PRIu64 "\n", s->handshakes_resumed);
    uint64_t known = s->refused_unregistered + s->refused_revoked + s->refused_alpn;
    family(&o, "panelgate_handshakes_refused_total", "counter",
           "Refused or failed handshakes, by reason (other: TLS errors, bans, peers gone).");
    put(&o, "panelgate_handshakes_refused_total{reason=\"unregistered\"} %" PRIu64 "\n",
        s->refused_unregistered);
    put(&o, "panelgate_handshakes_refused_total{reason=\"revoked\"} %" PRIu64 "\n",
        s->refused_revoked);
    put(&o, "panelgate_handshakes_refused_total{reason=\"alpn\"} %" PRIu64 "\n",
        s->refused_alpn);
    put(&o, "panelgate_handshakes_refused_total{reason=\"other\"} %" PRIu64 "\n",
        s->handshakes_refused > known ? s->handshakes_refused - known : 0);
    counter(&o, "panelgate_handshake_timeouts_total", "Handshakes cut by handshake_timeout_ms.",
            s->handshake_timeouts);
    counter(&o, "panelgate_goaways_registry_total",
            "Connections closed after a registry change (revoked, unregistered, pin expired).",
            s->goaways_revoked);

    /* requests */
    family(&o, "panelgate_responses_total", "counter", "Answers to requests, by status.");
    for (unsigned i = 0; i <= GW_N_STATUS; i++) {
        if (i < GW_N_STATUS)
            put(&o, "panelgate_responses_total{status=\"%d\"} %" PRIu64 "\n", gw_status_codes[i],
                s->responses[i]);
        else
            put(&o, "panelgate_responses_total{status=\"other\"} %" PRIu64 "\n", s->responses[i]);
    }
    counter(&o, "panelgate_frames_accepted_total", "Frames answered 202 (stored or duplicate).",
            s->frames_accepted);
    counter(&o, "panelgate_frames_duplicate_total",
            "Frames answered 202 that were stored already (same server and seq).",
            s->frames_duplicate);
    counter(&o, "panelgate_frames_rejected_total", "Requests answered 4xx (429 included).",
            s->frames_rejected);
    counter(&o, "panelgate_frames_unavailable_total",
            "Requests answered 503 (storage failing, queue full, out of memory).",
            s->frames_unavailable);
    counter(&o, "panelgate_frames_failed_total",
            "Frames answered 500: storage refused the frame itself (it will never be stored).",
            s->frames_failed);
    counter(&o, "panelgate_rate_limited_total", "Requests answered 429.", s->frames_rate_limited);
    counter(&o, "panelgate_rate_limit_bans_total", "Servers banned after repeated 429s.",
            s->rate_limit_bans);

    /* storage */
    counter(&o, "panelgate_sink_batches_total", "Group commits attempted.", k->batches);
    counter(&o, "panelgate_sink_batch_failures_total", "Group commits that failed.",
            k->batch_failures);
    /* a histogram: cumulative buckets by the powers of two of stats.h */
    family(&o, "panelgate_sink_batch_frames", "histogram",
           "Items (frames, activity rows) per group commit handed to storage "
           "([storage] batch_max_frames, commit_delay_ms).");
    uint64_t cum = 0;
    for (unsigned i = 0; i < GW_SINK_BATCH_BUCKETS; i++) {
        cum += k->batch_items[i];
        if (i < GW_SINK_BATCH_BUCKETS - 1)
            put(&o, "panelgate_sink_batch_frames_bucket{le=\"%u\"} %" PRIu64 "\n", 1u << i, cum);
        else
            put(&o, "panelgate_sink_batch_frames_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    put(&o, "panelgate_sink_batch_frames_sum %" PRIu64 "\n", k->batch_items_sum);
    put(&o, "panelgate_sink_batch_frames_count %" PRIu64 "\n", cum);
    counter(&o, "panelgate_sink_frames_stored_total", "Frames committed.", k->frames_stored);
    counter(&o, "panelgate_sink_frames_duplicate_total",
            "Frames the sink found stored already.", k->frames_duplicate);
    counter(&o, "panelgate_sink_items_failed_total",
            "Items (frames, activity rows) not stored because their batch failed.",
            k->items_failed);
    counter(&o, "panelgate_sink_items_rejected_total",
            "Items (frames, activity rows) refused on their own; the rest of their batch "
            "committed.",
            k->items_rejected);
    counter(&o, "panelgate_sink_items_refused_total",
            "Items (frames, activity rows) refused at their commit because their server was no "
            "longer registered (erased) or, for frames, revoked.",
            k->items_refused);
    counter(&o, "panelgate_sink_outages_total", "Times storage started failing.", k->outages);
    counter(&o, "panelgate_sink_reopens_total",
            "Times the database was reopened after its file, -wal or -shm was deleted or "
            "replaced under the gateway.",
            k->reopens);
    gauge(&o, "panelgate_sink_failing",
          "1 while storage is failing (the last group commit failed).", k->failing ? 1 : 0);
    gauge(&o, "panelgate_sink_failing_since_seconds",
          "Unix time the current storage outage began; 0 when none.",
          (uint64_t)(k->failing && k->failing_since_ms > 0 ? k->failing_since_ms / 1000 : 0));
    gauge(&o, "panelgate_sink_queue_frames", "Frames waiting for storage or being written.",
          k->queue_frames);
    gauge(&o, "panelgate_sink_queue_bytes", "Bytes waiting for storage or being written.",
          k->queue_bytes);
    gauge(&o, "panelgate_sink_queue_max_frames", "[storage] queue_max_frames.",
          k->queue_max_frames);
    gauge(&o, "panelgate_sink_queue_max_bytes", "[storage] queue_max_bytes.",
          k->queue_max_bytes);
    if (k->engine_connected >= 0) { /* a networked engine: JetStream */
        gauge(&o, "panelgate_jetstream_connected",
              "1 while the gateway is connected to a NATS server of [jetstream] servers.",
              (uint64_t)k->engine_connected);
        counter(&o, "panelgate_jetstream_disconnects_total",
                "Times the connection to the NATS cluster was lost.", k->engine_disconnects);
        counter(&o, "panelgate_jetstream_reconnects_total",
                "Times the connection to the NATS cluster came back.", k->engine_reconnects);
    }
    gauge(&o, "panelgate_registry_pins", "Pins in the registry snapshot in use.",
          m->registry_pins);
    if (m->registry_watched) { /* the registry bucket of the JetStream engine */
        gauge(&o, "panelgate_registry_watch_up",
              "1 while the registry bucket's watcher is connected and current; 0 while the "
              "gateway serves its last snapshot.",
              (uint64_t)m->registry_watch_up);
        counter(&o, "panelgate_registry_snapshots_total",
                "Registry snapshots built from the bucket.", m->registry_snapshots);
        counter(&o, "panelgate_registry_records_refused_total",
                "Bucket values refused for breaking the layout (the key kept its previous "
                "record).",
                m->registry_bad_records);
    }

    if (o.oom) {
        out->len = len0;
        return GW_ENOMEM;
    }
    return 0;
}

int gw_health(const struct gw_metrics *m, char *reason, size_t n)
{
    if (m->sink.failing) {
        snprintf(reason, n, "storage failing: %s", m->sink.reason[0] ? m->sink.reason : "error");
        return 503;
    }
    if (m->sink.queue_max_frames > 0 &&
        (m->sink.queue_frames >= m->sink.queue_max_frames ||
         m->sink.queue_bytes >= m->sink.queue_max_bytes)) {
        snprintf(reason, n, "queue full: %zu frames, %zu bytes waiting", m->sink.queue_frames,
                 m->sink.queue_bytes);
        return 503;
    }
    if (m->draining) {
        snprintf(reason, n, "draining");
        return 503;
    }
    snprintf(reason, n, "ok");
    return 200;
}
