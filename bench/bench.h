/*
 * bench.h - panelgate-bench's connections (bench_conn.c) as its main
 * (panelgate_bench.c) drives them: the run's settings and counters, the
 * identities, the connections and their slots.  One run per process: the
 * state is global, set up by main before the first connection.
 */
#ifndef PANELGATE_BENCH_H
#define PANELGATE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <nghttp2/nghttp2.h>

#define BENCH_OUT_CAP (64 * 1024) /* HTTP/2 bytes buffered per connection */

enum slot_state { SLOT_IDLE, SLOT_SENT, SLOT_WAIT };
enum conn_state { C_WAIT, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };
enum phase { PH_OPEN, PH_RUN, PH_STORM };
enum err_kind { E_CONNECT, E_HANDSHAKE, E_TIMEOUT, E_CLOSED, E_KINDS };

struct conn;

/* One frame in flight (or waiting to be sent again). */
struct slot {
    struct conn *c;
    enum slot_state st;
    uint64_t seq;
    int64_t sent_us, retry_at_us;
    size_t off; /* body bytes handed to nghttp2 */
    int status;
};

/* One registered agent: its key pair, its TLS configuration, its frame
 * and its seq counter, shared by its connections. */
struct ident {
    char name[64];
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    uint8_t *body; /* the frame; its seq at seq_at (8 bytes, big endian) */
    size_t body_len, seq_at;
    char clen[24];
    uint64_t next_seq;
};

/* One connection: its TLS session, its HTTP/2 session, its slots. */
struct conn {
    struct ident *id;
    enum conn_state state;
    int fd;
    uint32_t events; /* registered with epoll */
    int want_write;  /* the handshake waits to write */
    int ssl_live;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_session sess; /* the last full handshake's, for --storm resume */
    int have_sess, offered;
    nghttp2_session *h2;
    struct slot *slots;
    int64_t attempt_us, reopen_at_us, next_rate_us;
    int storm_wait; /* reopened by the storm, no frame acknowledged since */
    uint8_t *out;   /* HTTP/2 bytes not yet taken by mbedtls_ssl_write */
    size_t out_len, out_pending; /* pending: the length of a write to repeat */
};

struct bench_stats {
    uint64_t ok, r503, r429, r_other, conn_errors;
    uint64_t err[E_KINDS];
    uint64_t handshakes, resumed;
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
};

/* The run's settings and state: one generator per process. */
struct bench_run {
    const char *host, *authority;
    int port;
    unsigned clients, in_flight, open_parallel, storm_parallel, ack_status;
    double rate;
    int64_t hs_timeout_us, reconnect_us;
    int storm; /* 0 none, 1 full, 2 resume */
    enum phase phase;
    int measuring;
    unsigned opening; /* connects + handshakes in progress */
    unsigned storm_left;
    int64_t storm_t0, storm_last;
    uint64_t storm_attempts, storm_handshakes, storm_resumed, storm_err;
    char suite[80];
    int suites[2]; /* --ciphersuite, 0-terminated; {0}: the library's list */
    int epfd;
    char fatal[600];
};

extern struct bench_run run;     /* options set by main, state by the connections */
extern struct bench_stats stats; /* counted while run.measuring, errors always */
extern mbedtls_ctr_drbg_context bench_drbg; /* seeded by main */
extern mbedtls_x509_crt bench_ca;           /* the servers' CA, loaded by main */

int64_t bench_mono_us(void);
/* A frame of |streams| streams over 2 vhosts x 2 apps and |conns| viewer
 * connections over 20 networks, seq SENTINEL; panelagent_free it. */
int bench_make_frame(const char *name, unsigned streams, unsigned conns, uint8_t **out,
                     size_t *len);
void bench_ident_init(struct ident *a);
void bench_ident_cleanup(struct ident *a);
/* Loads identity |a| (a->name set) from |dir|: frame, key pair, TLS
 * configuration.  -1 with a message in |err| on failure. */
int bench_ident_load(struct ident *a, const char *dir, unsigned streams, unsigned conns,
                     uint64_t seq0, char *err, size_t errlen);
/* Closes what the connection has open, keeping its saved TLS session. */
void bench_conn_teardown(struct conn *c);
/* Handles epoll events |ev| on |c|. */
void bench_conn_event(struct conn *c, uint32_t ev, int64_t now);
/* Every few ms: connections to (re)open, handshake timeouts, retries and
 * --rate periods due, over the run.clients connections |cs|. */
void bench_scan(struct conn *cs, int64_t now);
unsigned bench_count_state(const struct conn *cs, enum conn_state s);

#endif
