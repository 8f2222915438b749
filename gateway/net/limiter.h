/*
 * limiter.h - the gateway's side of rate limiting: the limiter state of the
 * process (struct gw_limiter in struct gw_app), and the four places that
 * consult it.
 *
 *   accept      gw_limiter_accept: new connections per source address,
 *               before any TLS work; over the limit the socket is closed
 *   handshake   gw_limiter_banned: a banned server is refused (access_denied)
 *   headers     gw_limiter_request: the server's frames/s and the global
 *               frames/s buckets (and the declared length against bytes/s)
 *   body        gw_limiter_body: the body's bytes against bytes/s
 *
 * A 429 from the server's own buckets is a strike; abuse_threshold strikes
 * within abuse_window_s ban the server for ban_s: its connections get
 * GOAWAY (ENHANCE_YOUR_CALM) and its handshakes are refused until the ban
 * ends.  The limiter returns verdicts and never calls back into the
 * connections: conn.c and h2.c answer, count (struct gw_stats) and send
 * the GOAWAYs.  It logs (rate-limited) and writes the activity log,
 * aggregated per activity interval.  The buckets run on the monotonic
 * clock; the pure parts are in ratelimit.c.
 */
#ifndef GW_LIMITER_H
#define GW_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "activity.h"
#include "err.h"
#include "log.h"

struct gw_config;
struct gw_limiter;
struct gw_registry;

/* Who a request comes from, as its connection knows it. */
struct gw_limiter_who {
    int64_t server_id;
    const char *server_name;        /* the registered name */
    const struct gw_registry *reg;  /* the snapshot the connection uses, */
    const uint8_t *spki;            /* and its key (NULL = none): the kind of
                                       agent, looked up when limits resolve */
    struct gw_log_ctx log;          /* for the lines about it */
};

/* What to do with a request.  The limiter decides and records; it never
 * touches a connection: the caller answers, counts and fans out a ban. */
struct gw_limiter_verdict {
    uint32_t retry_after_s; /* 0 = go on; else answer 429 with it */
    const char *why;        /* the bucket that refused: "frames", "bytes",
                               "global", "banned" ("ok" when none did) */
    bool ban_started;       /* this 429 began the server's ban: the caller
                               sends GOAWAY to the server's connections and
                               reports how many to gw_limiter_ban_started */
};

/* Activity rows go to |emit| (the gateway's: gw_app_activity).  Returns 0
 * or GW_ENOMEM (*out NULL). */
int gw_limiter_new(struct gw_limiter **out, const struct gw_config *cfg, gw_activity_emit_fn emit,
                   void *ud);
void gw_limiter_free(struct gw_limiter *l);

/* After a reload: the limiter reads |cfg| from now on (it must stay alive
 * until the next reload or free), table sizes follow it (entries are kept
 * as far as they fit) and every server's limits are resolved again at its
 * next request.  Returns 0 or GW_ENOMEM (the tables keep their size, the
 * new limits apply all the same). */
int gw_limiter_reload(struct gw_limiter *l, const struct gw_config *cfg);

/* A connection from |sa| was accepted: false when its source address is
 * over handshakes_per_s_per_addr (the caller closes the socket at once
 * and counts it). */
bool gw_limiter_accept(struct gw_limiter *l, const void *sa, size_t salen);

/* Milliseconds server |server_id|'s ban still lasts; 0 = not banned. */
int64_t gw_limiter_banned(struct gw_limiter *l, int64_t server_id);

/* A request's headers are complete (|content_length| -1 when absent). */
void gw_limiter_request(struct gw_limiter *l, const struct gw_limiter_who *who,
                        int64_t content_length, struct gw_limiter_verdict *v);

/* A request's body of |bytes| is complete. */
void gw_limiter_body(struct gw_limiter *l, const struct gw_limiter_who *who, size_t bytes,
                     struct gw_limiter_verdict *v);

/* The ban a verdict started has reached |n_conns| connections: the
 * activity row and the log line. */
void gw_limiter_ban_started(struct gw_limiter *l, const struct gw_limiter_who *who,
                            const char *why, unsigned n_conns);

/* Writes the aggregated rows (handshake_throttled, rate_limited) to the
 * activity log and starts new aggregates. */
void gw_limiter_flush(struct gw_limiter *l);

#endif /* GW_LIMITER_H */
