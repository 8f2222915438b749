/*
 * client_internal.h - what the client core of libpanelagent shares:
 * the configuration (pa_config.c), the seq store (seqstore.c), the TLS
 * side of a connection (tls_client.c), one TLS + HTTP/2 connection
 * (transport.c) and the queue and delivery (client.c).  Not installed,
 * nothing here is exported.
 *
 * Threads: everything in transport.c and tls_client.c runs on the client's
 * I/O thread only; the queue (client_queue.c) is shared with submitting
 * threads under the client's mutex.
 */
#ifndef PANELAGENT_CLIENT_INTERNAL_H
#define PANELAGENT_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- pa_config.c -------------------------------------------------------------- */

#define PA_PIN_LEN 32

#define PA_MAX_GATEWAYS 32
#define PA_MAX_ADDRS 16 /* of one gateway's name, tried in turn */

/* One gateway of the candidate list. */
struct pa_gw {
    char *host;
    int64_t port;
};

/* Everything a client keeps of a panelagent_config (its own copies). */
struct pa_opts {
    char *host;      /* GATEWAY_HOST, as set (NULL when not) */
    int has_list;    /* PANELAGENT_OPT_GATEWAYS was set */
    struct pa_gw *gws; /* the gateways: the list, or host + port */
    size_t n_gws;
    char *name;      /* NULL: the host; "": no name check */
    char *ca_file;   /* required */
    char *cert_file; /* required */
    char *key_file;  /* required */
    char *seq_file;  /* NULL: seq follows the clock */
    int has_pin;
    uint8_t pin[PA_PIN_LEN];
    int64_t port;
    int64_t queue_max_frames;
    int64_t queue_max_bytes;
    int64_t queue_policy;
    int64_t max_in_flight;
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms;
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    int64_t refused_backoff_ms;
    int64_t idle_timeout_ms;
    panelagent_ack_fn ack_fn;
    void *ack_ud;
    panelagent_error_fn error_fn;
    void *error_ud;
    panelagent_log_fn log_fn;
    void *log_ud;
};

/* Copies |c| into |o| (zeroed first).  PANELAGENT_OK or PANELAGENT_ENOMEM;
 * on failure |o| holds nothing. */
int pa_opts_copy(struct pa_opts *o, const panelagent_config *c);
void pa_opts_cleanup(struct pa_opts *o);
void pa_gateways_free(struct pa_gw *gws, size_t n);

/* ---- seqstore.c ------------------------------------------------------------------
 * seq = max(last + 1, unix_time_ms), strictly increasing.  With a file, a
 * high-water mark is persisted ahead in blocks of |block| (atomic
 * replace + fsync), so a crash never reuses a seq and most seqs cost no
 * I/O.  Not thread-safe: the caller serialises. */
#define PA_SEQ_BLOCK 60000u /* one minute of the clock */

struct pa_seqstore;

/* |path| NULL: in memory only.  PANELAGENT_OK, PANELAGENT_ECONFIG (corrupt
 * file), PANELAGENT_EIO (cannot read or write it), PANELAGENT_ENOMEM; the
 * reason in err. */
int pa_seq_open(struct pa_seqstore **out, const char *path, uint64_t block, uint64_t now_ms,
                char *err, size_t errlen);
/* The next seq for a frame submitted at |now_ms|.  PANELAGENT_OK or
 * PANELAGENT_EIO (the high-water mark could not be written: nothing was
 * handed out). */
int pa_seq_next(struct pa_seqstore *s, uint64_t now_ms, uint64_t *out, char *err,
                size_t errlen);
/* The last seq handed out (or loaded): 0 when none. */
uint64_t pa_seq_last(const struct pa_seqstore *s);
void pa_seq_close(struct pa_seqstore *s);

/* ---- the queue (client.c) ------------------------------------------------------- */

struct pa_item {
    struct pa_item *prev, *next; /* the client's queue, ascending seq */
    uint64_t seq;
    uint8_t *data; /* encoded frame, immutable after submit */
    size_t len;
    int inflight;     /* a request on the current connection carries it */
    unsigned sends;   /* requests started for it */
    int64_t sent_ms;  /* monotonic time of the last send */
};

/* An answer to one request (transport.c -> client.c). */
struct pa_answer {
    int status;            /* HTTP status */
    int has_ack;           /* panelgate-ack-seq present and a number */
    uint64_t ack_seq;
    int retry_after_s;     /* -1: absent */
    char problem[256];     /* "type: detail" of a problem+json body, sanitised */
};

struct panelagent_client;

/* Called by transport.c on the I/O thread, from nghttp2's stream-close
 * callback.  PANELAGENT_OK, or PANELAGENT_EPROTOCOL when the answer shows
 * the gateway is broken (a 202 that acknowledges another seq): the reason
 * is in |err| and the caller drops the connection (the frame stays queued
 * and is resent with its seq). */
int pa_client_answer(struct panelagent_client *cl, struct pa_item *it,
                     const struct pa_answer *a, char *err, size_t errlen);
void pa_client_lost(struct panelagent_client *cl, struct pa_item *it, uint32_t h2_error);
void pa_client_log(struct panelagent_client *cl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the client (client.c, client_queue.c) ------------------------------------------
 * client_queue.c: the queue, the events for the callbacks, submit, flush and
 * the counters; client.c: answers, the connection and the I/O thread. */

#define PA_N_STATS (PANELAGENT_STAT_UNDELIVERED + 1)

struct pa_event {
    struct pa_event *next;
    int err; /* 0: ack */
    uint64_t seq;
    char detail[320];
};

struct pa_tls;
struct pa_conn;
struct pa_seqstore;

struct panelagent_client {
    struct pa_opts o;
    struct pa_tls *tls;

    pthread_mutex_t seq_mu;
    struct pa_seqstore *seq; /* seq_mu */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* an item left the queue, or an event was delivered */
    struct pa_item *head, *tail;
    uint64_t n_items, n_bytes, n_inflight;
    uint64_t max_seq; /* highest seq queued so far */
    struct pa_event *ev_head, *ev_tail;
    uint64_t ev_queued;    /* events ever queued for a callback */
    uint64_t ev_delivered; /* of those, callbacks that have returned */
    uint64_t st[PA_N_STATS];
    int closing, stop;
    int undelivered;

    int wake_fd;
    pthread_t thr;
    int thr_started;

    /* I/O thread only */
    struct pa_conn *conn;
    int64_t next_attempt_ms; /* no connection attempt before */
    int64_t hold_until_ms;   /* no request before (retry-after, 5xx) */
    unsigned fail_streak;    /* transient failures since the last ack */
    unsigned req_streak;     /* retryable answers in a row */
    unsigned refusal_streak;
    int refusal_reported;    /* code reported in this refusal episode */
    int last_transient;
    int64_t last_transient_ms;
    int calm_reported;
    int conn_acked;          /* the current connection delivered an ack */
    /* The candidate: address addr_cur of gateway o.gws[gw_cur]; each
     * failure moves on to the next one, and the backoff applies only after
     * a full round of them failed (round_fails, since the last ack). */
    size_t gw_cur;
    unsigned addr_cur;
    unsigned gw_naddrs[PA_MAX_GATEWAYS]; /* at its last resolution; 0: not yet */
    unsigned round_fails;
    int round_refused;       /* a candidate of this round refused us */
    int64_t idle_since_ms;
};

int64_t pa_mono_ms(void);
uint64_t pa_unix_ms(void);
/* Wakes the I/O thread's poll. */
void pa_client_wake(struct panelagent_client *cl);
int pa_client_on_io_thread(const struct panelagent_client *cl);

/* With mu held.  pa_event_push queues a callback (dropped when there is no
 * callback for it); pa_queue_remove unlinks and frees an item and wakes
 * flush. */
void pa_event_push(struct panelagent_client *cl, int err, uint64_t seq, const char *detail);
void pa_queue_insert(struct panelagent_client *cl, struct pa_item *it);
void pa_queue_remove(struct panelagent_client *cl, struct pa_item *it);
void pa_item_free(struct pa_item *it);
/* Runs the queued callbacks without the lock (I/O thread). */
void pa_deliver_events(struct panelagent_client *cl);

/* ---- tls_client.c ----------------------------------------------------------------- */

struct pa_tls;     /* per client: RNG, CA, own certificate and key, session */
struct pa_tls_io;  /* per connection: the mbedTLS context */

int pa_tls_new(struct pa_tls **out, const struct pa_opts *o, char *err, size_t errlen);
void pa_tls_free(struct pa_tls *t);
/* A random 64-bit number (for jitter); t NULL: a fixed sequence. */
uint64_t pa_tls_random(struct pa_tls *t);
/* Forgets the saved session (after a refusal). */
void pa_tls_forget_session(struct pa_tls *t);

/* |host|: the gateway's, the SNI and name checked unless
 * PANELAGENT_OPT_GATEWAY_NAME says otherwise. */
int pa_tls_io_new(struct pa_tls_io **out, struct pa_tls *t, int fd, const char *host);
void pa_tls_io_free(struct pa_tls_io *io);
/* Drives the handshake.  PANELAGENT_OK when done (*resumed set),
 * PANELAGENT_EAGAIN with *want_write set when it must wait for the socket,
 * or a reported PANELAGENT_E* with the reason in err. */
int pa_tls_handshake(struct pa_tls_io *io, int *want_write, int *resumed, char *err,
                     size_t errlen);
/* > 0 bytes, PANELAGENT_EAGAIN (want_write says which way), 0 at a clean
 * end, or a reported PANELAGENT_E* with the reason in err. */
int pa_tls_read(struct pa_tls_io *io, uint8_t *buf, size_t n, int *want_write, char *err,
                size_t errlen);
int pa_tls_write(struct pa_tls_io *io, const uint8_t *buf, size_t n, int *want_write,
                 char *err, size_t errlen);
/* Sends close_notify (best effort). */
void pa_tls_close_notify(struct pa_tls_io *io);

/* ---- transport.c -------------------------------------------------------------------- */

struct pa_conn;

enum pa_conn_state {
    PA_CONN_TCP = 1,   /* connecting */
    PA_CONN_TLS,       /* handshake */
    PA_CONN_H2,        /* open */
    PA_CONN_CLOSING,   /* GOAWAY sent or received: no new requests */
};

/* Resolves gateway |gw| (*n_addrs: how many addresses it has, 0 when it
 * does not resolve) and starts a non-blocking connect to its address
 * |addr_idx| (modulo *n_addrs).  On failure *out is NULL and a reported
 * code (PANELAGENT_ECONNECT) is returned with the reason in err; the
 * client then moves on to its next candidate. */
int pa_conn_new(struct pa_conn **out, struct panelagent_client *cl, struct pa_tls *tls,
                const struct pa_opts *o, const struct pa_gw *gw, unsigned addr_idx,
                unsigned *n_addrs, int64_t now_ms, char *err, size_t errlen);
/* Frees the connection without any callback: the caller requeues what
 * was in flight. */
void pa_conn_free(struct pa_conn *c);
/* Asks for a clean end (GOAWAY + close_notify) before pa_conn_free. */
void pa_conn_shutdown(struct pa_conn *c);

enum pa_conn_state pa_conn_state(const struct pa_conn *c);
int pa_conn_fd(const struct pa_conn *c);
/* POLLIN/POLLOUT wanted now. */
short pa_conn_events(const struct pa_conn *c);
/* Absolute monotonic deadline of the connect/handshake, or -1. */
int64_t pa_conn_deadline(const struct pa_conn *c);
/* Makes progress after poll.  PANELAGENT_OK, or a reported code when the
 * connection is finished (reason in err; 0 < *closed_clean when it ended
 * cleanly, e.g. after GOAWAY).  *connected is set once when the
 * handshake completed (then *resumed says whether it was resumed). */
int pa_conn_io(struct pa_conn *c, short revents, int64_t now_ms, int *connected, int *resumed,
               char *err, size_t errlen);
/* Requests that can be started now (0 when not open or after GOAWAY). */
int pa_conn_slots(const struct pa_conn *c, int max_in_flight);
/* The gateway has spoken HTTP/2 on it (it accepted us). */
int pa_conn_connected(const struct pa_conn *c);
/* Open streams. */
int pa_conn_streams(const struct pa_conn *c);
/* Starts a request for |it|.  PANELAGENT_OK or PANELAGENT_ENOMEM /
 * PANELAGENT_EPROTOCOL (nothing started). */
int pa_conn_submit(struct pa_conn *c, struct pa_item *it);
/* GOAWAY received: its error code (0 = NO_ERROR) or -1 when none. */
int64_t pa_conn_goaway(const struct pa_conn *c);

/* For the fuzz target: a connection without a socket or TLS, open for
 * HTTP/2 at once (requests go in with pa_conn_submit).  pa_conn_feed hands
 * it bytes as if from the gateway, runs the same callbacks as pa_conn_io,
 * and throws away what the client would send back.  Same results as
 * pa_conn_io. */
int pa_conn_new_mem(struct pa_conn **out, struct panelagent_client *cl, const struct pa_opts *o);
int pa_conn_feed(struct pa_conn *c, const uint8_t *data, size_t len, int *connected,
                 char *err, size_t errlen);

/* ---- client.c: the same for the fuzz target --------------------------------------------
 * A client with the options of |c| but no TLS, no seq store and no I/O
 * thread; frames are queued with pa_client_test_queue, sent on a
 * pa_conn_new_mem connection with pa_client_test_attach (the connection is
 * the client's then), and pa_client_test_detach frees the connection, runs
 * the callbacks and empties the queue. */
int pa_client_test_new(struct panelagent_client **out, const panelagent_config *c);
int pa_client_test_queue(struct panelagent_client *cl, uint64_t seq, const uint8_t *data,
                         size_t len);
/* Starts a request for each queued frame that the connection has room for;
 * returns how many. */
int pa_client_test_attach(struct panelagent_client *cl, struct pa_conn *conn);
void pa_client_test_detach(struct panelagent_client *cl);
void pa_client_test_free(struct panelagent_client *cl);

#endif /* PANELAGENT_CLIENT_INTERNAL_H */
