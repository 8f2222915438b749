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
 * ends.  Throttled connections, 429s and bans are counted (struct
 * gw_stats), logged (rate-limited) and written to the activity log,
 * aggregated per activity interval.  The buckets run on the monotonic
 * clock; the pure parts are in ratelimit.c.
 */
#ifndef GW_LIMITER_H
#define GW_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "activity.h"

struct gw_app;
struct gw_conn;
struct gw_config;
struct gw_limiter;

/* Activity rows go to |emit| (the gateway's: gw_app_activity).  Returns 0
 * or -1 (out of memory; *out NULL). */
int gw_limiter_new(struct gw_limiter **out, const struct gw_config *cfg, gw_activity_emit_fn emit,
                   void *ud);
void gw_limiter_free(struct gw_limiter *l);

/* After a reload: table sizes follow the new configuration (entries are
 * kept as far as they fit) and every server's limits are resolved again at
 * its next request.  Returns 0 or -1 (out of memory: the old tables stay). */
int gw_limiter_reload(struct gw_limiter *l, const struct gw_config *cfg);

/* A connection from |sa| was accepted: false when its source address is
 * over handshakes_per_s_per_addr (the caller closes the socket at once). */
bool gw_limiter_accept(struct gw_app *app, const void *sa, size_t salen);

/* Milliseconds server |server_id|'s ban still lasts; 0 = not banned. */
int64_t gw_limiter_banned(struct gw_app *app, int64_t server_id);

/* A request's headers are complete (|content_length| -1 when absent):
 * 0 to go on, else the retry-after in seconds for a 429, with |why| the
 * bucket that refused ("frames", "bytes", "global", "banned"). */
uint32_t gw_limiter_request(struct gw_conn *c, int64_t content_length, const char **why);

/* A request's body of |bytes| is complete: as gw_limiter_request. */
uint32_t gw_limiter_body(struct gw_conn *c, size_t bytes, const char **why);

/* Writes the aggregated rows (handshake_throttled, rate_limited) to the
 * activity log and starts new aggregates. */
void gw_limiter_flush(struct gw_app *app);

#endif /* GW_LIMITER_H */
