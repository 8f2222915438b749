/*
 * client.c - panelagent_client: the queue, delivery, callbacks and
 * counters.
 *
 * Threads.  Any thread may submit, flush and read counters; they share the
 * queue under |mu|.  The client's own I/O thread runs poll() over the
 * gateway connection (transport.c) and an eventfd that submit and close
 * use to wake it.  It alone starts requests, handles answers, and runs the
 * callbacks: events (acks, errors) are queued under |mu| and delivered
 * after the lock is released, so a callback may submit.  seq is taken
 * under its own mutex (seq_mu) so that the seq file's rare fsync never
 * holds up the queue.
 *
 * The queue is a list in ascending seq.  An item stays in it until the
 * gateway acknowledges it (202), refuses it for good (4xx), or it is
 * dropped to make room (DROP_OLDEST) or reported undelivered at close.
 * Everything in flight on a connection that fails goes back to being
 * queued and is resent with the same seq.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "client_internal.h"

#define N_STATS (PANELAGENT_STAT_UNDELIVERED + 1)
#define TRANSIENT_REPORT_MS 30000 /* the same transient error at most this often */
#define REFUSED_MAX_FACTOR 16

struct pa_event {
    struct pa_event *next;
    int err; /* 0: ack */
    uint64_t seq;
    char detail[320];
};

struct panelagent_client {
    struct pa_opts o;
    struct pa_tls *tls;

    pthread_mutex_t seq_mu;
    struct pa_seqstore *seq; /* seq_mu */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* an item left the queue */
    struct pa_item *head, *tail;
    uint64_t n_items, n_bytes, n_inflight;
    uint64_t max_seq; /* highest seq queued so far */
    struct pa_event *ev_head, *ev_tail;
    uint64_t st[N_STATS];
    int closing, stop;
    int undelivered;

    int wake_fd;
    pthread_t thr;
    int thr_started;

    /* I/O thread only */
    struct pa_conn *conn;
    int64_t next_attempt_ms; /* no connection attempt before */
    int64_t hold_until_ms;   /* no request before (retry-after, 5xx) */
    unsigned fail_streak;    /* transient failures in a row */
    unsigned req_streak;     /* retryable answers in a row */
    unsigned refusal_streak;
    int refusal_reported;    /* code reported in this refusal episode */
    int last_transient;
    int64_t last_transient_ms;
    int calm_reported;
    int64_t idle_since_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pa_client_log(struct panelagent_client *cl, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (cl->o.log_fn == NULL)
        return;
    va_start(ap, fmt);
    if (vsnprintf(line, sizeof line, fmt, ap) < 0)
        line[0] = '\0';
    va_end(ap);
    cl->o.log_fn(level, line, cl->o.log_ud);
}

static void wake(struct panelagent_client *cl)
{
    uint64_t one = 1;
    ssize_t n = write(cl->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: a wake-up is pending anyway */
}

/* ---- events (mu held) -------------------------------------------------------- */

static void event_push(struct panelagent_client *cl, int err, uint64_t seq, const char *detail)
{
    if (err == 0 ? cl->o.ack_fn == NULL : cl->o.error_fn == NULL)
        return;
    struct pa_event *e = malloc(sizeof *e);
    if (e == NULL)
        return; /* out of memory: the event is lost, the counters are not */
    e->next = NULL;
    e->err = err;
    e->seq = seq;
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
    if (cl->ev_tail != NULL)
        cl->ev_tail->next = e;
    else
        cl->ev_head = e;
    cl->ev_tail = e;
}

/* Runs the queued callbacks without the lock (I/O thread). */
static void deliver_events(struct panelagent_client *cl)
{
    for (;;) {
        pthread_mutex_lock(&cl->mu);
        struct pa_event *e = cl->ev_head;
        cl->ev_head = cl->ev_tail = NULL;
        pthread_mutex_unlock(&cl->mu);
        if (e == NULL)
            return;
        while (e != NULL) {
            struct pa_event *next = e->next;
            if (e->err == 0)
                cl->o.ack_fn(e->seq, cl->o.ack_ud);
            else
                cl->o.error_fn(e->err, e->seq, e->detail, cl->o.error_ud);
            free(e);
            e = next;
        }
    }
}

/* A report that concerns the connection (seq 0), from the I/O thread. */
static void report(struct panelagent_client *cl, int err, const char *detail)
{
    pthread_mutex_lock(&cl->mu);
    event_push(cl, err, 0, detail);
    pthread_mutex_unlock(&cl->mu);
    pa_client_log(cl, PANELAGENT_LOG_WARN, "%s: %s", panelagent_strerror(err), detail);
}

/* ---- the queue (mu held) -------------------------------------------------------- */

static void item_free(struct pa_item *it)
{
    if (it == NULL)
        return;
    free(it->data);
    free(it);
}

static void queue_insert(struct panelagent_client *cl, struct pa_item *it)
{
    struct pa_item *p = cl->tail;
    while (p != NULL && p->seq > it->seq)
        p = p->prev;
    it->prev = p;
    it->next = p ? p->next : cl->head;
    if (it->next != NULL)
        it->next->prev = it;
    else
        cl->tail = it;
    if (p != NULL)
        p->next = it;
    else
        cl->head = it;
    cl->n_items++;
    cl->n_bytes += it->len;
    if (it->seq > cl->max_seq)
        cl->max_seq = it->seq;
}

/* Unlinks and frees |it|; wakes flush. */
static void queue_remove(struct panelagent_client *cl, struct pa_item *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        cl->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        cl->tail = it->prev;
    cl->n_items--;
    cl->n_bytes -= it->len;
    if (it->inflight)
        cl->n_inflight--;
    item_free(it);
    pthread_cond_broadcast(&cl->cv);
}

/* ---- submit --------------------------------------------------------------------- */

int panelagent_client_submit_take(panelagent_client *cl, panelagent_frame *f,
                                  uint64_t *seq_out, char *err, size_t errlen)
{
    struct pa_buf b;
    struct pa_item *it = NULL;
    uint64_t seq = 0, now;
    int rv;

    if (seq_out != NULL)
        *seq_out = 0;
    if (cl == NULL || f == NULL) {
        panelagent_frame_free(f);
        pa_seterr(err, errlen, "no client or no frame");
        return PANELAGENT_EINVAL;
    }
    pthread_mutex_lock(&cl->mu);
    rv = cl->closing ? PANELAGENT_ECLOSED : PANELAGENT_OK;
    if (rv == PANELAGENT_OK && cl->o.queue_policy == PANELAGENT_QUEUE_REJECT_NEW &&
        cl->n_items >= (uint64_t)cl->o.queue_max_frames) {
        cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
        rv = PANELAGENT_EAGAIN;
    }
    pthread_mutex_unlock(&cl->mu);
    if (rv != PANELAGENT_OK) {
        panelagent_frame_free(f);
        pa_seterr(err, errlen, "%s", panelagent_strerror(rv));
        return rv;
    }

    now = unix_ms();
    pthread_mutex_lock(&cl->seq_mu);
    rv = pa_seq_next(cl->seq, now, &seq, err, errlen);
    pthread_mutex_unlock(&cl->seq_mu);
    if (rv != PANELAGENT_OK) {
        panelagent_frame_free(f);
        return rv;
    }
    pa_buf_init(&b, NULL);
    rv = pa_builder_encode(f, seq, now, &b, err, errlen);
    panelagent_frame_free(f);
    if (rv != PANELAGENT_OK) {
        pa_buf_cleanup(&b);
        return rv;
    }
    it = calloc(1, sizeof *it);
    if (it == NULL) {
        pa_buf_cleanup(&b);
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ENOMEM;
    }
    it->seq = seq;
    it->data = b.data; /* the item owns the encoded bytes now */
    it->len = b.len;

    pthread_mutex_lock(&cl->mu);
    if (cl->closing) {
        rv = PANELAGENT_ECLOSED;
        goto unlock;
    }
    if (it->len > (uint64_t)cl->o.queue_max_bytes) {
        cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
        rv = PANELAGENT_EAGAIN;
        goto unlock;
    }
    while (cl->n_items + 1 > (uint64_t)cl->o.queue_max_frames ||
           cl->n_bytes + it->len > (uint64_t)cl->o.queue_max_bytes) {
        struct pa_item *old = NULL;
        if (cl->o.queue_policy == PANELAGENT_QUEUE_DROP_OLDEST)
            for (old = cl->head; old != NULL && old->inflight; old = old->next)
                ;
        if (old == NULL) {
            cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
            rv = PANELAGENT_EAGAIN;
            goto unlock;
        }
        char d[96];
        snprintf(d, sizeof d, "frame %" PRIu64 " dropped from the full queue", old->seq);
        event_push(cl, PANELAGENT_EDROPPED, old->seq, d);
        cl->st[PANELAGENT_STAT_DROPPED_OLDEST]++;
        queue_remove(cl, old);
    }
    queue_insert(cl, it);
    it = NULL;
    cl->st[PANELAGENT_STAT_SUBMITTED]++;
    rv = PANELAGENT_OK;
unlock:
    pthread_mutex_unlock(&cl->mu);
    item_free(it);
    wake(cl); /* also for the EDROPPED events */
    if (rv != PANELAGENT_OK) {
        pa_seterr(err, errlen, "%s", panelagent_strerror(rv));
        return rv;
    }
    if (seq_out != NULL)
        *seq_out = seq;
    return PANELAGENT_OK;
}

/* ---- answers (I/O thread, from transport.c) ----------------------------------------- */

static int64_t jitter(struct panelagent_client *cl, int64_t d)
{
    /* between 3/4 and all of d */
    if (d < 4)
        return d;
    return d - (int64_t)(pa_tls_random(cl->tls) % (uint64_t)(d / 4 + 1));
}

static int64_t transient_delay(struct panelagent_client *cl, unsigned streak)
{
    int64_t d = cl->o.backoff_initial_ms;
    for (unsigned i = 0; i < streak && d < cl->o.backoff_max_ms; i++)
        d *= 2;
    if (d > cl->o.backoff_max_ms)
        d = cl->o.backoff_max_ms;
    return jitter(cl, d);
}

static void hold(struct panelagent_client *cl, int64_t until)
{
    if (until > cl->hold_until_ms)
        cl->hold_until_ms = until;
}

void pa_client_answer(struct panelagent_client *cl, struct pa_item *it,
                      const struct pa_answer *a)
{
    char d[320];
    int64_t now = mono_ms();
    uint64_t seq = it->seq;

    pthread_mutex_lock(&cl->mu);
    it->inflight = 0;
    cl->n_inflight--;
    if (a->status == 202 && a->has_ack && a->ack_seq == seq) {
        cl->st[PANELAGENT_STAT_ACKED]++;
        if (seq > cl->st[PANELAGENT_STAT_LAST_ACKED_SEQ])
            cl->st[PANELAGENT_STAT_LAST_ACKED_SEQ] = seq;
        event_push(cl, 0, seq, NULL);
        queue_remove(cl, it);
        pthread_mutex_unlock(&cl->mu);
        cl->req_streak = 0;
        return;
    }
    if (a->status == 429 || a->status == 503) {
        /* kept; not resent before retry-after (+ jitter) */
        int64_t ra = a->retry_after_s >= 0 ? a->retry_after_s : 1;
        int64_t j = (int64_t)(pa_tls_random(cl->tls) % (uint64_t)(ra * 250 + 251));
        pthread_mutex_unlock(&cl->mu);
        hold(cl, now + ra * 1000 + j);
        pa_client_log(cl, PANELAGENT_LOG_INFO,
                      "frame %" PRIu64 ": HTTP %d (%s), retrying after %" PRId64 " ms", seq,
                      a->status, a->problem, ra * 1000 + j);
        return;
    }
    if (a->status >= 400 && a->status < 500 && a->status != 408) {
        snprintf(d, sizeof d, "HTTP %d %s", a->status, a->problem);
        cl->st[PANELAGENT_STAT_REJECTED]++;
        event_push(cl, PANELAGENT_EREJECTED, seq, d);
        queue_remove(cl, it);
        pthread_mutex_unlock(&cl->mu);
        pa_client_log(cl, PANELAGENT_LOG_WARN, "frame %" PRIu64 " rejected: %s", seq, d);
        return;
    }
    /* 5xx, 408, or something unexpected: resend the same seq with back-off */
    if (a->status == 202)
        snprintf(d, sizeof d, "HTTP 202 without a matching panelgate-ack-seq");
    else
        snprintf(d, sizeof d, "HTTP %d %s", a->status, a->problem);
    if (a->status < 500 && a->status != 408)
        event_push(cl, PANELAGENT_EPROTOCOL, seq, d);
    pthread_mutex_unlock(&cl->mu);
    hold(cl, now + transient_delay(cl, cl->req_streak++));
    pa_client_log(cl, PANELAGENT_LOG_WARN, "frame %" PRIu64 ": %s; will resend", seq, d);
}

void pa_client_lost(struct panelagent_client *cl, struct pa_item *it, uint32_t h2_error)
{
    uint64_t seq = it->seq; /* |it| may be dropped once it is not in flight */

    pthread_mutex_lock(&cl->mu);
    it->inflight = 0;
    cl->n_inflight--;
    pthread_mutex_unlock(&cl->mu);
    if (h2_error != NGHTTP2_REFUSED_STREAM && h2_error != NGHTTP2_NO_ERROR)
        hold(cl, mono_ms() + transient_delay(cl, cl->req_streak++));
    pa_client_log(cl, PANELAGENT_LOG_INFO,
                  "frame %" PRIu64 ": stream closed without an answer (%s); will resend", seq,
                  nghttp2_http2_strerror(h2_error));
}

/* ---- the connection (I/O thread) ----------------------------------------------------------- */

static int is_refusal(int code)
{
    return code == PANELAGENT_EGATEWAY_CERT || code == PANELAGENT_EGATEWAY_PIN ||
           code == PANELAGENT_ENOT_REGISTERED || code == PANELAGENT_EREVOKED ||
           code == PANELAGENT_ECERT_REJECTED;
}

static void requeue_inflight(struct panelagent_client *cl)
{
    pthread_mutex_lock(&cl->mu);
    for (struct pa_item *it = cl->head; it != NULL && cl->n_inflight > 0; it = it->next)
        if (it->inflight) {
            it->inflight = 0;
            cl->n_inflight--;
        }
    cl->n_inflight = 0;
    pthread_mutex_unlock(&cl->mu);
}

static void drop_conn(struct panelagent_client *cl)
{
    requeue_inflight(cl);
    pa_conn_free(cl->conn);
    cl->conn = NULL;
}

/* The connection ended: |code| PANELAGENT_ECLOSED for a clean end. */
static void conn_ended(struct panelagent_client *cl, int code, const char *detail,
                       int established, int64_t now)
{
    int64_t goaway = cl->conn ? pa_conn_goaway(cl->conn) : -1;

    drop_conn(cl);
    if (goaway == NGHTTP2_ENHANCE_YOUR_CALM) {
        if (!cl->calm_reported) {
            cl->calm_reported = 1;
            report(cl, PANELAGENT_ERATE_LIMITED,
                   "the gateway sent GOAWAY ENHANCE_YOUR_CALM (banned for ignoring 429s)");
        }
        cl->next_attempt_ms = now + jitter(cl, cl->o.refused_backoff_ms);
        return;
    }
    if (code == PANELAGENT_ECLOSED || goaway >= 0) {
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "connection closed (%s)", detail);
        cl->next_attempt_ms = now; /* reconnect when there is something to send */
        return;
    }
    if (!established) {
        pthread_mutex_lock(&cl->mu);
        cl->st[PANELAGENT_STAT_CONNECT_FAILURES]++;
        pthread_mutex_unlock(&cl->mu);
    }
    if (is_refusal(code)) {
        if (cl->refusal_reported != code) {
            cl->refusal_reported = code;
            cl->refusal_streak = 0;
            report(cl, code, detail);
        } else {
            pa_client_log(cl, PANELAGENT_LOG_DEBUG, "%s (again)", detail);
        }
        int64_t d = cl->o.refused_backoff_ms;
        for (unsigned i = 0; i < cl->refusal_streak && d < cl->o.refused_backoff_ms *
                                                                 REFUSED_MAX_FACTOR; i++)
            d *= 2;
        if (d > cl->o.refused_backoff_ms * REFUSED_MAX_FACTOR)
            d = cl->o.refused_backoff_ms * REFUSED_MAX_FACTOR;
        cl->refusal_streak++;
        cl->next_attempt_ms = now + jitter(cl, d);
        return;
    }
    /* transient: ECONNECT, ETLS, EPROTOCOL */
    if (code != cl->last_transient || now - cl->last_transient_ms >= TRANSIENT_REPORT_MS) {
        cl->last_transient = code;
        cl->last_transient_ms = now;
        report(cl, code, detail);
    } else {
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "%s (again)", detail);
    }
    cl->next_attempt_ms = now + transient_delay(cl, cl->fail_streak++);
}

static void on_connected(struct panelagent_client *cl, int resumed)
{
    pthread_mutex_lock(&cl->mu);
    cl->st[PANELAGENT_STAT_CONNECTS]++;
    if (resumed)
        cl->st[PANELAGENT_STAT_RESUMED]++;
    pthread_mutex_unlock(&cl->mu);
    cl->fail_streak = 0;
    cl->refusal_streak = 0;
    cl->refusal_reported = 0;
    cl->last_transient = 0;
    cl->calm_reported = 0;
    pa_client_log(cl, PANELAGENT_LOG_INFO, "connected to %s port %" PRId64 "%s", cl->o.host,
                  cl->o.port, resumed ? " (TLS session resumed)" : "");
}

/* Starts requests for queued items while there are free streams. */
static int start_requests(struct panelagent_client *cl, int64_t now)
{
    int slots = pa_conn_slots(cl->conn, (int)cl->o.max_in_flight);
    if (slots <= 0 || now < cl->hold_until_ms)
        return PANELAGENT_OK;
    pthread_mutex_lock(&cl->mu);
    struct pa_item *it = cl->head;
    while (slots > 0) {
        while (it != NULL && it->inflight)
            it = it->next;
        if (it == NULL)
            break;
        if (pa_conn_submit(cl->conn, it) != PANELAGENT_OK)
            break; /* out of memory: try again later */
        it->inflight = 1;
        cl->n_inflight++;
        it->sent_ms = now;
        if (++it->sends == 2)
            cl->st[PANELAGENT_STAT_RETRIES]++;
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "sending frame %" PRIu64 " (attempt %u)",
                      it->seq, it->sends);
        slots--;
    }
    pthread_mutex_unlock(&cl->mu);
    return PANELAGENT_OK;
}

/* The earliest request deadline, or -1; 1 when one has passed. */
static int64_t request_deadline(struct panelagent_client *cl)
{
    int64_t first = -1;
    pthread_mutex_lock(&cl->mu);
    uint64_t seen = 0;
    for (struct pa_item *it = cl->head; it != NULL && seen < cl->n_inflight; it = it->next)
        if (it->inflight) {
            seen++;
            int64_t d = it->sent_ms + cl->o.request_timeout_ms;
            if (first < 0 || d < first)
                first = d;
        }
    pthread_mutex_unlock(&cl->mu);
    return first;
}

static void earlier(int64_t *t, int64_t cand)
{
    if (cand >= 0 && (*t < 0 || cand < *t))
        *t = cand;
}

/* One round of work before poll; returns the next deadline (-1: none). */
static int64_t step(struct panelagent_client *cl, int64_t now)
{
    char err[320];
    int64_t next = -1;
    uint64_t queued;

    pthread_mutex_lock(&cl->mu);
    queued = cl->n_items;
    pthread_mutex_unlock(&cl->mu);

    if (cl->conn == NULL) {
        if (queued == 0)
            return -1;
        if (now < cl->next_attempt_ms)
            return cl->next_attempt_ms;
        err[0] = '\0';
        int rv = pa_conn_new(&cl->conn, cl, cl->tls, &cl->o, now, err, sizeof err);
        if (rv != PANELAGENT_OK) {
            conn_ended(cl, rv, err, 0, now);
            return cl->next_attempt_ms;
        }
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "connecting to %s port %" PRId64, cl->o.host,
                      cl->o.port);
        cl->idle_since_ms = -1;
        return pa_conn_deadline(cl->conn);
    }
    enum pa_conn_state st = pa_conn_state(cl->conn);
    if (st == PA_CONN_TCP || st == PA_CONN_TLS)
        return pa_conn_deadline(cl->conn);

    /* open (or closing) */
    int64_t rd = request_deadline(cl);
    if (rd >= 0 && rd <= now) {
        snprintf(err, sizeof err, "no answer from the gateway within %" PRId64 " ms",
                 cl->o.request_timeout_ms);
        conn_ended(cl, PANELAGENT_ECONNECT, err, pa_conn_connected(cl->conn), now);
        return now;
    }
    earlier(&next, rd);
    if (st == PA_CONN_H2) {
        if (queued > 0 && now < cl->hold_until_ms)
            earlier(&next, cl->hold_until_ms);
        start_requests(cl, now);
        if (queued == 0 && pa_conn_streams(cl->conn) == 0 && cl->o.idle_timeout_ms > 0) {
            if (cl->idle_since_ms < 0)
                cl->idle_since_ms = now;
            if (now - cl->idle_since_ms >= cl->o.idle_timeout_ms) {
                pa_client_log(cl, PANELAGENT_LOG_DEBUG, "idle: closing the connection");
                pa_conn_shutdown(cl->conn);
            } else {
                earlier(&next, cl->idle_since_ms + cl->o.idle_timeout_ms);
            }
        } else {
            cl->idle_since_ms = -1;
        }
    }
    /* hand new requests to TLS now rather than after the next poll */
    int connected, resumed;
    err[0] = '\0';
    int rv = pa_conn_io(cl->conn, 0, now, &connected, &resumed, err, sizeof err);
    if (rv != PANELAGENT_OK) {
        conn_ended(cl, rv, err, pa_conn_connected(cl->conn), now);
        return now;
    }
    return next;
}

static void io_event(struct panelagent_client *cl, short revents, int64_t now)
{
    char err[320] = "";
    int connected = 0, resumed = 0;
    int rv = pa_conn_io(cl->conn, revents, now, &connected, &resumed, err, sizeof err);

    if (connected)
        on_connected(cl, resumed);
    if (rv != PANELAGENT_OK)
        conn_ended(cl, rv, err, pa_conn_connected(cl->conn), now);
}

/* The I/O thread's last act: reports what was never acknowledged. */
static void report_undelivered(struct panelagent_client *cl)
{
    pthread_mutex_lock(&cl->mu);
    while (cl->head != NULL) {
        struct pa_item *it = cl->head;
        char d[96];
        snprintf(d, sizeof d, "frame %" PRIu64 " not acknowledged before close", it->seq);
        event_push(cl, PANELAGENT_EUNDELIVERED, it->seq, d);
        cl->st[PANELAGENT_STAT_UNDELIVERED]++;
        cl->undelivered++;
        it->inflight = 0;
        queue_remove(cl, it);
    }
    cl->n_inflight = 0;
    pthread_mutex_unlock(&cl->mu);
}

static void *io_main(void *arg)
{
    struct panelagent_client *cl = arg;

    for (;;) {
        deliver_events(cl);
        pthread_mutex_lock(&cl->mu);
        int stop = cl->stop;
        pthread_mutex_unlock(&cl->mu);
        if (stop)
            break;

        int64_t now = mono_ms();
        int64_t next = step(cl, now);
        struct pollfd pfd[2] = {{.fd = cl->wake_fd, .events = POLLIN}, {.fd = -1}};
        int nfds = 1;
        if (cl->conn != NULL) {
            pfd[1].fd = pa_conn_fd(cl->conn);
            pfd[1].events = pa_conn_events(cl->conn);
            nfds = 2;
        }
        int timeout = 1000;
        if (next >= 0) {
            int64_t d = next - mono_ms();
            timeout = d < 0 ? 0 : d < 1000 ? (int)d : 1000;
        }
        pthread_mutex_lock(&cl->mu);
        if (cl->ev_head != NULL || cl->stop)
            timeout = 0;
        pthread_mutex_unlock(&cl->mu);
        int n = poll(pfd, (nfds_t)nfds, timeout);
        if (n < 0 && errno != EINTR)
            pa_client_log(cl, PANELAGENT_LOG_ERROR, "poll: %s", strerror(errno));
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(cl->wake_fd, &v, sizeof v);
            (void)r;
        }
        now = mono_ms();
        if (cl->conn != NULL)
            io_event(cl, n > 0 ? pfd[1].revents : 0, now);
    }
    if (cl->conn != NULL) {
        if (pa_conn_state(cl->conn) >= PA_CONN_H2) {
            char err[64];
            int c, r;
            pa_conn_shutdown(cl->conn);
            (void)pa_conn_io(cl->conn, 0, mono_ms(), &c, &r, err, sizeof err);
        }
        drop_conn(cl);
    }
    report_undelivered(cl);
    deliver_events(cl);
    return NULL;
}

/* ---- new / flush / stat / close ---------------------------------------------------------------- */

static void client_destroy(struct panelagent_client *cl)
{
    if (cl == NULL)
        return;
    while (cl->head != NULL)
        queue_remove(cl, cl->head);
    while (cl->ev_head != NULL) {
        struct pa_event *e = cl->ev_head;
        cl->ev_head = e->next;
        free(e);
    }
    if (cl->wake_fd >= 0)
        close(cl->wake_fd);
    pa_seq_close(cl->seq);
    pa_tls_free(cl->tls);
    pa_opts_cleanup(&cl->o);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    pthread_mutex_destroy(&cl->seq_mu);
    free(cl);
}

static int check_opts(const struct pa_opts *o, char *err, size_t errlen)
{
    static const struct {
        size_t off;
        const char *name;
    } req[] = {
        {offsetof(struct pa_opts, host), "PANELAGENT_OPT_GATEWAY_HOST"},
        {offsetof(struct pa_opts, ca_file), "PANELAGENT_OPT_CA_FILE"},
        {offsetof(struct pa_opts, cert_file), "PANELAGENT_OPT_CERT_FILE"},
        {offsetof(struct pa_opts, key_file), "PANELAGENT_OPT_KEY_FILE"},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (*(char *const *)((const char *)o + req[i].off) == NULL) {
            pa_seterr(err, errlen, "%s is not set (required)", req[i].name);
            return PANELAGENT_ECONFIG;
        }
    if (o->backoff_max_ms < o->backoff_initial_ms) {
        pa_seterr(err, errlen,
                  "PANELAGENT_OPT_BACKOFF_MAX_MS (%" PRId64
                  ") is below PANELAGENT_OPT_BACKOFF_INITIAL_MS (%" PRId64 ")",
                  o->backoff_max_ms, o->backoff_initial_ms);
        return PANELAGENT_ECONFIG;
    }
    return PANELAGENT_OK;
}

int panelagent_client_new(panelagent_client **out, const panelagent_config *c, char *err,
                          size_t errlen)
{
    struct panelagent_client *cl;
    int rv;

    if (out == NULL || c == NULL) {
        pa_seterr(err, errlen, "no output pointer or no config");
        return PANELAGENT_EINVAL;
    }
    *out = NULL;
    cl = calloc(1, sizeof *cl);
    if (cl == NULL) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ENOMEM;
    }
    cl->wake_fd = -1;
    pthread_mutex_init(&cl->seq_mu, NULL);
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    cl->idle_since_ms = -1;

    if ((rv = pa_opts_copy(&cl->o, c)) != PANELAGENT_OK) {
        pa_seterr(err, errlen, "out of memory");
        goto fail;
    }
    if ((rv = check_opts(&cl->o, err, errlen)) != PANELAGENT_OK)
        goto fail;
    if ((rv = pa_tls_new(&cl->tls, &cl->o, err, errlen)) != PANELAGENT_OK)
        goto fail;
    if ((rv = pa_seq_open(&cl->seq, cl->o.seq_file, PA_SEQ_BLOCK, unix_ms(), err, errlen)) !=
        PANELAGENT_OK)
        goto fail;
    cl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (cl->wake_fd < 0) {
        pa_seterr(err, errlen, "eventfd: %s", strerror(errno));
        rv = PANELAGENT_ENOMEM;
        goto fail;
    }
    /* The I/O thread takes no signals: they stay the application's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&cl->thr, NULL, io_main, cl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        pa_seterr(err, errlen, "cannot start the I/O thread: %s", strerror(e));
        rv = PANELAGENT_ENOMEM;
        goto fail;
    }
    cl->thr_started = 1;
    *out = cl;
    return PANELAGENT_OK;
fail:
    client_destroy(cl);
    return rv;
}

static int on_io_thread(const struct panelagent_client *cl)
{
    return cl->thr_started && pthread_equal(pthread_self(), cl->thr);
}

int panelagent_client_flush(panelagent_client *cl, int timeout_ms)
{
    struct timespec dl;
    int rv = PANELAGENT_OK;

    if (cl == NULL)
        return PANELAGENT_EINVAL;
    if (on_io_thread(cl))
        return PANELAGENT_EBUSY;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&cl->mu);
    uint64_t mark = cl->max_seq;
    while (cl->head != NULL && cl->head->seq <= mark && !cl->stop) {
        int e = timeout_ms < 0 ? pthread_cond_wait(&cl->cv, &cl->mu)
                               : pthread_cond_timedwait(&cl->cv, &cl->mu, &dl);
        if (e == ETIMEDOUT) {
            if (cl->head != NULL && cl->head->seq <= mark)
                rv = PANELAGENT_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return rv;
}

int panelagent_client_stat(panelagent_client *cl, panelagent_stat id, uint64_t *out)
{
    if (cl == NULL || out == NULL || id < PANELAGENT_STAT_SUBMITTED ||
        id > PANELAGENT_STAT_UNDELIVERED)
        return PANELAGENT_EINVAL;
    pthread_mutex_lock(&cl->mu);
    if (id == PANELAGENT_STAT_QUEUED)
        *out = cl->n_items;
    else if (id == PANELAGENT_STAT_QUEUED_BYTES)
        *out = cl->n_bytes;
    else
        *out = cl->st[id];
    pthread_mutex_unlock(&cl->mu);
    return PANELAGENT_OK;
}

int panelagent_client_close(panelagent_client *cl, int timeout_ms)
{
    int n;

    if (cl == NULL)
        return 0;
    if (on_io_thread(cl))
        return PANELAGENT_EBUSY;
    if (timeout_ms != 0)
        (void)panelagent_client_flush(cl, timeout_ms);
    pthread_mutex_lock(&cl->mu);
    cl->closing = 1;
    cl->stop = 1;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    wake(cl);
    pthread_join(cl->thr, NULL);
    cl->thr_started = 0;
    n = cl->undelivered;
    client_destroy(cl);
    return n;
}

void panelagent_client_free(panelagent_client *cl)
{
    (void)panelagent_client_close(cl, 0);
}
