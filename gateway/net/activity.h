/*
 * activity.h - what the gateway itself adds to the activity log.
 *
 * Refused handshakes are aggregated per (reason, public key) between
 * flushes, so a flood of refusals costs one row per distinct key and
 * interval rather than one row per attempt.  Pure: the caller passes the
 * clock and an emit function (the gateway's is a sink item).
 */
#ifndef GW_ACTIVITY_H
#define GW_ACTIVITY_H

#include <stdbool.h>
#include <stdint.h>

#include "registry.h"

#define GW_REFUSAL_SLOTS 128

struct gw_refusal {
    char reason[24];
    bool have_spki;
    uint8_t spki[GW_SPKI_LEN];
    int64_t server_id; /* 0 when the key is not pinned at all */
    uint64_t count;
    int64_t first_ms, last_ms;
    char peer[64];     /* the agent's last address (not a viewer's) */
};

struct gw_refusals {
    struct gw_refusal slot[GW_REFUSAL_SLOTS];
    unsigned n;
    uint64_t overflow; /* refusals that found no free slot */
    int64_t overflow_first_ms;
};

/* Emits one activity row; returns 0 or a GW_E* code (the row was dropped:
 * GW_EFULL, GW_ENOMEM). */
typedef int (*gw_activity_emit_fn)(void *ud, const char *action, int64_t server_id,
                                   const char *details, int64_t at_ms);

void gw_refusals_init(struct gw_refusals *r);

/* Counts one refusal.  |spki| may be NULL (no certificate got that far). */
void gw_refusals_note(struct gw_refusals *r, const char *reason, const uint8_t *spki,
                      int64_t server_id, const char *peer, int64_t now_ms);

/* Emits one "handshake_refused" row per slot, with details
 * {"reason","spki_sha256","count","first","last","peer"}, and empties the
 * table.  Returns the number of rows emitted. */
unsigned gw_refusals_flush(struct gw_refusals *r, gw_activity_emit_fn emit, void *ud);

/* Connections closed at accept by the per-source-address limit, aggregated
 * per address (the limiter's key as text, an IPv6 /64 for IPv6) between
 * flushes.  The agent's address, never a viewer's. */
#define GW_THROTTLE_SLOTS 128

struct gw_throttle {
    char addr[48];
    uint64_t count;
    int64_t first_ms, last_ms;
};

struct gw_throttles {
    struct gw_throttle slot[GW_THROTTLE_SLOTS];
    unsigned n;
    uint64_t overflow; /* throttled connections that found no free slot */
    int64_t overflow_first_ms, overflow_last_ms;
};

void gw_throttles_init(struct gw_throttles *t);
void gw_throttles_note(struct gw_throttles *t, const char *addr, int64_t now_ms);

/* Emits one "handshake_throttled" row per address, with details
 * {"addr","count","first","last"} (Unix seconds), plus one with addr
 * "other" for the overflow; empties the table.  Returns the rows emitted. */
unsigned gw_throttles_flush(struct gw_throttles *t, gw_activity_emit_fn emit, void *ud);

#endif /* GW_ACTIVITY_H */
