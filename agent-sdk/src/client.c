/*
 * client.c - panelagent_client: delivery (answers, the connection, the
 * I/O thread), creation and close.
 *
 * Threads.  Any thread may submit, flush and read counters (client_queue.c);
 * they share the queue under |mu|.  The client's own I/O thread runs poll()
 * over the gateway connection (transport.c) and an eventfd that submit and
 * close use to wake it.  It alone starts requests, handles answers, and
 * runs the callbacks.  seq is taken under its own mutex (seq_mu) so that
 * the seq file's rare fsync never holds up the queue.
 *
 * Everything in flight on a connection that fails goes back to being
 * queued and is resent with the same seq.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "client_internal.h"

#define TRANSIENT_REPORT_MS 30000 /* the same transient error at most this often */
#define REFUSED_MAX_FACTOR 16

/* A report that concerns the connection (seq 0), from the I/O thread. */
static void report(struct panelagent_client *cl, int err, const char *detail)
{
    pthread_mutex_lock(&cl->mu);
    pa_event_push(cl, err, 0, detail);
    pthread_mutex_unlock(&cl->mu);
    pa_client_log(cl, PANELAGENT_LOG_WARN, "%s: %s", panelagent_strerror(err), detail);
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

/* 500 storage_rejected: the gateway's storage refused this frame itself
 * and gives the same frame the same answer (docs/PROTOCOL.md 3.3), so it
 * ends like a 4xx; every other 5xx is resent. */
static bool not_retryable(const struct pa_answer *a)
{
    static const char type[] = "urn:panelgate:problem:storage_rejected";
    size_t n = sizeof type - 1;
    return a->status == 500 && strncmp(a->problem, type, n) == 0 &&
           (a->problem[n] == '\0' || a->problem[n] == ':');
}

int pa_client_answer(struct panelagent_client *cl, struct pa_item *it,
                     const struct pa_answer *a, char *err, size_t errlen)
{
    char d[320];
    int64_t now = pa_mono_ms();
    uint64_t seq = it->seq;

    pthread_mutex_lock(&cl->mu);
    it->inflight = 0;
    cl->n_inflight--;
    if (a->status == 202 && a->has_ack && a->ack_seq == seq) {
        cl->st[PANELAGENT_STAT_ACKED]++;
        if (seq > cl->st[PANELAGENT_STAT_LAST_ACKED_SEQ])
            cl->st[PANELAGENT_STAT_LAST_ACKED_SEQ] = seq;
        pa_event_push(cl, 0, seq, NULL);
        pa_queue_remove(cl, it);
        pthread_mutex_unlock(&cl->mu);
        cl->req_streak = 0;
        cl->fail_streak = 0; /* the gateway works: the backoff starts over */
        cl->round_fails = 0;
        cl->round_refused = 0;
        cl->conn_acked = 1;
        cl->last_transient = 0;
        cl->calm_reported = 0;
        return PANELAGENT_OK;
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
        return PANELAGENT_OK;
    }
    if ((a->status >= 400 && a->status < 500 && a->status != 408) || not_retryable(a)) {
        snprintf(d, sizeof d, "HTTP %d %s", a->status, a->problem);
        cl->st[PANELAGENT_STAT_REJECTED]++;
        pa_event_push(cl, PANELAGENT_EREJECTED, seq, d);
        pa_queue_remove(cl, it);
        pthread_mutex_unlock(&cl->mu);
        pa_client_log(cl, PANELAGENT_LOG_WARN, "frame %" PRIu64 " rejected: %s", seq, d);
        return PANELAGENT_OK;
    }
    pthread_mutex_unlock(&cl->mu);
    if (a->status >= 500 || a->status == 408) {
        /* resend the same seq with back-off */
        hold(cl, now + transient_delay(cl, cl->req_streak++));
        pa_client_log(cl, PANELAGENT_LOG_WARN,
                      "frame %" PRIu64 ": HTTP %d %s; will resend", seq, a->status, a->problem);
        return PANELAGENT_OK;
    }
    /* A 202 that acknowledges another seq (or none), or a status the
     * protocol does not have: the gateway is broken, and nothing else it
     * says on this connection can be trusted.  Not an ack: the caller drops
     * the connection, the frame is resent with its seq after the backoff. */
    if (a->status == 202 && a->has_ack)
        pa_seterr(err, errlen,
                  "HTTP 202 for frame %" PRIu64 " acknowledged seq %" PRIu64
                  " (panelgate-ack-seq): not taken as an ack",
                  seq, a->ack_seq);
    else if (a->status == 202)
        pa_seterr(err, errlen,
                  "HTTP 202 for frame %" PRIu64 " without a valid panelgate-ack-seq: not "
                  "taken as an ack",
                  seq);
    else
        pa_seterr(err, errlen, "HTTP %d for frame %" PRIu64 ": not a status of the protocol",
                  a->status, seq);
    return PANELAGENT_EPROTOCOL;
}

void pa_client_lost(struct panelagent_client *cl, struct pa_item *it, uint32_t h2_error)
{
    uint64_t seq = it->seq; /* |it| may be dropped once it is not in flight */

    pthread_mutex_lock(&cl->mu);
    it->inflight = 0;
    cl->n_inflight--;
    pthread_mutex_unlock(&cl->mu);
    /* Streams the gateway did not take before its GOAWAY go out again at
     * once (on the next connection).  Any other stream closed without an
     * answer (RST_STREAM, even REFUSED_STREAM or NO_ERROR) backs off, or a
     * gateway that resets every request would get them in a tight loop. */
    if (cl->conn == NULL || pa_conn_goaway(cl->conn) < 0)
        hold(cl, pa_mono_ms() + transient_delay(cl, cl->req_streak++));
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

/* ---- the candidates: every address of every gateway, in turn ------------------------ */

static unsigned gw_addrs(const struct panelagent_client *cl, size_t i)
{
    return cl->gw_naddrs[i] > 0 ? cl->gw_naddrs[i] : 1;
}

/* The current candidate failed: moves on to the next one (the next
 * address of this gateway, else the first of the next gateway).  Returns
 * 1 when that completed a round (as many failures since the last ack, or
 * the last round, as there are candidates): then the caller backs off;
 * 0: the next candidate is tried at once. */
static int next_candidate(struct panelagent_client *cl)
{
    size_t total = 0;

    if (++cl->addr_cur >= gw_addrs(cl, cl->gw_cur)) {
        cl->addr_cur = 0;
        size_t next = (cl->gw_cur + 1) % cl->o.n_gws;
        if (next != cl->gw_cur) {
            /* another gateway: its session, retry-after and 5xx streak
             * are its own */
            cl->gw_cur = next;
            pa_tls_forget_session(cl->tls);
            cl->hold_until_ms = 0;
            cl->req_streak = 0;
        }
    }
    for (size_t i = 0; i < cl->o.n_gws; i++)
        total += gw_addrs(cl, i);
    if (++cl->round_fails < total)
        return 0;
    cl->round_fails = 0;
    return 1;
}

/* After a failure: at once on the next candidate, or, after a full round,
 * the backoff (the refusal one when a candidate of the round refused us). */
static void schedule_next(struct panelagent_client *cl, int refused, int64_t now)
{
    if (refused)
        cl->round_refused = 1;
    if (!next_candidate(cl)) {
        cl->next_attempt_ms = now;
        return;
    }
    if (cl->round_refused) {
        int64_t d = cl->o.refused_backoff_ms;
        for (unsigned i = 0; i < cl->refusal_streak && d < cl->o.refused_backoff_ms *
                                                                 REFUSED_MAX_FACTOR; i++)
            d *= 2;
        if (d > cl->o.refused_backoff_ms * REFUSED_MAX_FACTOR)
            d = cl->o.refused_backoff_ms * REFUSED_MAX_FACTOR;
        cl->refusal_streak++;
        cl->next_attempt_ms = now + jitter(cl, d);
    } else {
        cl->next_attempt_ms = now + transient_delay(cl, cl->fail_streak++);
    }
    cl->round_refused = 0;
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
    char why[320];
    if (goaway > 0) {
        /* the gateway's own protocol error: transient, reported, backed off */
        snprintf(why, sizeof why, "the gateway sent GOAWAY %s",
                 nghttp2_http2_strerror((uint32_t)goaway));
        code = PANELAGENT_EPROTOCOL;
        detail = why;
    } else if (code == PANELAGENT_ECLOSED || goaway == 0) {
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "connection closed (%s)", detail);
        pthread_mutex_lock(&cl->mu);
        uint64_t queued = cl->n_items;
        pthread_mutex_unlock(&cl->mu);
        /* reconnect when there is something to send; at once after a
         * connection that delivered, else with the backoff (a gateway
         * that ends every session before answering gets no tight loop) */
        cl->next_attempt_ms = now;
        if (!cl->conn_acked && queued > 0)
            schedule_next(cl, 0, now);
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
        /* another gateway may know us (or be the one configured) */
        schedule_next(cl, 1, now);
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
    schedule_next(cl, 0, now);
}

static void on_connected(struct panelagent_client *cl, int resumed)
{
    pthread_mutex_lock(&cl->mu);
    cl->st[PANELAGENT_STAT_CONNECTS]++;
    if (resumed)
        cl->st[PANELAGENT_STAT_RESUMED]++;
    pthread_mutex_unlock(&cl->mu);
    /* fail_streak and last_transient go on until an ack: a gateway that
     * accepts connections but then breaks them still sees the backoff
     * grow, and its error is reported once, not once per connection (a
     * ban by GOAWAY ENHANCE_YOUR_CALM too) */
    cl->refusal_streak = 0;
    cl->refusal_reported = 0;
    const struct pa_gw *gw = &cl->o.gws[cl->gw_cur];
    pa_client_log(cl, PANELAGENT_LOG_INFO, "connected to %s port %" PRId64 "%s", gw->host,
                  gw->port, resumed ? " (TLS session resumed)" : "");
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
        const struct pa_gw *gw = &cl->o.gws[cl->gw_cur];
        unsigned n_addrs = 0;
        int rv = pa_conn_new(&cl->conn, cl, cl->tls, &cl->o, gw, cl->addr_cur, &n_addrs, now,
                             err, sizeof err);
        if (n_addrs > 0) {
            cl->gw_naddrs[cl->gw_cur] = n_addrs > PA_MAX_ADDRS ? PA_MAX_ADDRS : n_addrs;
            cl->addr_cur %= cl->gw_naddrs[cl->gw_cur];
        }
        if (rv != PANELAGENT_OK) {
            conn_ended(cl, rv, err, 0, now);
            return cl->next_attempt_ms;
        }
        pa_client_log(cl, PANELAGENT_LOG_DEBUG, "connecting to %s port %" PRId64 " (address %u)",
                      gw->host, gw->port, cl->addr_cur + 1);
        cl->conn_acked = 0;
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
    earlier(&next, pa_conn_deadline(cl->conn)); /* the gateway's SETTINGS */
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
        pa_event_push(cl, PANELAGENT_EUNDELIVERED, it->seq, d);
        cl->st[PANELAGENT_STAT_UNDELIVERED]++;
        cl->undelivered++;
        it->inflight = 0;
        pa_queue_remove(cl, it);
    }
    cl->n_inflight = 0;
    pthread_mutex_unlock(&cl->mu);
}

static void *io_main(void *arg)
{
    struct panelagent_client *cl = arg;

    for (;;) {
        pa_deliver_events(cl);
        pthread_mutex_lock(&cl->mu);
        int stop = cl->stop;
        pthread_mutex_unlock(&cl->mu);
        if (stop)
            break;

        int64_t now = pa_mono_ms();
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
            int64_t d = next - pa_mono_ms();
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
        now = pa_mono_ms();
        if (cl->conn != NULL)
            io_event(cl, n > 0 ? pfd[1].revents : 0, now);
    }
    if (cl->conn != NULL) {
        if (pa_conn_state(cl->conn) >= PA_CONN_H2) {
            char err[64];
            int c, r;
            pa_conn_shutdown(cl->conn);
            (void)pa_conn_io(cl->conn, 0, pa_mono_ms(), &c, &r, err, sizeof err);
        }
        drop_conn(cl);
    }
    report_undelivered(cl);
    pa_deliver_events(cl);
    return NULL;
}

/* ---- new / flush / stat / close ---------------------------------------------------------------- */

static void client_destroy(struct panelagent_client *cl)
{
    if (cl == NULL)
        return;
    while (cl->head != NULL)
        pa_queue_remove(cl, cl->head);
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
        {offsetof(struct pa_opts, ca_file), "PANELAGENT_OPT_CA_FILE"},
        {offsetof(struct pa_opts, cert_file), "PANELAGENT_OPT_CERT_FILE"},
        {offsetof(struct pa_opts, key_file), "PANELAGENT_OPT_KEY_FILE"},
    };
    if (o->host != NULL && o->has_list) {
        pa_seterr(err, errlen,
                  "PANELAGENT_OPT_GATEWAY_HOST and PANELAGENT_OPT_GATEWAYS are both set "
                  "(set one)");
        return PANELAGENT_ECONFIG;
    }
    if (o->n_gws == 0) {
        pa_seterr(err, errlen,
                  "PANELAGENT_OPT_GATEWAY_HOST is not set (required, unless "
                  "PANELAGENT_OPT_GATEWAYS is)");
        return PANELAGENT_ECONFIG;
    }
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
    if ((rv = pa_seq_open(&cl->seq, cl->o.seq_file, PA_SEQ_BLOCK, pa_unix_ms(), err, errlen)) !=
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

int panelagent_client_close(panelagent_client *cl, int timeout_ms)
{
    int n;

    if (cl == NULL)
        return 0;
    if (pa_client_on_io_thread(cl))
        return PANELAGENT_EBUSY;
    if (timeout_ms != 0)
        (void)panelagent_client_flush(cl, timeout_ms);
    pthread_mutex_lock(&cl->mu);
    cl->closing = 1;
    cl->stop = 1;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pa_client_wake(cl);
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

/* ---- for the fuzz target (client_internal.h) ------------------------------------------ */

int pa_client_test_new(struct panelagent_client **out, const panelagent_config *c)
{
    struct panelagent_client *cl = calloc(1, sizeof *cl);

    *out = NULL;
    if (cl == NULL)
        return PANELAGENT_ENOMEM;
    cl->wake_fd = -1;
    pthread_mutex_init(&cl->seq_mu, NULL);
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    cl->idle_since_ms = -1;
    if (pa_opts_copy(&cl->o, c) != PANELAGENT_OK) {
        client_destroy(cl);
        return PANELAGENT_ENOMEM;
    }
    *out = cl;
    return PANELAGENT_OK;
}

int pa_client_test_queue(struct panelagent_client *cl, uint64_t seq, const uint8_t *data,
                         size_t len)
{
    struct pa_item *it = calloc(1, sizeof *it);
    if (it == NULL || (it->data = malloc(len ? len : 1)) == NULL) {
        free(it);
        return PANELAGENT_ENOMEM;
    }
    memcpy(it->data, data, len);
    it->len = len;
    it->seq = seq;
    pthread_mutex_lock(&cl->mu);
    pa_queue_insert(cl, it);
    pthread_mutex_unlock(&cl->mu);
    return PANELAGENT_OK;
}

int pa_client_test_attach(struct panelagent_client *cl, struct pa_conn *conn)
{
    int n = 0;

    cl->conn = conn;
    pthread_mutex_lock(&cl->mu);
    for (struct pa_item *it = cl->head; it != NULL && n < cl->o.max_in_flight; it = it->next) {
        if (it->inflight || pa_conn_submit(conn, it) != PANELAGENT_OK)
            continue;
        it->inflight = 1;
        cl->n_inflight++;
        it->sends++;
        n++;
    }
    pthread_mutex_unlock(&cl->mu);
    return n;
}

void pa_client_test_detach(struct panelagent_client *cl)
{
    if (cl->conn != NULL)
        drop_conn(cl);
    pa_deliver_events(cl);
    pthread_mutex_lock(&cl->mu);
    while (cl->head != NULL)
        pa_queue_remove(cl, cl->head);
    pthread_mutex_unlock(&cl->mu);
    cl->hold_until_ms = 0;
    cl->req_streak = cl->fail_streak = 0;
}

void pa_client_test_free(struct panelagent_client *cl)
{
    client_destroy(cl);
}
