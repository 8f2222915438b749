/*
 * regkv_watch.h - the gateway's view of the JetStream engine's registry: a
 * watcher of the server.* keys of [jetstream] registry_bucket
 * (docs/STORAGE.md, "The registry bucket and the activity stream") that
 * keeps every record in memory and hands a new registry snapshot to the
 * event loop after each change.
 *
 * Threads.  gw_regkv_watch_new reads the initial values on the caller's
 * thread (bounded by [jetstream] connect_timeout_ms) and returns the first
 * snapshot; from then on one thread of its own reads the updates, decodes
 * them (gw_regkv_rec_decode), builds snapshots (gw_registry_build) and
 * posts the newest one to |base|, where |fn| gets it on the loop thread.
 * Updates that arrive together (the watcher has more pending) make one
 * snapshot, at most COALESCE_MS after the first of them.
 *
 * Failures.  A record that breaks the layout is logged with its key (never
 * its value) and the key keeps its previous record; a snapshot that cannot
 * be built (one pin on two servers) is logged and the previous one stays.
 * While the connection is lost the gateway keeps the last snapshot; when
 * it is back, the watcher reads every key again and the next snapshot is
 * built from that fresh read.  So it does when its consumer was lost with
 * a node while the connection stayed: a quiet watcher compares, once a
 * second, the bucket's last sequence with what it has seen.
 */
#ifndef GW_REGKV_WATCH_H
#define GW_REGKV_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "err.h"
#include "registry.h"

struct gw_config;
struct gw_regkv_watch;

/* A new snapshot, on the loop thread; |r| is the callee's (one ref). */
typedef void (*gw_regkv_watch_fn)(struct gw_registry *r, void *ud);

/* Safe to read from any thread. */
struct gw_regkv_watch_stats {
    bool up;               /* connected and the watch is current */
    uint64_t snapshots;    /* snapshots built (the first one included) */
    uint64_t bad_records;  /* values refused (layout), keys logged */
    uint64_t restarts;     /* watches made again after a reconnect or error */
};

/* Connects to [jetstream] of |cfg|, binds [jetstream] registry_bucket and
 * reads every server.* record; *first gets the snapshot they make.
 * Returns 0, or with the reason in err: GW_ENOTFOUND (no bucket: nothing
 * was ever registered on this cluster), GW_ECONFIG (no "schema" key, or
 * another than GW_REGKV_SCHEMA; a setting libnats refused), GW_ESTORAGE (no answer, or
 * the initial values not all read within connect_timeout_ms), GW_EINVAL
 * (the records make no snapshot: one pin on two servers), GW_ENOMEM. */
int gw_regkv_watch_new(struct gw_regkv_watch **out, struct gw_registry **first,
                       struct event_base *base, const struct gw_config *cfg,
                       gw_regkv_watch_fn fn, void *ud, char *err, size_t errlen);

void gw_regkv_watch_get_stats(struct gw_regkv_watch *w, struct gw_regkv_watch_stats *out);

/* Stops the thread, closes the connection, drops a snapshot not handed
 * over yet.  Loop thread.  NULL is allowed. */
void gw_regkv_watch_free(struct gw_regkv_watch *w);

#endif /* GW_REGKV_WATCH_H */
