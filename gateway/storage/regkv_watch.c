/*
 * regkv_watch.c - the watcher of the registry bucket's server.* keys (see
 * regkv_watch.h).
 *
 * The records live in a tree (tsearch, by key) that only one thread
 * touches at a time: the caller of gw_regkv_watch_new while it reads the
 * initial values, then the watcher's own thread.  Each snapshot is built
 * from the whole tree (gw_registry_build copies the entries), so no
 * snapshot ever shares memory with the tree, and it belongs to the
 * watcher until the loop takes it from |pending| under mu.  The loop is
 * woken by event_active() on an event that was never added, as the sink's
 * writer does (sink.c): libevent's locking must be on (main.c turns it on
 * before it creates the base).
 *
 * libnats' watcher is an ordered consumer, which resumes by itself after a
 * gap.  After a reconnect the watcher is made anew anyway, and every key
 * read again into a fresh tree: what changed or disappeared while the
 * gateway was cut off is then certainly seen, and a deletion missed by the
 * old consumer cannot leave a server admitted.  Until that read is
 * complete the previous snapshot stays in use.
 *
 * The consumer can also be lost without the connection: it lives on one
 * node, and when that node dies while the gateway is connected to another
 * one, no event says so (libnats' own reset after missed heartbeats came
 * some 15 s later here).  So the watcher follows every key of the bucket
 * (the others are ignored but counted), and when it has been quiet for
 * LIVENESS_MS it asks for the bucket stream's last sequence: a write it
 * has not seen by the next look (it was not merely in flight) makes it
 * watch anew, as after a reconnect.
 */
#define _GNU_SOURCE /* twalk_r, tdestroy */
#include "regkv_watch.h"

#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "js.h"
#include "log.h"
#include "regkv.h"

#define KEYS ">" /* all: the revisions of the other keys count too */
#define KEY_PREFIX "server."
/* Updates that arrive together become one snapshot, this long after the
 * first of them at most. */
#define COALESCE_MS 20
/* How long one wait for an update lasts (then the stop and restart flags
 * are looked at); also the pause between two attempts to watch again. */
#define NEXT_WAIT_MS 250
/* A quiet watcher checks the bucket's last sequence this often. */
#define LIVENESS_MS 1000

struct rec {
    char *key;
    size_t n; /* entries, one per pin */
    struct gw_server e[GW_REGKV_MAX_PINS];
};

/* The records of one read of the bucket. */
struct tree {
    void *root;
    size_t n_pins;
};

struct gw_regkv_watch {
    struct gw_js *js;
    kvStore *kv;
    char bucket[128];
    char kv_stream[136]; /* "KV_<bucket>" */
    uint32_t wait_ms; /* connect_timeout_ms: the initial read's bound */

    struct tree t;    /* watcher thread (the creator's before it starts) */
    kvWatcher *kw;    /* likewise; the pointer also under mu, for Stop */
    uint64_t last_rev;     /* the newest revision seen, any key (likewise) */
    uint64_t stall_target; /* a last sequence not seen yet at the last look */
    int64_t checked_ms;    /* monotonic: that look */

    pthread_t th;
    bool th_started;
    atomic_bool stop;
    atomic_bool restart; /* the connection came back: watch anew */
    atomic_bool up;
    atomic_uint_fast64_t snapshots, bad, restarts;

    pthread_mutex_t mu;           /* pending, kw (to stop it) */
    struct gw_registry *pending;  /* the newest snapshot, not taken yet */
    struct event *wake;
    gw_regkv_watch_fn fn;
    void *ud;
};

/* ------------------------------------------------------------ records */

static int rec_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rec *)a)->key, ((const struct rec *)b)->key);
}

static void rec_free(void *p)
{
    struct rec *r = p;
    if (r == NULL)
        return;
    gw_free(r->key);
    gw_free(r);
}

static void tree_clear(struct tree *t)
{
    tdestroy(t->root, rec_free);
    t->root = NULL;
    t->n_pins = 0;
}

static void tree_remove(struct tree *t, const char *key)
{
    struct rec probe = {.key = (char *)key};
    void *node = tfind(&probe, &t->root, rec_cmp);
    if (node == NULL)
        return;
    struct rec *r = *(struct rec **)node;
    tdelete(r, &t->root, rec_cmp);
    t->n_pins -= r->n;
    rec_free(r);
}

/* Puts the entries of |s| under |key|.  0 or GW_ENOMEM (the tree as
 * before). */
static int tree_put(struct tree *t, const char *key, const struct gw_regdb_server *s)
{
    struct rec probe = {.key = (char *)key};
    void *node = tfind(&probe, &t->root, rec_cmp);
    struct rec *r;

    if (node != NULL) {
        r = *(struct rec **)node;
        t->n_pins -= r->n;
    } else {
        r = gw_calloc(1, sizeof *r);
        if (r == NULL || (r->key = gw_strdup(key)) == NULL) {
            rec_free(r);
            return GW_ENOMEM;
        }
        if (tsearch(r, &t->root, rec_cmp) == NULL) {
            rec_free(r);
            return GW_ENOMEM;
        }
    }
    gw_regkv_rec_entries(s, r->e, &r->n);
    t->n_pins += r->n;
    return 0;
}

/* One update of key |key| into |t|: a put is decoded and must name the
 * server its key names; a delete or purge removes the record.  A value
 * that breaks the layout is logged by key and leaves the record as it
 * was.  Returns true when |t| changed. */
static bool apply(struct gw_regkv_watch *w, struct tree *t, kvEntry *e)
{
    const char *key = kvEntry_Key(e);
    kvOperation op = kvEntry_Operation(e);
    char err[256], want[GW_REGKV_KEY_MAX];
    struct gw_regdb_server s;

    if (kvEntry_Revision(e) > w->last_rev)
        w->last_rev = kvEntry_Revision(e);
    if (key == NULL || strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)) != 0)
        return false;
    if (op == kvOp_Delete || op == kvOp_Purge) {
        tree_remove(t, key);
        return true;
    }
    memset(&s, 0, sizeof s);
    int rc = gw_regkv_rec_decode(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &s, err,
                                 sizeof err);
    if (rc == 0 && (gw_regkv_server_key(s.name, want, sizeof want) != 0 || strcmp(want, key) != 0))
        rc = gw_fail(GW_EINVAL, err, sizeof err, "name: not the one the key names");
    if (rc == 0)
        rc = tree_put(t, key, &s);
    if (rc != 0) {
        atomic_fetch_add(&w->bad, 1);
        gw_log(GW_LOG_ERROR, NULL, "registry_record_refused",
               "bucket %s key %.200s: %s; the key keeps its previous record", w->bucket, key,
               rc == GW_ENOMEM ? "out of memory" : err);
        return false;
    }
    return true;
}

struct collect {
    struct gw_server *out;
    size_t n, cap;
};

static void collect_one(const void *node, VISIT v, void *arg)
{
    struct collect *c = arg;
    const struct rec *r = *(const struct rec *const *)node;
    if (v != postorder && v != leaf)
        return;
    for (size_t i = 0; i < r->n && c->n < c->cap; i++)
        c->out[c->n++] = r->e[i];
}

/* A snapshot of |t|, or NULL (logged) when it makes none. */
static struct gw_registry *build(struct gw_regkv_watch *w, const struct tree *t)
{
    struct collect c = {.cap = t->n_pins};
    struct gw_registry *r = NULL;
    char err[256];

    c.out = gw_calloc(t->n_pins ? t->n_pins : 1, sizeof *c.out);
    if (c.out == NULL) {
        gw_log(GW_LOG_ERROR, NULL, "registry_snapshot_failed",
               "out of memory for %zu pins; the previous snapshot stays", t->n_pins);
        return NULL;
    }
    twalk_r(t->root, collect_one, &c);
    if (gw_registry_build(c.out, c.n, &r, err, sizeof err) != 0)
        gw_log(GW_LOG_ERROR, NULL, "registry_snapshot_failed",
               "bucket %s: %s; the previous snapshot stays", w->bucket, err);
    else
        atomic_fetch_add(&w->snapshots, 1);
    gw_free(c.out);
    return r;
}

/* ------------------------------------------------------------ hand-over */

/* Watcher thread: |r| replaces a snapshot the loop has not taken yet. */
static void post(struct gw_regkv_watch *w, struct gw_registry *r)
{
    pthread_mutex_lock(&w->mu);
    struct gw_registry *old = w->pending;
    w->pending = r;
    pthread_mutex_unlock(&w->mu);
    gw_registry_unref(old); /* never seen by the loop: ours alone */
    event_active(w->wake, 0, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct gw_regkv_watch *w = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->mu);
    struct gw_registry *r = w->pending;
    w->pending = NULL;
    pthread_mutex_unlock(&w->mu);
    if (r != NULL)
        w->fn(r, w->ud);
}

/* ------------------------------------------------------------ watching */

static void set_kw(struct gw_regkv_watch *w, kvWatcher *kw)
{
    pthread_mutex_lock(&w->mu);
    w->kw = kw;
    pthread_mutex_unlock(&w->mu);
}

static void drop_kw(struct gw_regkv_watch *w)
{
    kvWatcher *kw = w->kw;
    set_kw(w, NULL);
    kvWatcher_Destroy(kw);
}

/* Makes a watcher and reads every current record into |t| (empty), until
 * libnats' "initial values done" marker, within |wait_ms|.  0, or a GW_E*
 * with the reason; w->kw is the new watcher on success. */
static int watch_all(struct gw_regkv_watch *w, struct tree *t, int64_t wait_ms, char *err,
                     size_t errlen)
{
    kvWatcher *kw = NULL;
    kvWatchOptions wo;
    int64_t deadline = gw_mono_ms() + wait_ms;
    natsStatus s;

    kvWatchOptions_Init(&wo);
    if ((s = kvStore_Watch(&kw, w->kv, KEYS, &wo)) != NATS_OK)
        return gw_fail(gw_js_error(s), err, errlen, "jetstream: watch bucket %s: %s", w->bucket,
                       natsStatus_GetText(s));
    set_kw(w, kw);
    for (;;) {
        kvEntry *e = NULL;
        int64_t left = deadline - gw_mono_ms();
        if (left <= 0 || atomic_load(&w->stop)) {
            drop_kw(w);
            return gw_fail(GW_ESTORAGE, err, errlen,
                           "jetstream: bucket %s: its records were not all read within %lld ms",
                           w->bucket, (long long)wait_ms);
        }
        s = kvWatcher_Next(&e, kw, left);
        if (s == NATS_OK && e == NULL)
            return 0; /* the initial values are in */
        if (s == NATS_OK) {
            apply(w, t, e);
            kvEntry_Destroy(e);
        } else if (s != NATS_TIMEOUT) {
            drop_kw(w);
            return gw_fail(gw_js_error(s), err, errlen, "jetstream: watch bucket %s: %s",
                           w->bucket, natsStatus_GetText(s));
        }
    }
}

/* After a reconnect or a failed watch: a fresh read of every key; the
 * snapshot it makes replaces the one in use.  Retried every NEXT_WAIT_MS
 * until it works or the watcher stops. */
static void rewatch(struct gw_regkv_watch *w)
{
    char err[256];
    int64_t since = gw_mono_ms();
    unsigned tries = 0;

    drop_kw(w);
    while (!atomic_load(&w->stop)) {
        struct tree t = {NULL, 0};
        atomic_store(&w->restart, false);
        w->last_rev = 0; /* the fresh read sees every key's last revision */
        w->stall_target = 0;
        w->checked_ms = gw_mono_ms();
        int rc = watch_all(w, &t, w->wait_ms, err, sizeof err);
        if (rc == 0) {
            tree_clear(&w->t);
            w->t = t;
            struct gw_registry *r = build(w, &w->t);
            size_t pins = r ? gw_registry_count(r) : 0;
            if (r != NULL)
                post(w, r);
            atomic_fetch_add(&w->restarts, 1);
            atomic_store(&w->up, true);
            gw_log(GW_LOG_INFO, NULL, "registry_watch_resumed",
                   "bucket %s read again after %lld ms (%u failed attempts): %zu pins", w->bucket,
                   (long long)(gw_mono_ms() - since), tries, pins);
            return;
        }
        tree_clear(&t);
        if (tries++ == 0)
            gw_log(GW_LOG_WARN, NULL, "registry_watch_retry",
                   "%s; the last snapshot stays in use, trying again", err);
        struct timespec ts = {0, NEXT_WAIT_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A quiet watcher's look at the bucket stream: true when a write it had
 * not seen at the previous look is still missing (the consumer is gone). */
static bool stalled(struct gw_regkv_watch *w)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    bool gone = false;

    w->checked_ms = gw_mono_ms();
    if (!atomic_load(&w->up) ||
        js_GetStreamInfo(&si, gw_js_ctx(w->js), w->kv_stream, NULL, &jerr) != NATS_OK)
        return false; /* no answer: the connection's events say more */
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (w->stall_target != 0 && w->last_rev < w->stall_target)
        gone = true;
    w->stall_target = last > w->last_rev ? last : 0;
    return gone;
}

static void *watch_thread(void *arg)
{
    struct gw_regkv_watch *w = arg;
    bool dirty = false;
    int64_t dirty_since = 0;

    while (!atomic_load(&w->stop)) {
        if (atomic_load(&w->restart) || w->kw == NULL) {
            rewatch(w);
            dirty = false;
            continue;
        }
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w->kw, dirty ? COALESCE_MS : NEXT_WAIT_MS);
        bool more = false;
        if (s == NATS_OK && e != NULL) {
            if (apply(w, &w->t, e) && !dirty) {
                dirty = true;
                dirty_since = gw_mono_ms();
            }
            more = kvEntry_Delta(e) > 0; /* updates already waiting behind it */
            kvEntry_Destroy(e);
        } else if (s == NATS_TIMEOUT && !dirty && gw_mono_ms() - w->checked_ms >= LIVENESS_MS &&
                   stalled(w)) {
            gw_log(GW_LOG_WARN, NULL, "registry_watch_lost",
                   "bucket %s: writes up to revision %llu not received (the consumer's node is "
                   "gone?); watching anew",
                   w->bucket, (unsigned long long)w->stall_target);
            atomic_store(&w->up, false);
            atomic_store(&w->restart, true);
        } else if (s != NATS_OK && s != NATS_TIMEOUT) {
            if (!atomic_load(&w->stop)) {
                gw_log(GW_LOG_WARN, NULL, "registry_watch_lost", "bucket %s: %s; watching anew",
                       w->bucket, natsStatus_GetText(s));
                atomic_store(&w->up, false);
                atomic_store(&w->restart, true);
            }
        }
        if (dirty && (!more || gw_mono_ms() - dirty_since >= COALESCE_MS)) {
            struct gw_registry *r = build(w, &w->t);
            if (r != NULL)
                post(w, r);
            dirty = false;
        }
    }
    return NULL;
}

/* libnats' thread: the connection's state. */
static void on_js_event(enum gw_js_event ev, const char *url, void *ud)
{
    struct gw_regkv_watch *w = ud;
    (void)url;
    if (ev == GW_JS_DISCONNECTED) {
        atomic_store(&w->up, false);
        gw_log(GW_LOG_WARN, NULL, "registry_watch_lost",
               "lost the NATS server; the last registry snapshot stays in use");
    } else if (ev == GW_JS_RECONNECTED) {
        atomic_store(&w->restart, true);
    }
}

/* "schema" must be there, and be the layout this build reads. */
static int check_schema(struct gw_regkv_watch *w, char *err, size_t errlen)
{
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, w->kv, "schema");
    int rv = 0;

    if (s == NATS_NOT_FOUND) /* panelgatectl writes it when it makes the bucket */
        return gw_fail(GW_ECONFIG, err, errlen,
                       "jetstream: bucket %s: no schema key: not a panelgate registry",
                       w->bucket);
    if (s != NATS_OK)
        return gw_fail(gw_js_error(s), err, errlen, "jetstream: bucket %s: key schema: %s",
                       w->bucket, natsStatus_GetText(s));
    const char *v = kvEntry_Value(e);
    int n = kvEntry_ValueLen(e);
    if (kvEntry_Operation(e) == kvOp_Put &&
        (n != (int)strlen(GW_REGKV_SCHEMA) || memcmp(v, GW_REGKV_SCHEMA, (size_t)n) != 0))
        rv = gw_fail(GW_ECONFIG, err, errlen,
                     "jetstream: bucket %s: layout version is not " GW_REGKV_SCHEMA
                     " (key schema): written by another version of panelgatectl",
                     w->bucket);
    kvEntry_Destroy(e);
    return rv;
}

int gw_regkv_watch_new(struct gw_regkv_watch **out, struct gw_registry **first,
                       struct event_base *base, const struct gw_config *cfg,
                       gw_regkv_watch_fn fn, void *ud, char *err, size_t errlen)
{
    struct gw_regkv_watch *w = NULL;
    struct gw_registry *r = NULL;
    natsStatus s;
    int rv = GW_ENOMEM;

    *out = NULL;
    *first = NULL;
    w = gw_calloc(1, sizeof *w);
    if (w == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "registry watch: out of memory");
    pthread_mutex_init(&w->mu, NULL);
    atomic_init(&w->stop, false);
    atomic_init(&w->restart, false);
    atomic_init(&w->up, false);
    atomic_init(&w->snapshots, 0);
    atomic_init(&w->bad, 0);
    atomic_init(&w->restarts, 0);
    w->fn = fn;
    w->ud = ud;
    w->wait_ms = cfg->js_connect_timeout_ms;
    snprintf(w->bucket, sizeof w->bucket, "%s", cfg->js_registry_bucket);
    snprintf(w->kv_stream, sizeof w->kv_stream, "KV_%s", w->bucket);
    if ((w->wake = event_new(base, -1, 0, on_wake, w)) == NULL) {
        gw_seterr(err, errlen, "registry watch: event_new failed");
        goto fail;
    }
    if ((rv = gw_js_connect(&w->js, cfg, "panelgate-registry", on_js_event, w, err, errlen)) != 0)
        goto fail;
    s = js_KeyValue(&w->kv, gw_js_ctx(w->js), cfg->js_registry_bucket);
    if (s == NATS_NOT_FOUND) {
        rv = gw_fail(GW_ENOTFOUND, err, errlen,
                     "jetstream: no registry bucket %s on the cluster: nothing was registered "
                     "there yet (panelgatectl --config FILE register ...), or [jetstream] "
                     "registry_bucket names another one",
                     cfg->js_registry_bucket);
        goto fail;
    }
    if (s != NATS_OK) {
        rv = gw_fail(gw_js_error(s), err, errlen, "jetstream: registry bucket %s: %s",
                     cfg->js_registry_bucket, natsStatus_GetText(s));
        goto fail;
    }
    if ((rv = check_schema(w, err, errlen)) != 0 ||
        (rv = watch_all(w, &w->t, w->wait_ms, err, errlen)) != 0)
        goto fail;
    if ((r = build(w, &w->t)) == NULL) {
        rv = gw_fail(GW_EINVAL, err, errlen,
                     "jetstream: bucket %s: its records make no registry (see the log)",
                     w->bucket);
        goto fail;
    }
    atomic_store(&w->up, true);
    if (pthread_create(&w->th, NULL, watch_thread, w) != 0) {
        rv = gw_fail(GW_EINTERNAL, err, errlen, "registry watch: cannot start its thread");
        goto fail;
    }
    w->th_started = true;
    gw_log(GW_LOG_INFO, NULL, "registry_watching", "bucket %s: %zu pins", w->bucket,
           gw_registry_count(r));
    *first = r;
    *out = w;
    return 0;
fail:
    gw_registry_unref(r);
    gw_regkv_watch_free(w);
    return rv;
}

void gw_regkv_watch_get_stats(struct gw_regkv_watch *w, struct gw_regkv_watch_stats *out)
{
    memset(out, 0, sizeof *out);
    if (w == NULL)
        return;
    out->up = atomic_load(&w->up);
    out->snapshots = atomic_load(&w->snapshots);
    out->bad_records = atomic_load(&w->bad);
    out->restarts = atomic_load(&w->restarts);
}

void gw_regkv_watch_free(struct gw_regkv_watch *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    pthread_mutex_lock(&w->mu);
    if (w->kw != NULL)
        kvWatcher_Stop(w->kw); /* a waiting kvWatcher_Next returns at once */
    pthread_mutex_unlock(&w->mu);
    if (w->th_started)
        pthread_join(w->th, NULL);
    kvWatcher_Destroy(w->kw);
    kvStore_Destroy(w->kv);
    gw_js_free(w->js); /* after it, no callback of libnats runs */
    tree_clear(&w->t);
    gw_registry_unref(w->pending);
    if (w->wake != NULL)
        event_free(w->wake);
    pthread_mutex_destroy(&w->mu);
    gw_free(w);
}
