/*
 * samples.h - the panel-facing rows of one frame, and the writer's cache of
 * stream paths (docs/STORAGE.md).
 *
 * gw_samples_build() runs on the event loop, next to the privacy
 * reduction: it copies what the derived tables need (load and traffic,
 * one entry per stream with its vhost/app/instance/stream names, the
 * viewers buckets) into ONE heap block that travels with the sink item.
 * The writer thread turns it into rows (sink_sqlite.c), so it never has
 * to decode the stored body again.  No viewer IP is in it: only the
 * buckets of struct gw_viewers.
 *
 * struct gw_path_cache maps (server id, vhost, app, instance, stream) to
 * the id of its stream_paths row and the last_ms written there.  It is
 * bounded: when full it is emptied and refills from the table.  Used by
 * the writer thread only.
 *
 * Pure: no I/O, no globals.
 */
#ifndef GW_SAMPLES_H
#define GW_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include <panelproto/frame.h>
#include "err.h"
#include "privacy.h"

/* A path's last_ms is rewritten at most once per this many milliseconds of
 * receipt time; purge keeps paths whose last_ms is within it of the cutoff
 * (docs/STORAGE.md, stream_paths). */
#define GW_PATH_TOUCH_MS 3600000

struct gw_stream_sample {
    const char *vhost, *app, *instance, *stream; /* in the block */
    uint64_t viewers, bitrate, bytes_in, bytes_out;
};

struct gw_samples {
    double cpu_pct;
    uint64_t ram_used, ram_total;
    uint64_t bytes_in, bytes_out, period_ms;
    uint64_t conns;                   /* viewer connections in the frame: the
                                         buckets' conns added up when there
                                         are buckets (on the gateway the
                                         same as f->n_conns; a stored frame
                                         has only its buckets), else
                                         f->n_conns */
    uint32_t n_streams;
    uint32_t n_viewers;
    struct gw_stream_sample *streams; /* in the block */
    struct gw_viewer_agg *viewers;    /* in the block, (cc, asn) order */
    size_t size;                      /* bytes of the whole block */
};

/* Builds the block for |f| and its reduced viewers |v| (NULL = none).
 * Returns 0, or GW_ENOMEM on allocation failure or a frame too large to
 * describe (*out NULL).  Free with gw_free() (alloc.h). */
int gw_samples_build(const struct pa_frame *f, const struct gw_viewers *v,
                     struct gw_samples **out);

/* A uint64 as a SQLite integer: values above INT64_MAX saturate. */
static inline int64_t gw_samples_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* ---- the writer's path cache ---- */

struct gw_path_cache;

/* |cap| entries at most (rounded up to a power of two, >= 16); |seed|
 * keys the hash.  NULL on OOM. */
struct gw_path_cache *gw_path_cache_new(uint32_t cap, uint64_t seed);
void gw_path_cache_free(struct gw_path_cache *c);
void gw_path_cache_clear(struct gw_path_cache *c);
uint32_t gw_path_cache_count(const struct gw_path_cache *c);

/* The entry of (server_id, s's four names), or NULL.  The returned
 * pointers stay valid until the next put or clear. */
struct gw_path_entry {
    int64_t id;
    int64_t last_ms;
};
struct gw_path_entry *gw_path_cache_get(struct gw_path_cache *c, int64_t server_id,
                                        const struct gw_stream_sample *s);

/* Adds (or replaces) an entry; a full cache is emptied first.  Returns 0
 * or GW_ENOMEM (the cache is then unchanged or empty, never corrupt). */
int gw_path_cache_put(struct gw_path_cache *c, int64_t server_id,
                      const struct gw_stream_sample *s, int64_t id, int64_t last_ms);

#endif /* GW_SAMPLES_H */
