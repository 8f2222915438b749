/*
 * stored.h - reading the stored form of a frame back (the inverse of
 * gw_privacy_encode, privacy.h).
 *
 * The stored body is what the SQLite engine keeps in frames.body and what
 * the JetStream engine publishes (docs/STORAGE.md): the canonical frame
 * without "conns", plus "viewers", [{"cc","asn","conns","in","out"}, ...]
 * sorted by (cc, asn).  A panel-side consumer (panelgate-store) gets only
 * these bytes and must rebuild from them exactly the samples the gateway
 * built (gw_samples_build, samples.h) from the decoded frame and its
 * buckets.
 *
 * The reader is strict: it takes only bytes that gw_privacy_encode could
 * have written for a frame the gateway accepted under |lim|:
 *   - pa_frame_decode with |lim| (every count, length and depth limit as
 *     on the wire), except that max_frame_bytes is widened to the largest
 *     stored form of such a frame (gw_stored_max_bytes: buckets take more
 *     bytes than the connections they replace, float32 become float64)
 *     and one unknown key is allowed: "viewers" (pa_frame_decode skips it
 *     as an unknown top-level key; any other unknown key, anywhere, is
 *     refused);
 *   - no "conns" key;
 *   - "viewers", when present, a non-empty array of at most
 *     lim->max_conns maps of exactly those five keys: cc a bucket code
 *     (two letters A-Z, or "--"), asn <= UINT32_MAX (0 for "XP"), conns
 *     >= 1 and all conns together <= lim->max_conns, in and out any
 *     uint64; strictly ascending by (cc, asn);
 *   - and the bytes equal gw_privacy_encode(frame, viewers) exactly (the
 *     canonical form: shortest integers, key order, float64), so nothing
 *     the samples do not see can differ between two bodies that read the
 *     same.
 * The decoded frame has n_conns 0 (the stored form has none); the viewer
 * connections are in the buckets, and gw_samples_build counts them from
 * there.
 *
 * Pure: no I/O, no globals, no logging.
 */
#ifndef GW_STORED_H
#define GW_STORED_H

#include <stddef.h>
#include <stdint.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "err.h"
#include "privacy.h"

/* The largest stored body of a frame within |lim| (saturates at
 * SIZE_MAX). */
size_t gw_stored_max_bytes(const struct pa_frame_limits *lim);

/* Reads the stored body |buf|, |len| (see the top).  On success *out
 * points into arena |a|, |v| holds the buckets (v->aggs in |a|,
 * lookup_errors 0) and 0 is returned.  Otherwise *out is NULL, |v| empty,
 * and the code is GW_EINVAL (not a stored body: the reason, a field path
 * and why, never a value, in err) or GW_ENOMEM (the arena or an
 * allocation failed).  |lim| NULL = the defaults. */
int gw_stored_decode(const uint8_t *buf, size_t len, const struct pa_frame_limits *lim,
                     struct pa_arena *a, struct pa_frame **out, struct gw_viewers *v, char *err,
                     size_t errlen);

#endif /* GW_STORED_H */
