/*
 * panelgate_store.c - panelgate-store, the panel-side store of the
 * JetStream engine (docs/STORAGE.md, "The store consumer").
 *
 * A durable pull consumer ([jetstream] consumer, AckExplicit, filter
 * "<subject_prefix>.>") on the frames stream; several instances may share
 * it.  Each round fetches up to [storage] batch_max_frames messages
 * (waiting at most FETCH_WAIT_MS), turns each into a gw_sink_item (the
 * message read against the contract by gw_js_msg_read, js_msg.h: its
 * headers, and its body by gw_stored_decode; the samples rebuilt by
 * gw_samples_build), writes them with the SQLite backend (gw_sink_sqlite_ops: the single-box gateway's code and schema,
 * registry check off) as one transaction, and only after that commit
 * acknowledges:
 *   stored or duplicate (frames' (server_id, seq) key)   Ack
 *   rejected by SQLite, or breaking the contract         Term, one log line
 *   the batch failed                                     Nak, delayed by
 *                                                        [storage] retry_after_s
 * A message that was committed but not acknowledged (the process died
 * between the two) comes back after the consumer's ack wait and is then a
 * duplicate: stored once.
 *
 * After each round the rows that arrived on the activity stream are
 * applied (store_activity.h: erase, purge; a frame of an erased server is
 * acknowledged and dropped before the batch is written), and every
 * [storage] retention_interval_s the retention purge runs on the file.
 *
 * One thread: the fetch, the write, the acks and the activity rows run in
 * order on it.  SIGTERM/SIGINT end the loop after the batch in progress.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>
#include <sqlite3.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "js.h"
#include "js_msg.h"
#include "log.h"
#include "samples.h"
#include "sink.h"
#include "store_activity.h"

#define PANELGATE_STORE_VERSION "0.1.0"
#define EX_USAGE 64
#define EX_CONFIG 78
/* The longest a fetch waits for its first message: how soon SIGTERM is
 * seen, and activity rows are applied, while the stream is idle. */
#define FETCH_WAIT_MS 1000
/* Activity rows applied at most per round. */
#define ACTIVITY_PER_ROUND 1000
/* Erased servers whose dropped frames were logged (the rest are counted). */
#define DROP_LOGGED_MAX 256

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: panelgate-store --config FILE\n"
            "       panelgate-store --version | --help\n"
            "\n"
            "The panel-side store of the JetStream engine: a durable pull consumer\n"
            "of the frames stream that writes every frame, once, into the SQLite\n"
            "schema the single-box gateway writes (frames and samples), and\n"
            "acknowledges each message only after its transaction commits.\n"
            "Several instances may share the consumer.  It follows the activity\n"
            "stream too: an erase row deletes that server's rows (and drops its\n"
            "later frames), a purge row the frames received before its cutoff;\n"
            "and it purges frames older than retention_days from its database.\n"
            "\n"
            "  -c, --config FILE   the gateway's configuration format: [storage]\n"
            "                      sqlite_path, batch_max_frames, retry_after_s,\n"
            "                      busy_timeout_ms, sqlite_synchronous, retention_days,\n"
            "                      retention_interval_s; [jetstream]\n"
            "                      servers, TLS, credentials, stream, subject_prefix,\n"
            "                      consumer, ack_wait_ms, replicas,\n"
            "                      duplicate_window_s, activity_stream,\n"
            "                      activity_subject_prefix;\n"
            "                      [frame] limits; [log] level\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop after the batch in progress is committed\n"
            "and acknowledged, then exit 0.\n"
            "\n"
            "Exit status: 0 ok, 1 runtime failure, 64 usage, 78 configuration error.\n");
}

static void version(void)
{
    printf("panelgate-store %s (protocol v%d; NATS C client %s, SQLite %s)\n",
           PANELGATE_STORE_VERSION, PA_PROTOCOL_VERSION, nats_GetVersion(),
           sqlite3_libversion());
}

/* ---- one message -> one item ---- */

struct msg {
    natsMsg *m;
    struct gw_sink_item *it; /* NULL: the message broke the contract */
};

/* The item of message |m|, or GW_EINVAL with why (names, never values)
 * when the message breaks the contract (gw_js_msg_read), GW_ENOMEM when
 * memory ran out. */
static int build_item(const struct gw_config *cfg, natsMsg *m, struct gw_sink_item **out,
                      char *why, size_t whylen)
{
    struct pa_arena a;
    struct gw_js_msg jm;
    struct gw_samples *samples = NULL;
    int rv;

    *out = NULL;
    pa_arena_init(&a, 0, &gw_pa_mem);
    if ((rv = gw_js_msg_read(cfg, m, &a, &jm, why, whylen)) != 0)
        goto out;
    if (cfg->store_samples && (rv = gw_samples_build(jm.frame, &jm.viewers, &samples)) != 0) {
        gw_seterr(why, whylen, "out of memory for the samples");
        goto out;
    }
    struct gw_sink_item *it = gw_sink_item_new(jm.frame->server.name, jm.body, jm.body_len);
    if (it == NULL) {
        gw_free(samples);
        rv = gw_fail(GW_ENOMEM, why, whylen, "out of memory for the item");
        goto out;
    }
    it->kind = GW_SINK_FRAME;
    it->server_id = jm.server_id;
    it->seq = jm.seq;
    it->ts_ms = jm.ts_ms;
    it->received_ms = jm.received_ms;
    it->samples = samples;
    *out = it;
    rv = 0;
out:
    pa_arena_cleanup(&a);
    return rv;
}

static void term(natsMsg *m, const char *event, const char *why)
{
    char sseq[32] = "?";
    uint64_t n = gw_js_msg_stream_seq(m);
    if (n != 0)
        snprintf(sseq, sizeof sseq, "%" PRIu64, n);
    gw_log(GW_LOG_WARN, NULL, event,
           "stream message %s terminated (never delivered again, not stored): %s", sseq, why);
    natsStatus s = natsMsg_Term(m, NULL);
    if (s != NATS_OK)
        gw_log(GW_LOG_WARN, NULL, "term_failed", "stream message %s: %s", sseq,
               natsStatus_GetText(s));
}

/* ---- the consumer ---- */

struct store {
    const struct gw_config *cfg;
    struct gw_js *js;
    natsSubscription *sub;
    void *db; /* gw_sink_sqlite_ops state */
    struct msg *msgs;
    struct gw_sink_item **items;
    struct gw_storeact *act; /* the activity stream, retention, erased ids */
    int64_t next_retention_ms; /* gw_mono_ms of the next retention purge */
    int64_t drop_logged[DROP_LOGGED_MAX];
    size_t n_drop_logged;
    int failing;
    int fetch_failing;
    uint64_t stored, duplicates, terminated, naked, dropped;
};

/* Creates the durable consumer when it is missing (js_AddConsumer, so that
 * no instance's exit deletes it), else checks what the contract needs of
 * it, then binds a pull subscription to it. */
static int bind_consumer(struct store *st, char *err, size_t errlen)
{
    const struct gw_config *cfg = st->cfg;
    jsCtx *js = gw_js_ctx(st->js);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    char filter[512];
    int rv = GW_ESTORAGE;

    snprintf(filter, sizeof filter, "%s.>", cfg->js_subject_prefix);
    natsStatus s = js_GetConsumerInfo(&ci, js, cfg->js_stream, cfg->js_consumer, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = cfg->js_consumer;
        cc.Name = cfg->js_consumer;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.FilterSubject = filter;
        /* a message fetched and not acknowledged (the instance died) is
         * delivered again after it */
        cc.AckWait = (int64_t)cfg->js_ack_wait_ms * 1000000;
        jerr = 0;
        s = js_AddConsumer(&ci, js, cfg->js_stream, &cc, NULL, &jerr);
        if (s == NATS_OK)
            gw_log(GW_LOG_INFO, NULL, "consumer_created",
                   "durable consumer %s created on stream %s", cfg->js_consumer, cfg->js_stream);
    }
    if (s != NATS_OK) {
        gw_seterr(err, errlen, "jetstream: consumer %s on stream %s: %s (JetStream error %d)",
                  cfg->js_consumer, cfg->js_stream, natsStatus_GetText(s), (int)jerr);
        rv = gw_js_error(s);
        goto out;
    }
    if (ci->Config->AckPolicy != js_AckExplicit || ci->Config->FilterSubject == NULL ||
        strcmp(ci->Config->FilterSubject, filter) != 0) {
        gw_seterr(err, errlen,
                  "jetstream: consumer %s on stream %s is not the store's (needs AckExplicit and "
                  "filter %s)",
                  cfg->js_consumer, cfg->js_stream, filter);
        rv = GW_ECONFIG;
        goto out;
    }
    /* Not an error: the consumer is shared, and the value it has is the one
     * that applies to every instance bound to it (an operator edits it on
     * the consumer, e.g. `nats consumer edit`). */
    if (ci->Config->AckWait != (int64_t)cfg->js_ack_wait_ms * 1000000)
        gw_log(GW_LOG_WARN, NULL, "consumer_differs",
               "consumer %s on stream %s: ack_wait_ms: configured %" PRIu32
               ", consumer has %" PRId64 " (the consumer's value applies)",
               cfg->js_consumer, cfg->js_stream, cfg->js_ack_wait_ms,
               ci->Config->AckWait / 1000000);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg->js_stream;
    so.Consumer = cfg->js_consumer;
    jerr = 0;
    s = js_PullSubscribe(&st->sub, js, filter, cfg->js_consumer, NULL, &so, &jerr);
    if (s != NATS_OK) {
        gw_seterr(err, errlen, "jetstream: binding to consumer %s: %s (JetStream error %d)",
                  cfg->js_consumer, natsStatus_GetText(s), (int)jerr);
        rv = gw_js_error(s);
        goto out;
    }
    rv = 0;
out:
    jsConsumerInfo_Destroy(ci);
    return rv;
}

/* The frame of an erased server: acknowledged and dropped, logged once
 * per server. */
static void drop_erased(struct store *st, struct msg *e)
{
    int64_t id = e->it->server_id;
    size_t i;
    st->dropped++;
    natsMsg_Ack(e->m, NULL);
    for (i = 0; i < st->n_drop_logged && st->drop_logged[i] != id; i++)
        ;
    if (i == st->n_drop_logged && i < DROP_LOGGED_MAX) {
        st->drop_logged[st->n_drop_logged++] = id;
        gw_log(GW_LOG_INFO, NULL, "erased_frame_dropped",
               "a frame of erased server id %" PRId64
               " acknowledged and dropped (its later ones are counted in \"stopped\")",
               id);
    }
    gw_sink_item_free(e->it);
    e->it = NULL;
}

/* Takes the frames of erased servers out of the batch (dropped), and those
 * whose check failed (Nak: again later).  One lookup per server. */
static void filter_erased(struct store *st, int n)
{
    int64_t last = 0;
    int last_yes = 0, last_rv = 0;
    for (int i = 0; i < n; i++) {
        struct msg *e = &st->msgs[i];
        char err[256];
        if (e->it == NULL)
            continue;
        if (last == 0 || e->it->server_id != last) {
            last = e->it->server_id;
            last_rv = gw_storeact_erased(st->act, last, &last_yes, err, sizeof err);
            if (last_rv != 0)
                gw_log(GW_LOG_WARN, NULL, "erased_check_failed", "%s", err);
        }
        if (last_rv != 0) {
            st->naked++;
            natsMsg_NakWithDelay(e->m, (int64_t)st->cfg->retry_after_s * 1000, NULL);
            gw_sink_item_free(e->it);
            e->it = NULL;
        } else if (last_yes) {
            drop_erased(st, e);
        }
    }
}

/* After a commit: a server erased meanwhile by another instance on the
 * same file (its erase committed between filter_erased and this batch's
 * commit) loses what the batch stored of it. */
static void recheck_erased(struct store *st, size_t k)
{
    int64_t last = 0;
    for (size_t i = 0; i < k; i++) {
        char err[256];
        int yes = 0;
        if (st->items[i]->status != GW_SINK_STORED || st->items[i]->server_id == last)
            continue;
        last = st->items[i]->server_id;
        if (gw_storeact_erased(st->act, last, &yes, err, sizeof err) == 0 && yes &&
            gw_storeact_erase_again(st->act, last, err, sizeof err) != 0)
            gw_log(GW_LOG_WARN, NULL, "erase_again_failed", "server id %" PRId64 ": %s", last,
                   err);
    }
}

/* Writes the items of |n| fetched messages as one batch, then acks. */
static void write_batch(struct store *st, int n)
{
    size_t k = 0;
    filter_erased(st, n);
    for (int i = 0; i < n; i++)
        if (st->msgs[i].it != NULL)
            st->items[k++] = st->msgs[i].it;
    if (k == 0)
        return;
    if (gw_sink_sqlite_ops.check != NULL && gw_sink_sqlite_ops.check(st->db, 1) != 0) {
        for (size_t i = 0; i < k; i++)
            st->items[i]->status = GW_SINK_FAILED;
    } else {
        gw_sink_sqlite_ops.write_batch(st->db, st->items, k);
        recheck_erased(st, k);
    }
    size_t failed = 0;
    for (int i = 0; i < n; i++) {
        struct msg *e = &st->msgs[i];
        if (e->it == NULL)
            continue;
        switch (e->it->status) {
        case GW_SINK_STORED:
        case GW_SINK_DUPLICATE:
            if (e->it->status == GW_SINK_STORED)
                st->stored++;
            else
                st->duplicates++;
            if (natsMsg_Ack(e->m, NULL) != NATS_OK)
                gw_log(GW_LOG_DEBUG, NULL, "ack_failed",
                       "an ack was not sent: the message comes again and is a duplicate");
            break;
        case GW_SINK_FAILED:
            failed++;
            st->naked++;
            natsMsg_NakWithDelay(e->m, (int64_t)st->cfg->retry_after_s * 1000, NULL);
            break;
        default: /* rejected (the registry check is off: nothing else) */
            st->terminated++;
            term(e->m, "message_rejected", "the SQLite backend refused its row");
            break;
        }
    }
    if (failed > 0 && !st->failing)
        gw_log(GW_LOG_WARN, NULL, "store_failing",
               "a batch of %zu frames was not stored; delivered again after %u s", failed,
               st->cfg->retry_after_s);
    else if (failed == 0 && st->failing)
        gw_log(GW_LOG_INFO, NULL, "store_recovered", "frames are stored again");
    st->failing = failed > 0;
}

static void round_once(struct store *st)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    int batch = (int)st->cfg->batch_max_frames;
    natsStatus s = natsSubscription_Fetch(&list, st->sub, batch, FETCH_WAIT_MS, &jerr);

    if (s == NATS_TIMEOUT && list.Count == 0) {
        if (st->fetch_failing)
            gw_log(GW_LOG_INFO, NULL, "fetch_recovered", "the stream answers again");
        st->fetch_failing = 0;
        return;
    }
    if (s != NATS_OK && list.Count == 0) {
        if (!st->fetch_failing)
            gw_log(GW_LOG_WARN, NULL, "fetch_failing", "fetching from %s/%s: %s (%d); retrying",
                   st->cfg->js_stream, st->cfg->js_consumer, natsStatus_GetText(s), (int)jerr);
        st->fetch_failing = 1;
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return;
    }
    if (st->fetch_failing)
        gw_log(GW_LOG_INFO, NULL, "fetch_recovered", "the stream answers again");
    st->fetch_failing = 0;
    int n = list.Count > batch ? batch : list.Count;
    for (int i = 0; i < n; i++) {
        char why[256] = "";
        struct msg *e = &st->msgs[i];
        e->m = list.Msgs[i];
        int rv = build_item(st->cfg, e->m, &e->it, why, sizeof why);
        if (rv == GW_ENOMEM) {
            /* not the message's fault: again later */
            natsMsg_NakWithDelay(e->m, (int64_t)st->cfg->retry_after_s * 1000, NULL);
            e->m = NULL;
        } else if (rv != 0) {
            st->terminated++;
            term(e->m, "message_refused", why);
        }
    }
    write_batch(st, n);
    for (int i = 0; i < n; i++) {
        gw_sink_item_free(st->msgs[i].it);
        st->msgs[i].it = NULL;
        st->msgs[i].m = NULL;
    }
    natsMsgList_Destroy(&list);
}

static void on_js_event(enum gw_js_event ev, const char *url, void *ud)
{
    (void)ud;
    if (ev == GW_JS_DISCONNECTED)
        gw_log(GW_LOG_WARN, NULL, "nats_disconnected", "lost the NATS server; reconnecting");
    else if (ev == GW_JS_RECONNECTED)
        gw_log(GW_LOG_INFO, NULL, "nats_reconnected", "connected to %s", url);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    struct gw_config cfg;
    struct store st;
    char err[1024] = "", warn[1024] = "";
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc || config_path == NULL) {
        fprintf(stderr, "panelgate-store: %s\n",
                optind != argc ? "unexpected argument" : "--config FILE is required");
        usage(stderr);
        return EX_USAGE;
    }

    memset(&st, 0, sizeof st);
    if (gw_config_defaults(&cfg) != 0) {
        fprintf(stderr, "panelgate-store: out of memory\n");
        return 1;
    }
    if (gw_config_load(&cfg, config_path, err, sizeof err) != 0 ||
        gw_config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "panelgate-store: %s\n", err);
        rc = EX_CONFIG;
        goto out;
    }
    if (cfg.js_servers == NULL || *cfg.js_servers == '\0') {
        fprintf(stderr, "panelgate-store: %s: [jetstream] servers: required, and not set\n",
                config_path);
        rc = EX_CONFIG;
        goto out;
    }
    gw_log_set_level(cfg.log_level);
    /* the store's database has no registry: the registry of the scale-out
     * shape is checked where frames are admitted */
    cfg.no_registry_check = true;
    st.cfg = &cfg;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    st.msgs = gw_calloc(cfg.batch_max_frames, sizeof *st.msgs);
    st.items = gw_calloc(cfg.batch_max_frames, sizeof *st.items);
    if (st.msgs == NULL || st.items == NULL) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "out of memory");
        goto out;
    }
    int code = gw_sink_sqlite_ops.open(&st.db, &cfg, err, sizeof err);
    if (code == 0)
        code = gw_js_connect(&st.js, &cfg, "panelgate-store", on_js_event, NULL, err,
                             sizeof err);
    if (code == 0)
        code = gw_js_ensure_stream(st.js, &cfg, warn, sizeof warn, err, sizeof err);
    if (code == 0 && warn[0] != '\0')
        gw_log(GW_LOG_WARN, NULL, "stream_differs", "%s", warn);
    if (code == 0)
        code = gw_storeact_open(&st.act, &cfg, st.js, err, sizeof err);
    if (code == 0)
        code = bind_consumer(&st, err, sizeof err);
    if (code != 0) {
        gw_log(GW_LOG_ERROR, NULL, "start_failed", "%s", err);
        rc = code == GW_ECONFIG ? EX_CONFIG : 1;
        goto out;
    }
    gw_log(GW_LOG_INFO, NULL, "started",
           "panelgate-store %s: stream %s, consumer %s, into %s, batches of up to %u",
           PANELGATE_STORE_VERSION, cfg.js_stream, cfg.js_consumer, cfg.sqlite_path,
           cfg.batch_max_frames);

    while (!g_stop) {
        round_once(&st);
        gw_storeact_poll(st.act, ACTIVITY_PER_ROUND);
        if (cfg.retention_days > 0 && gw_mono_ms() >= st.next_retention_ms) {
            int64_t cutoff = gw_now_ms() - (int64_t)cfg.retention_days * 86400000;
            gw_storeact_retention(st.act, cutoff);
            st.next_retention_ms = gw_mono_ms() + (int64_t)cfg.retention_interval_s * 1000;
        }
    }
    struct gw_storeact_counts ac;
    gw_storeact_counts(st.act, &ac);

    gw_log(GW_LOG_INFO, NULL, "stopped",
           "stored=%" PRIu64 " duplicates=%" PRIu64 " terminated=%" PRIu64 " naked=%" PRIu64
           " dropped_erased=%" PRIu64 " activity: erased=%" PRIu64 " purged=%" PRIu64
           " skipped=%" PRIu64 " refused=%" PRIu64,
           st.stored, st.duplicates, st.terminated, st.naked, st.dropped, ac.erased, ac.purged,
           ac.skipped, ac.refused);
    rc = 0;
out:
    /* Destroy, not Unsubscribe: the durable consumer stays for the others */
    natsSubscription_Destroy(st.sub);
    gw_storeact_free(st.act);
    gw_js_free(st.js);
    if (st.db != NULL)
        gw_sink_sqlite_ops.close(st.db);
    gw_free(st.items);
    gw_free(st.msgs);
    gw_config_cleanup(&cfg);
    nats_Close();
    return rc;
}
