/*
 * sink.h - where accepted frames go: a bounded queue, a writer thread and a
 * storage backend behind one ops table.
 *
 * The event loop submits items and never waits: a full queue is refused at
 * once (the caller answers 503).  The writer thread takes whatever is queued
 * (up to batch_max_frames; with fewer, after waiting up to commit_delay_ms
 * for more), hands it to the backend's write_batch as one group commit,
 * and posts the items back; their done callbacks run on the
 * event loop thread, after which the sink frees each item.
 */
#ifndef GW_SINK_H
#define GW_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "stats.h"

struct event_base;
struct gw_config;

/* Item outcome, set by the backend: 0, a positive success, or the GW_E*
 * code (err.h) of the failure. */
enum gw_sink_status {
    GW_SINK_STORED = GW_OK,          /* committed now */
    GW_SINK_DUPLICATE = 1,           /* (server_id, seq) was already stored */
    GW_SINK_FAILED = GW_ESTORAGE,    /* not stored: storage error (retry later) */
    GW_SINK_REJECTED = GW_EREJECTED, /* not stored and will never be: the item
                                        itself is bad; answering it 500 */
    GW_SINK_UNREGISTERED = GW_ENOTFOUND, /* not stored: its server was no
                                            longer registered (erased) when
                                            it would have committed */
    GW_SINK_REVOKED = GW_EREVOKED,   /* not stored: a frame of a server that
                                        was revoked by then */
};

/* What an item carries. */
enum gw_sink_kind {
    GW_SINK_FRAME = 0,    /* a stats frame (the default) */
    GW_SINK_ACTIVITY = 1, /* an activity-log row written by the gateway */
    GW_SINK_PURGE = 2,    /* retention: delete frames received before ts_ms,
                             in chunks, then a "purge" activity row */
};

struct gw_sink_item;
typedef void (*gw_sink_done_fn)(struct gw_sink_item *it, void *ud);

struct gw_sink_item {
    /* set by the submitter */
    enum gw_sink_kind kind;
    const char *action;      /* GW_SINK_ACTIVITY: a static string */
    int64_t server_id;       /* ACTIVITY: 0 = no server */
    char *server_name;       /* in the item's block; ACTIVITY: the server's
                                registered name, or NULL (unknown, or no
                                server) */
    uint64_t seq;
    uint64_t ts_ms;          /* the frame's own timestamp */
    int64_t received_ms;     /* gateway clock at receipt (ACTIVITY: when) */
    char *reported_name;     /* in the item's block (gw_sink_item_new); the
                                hostname the frame reports */
    uint8_t *body;           /* in the item's block; the frame minus viewer
                                IPs (msgpack); ACTIVITY: the details, JSON
                                text */
    size_t body_len;
    struct gw_samples *samples; /* heap, one block (samples.h), or NULL:
                                   the derived rows of a FRAME; freed with
                                   the item */
    gw_sink_done_fn done;    /* called on the loop thread; may be NULL */
    void *ud;                /* the submitter may clear it to detach */
    /* set by the backend */
    enum gw_sink_status status;
    /* owned by the sink */
    struct gw_sink_item *next;
};

struct gw_sink_ops {
    const char *name;
    /* Opens the backend; returns 0 or a GW_E* code with a reason in err. */
    int (*open)(void **state, const struct gw_config *cfg, char *err, size_t errlen);
    /* Stores a batch as one commit and sets each item's status.  Returns 0
     * (an item the backend refused on its own is GW_SINK_REJECTED, one
     * whose server the registry no longer admits at the commit
     * GW_SINK_UNREGISTERED or GW_SINK_REVOKED, the rest committed), or
     * GW_ESTORAGE when the whole batch failed (every status
     * GW_SINK_FAILED). */
    int (*write_batch)(void *state, struct gw_sink_item **items, size_t n);
    void (*close)(void *state);
    /* Optional, from another thread: makes a write_batch in progress give
     * up as soon as it can (the stop deadline passed). */
    void (*interrupt)(void *state);
    /* Optional, on the writer thread, before each batch and every
     * file_check_interval_ms while idle: checks that the files the backend
     * opened are still the ones at their paths, and repairs what it can
     * (saves, closes, reopens).  |reopen_ok| is 1 once the loop has been
     * told of the replacement (gw_sink_note_replaced) and let go of what
     * it holds of the files.  Returns 0 when all is well, or GW_ESTORAGE
     * with the reason noted (gw_sink_note_error): the sink then fails as
     * after a failed batch, until a check passes. */
    int (*check)(void *state, int reopen_ok);
    /* Optional, from any thread: fills the engine_* fields of |out| (the
     * state of a networked engine's connection); without it they say
     * "no connection" (engine_connected -1). */
    void (*engine_stats)(void *state, struct gw_sink_stats *out);
};

/* For a backend's write_batch, on the writer thread: why the batch fails
 * (names and codes only, never values), kept for metrics, /healthz and
 * the storage alarm (copied; thread-local, so one per writer). */
void gw_sink_note_error(const char *why);
/* For a backend's write_batch or check: a file of the database was
 * deleted or replaced under it (the outage's files_replaced), or it has
 * reopened the database after one (counted in reopens). */
void gw_sink_note_replaced(void);
void gw_sink_note_reopened(void);

/* Logs how a retention purge ended (gw_regdb_purge_run's return |rv|,
 * its reason |err|, the frames and stream paths it removed): "purge_failed"
 * or, when it removed anything, "purged".  The gateway's SQLite backend
 * and panelgate-store log their retention with it. */
void gw_sink_log_retention(int rv, const char *err, int64_t frames, int64_t paths);

extern const struct gw_sink_ops gw_sink_sqlite_ops;
/* [storage] storage_engine = jetstream (sink_jetstream.c): frames to the
 * stream, everything else to gw_sink_sqlite_ops on the same config. */
extern const struct gw_sink_ops gw_sink_jetstream_ops;

struct gw_sink;

/* Starts the writer thread.  |base| must have been created after
 * evthread_use_pthreads().  Returns 0 or a GW_E* code with a reason in err
 * (the backend's, GW_ECONFIG, GW_ENOMEM, GW_EINTERNAL). */
int gw_sink_new(struct gw_sink **out, struct event_base *base, const struct gw_sink_ops *ops,
                const struct gw_config *cfg, char *err, size_t errlen);

/* Allocates an item with copies of name and body, all one block that
 * gw_sink_item_free frees; NULL on OOM. */
struct gw_sink_item *gw_sink_item_new(const char *reported_name, const uint8_t *body, size_t len);

/* An activity row by actor "gateway": |action| static, |server| (the
 * registered name of |server_id|, or NULL) and |details| (JSON text)
 * copied; |at_ms| the time.  NULL on OOM. */
struct gw_sink_item *gw_sink_activity_new(const char *action, int64_t server_id,
                                          const char *server, const char *details,
                                          int64_t at_ms);
/* A retention purge (GW_SINK_PURGE): frames with received_ms < |cutoff_ms|
 * are deleted on the writer thread, GW_REGDB_PURGE_CHUNK rows per
 * transaction, outside the batch's own commit; |at_ms| is when.  NULL on
 * OOM. */
struct gw_sink_item *gw_sink_purge_new(int64_t cutoff_ms, int64_t at_ms);
void gw_sink_item_free(struct gw_sink_item *it);

/* Takes |it| on success (0).  Returns GW_EFULL and leaves |it| with the caller
 * when the queue is full (by frames or bytes) or the sink is stopping. */
int gw_sink_submit(struct gw_sink *s, struct gw_sink_item *it);

/* Frames and bytes queued or being written right now. */
void gw_sink_pending(struct gw_sink *s, size_t *frames, size_t *bytes);

/* True when the last batch failed and no later batch has succeeded. */
int gw_sink_failing(struct gw_sink *s);

void gw_sink_get_stats(struct gw_sink *s, struct gw_sink_stats *out);

/* Called on the loop thread (from the sink's wake-up) when the failing
 * state changes: |failing| 1 = an outage began (|st| says why), 0 = the
 * first batch (or file check) after one succeeded.  Called again with
 * |failing| 1 when st->files_replaced becomes 1 during an outage: the
 * callback closes whatever the process holds open of the database files;
 * the backend reopens its own only after it returned. */
typedef void (*gw_sink_state_fn)(int failing, const struct gw_sink_stats *st, void *ud);
void gw_sink_on_state(struct gw_sink *s, gw_sink_state_fn fn, void *ud);

/* A monotonic deadline (gw_mono_ms) for gw_sink_free: past it, the
 * backend's write in progress is interrupted and whatever is still queued
 * completes GW_SINK_FAILED unwritten, logged once as drain_deadline with
 * the count.  0 = now. */
void gw_sink_set_deadline(struct gw_sink *s, int64_t deadline_mono_ms);

/* Stops taking items, lets the writer finish everything queued (by the
 * deadline, when one is set), runs the remaining done callbacks on the
 * calling (loop) thread, joins the thread and frees the sink.  NULL is
 * allowed. */
void gw_sink_free(struct gw_sink *s);

#endif /* GW_SINK_H */
