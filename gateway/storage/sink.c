/*
 * sink.c - the bounded queue and writer thread in front of a storage
 * backend (see sink.h).
 *
 * Threads.  The event loop thread calls gw_sink_submit / _pending /
 * _failing / _free; one writer thread per sink calls the backend.  Every
 * field both touch (queue, counters, done list, flags) is guarded by
 * s->mu.  An item belongs to the submitter until gw_sink_submit returns 0,
 * to the sink (queue, then the writer) until its done callback runs on the
 * loop, and is freed by the sink right after that callback.
 *
 * Waking the loop.  The writer moves finished items to s->done and calls
 * event_active() on an event that was never added; libevent then runs
 * wake_cb on the loop thread.  Activating an event from another thread is
 * only safe when libevent's locking is on: the process must call
 * evthread_use_pthreads() (libevent_pthreads) before it creates |base|.
 * main.c does that first thing; the unit tests do it in main().
 *
 * Bounds.  Items queued plus the batch being written count against
 * queue_max_frames and queue_max_bytes (body_len).  A full queue refuses at
 * once; nothing here blocks the loop except gw_sink_free, which drains.
 * Group commit falls out of the loop: while one batch is being written the
 * next one accumulates, and the writer takes up to batch_max_frames of it.
 * At fleet rates that is not enough: frames trickle in one at a time and
 * each commit (an fsync) carries two or three.  commit_delay_ms lets the
 * writer, woken with fewer than batch_max_frames items queued, wait up to
 * that long (on the monotonic clock, on s->cv) for more before it begins
 * the transaction.  It does not wait once the queue holds a whole batch,
 * once a submit was refused for a full queue (by bytes: large frames), nor
 * once the sink is stopping or has a drain deadline: a drain's last
 * frames are committed at once.  While it waits, gw_sink_submit signals
 * it only when the batch is full, so a frame arriving in the delay costs
 * no wake-up of the writer.
 * A failed batch is not retried here: its items complete GW_SINK_FAILED
 * (the gateway answers 503 and the agent resends with the same seq).  An
 * item the backend rejected alone (GW_SINK_REJECTED) does not fail its
 * batch: it is counted apart, and the failing state is not set.
 *
 * File checks.  Before each batch, and every file_check_interval_ms while
 * idle, the writer asks the backend (ops->check) whether its files are
 * still the ones it opened.  A failed check fails like a batch (same
 * failing state, reason, alarm); the first check that passes again ends
 * that outage, with or without a batch.  When the backend says a file was
 * replaced (gw_sink_note_replaced), the loop is told (state_fn with
 * st.files_replaced) and lets go of its own connections; only then is the
 * backend allowed to reopen (check's reopen_ok), and the writer checks
 * again at once.
 */
#include "sink.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "samples.h"

struct gw_sink {
    const struct gw_sink_ops *ops;
    void *state;                 /* the backend's; writer thread only once started */
    struct event *wake;          /* activated by the writer, runs on the loop */
    pthread_t thread;
    struct gw_sink_item **batch; /* writer thread only */
    size_t batch_max;
    size_t max_frames;
    size_t max_bytes;
    uint32_t check_ms;           /* file_check_interval_ms; 0 = before batches only */
    uint32_t delay_ms;           /* commit_delay_ms; 0 = begin at once */

    pthread_mutex_t mu;
    pthread_cond_t cv;           /* writer waits for work or stop */
    /* --- guarded by mu --- */
    struct gw_sink_item *q_head, *q_tail;
    struct gw_sink_item *done_head, *done_tail;
    size_t frames;               /* queued + being written */
    size_t bytes;
    int stopping;
    int failing;
    int abandon;                 /* past the stop deadline: fail, do not write */
    int writer_done;             /* the writer thread has left its loop */
    uint64_t abandoned;          /* items failed unwritten at the deadline */
    pthread_cond_t done_cv;      /* gw_sink_free waits for writer_done */
    int64_t deadline_ms;         /* monotonic; 0 = none (gw_sink_set_deadline) */
    int check_failing;           /* the outage is the file check's */
    int replaced_seen;           /* the loop has handled st.files_replaced */
    int check_now;               /* ... so check again without waiting */
    int gathering;               /* the writer waits out commit_delay_ms */
    int gather_cut;              /* a submit found the queue full since the
                                    writer last took a batch: do not wait */
    struct gw_sink_stats st;     /* counters; st.failing mirrors failing */
    /* --- loop thread only --- */
    int reported_failing;        /* the state last passed to state_fn */
    int reported_replaced;       /* ... and its files_replaced */
    gw_sink_state_fn state_fn;
    void *state_ud;
};


/* The reason a backend gave for the batch its writer thread is writing. */
static _Thread_local char tl_reason[160];
static _Thread_local int tl_replaced;
static _Thread_local unsigned tl_reopened;

void gw_sink_note_error(const char *why)
{
    snprintf(tl_reason, sizeof tl_reason, "%s", why ? why : "");
}

void gw_sink_log_retention(int rv, const char *err, int64_t frames, int64_t paths)
{
    if (rv != 0)
        gw_log(GW_LOG_WARN, NULL, "purge_failed", "retention purge stopped after %lld frames: %s",
               (long long)frames, err);
    else if (frames > 0 || paths > 0)
        gw_log(GW_LOG_INFO, NULL, "purged", "retention removed %lld frames and %lld stream paths",
               (long long)frames, (long long)paths);
}

void gw_sink_note_replaced(void)
{
    tl_replaced = 1;
}

void gw_sink_note_reopened(void)
{
    tl_reopened++;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- items */

/* One block: the item, then its body, then the reported name, so a frame
 * costs the loop one allocation here rather than three. */
struct gw_sink_item *gw_sink_item_new(const char *reported_name, const uint8_t *body, size_t len)
{
    size_t name_len = reported_name != NULL ? strlen(reported_name) + 1 : 0;
    /* Never NULL, even when empty, so a backend can tell "no body" from
     * "empty body" without special cases. */
    size_t body_cap = len ? len : 1;

    if (body_cap > SIZE_MAX - sizeof(struct gw_sink_item) - name_len)
        return NULL;
    struct gw_sink_item *it = gw_malloc(sizeof *it + body_cap + name_len);
    if (it == NULL)
        return NULL;
    memset(it, 0, sizeof *it);
    it->status = GW_SINK_FAILED;
    it->body = (uint8_t *)(it + 1);
    if (len)
        memcpy(it->body, body, len);
    it->body_len = len;
    if (reported_name != NULL) {
        it->reported_name = (char *)it->body + body_cap;
        memcpy(it->reported_name, reported_name, name_len);
    }
    return it;
}

struct gw_sink_item *gw_sink_activity_new(const char *action, int64_t server_id,
                                          const char *server, const char *details,
                                          int64_t at_ms)
{
    const char *d = details ? details : "{}";
    /* the name takes the block's name slot: a row reports no hostname */
    struct gw_sink_item *it = gw_sink_item_new(server, (const uint8_t *)d, strlen(d));
    if (it == NULL)
        return NULL;
    it->server_name = it->reported_name;
    it->reported_name = NULL;
    it->kind = GW_SINK_ACTIVITY;
    it->action = action;
    it->server_id = server_id;
    it->received_ms = at_ms;
    return it;
}

struct gw_sink_item *gw_sink_purge_new(int64_t cutoff_ms, int64_t at_ms)
{
    struct gw_sink_item *it = gw_sink_item_new(NULL, NULL, 0);
    if (it == NULL)
        return NULL;
    it->kind = GW_SINK_PURGE;
    it->action = "purge";
    it->ts_ms = (uint64_t)cutoff_ms;
    it->received_ms = at_ms;
    return it;
}

void gw_sink_item_free(struct gw_sink_item *it)
{
    if (it == NULL)
        return;
    gw_free(it->samples);
    gw_free(it); /* with its body and name */
}

/* Runs the done callbacks of |list| and frees the items (calling thread). */
static void complete_list(struct gw_sink_item *list)
{
    while (list != NULL) {
        struct gw_sink_item *next = list->next;
        list->next = NULL;
        if (list->done != NULL)
            list->done(list, list->ud);
        gw_sink_item_free(list);
        list = next;
    }
}

static struct gw_sink_item *take_done(struct gw_sink *s)
{
    pthread_mutex_lock(&s->mu);
    struct gw_sink_item *list = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    return list;
}

/* Loop thread: tells state_fn about a change of the failing state. */
static void report_state(struct gw_sink *s)
{
    struct gw_sink_stats st;
    if (s->state_fn == NULL)
        return;
    gw_sink_get_stats(s, &st);
    if (st.failing != s->reported_failing || st.files_replaced != s->reported_replaced) {
        s->reported_failing = st.failing;
        s->reported_replaced = st.files_replaced;
        s->state_fn(st.failing, &st, s->state_ud);
        if (st.files_replaced) {
            /* the loop let go of the files: the backend may reopen now */
            pthread_mutex_lock(&s->mu);
            s->replaced_seen = 1;
            s->check_now = 1;
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
    }
}

/* Loop thread. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    report_state(arg);
    complete_list(take_done(arg));
}

/* --------------------------------------------------------------- writer */

/* Writer, mu held: the outcome |rc| of a batch or a file check (|check|)
 * with the backend's reason; sets or ends the failing state.  A batch
 * ends any outage but a file check's, a passing check only its own (a
 * batch follows a passing check, so it never meets a check's outage). */
static void set_outcome(struct gw_sink *s, int rc, int check, const char *why)
{
    s->st.reopens += tl_reopened;
    tl_reopened = 0;
    if (tl_replaced) {
        s->st.files_replaced = 1;
        s->check_failing = 1;
        tl_replaced = 0;
    }
    if (rc != 0) {
        if (!s->failing) {
            s->st.outages++;
            s->st.failing_since_ms = wall_ms();
        }
        snprintf(s->st.reason, sizeof s->st.reason, "%s", why ? why : "storage error");
        s->failing = 1;
        s->check_failing |= check;
    } else if (s->failing && (!check || s->check_failing)) {
        s->failing = 0;
        s->st.failing_since_ms = 0;
        s->st.reason[0] = '\0';
        s->st.files_replaced = 0;
        s->check_failing = 0;
        s->replaced_seen = 0;
    }
    s->st.failing = s->failing;
}

/* Writer, mu held (released while the backend runs): one file check.
 * Returns its outcome. */
static int run_check(struct gw_sink *s)
{
    int reopen_ok = s->replaced_seen || s->state_fn == NULL;
    int was = s->failing;
    s->check_now = 0;
    pthread_mutex_unlock(&s->mu);
    tl_reason[0] = '\0';
    int rc = s->ops->check(s->state, reopen_ok);
    pthread_mutex_lock(&s->mu);
    int replaced = s->st.files_replaced;
    set_outcome(s, rc, 1, tl_reason[0] ? tl_reason : NULL);
    if (s->failing != was || s->st.files_replaced != replaced)
        event_active(s->wake, 0, 0);
    return rc;
}

/* Waits on |cv| (a CLOCK_MONOTONIC condition variable, see gw_sink_new)
 * for at most |left| > 0 milliseconds. */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t left)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* Writer, mu held: waits for work, stop, or the next file check. */
static void wait_work(struct gw_sink *s)
{
    int64_t next = gw_mono_ms() + s->check_ms;
    while (s->q_head == NULL && !s->stopping) {
        if (s->ops->check != NULL && s->check_now) {
            run_check(s);
            continue;
        }
        if (s->ops->check == NULL || s->check_ms == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int64_t left = next - gw_mono_ms();
        if (left <= 0) {
            run_check(s);
            next = gw_mono_ms() + s->check_ms;
            continue;
        }
        cond_wait_ms(&s->cv, &s->mu, left);
    }
}

/* Writer, mu held, with items queued: waits up to commit_delay_ms for
 * the queue to hold a whole batch (see the top).  s->frames counts the
 * queue alone here: no batch is being written. */
static void gather(struct gw_sink *s)
{
    struct timespec until;
    if (s->delay_ms == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += s->delay_ms / 1000;
    until.tv_nsec += (long)(s->delay_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    s->gathering = 1;
    while (s->frames < s->batch_max && !s->gather_cut && !s->stopping && s->deadline_ms == 0) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0)
            break; /* ETIMEDOUT: the delay is over */
    }
    s->gathering = 0;
}

static void *writer_main(void *arg)
{
    struct gw_sink *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        wait_work(s);
        if (s->q_head == NULL)
            break; /* stopping and drained */
        gather(s);

        /* Take up to batch_max items; they stay counted in frames/bytes
         * (pending) until they reach the done list. */
        size_t n = 0;
        size_t nbytes = 0;
        while (n < s->batch_max && s->q_head != NULL) {
            struct gw_sink_item *it = s->q_head;
            s->q_head = it->next;
            it->next = NULL;
            s->batch[n++] = it;
            nbytes += it->body_len;
        }
        if (s->q_head == NULL)
            s->q_tail = NULL;
        s->gather_cut = 0;
        pthread_mutex_unlock(&s->mu);

        for (size_t i = 0; i < n; i++)
            s->batch[i]->status = GW_SINK_FAILED; /* until the backend says otherwise */
        tl_reason[0] = '\0';
        pthread_mutex_lock(&s->mu);
        int abandon = s->abandon;
        pthread_mutex_unlock(&s->mu);
        int rc = 0;
        int wrote = 0;
        if (abandon) {
            /* the stop deadline passed: what is left fails unwritten (its
             * agents got no answer and resend it with the same seq) */
            rc = GW_ESTORAGE;
            snprintf(tl_reason, sizeof tl_reason, "stopped at the shutdown deadline");
        } else if (s->ops->check != NULL) {
            pthread_mutex_lock(&s->mu);
            rc = run_check(s); /* a replaced file: nothing is written */
            pthread_mutex_unlock(&s->mu);
        }
        if (rc == 0 && !abandon) {
            tl_reason[0] = '\0';
            rc = s->ops->write_batch(s->state, s->batch, n);
            wrote = 1;
        }
        const char *why = tl_reason[0] ? tl_reason : NULL;
        if (rc != 0) {
            for (size_t i = 0; i < n; i++)
                s->batch[i]->status = GW_SINK_FAILED;
        }

        pthread_mutex_lock(&s->mu);
        s->st.batches++;
        if (rc != 0)
            s->st.batch_failures++;
        if (wrote) {
            s->st.batch_items[gw_sink_batch_bucket(n)]++;
            s->st.batch_items_sum += n;
        }
        set_outcome(s, rc, 0, why);
        for (size_t i = 0; i < n; i++) {
            struct gw_sink_item *it = s->batch[i];
            if (it->status == GW_SINK_STORED) {
                s->st.items_stored++;
                s->st.frames_stored += it->kind == GW_SINK_FRAME;
            } else if (it->status == GW_SINK_DUPLICATE) {
                s->st.frames_duplicate++;
            } else if (it->status == GW_SINK_REJECTED) {
                s->st.items_rejected++;
            } else if (it->status == GW_SINK_UNREGISTERED || it->status == GW_SINK_REVOKED) {
                s->st.items_refused++;
            } else {
                s->st.items_failed++;
            }
            if (s->done_tail != NULL)
                s->done_tail->next = it;
            else
                s->done_head = it;
            s->done_tail = it;
        }
        if (abandon)
            s->abandoned += n;
        s->frames -= n;
        s->bytes -= nbytes;
        /* Safe from this thread: libevent locking is on (see the top) and
         * gw_sink_free joins this thread before it frees the event. */
        event_active(s->wake, 0, 0);
    }
    s->writer_done = 1;
    pthread_cond_signal(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

int gw_sink_new(struct gw_sink **out, struct event_base *base, const struct gw_sink_ops *ops,
                const struct gw_config *cfg, char *err, size_t errlen)
{
    struct gw_sink *s = NULL;
    int mu_ok = 0, cv_ok = 0, done_ok = 0, rv = GW_ENOMEM;

    if (out == NULL)
        return GW_EINVAL;
    *out = NULL;
    if (base == NULL || ops == NULL || ops->open == NULL || ops->write_batch == NULL ||
        ops->close == NULL || cfg == NULL) {
        return gw_fail(GW_EINVAL, err, errlen, "sink: invalid arguments");
    }
    if (cfg->queue_max_frames == 0 || cfg->queue_max_bytes == 0 || cfg->batch_max_frames == 0) {
        gw_seterr(err, errlen, "sink %s: queue_max_frames, queue_max_bytes and batch_max_frames "
               "must be positive", ops->name ? ops->name : "?");
        return GW_ECONFIG;
    }

    s = gw_calloc(1, sizeof *s);
    if (s == NULL) {
        return gw_fail(GW_ENOMEM, err, errlen, "sink: out of memory");
    }
    s->ops = ops;
    s->max_frames = cfg->queue_max_frames;
    s->max_bytes = cfg->queue_max_bytes;
    s->batch_max = cfg->batch_max_frames;
    if (s->batch_max > s->max_frames)
        s->batch_max = s->max_frames;
    s->check_ms = cfg->file_check_interval_ms;
    s->delay_ms = cfg->commit_delay_ms;

    s->batch = gw_calloc(s->batch_max, sizeof *s->batch);
    if (s->batch == NULL) {
        gw_seterr(err, errlen, "sink: out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        rv = gw_fail(GW_EINTERNAL, err, errlen, "sink: pthread_mutex_init failed");
        goto fail;
    }
    mu_ok = 1;
    /* Both are waited on with monotonic deadlines: cv by the writer's
     * file checks (wait_work), done_cv by gw_sink_free.  A condition
     * variable on the default clock would take such a deadline as long
     * past and return at once: the writer would spin while idle. */
    pthread_condattr_t ca;
    int ca_ok = pthread_condattr_init(&ca) == 0;
    int mono = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    if (mono && pthread_cond_init(&s->cv, &ca) == 0)
        cv_ok = 1;
    if (cv_ok && pthread_cond_init(&s->done_cv, &ca) == 0)
        done_ok = 1;
    if (ca_ok)
        pthread_condattr_destroy(&ca);
    if (!done_ok) {
        rv = gw_fail(GW_EINTERNAL, err, errlen, "sink: pthread_cond_init failed");
        goto fail;
    }
    /* Never added, only activated: it does not keep the loop alive. */
    s->wake = event_new(base, -1, 0, wake_cb, s);
    if (s->wake == NULL) {
        rv = gw_fail(GW_EINTERNAL, err, errlen, "sink: event_new failed");
        goto fail;
    }
    if ((rv = ops->open(&s->state, cfg, err, errlen)) != 0)
        goto fail;

    /* The writer takes no signals: they belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        gw_seterr(err, errlen, "sink %s: cannot start the writer thread: %s",
               ops->name ? ops->name : "?", strerror(rc));
        ops->close(s->state);
        rv = GW_EINTERNAL;
        goto fail;
    }
    *out = s;
    return 0;

fail:
    if (s->wake != NULL)
        event_free(s->wake);
    if (cv_ok)
        pthread_cond_destroy(&s->cv);
    if (done_ok)
        pthread_cond_destroy(&s->done_cv);
    if (mu_ok)
        pthread_mutex_destroy(&s->mu);
    gw_free(s->batch);
    gw_free(s);
    return rv;
}

int gw_sink_submit(struct gw_sink *s, struct gw_sink_item *it)
{
    if (s == NULL || it == NULL)
        return GW_EINVAL;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->frames >= s->max_frames || it->body_len > s->max_bytes - s->bytes) {
        s->gather_cut = 1; /* full: no point waiting for more */
        if (s->gathering)
            pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return GW_EFULL;
    }
    it->next = NULL;
    it->status = GW_SINK_FAILED;
    if (s->q_tail != NULL)
        s->q_tail->next = it;
    else
        s->q_head = it;
    s->q_tail = it;
    s->frames++;
    s->bytes += it->body_len;
    /* a writer gathering a batch wants to hear only that it is full */
    if (!s->gathering || s->frames >= s->batch_max)
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void gw_sink_pending(struct gw_sink *s, size_t *frames, size_t *bytes)
{
    size_t f = 0, b = 0;
    if (s != NULL) {
        pthread_mutex_lock(&s->mu);
        f = s->frames;
        b = s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
    if (frames != NULL)
        *frames = f;
    if (bytes != NULL)
        *bytes = b;
}

int gw_sink_failing(struct gw_sink *s)
{
    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->mu);
    int f = s->failing;
    pthread_mutex_unlock(&s->mu);
    return f;
}

void gw_sink_get_stats(struct gw_sink *s, struct gw_sink_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->failing = s->failing;
    out->queue_frames = s->frames;
    out->queue_bytes = s->bytes;
    pthread_mutex_unlock(&s->mu);
    out->queue_max_frames = s->max_frames;
    out->queue_max_bytes = s->max_bytes;
    out->engine_connected = -1;
    if (s->ops->engine_stats != NULL)
        s->ops->engine_stats(s->state, out);
}

void gw_sink_on_state(struct gw_sink *s, gw_sink_state_fn fn, void *ud)
{
    if (s == NULL)
        return;
    s->state_fn = fn;
    s->state_ud = ud;
}

void gw_sink_free(struct gw_sink *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);

    /* The writer commits everything queued, then exits - by the deadline:
     * past it, the backend is interrupted and the rest fails unwritten. */
    pthread_mutex_lock(&s->mu);
    while (!s->writer_done && s->deadline_ms != 0) {
        int64_t left = s->deadline_ms - gw_mono_ms();
        if (left <= 0)
            break;
        cond_wait_ms(&s->done_cv, &s->mu, left);
    }
    int late = s->deadline_ms != 0 && !s->writer_done; /* no deadline: wait for all */
    if (late)
        s->abandon = 1;
    pthread_mutex_unlock(&s->mu);
    if (late && s->ops->interrupt != NULL)
        s->ops->interrupt(s->state);
    pthread_join(s->thread, NULL);
    if (s->abandoned > 0)
        gw_log(GW_LOG_WARN, NULL, "drain_deadline",
               "shutdown_timeout_ms passed with %llu items not stored; their agents got no "
               "answer and resend them with the same seq",
               (unsigned long long)s->abandoned);
    report_state(s);

    /* The wake event may still be active: remove it before running the
     * rest here, so wake_cb never sees a freed sink. */
    event_free(s->wake);
    complete_list(take_done(s));

    s->ops->close(s->state);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_mutex_destroy(&s->mu);
    gw_free(s->batch);
    gw_free(s);
}

void gw_sink_set_deadline(struct gw_sink *s, int64_t deadline_mono_ms)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->deadline_ms = deadline_mono_ms != 0 ? deadline_mono_ms : 1;
    pthread_cond_signal(&s->cv); /* a drain ends commit_delay_ms at once */
    pthread_mutex_unlock(&s->mu);
}
