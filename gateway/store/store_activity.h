/*
 * store_activity.h - panelgate-store's side of the JetStream engine's
 * activity stream ([jetstream] activity_stream, subjects
 * "<activity_subject_prefix>.>", docs/STORAGE.md) and its own retention.
 *
 * The store follows the stream with an ordered consumer (ephemeral, no
 * acks) from the position saved in its own database (meta key
 * "activity_stream_seq": the stream sequence of the last row dealt with),
 * and applies the rows meant for the stores:
 *   erase  details.server_id: the server's frames, samples and stream
 *          paths leave the database (gw_regdb_erase_data), and the id goes
 *          into erased_servers: every later frame of it is dropped
 *   purge  details.received_before_ms: the frames received before it go,
 *          in chunks (gw_regdb_purge_step, then gw_regdb_purge_paths)
 * Every other row is skipped; a row that breaks the layout is logged once
 * (by stream sequence) and skipped.  The position advances in the
 * transaction that applies the row (for a purge: its last one), so a
 * kill -9 never applies a row twice nor skips one; a row whose sequence is
 * not above the saved position (another instance on the same file applied
 * it) is not applied again.  A stream that does not exist yet is waited
 * for, quietly.
 *
 * Its own SQLite connection on [storage] sqlite_path (the backend's is
 * private to it).  One thread.  Functions return 0 or a negative GW_E*
 * with a reason in err.
 */
#ifndef GW_STORE_ACTIVITY_H
#define GW_STORE_ACTIVITY_H

#include <stddef.h>
#include <stdint.h>

struct gw_config;
struct gw_js;
struct gw_storeact;

/* Opens the database (made by the SQLite backend already) and creates
 * erased_servers when missing.  |js| is not owned. */
int gw_storeact_open(struct gw_storeact **out, const struct gw_config *cfg, struct gw_js *js,
                     char *err, size_t errlen);
void gw_storeact_free(struct gw_storeact *a);

/* Subscribes when not yet subscribed (at most every few seconds), then
 * applies the rows that arrived, at most |max| of them.  Never fails:
 * problems are logged (once while they last) and tried again. */
void gw_storeact_poll(struct gw_storeact *a, unsigned max);

/* *yes = 1 when server |id| was erased (an erase row was applied). */
int gw_storeact_erased(struct gw_storeact *a, int64_t id, int *yes, char *err, size_t errlen);

/* Deletes whatever of server |id| is stored (frames written by a batch
 * that raced an erase applied by another instance on the same file). */
int gw_storeact_erase_again(struct gw_storeact *a, int64_t id, char *err, size_t errlen);

/* The retention purge: frames received before |cutoff_ms|, in chunks,
 * with one "purge" row by panelgate-store in the database's activity
 * table when something was deleted; logged as the gateway's sink logs it. */
void gw_storeact_retention(struct gw_storeact *a, int64_t cutoff_ms);

/* Counts for the "stopped" line. */
struct gw_storeact_counts {
    uint64_t erased, purged, skipped, refused;
};
void gw_storeact_counts(const struct gw_storeact *a, struct gw_storeact_counts *out);

#endif /* GW_STORE_ACTIVITY_H */
