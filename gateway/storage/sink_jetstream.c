/*
 * sink_jetstream.c - the JetStream backend of the sink ([storage]
 * storage_engine = jetstream; the message contract is in docs/STORAGE.md).
 *
 * write_batch publishes every FRAME item asynchronously (subject
 * <subject_prefix>.<server id>, Nats-Msg-Id <server id>.<seq>, the
 * Panelgate-* headers, the stored body as data), at most max_in_flight
 * unacknowledged at once (libnats' MaxPending), then waits for the acks,
 * publish_timeout_ms after the last publish at most.  Each item's status
 * comes from its own ack: PubAck STORED, PubAck with Duplicate DUPLICATE,
 * an error, a timeout or no ack FAILED (503; the agent resends the same
 * seq and the stream's duplicate window keeps it once).  A batch in which
 * no frame was stored fails as a whole (GW_ESTORAGE): the sink's failing
 * state, /healthz, the storage alarm and the probe then work exactly as
 * for SQLite.  While the connection is down, batches fail at once and the
 * idle check reports it, so /healthz shows the outage without traffic.
 *
 * Activity rows go to the activity stream ([jetstream] activity_stream,
 * docs/STORAGE.md), one acknowledged publish each (gw_regkv_activity_add),
 * actor "gateway"; the registry is the bucket, which the gateway reads
 * through its watcher (regkv_watch.h).  Nothing of this engine touches an
 * SQLite file.  Retention is the stream's MaxAge: main.c submits no purge
 * with this engine, and one that arrives anyway is rejected.
 *
 * Threads: write_batch runs on the sink's writer thread; acks arrive on
 * libnats' thread (on_ack) and meet the batch under mu.  A late ack, after
 * its batch gave up on it, finds no entry and is dropped: the frame was
 * answered 503 and its resend is a duplicate.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "js.h"
#include "js_msg.h"
#include "log.h"
#include "regkv.h"
#include "sink.h"

#define ACK_GRACE_MS 1000 /* past publish_timeout_ms, for libnats' own timeout */

enum { P_WAIT = 0, P_DONE };

/* One frame of the batch in flight. */
struct pend {
    int64_t server_id;
    uint64_t seq;
    struct gw_sink_item *it;
    int state;
};

struct jsk {
    struct gw_js *js;
    jsCtx *pub;    /* publish context: our ack handler, MaxPending */
    struct gw_regkv *kv; /* the activity stream (and bucket) on js */
    char *prefix;  /* subject_prefix */
    uint32_t timeout_ms;
    atomic_bool interrupted;
    bool published;  /* an async publish was ever made (see jsk_close) */

    pthread_mutex_t mu; /* the rest */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC: unresolved reached 0 */
    struct pend *pend;
    size_t n_pend, cap_pend, next; /* next: where the next ack most likely is */
    size_t unresolved;
    char fail_why[200]; /* the first failed ack of the batch */
};

/* ------------------------------------------------------------ acks */

static int parse_msg_id(const char *v, int64_t *server_id, uint64_t *seq)
{
    char *end;
    long long id = strtoll(v, &end, 10);
    if (end == v || *end != '.' || id <= 0)
        return GW_EINVAL;
    const char *s = end + 1;
    unsigned long long q = strtoull(s, &end, 10);
    if (end == s || *end != '\0')
        return GW_EINVAL;
    *server_id = id;
    *seq = q;
    return 0;
}

/* The first waiting entry of (server_id, seq), from the hint on. */
static struct pend *find(struct jsk *k, int64_t server_id, uint64_t seq)
{
    for (size_t n = 0; n < k->n_pend; n++) {
        size_t i = (k->next + n) % k->n_pend;
        struct pend *p = &k->pend[i];
        if (p->state == P_WAIT && p->server_id == server_id && p->seq == seq) {
            k->next = (i + 1) % k->n_pend;
            return p;
        }
    }
    return NULL;
}

static void resolve(struct jsk *k, struct pend *p, enum gw_sink_status st)
{
    p->it->status = st;
    p->state = P_DONE;
    if (--k->unresolved == 0)
        pthread_cond_broadcast(&k->cv);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct jsk *k = closure;
    const char *id = NULL;
    int64_t server_id;
    uint64_t seq;
    (void)js;

    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != NULL &&
        parse_msg_id(id, &server_id, &seq) == 0) {
        pthread_mutex_lock(&k->mu);
        struct pend *p = find(k, server_id, seq);
        if (p != NULL) {
            if (pa != NULL) {
                resolve(k, p, pa->Duplicate ? GW_SINK_DUPLICATE : GW_SINK_STORED);
            } else {
                if (k->fail_why[0] == '\0')
                    snprintf(k->fail_why, sizeof k->fail_why,
                             "jetstream: publish not acknowledged: %s (JetStream error %d)",
                             natsStatus_GetText(pae ? pae->Err : NATS_ERR),
                             pae ? (int)pae->ErrCode : 0);
                resolve(k, p, GW_SINK_FAILED);
            }
        }
        pthread_mutex_unlock(&k->mu);
    }
    natsMsg_Destroy(msg);
}

/* ------------------------------------------------------------ publish */

static int reserve(struct jsk *k, size_t n)
{
    if (n <= k->cap_pend)
        return 0;
    struct pend *p = gw_realloc(k->pend, n * sizeof *p);
    if (p == NULL)
        return GW_ENOMEM;
    k->pend = p;
    k->cap_pend = n;
    return 0;
}

static struct timespec mono_deadline(int64_t at_ms)
{
    struct timespec ts = {.tv_sec = at_ms / 1000, .tv_nsec = (long)(at_ms % 1000) * 1000000};
    return ts;
}

/* Publishes the n frames, waits for their acks; every status set.  The
 * number of frames stored or duplicate goes to *landed. */
static void publish_frames(struct jsk *k, struct gw_sink_item **fr, size_t n, size_t *landed)
{
    jsPubOptions po;
    char why[200] = "";
    size_t sent = 0;

    *landed = 0;
    for (size_t i = 0; i < n; i++)
        fr[i]->status = GW_SINK_FAILED;
    if (!gw_js_connected(k->js)) {
        gw_sink_note_error("jetstream: not connected to any NATS server");
        return;
    }
    pthread_mutex_lock(&k->mu);
    if (reserve(k, n) != 0) {
        pthread_mutex_unlock(&k->mu);
        gw_sink_note_error("jetstream: out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        k->pend[i] = (struct pend){fr[i]->server_id, fr[i]->seq, fr[i], P_WAIT};
    k->n_pend = n;
    k->unresolved = n;
    k->next = 0;
    k->fail_why[0] = '\0';
    pthread_mutex_unlock(&k->mu);

    jsPubOptions_Init(&po);
    po.MaxWait = k->timeout_ms;
    for (size_t i = 0; i < n; i++) {
        natsMsg *m = NULL;
        const struct gw_sink_item *it = fr[i];
        natsStatus s = NATS_ILLEGAL_STATE;
        if (!atomic_load(&k->interrupted))
            s = gw_js_msg_make(k->prefix, it->server_id, it->seq, it->ts_ms, it->received_ms,
                               it->body, it->body_len, &m);
        if (s == NATS_OK) {
            k->published = true;
            s = js_PublishMsgAsync(k->pub, &m, &po);
        }
        natsMsg_Destroy(m); /* NULL once libnats took it */
        if (s == NATS_OK) {
            sent++;
            continue;
        }
        if (why[0] == '\0')
            snprintf(why, sizeof why, "jetstream: publish: %s", natsStatus_GetText(s));
        pthread_mutex_lock(&k->mu);
        if (k->pend[i].state == P_WAIT)
            resolve(k, &k->pend[i], GW_SINK_FAILED);
        pthread_mutex_unlock(&k->mu);
    }

    int64_t deadline = gw_mono_ms() + k->timeout_ms + ACK_GRACE_MS;
    struct timespec ts = mono_deadline(deadline);
    pthread_mutex_lock(&k->mu);
    while (k->unresolved > 0 && !atomic_load(&k->interrupted))
        if (pthread_cond_timedwait(&k->cv, &k->mu, &ts) != 0 && gw_mono_ms() >= deadline)
            break;
    size_t late = k->unresolved;
    pthread_mutex_unlock(&k->mu);
    if (late > 0) {
        /* take the rest back from libnats: their acks are dropped */
        natsMsgList list;
        if (js_PublishAsyncGetPendingList(&list, k->pub) == NATS_OK)
            natsMsgList_Destroy(&list);
        if (why[0] == '\0')
            snprintf(why, sizeof why,
                     "jetstream: %zu publish(es) not acknowledged within publish_timeout_ms "
                     "(%" PRIu32 " ms)",
                     late, k->timeout_ms);
    }
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < n; i++) {
        if (k->pend[i].state == P_WAIT)
            resolve(k, &k->pend[i], GW_SINK_FAILED);
        else if (fr[i]->status == GW_SINK_STORED || fr[i]->status == GW_SINK_DUPLICATE)
            ++*landed;
    }
    if (why[0] == '\0')
        snprintf(why, sizeof why, "%s", k->fail_why);
    k->n_pend = 0; /* a late ack finds nothing */
    pthread_mutex_unlock(&k->mu);
    if (*landed < n && why[0] != '\0')
        gw_sink_note_error(why);
    (void)sent;
}

/* ------------------------------------------------------------ activity */

/* One activity row to the stream, acknowledged: STORED, or FAILED with
 * the reason noted (the row is dropped, as the SQLite engine drops a row
 * its failed batch held).  A purge is not for this engine: REJECTED. */
static void write_other(struct jsk *k, struct gw_sink_item *it)
{
    char err[256], small[512];
    char *details = small;

    it->status = GW_SINK_FAILED;
    if (it->kind != GW_SINK_ACTIVITY) {
        it->status = GW_SINK_REJECTED;
        return;
    }
    /* the details are JSON text of body_len bytes, without a NUL */
    if (it->body_len >= sizeof small && (details = gw_malloc(it->body_len + 1)) == NULL) {
        gw_sink_note_error("jetstream: out of memory");
        return;
    }
    if (it->body_len > 0)
        memcpy(details, it->body, it->body_len);
    details[it->body_len] = '\0';
    if (gw_regkv_activity_add(k->kv, it->received_ms / 1000, "gateway",
                              it->action ? it->action : "unknown", it->server_id, it->server_name,
                              it->body_len > 0 ? details : NULL, err, sizeof err) == 0)
        it->status = GW_SINK_STORED;
    else
        gw_sink_note_error(err);
    if (details != small)
        gw_free(details);
}

/* ------------------------------------------------------------ sink ops */

static int jsk_write_batch(void *state, struct gw_sink_item **items, size_t n)
{
    struct jsk *k = state;
    struct gw_sink_item **fr = NULL, **rest = NULL;
    size_t n_fr = 0, n_rest = 0, landed = 0;
    int rv = 0;

    if (n == 0)
        return 0;
    fr = gw_malloc(n * sizeof *fr);
    rest = gw_malloc(n * sizeof *rest);
    if (fr == NULL || rest == NULL) {
        gw_sink_note_error("jetstream: out of memory");
        rv = GW_ESTORAGE;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i]->kind == GW_SINK_FRAME)
            fr[n_fr++] = items[i];
        else
            rest[n_rest++] = items[i];
    }
    if (n_fr > 0) {
        publish_frames(k, fr, n_fr, &landed);
        if (landed == 0) { /* the cluster is not there: the batch fails */
            rv = GW_ESTORAGE;
            goto out;
        }
    }
    /* Activity rows: the activity stream, each on its own.  A row that
     * fails does not fail the frames (they are in the stream already); a
     * batch of rows alone fails when one of them did, so that an outage
     * shows without frames. */
    for (size_t i = 0; i < n_rest; i++) {
        write_other(k, rest[i]);
        if (n_fr == 0 && rest[i]->status == GW_SINK_FAILED)
            rv = GW_ESTORAGE;
    }
out:
    if (rv != 0)
        for (size_t i = 0; i < n; i++)
            items[i]->status = GW_SINK_FAILED;
    gw_free(fr);
    gw_free(rest);
    return rv;
}

static int jsk_check(void *state, int reopen_ok)
{
    struct jsk *k = state;
    (void)reopen_ok; /* no file to reopen */
    if (!gw_js_connected(k->js)) {
        gw_sink_note_error("jetstream: not connected to any NATS server");
        return GW_ESTORAGE;
    }
    return 0;
}

static void jsk_interrupt(void *state)
{
    struct jsk *k = state;
    if (k == NULL)
        return;
    atomic_store(&k->interrupted, true);
    pthread_mutex_lock(&k->mu);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void jsk_close(void *state)
{
    struct jsk *k = state;
    if (k == NULL)
        return;
    /* libnats 3.4 reads the table of pending publishes without checking it
     * exists: before the first async publish it does not (SIGSEGV when
     * the gateway stopped before its first frame) */
    if (k->pub != NULL && k->published) {
        natsMsgList list;
        if (js_PublishAsyncGetPendingList(&list, k->pub) == NATS_OK)
            natsMsgList_Destroy(&list);
    }
    jsCtx_Destroy(k->pub);
    gw_regkv_free(k->kv); /* before the connection it uses */
    gw_js_free(k->js);    /* after it, no callback of libnats runs */
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    gw_free(k->pend);
    gw_free(k->prefix);
    gw_free(k);
}

static void on_event(enum gw_js_event ev, const char *url, void *ud)
{
    (void)ud;
    switch (ev) {
    case GW_JS_DISCONNECTED:
        gw_log(GW_LOG_WARN, NULL, "jetstream_disconnected",
               "lost the NATS server; reconnecting (frames are answered 503 meanwhile)");
        break;
    case GW_JS_RECONNECTED:
        gw_log(GW_LOG_INFO, NULL, "jetstream_reconnected", "connected to %s", url);
        break;
    case GW_JS_CLOSED:
        gw_log(GW_LOG_INFO, NULL, "jetstream_closed", "the NATS connection is closed");
        break;
    }
}

static int jsk_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    struct jsk *k = NULL;
    pthread_condattr_t ca;
    jsOptions jo;
    char warn[1024];
    natsStatus s;
    int rv = GW_ENOMEM;

    *state = NULL;
    k = gw_calloc(1, sizeof *k);
    if (k == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "jetstream: out of memory");
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&k->interrupted, false);
    k->timeout_ms = cfg->js_publish_timeout_ms;
    k->prefix = gw_strdup(cfg->js_subject_prefix);
    if (k->prefix == NULL) {
        gw_seterr(err, errlen, "jetstream: out of memory");
        goto fail;
    }
    if ((rv = gw_js_connect(&k->js, cfg, "panelgate", on_event, NULL, err, errlen)) != 0)
        goto fail;
    if ((rv = gw_js_ensure_stream(k->js, cfg, warn, sizeof warn, err, errlen)) != 0)
        goto fail;
    if (warn[0] != '\0')
        gw_log(GW_LOG_WARN, NULL, "jetstream_stream_differs", "stream %s: %s", cfg->js_stream,
               warn);
    jsOptions_Init(&jo);
    jo.Wait = cfg->js_publish_timeout_ms;
    jo.PublishAsync.MaxPending = cfg->js_max_in_flight;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = k;
    jo.PublishAsync.StallWait = cfg->js_publish_timeout_ms;
    if ((s = natsConnection_JetStream(&k->pub, gw_js_nc(k->js), &jo)) != NATS_OK) {
        rv = gw_js_error(s);
        gw_seterr(err, errlen, "jetstream: publish context: %s", natsStatus_GetText(s));
        goto fail;
    }
    /* the activity stream: made with the bucket by panelgatectl register;
     * the gateway only binds it */
    if ((rv = gw_regkv_open(&k->kv, k->js, cfg, false, err, errlen)) != 0)
        goto fail;
    gw_log(GW_LOG_INFO, NULL, "jetstream_ready",
           "stream %s (replicas %" PRIu32 "), subjects %s.>; activity log in stream %s",
           cfg->js_stream, cfg->js_replicas, cfg->js_subject_prefix, cfg->js_activity_stream);
    *state = k;
    return 0;
fail:
    jsk_close(k);
    return rv;
}

/* The connection's counters (js.c keeps them atomic: any thread). */
static void jsk_engine_stats(void *state, struct gw_sink_stats *out)
{
    struct jsk *k = state;
    struct gw_js_stats js;
    if (k == NULL || k->js == NULL)
        return;
    gw_js_get_stats(k->js, &js);
    out->engine_connected = js.connected ? 1 : 0;
    out->engine_disconnects = js.disconnects;
    out->engine_reconnects = js.reconnects;
}

const struct gw_sink_ops gw_sink_jetstream_ops = {
    .name = "jetstream",
    .open = jsk_open,
    .write_batch = jsk_write_batch,
    .close = jsk_close,
    .interrupt = jsk_interrupt,
    .check = jsk_check,
    .engine_stats = jsk_engine_stats,
};
