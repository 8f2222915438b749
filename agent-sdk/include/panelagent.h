/*
 * panelagent.h - libpanelagent, the client side of panelgate.
 *
 * An agent (Nimble Streamer, Wowza Streaming Engine, or anything else that
 * reports to the panel) builds stats frames with panelagent_frame_*, hands
 * them to a panelagent_client, and the library delivers each one to the
 * gateway over HTTP/2 + mutual TLS until the gateway acknowledges it as
 * durable (docs/PROTOCOL.md, docs/SDK.md).
 *
 * Conventions (the same for every function below):
 * - Functions return PANELAGENT_OK (0) or a negative PANELAGENT_E* code;
 *   panelagent_strerror() describes it.  Codes are append-only.
 * - Whoever allocates, frees: *_new gives the caller an object it frees
 *   with the matching *_free; *_take in a name means ownership moves to the
 *   callee, even when the call fails.  *_free accepts NULL.
 * - Strings are UTF-8, NUL-terminated, and copied on entry; the library
 *   never keeps a caller's pointer.  Strings the library returns stay valid
 *   as the comment says and are never freed by the caller.
 * - No varargs, no structs by value, no bitfields (easy to bind from JNI or
 *   any FFI).  No global state: two clients in one process are independent.
 * - The library never writes to stdout/stderr, never calls exit() or
 *   abort() on input or resource errors, and never raises signals (SIGPIPE
 *   included).
 *
 * Threading: a panelagent_client is thread-safe (any thread may submit,
 * flush, read stats).  A panelagent_config and a panelagent_frame belong to
 * one thread at a time.  Callbacks run on the client's own I/O thread; see
 * panelagent_ack_fn.
 */
#ifndef PANELAGENT_H
#define PANELAGENT_H

#include <stddef.h>
#include <stdint.h>

#if defined(PANELAGENT_BUILDING) && defined(__GNUC__)
#define PANELAGENT_API __attribute__((visibility("default")))
#else
#define PANELAGENT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions --------------------------------------------------------------- */

#define PANELAGENT_VERSION_MAJOR 0
#define PANELAGENT_VERSION_MINOR 1
#define PANELAGENT_VERSION_PATCH 0
#define PANELAGENT_VERSION_STRING "0.1.0"
/* 0xMMmmpp */
#define PANELAGENT_VERSION_NUM                                                 \
    ((PANELAGENT_VERSION_MAJOR << 16) | (PANELAGENT_VERSION_MINOR << 8) |      \
     PANELAGENT_VERSION_PATCH)

/* The newest panelagent_info layout this header knows. */
#define PANELAGENT_INFO_AGE 0

/* What panelagent_version() describes.  Fields are only ever appended; a
 * new field comes with a higher age. */
typedef struct panelagent_info {
    int age;                     /* layout version; 0 = these fields */
    unsigned version_num;        /* PANELAGENT_VERSION_NUM of the library */
    const char *version;         /* "0.1.0" */
    int protocol;                /* wire protocol version, 1 */
    const char *mbedtls_version; /* of the mbedTLS it runs with */
    const char *nghttp2_version; /* of the nghttp2 it runs with */
} panelagent_info;

/* Static description of the library, or NULL when the library is older
 * than |min_age| (pass PANELAGENT_INFO_AGE).  Never freed. */
PANELAGENT_API const panelagent_info *panelagent_version(int min_age);

/* ---- errors ----------------------------------------------------------------- */

/* Append-only.  "Reported" codes reach the error callback
 * (panelagent_error_fn); the others are returned by calls. */
typedef enum panelagent_err {
    PANELAGENT_OK = 0,
    PANELAGENT_EINVAL = -1,    /* bad argument or value out of range */
    PANELAGENT_ENOMEM = -2,    /* out of memory (nothing changed) */
    PANELAGENT_EAGAIN = -3,    /* submit: the queue is full (policy
                                  PANELAGENT_QUEUE_REJECT_NEW); the frame was
                                  not queued, and counted */
    PANELAGENT_ETIMEDOUT = -4, /* flush/close: time ran out first */
    PANELAGENT_ECLOSED = -5,   /* the client is closing */
    PANELAGENT_ELIMIT = -6,    /* frame builder: a protocol limit (count or
                                  length) would be exceeded */
    PANELAGENT_EFRAME = -7,    /* the frame is not a valid v1 frame (the
                                  gateway would answer 400); see
                                  panelagent_frame_error() */
    PANELAGENT_EIO = -8,       /* reading or writing a file failed */
    PANELAGENT_ECONFIG = -9,   /* configuration incomplete or unusable
                                  (missing option, certificate and key do not
                                  match, unreadable CA file, ...) */
    /* Reported, retried with backoff (transient): */
    PANELAGENT_ECONNECT = -10,  /* cannot reach the gateway (DNS, refused,
                                   timeout, closed before the handshake) */
    PANELAGENT_ETLS = -11,      /* TLS failed for another reason */
    PANELAGENT_EPROTOCOL = -12, /* the gateway broke HTTP/2 or answered
                                   something unexpected */
    /* Reported once per episode; retried only with the long refusal
     * backoff (PANELAGENT_OPT_REFUSED_BACKOFF_MS), since retrying alone
     * cannot fix them: */
    PANELAGENT_EGATEWAY_CERT = -13, /* the gateway's certificate does not
                                       verify against the panel CA, or does
                                       not match the gateway name */
    PANELAGENT_EGATEWAY_PIN = -14,  /* the gateway's key is not the pinned
                                       one (PANELAGENT_OPT_GATEWAY_PIN) */
    PANELAGENT_ENOT_REGISTERED = -15, /* the gateway refused our certificate
                                         with access_denied: it is valid but
                                         not registered (or the server is
                                         banned for a while, see
                                         PANELAGENT_ERATE_LIMITED) */
    PANELAGENT_EREVOKED = -16,     /* the gateway refused our certificate
                                      with certificate_revoked */
    PANELAGENT_ECERT_REJECTED = -17, /* the gateway refused our certificate
                                        otherwise (unknown_ca,
                                        certificate_expired, bad_certificate
                                        ...): not issued by the panel CA or
                                        outside its validity */
    PANELAGENT_ERATE_LIMITED = -18, /* GOAWAY ENHANCE_YOUR_CALM: banned for
                                       ignoring 429s; waits before
                                       reconnecting */
    /* Reported with the frame's seq; that frame is gone: */
    PANELAGENT_EREJECTED = -19,    /* the gateway refused the frame with a
                                      non-retryable status (4xx other than
                                      429); detail = the problem's type and
                                      detail */
    PANELAGENT_EDROPPED = -20,     /* dropped from the queue to make room
                                      (policy PANELAGENT_QUEUE_DROP_OLDEST) */
    PANELAGENT_EUNDELIVERED = -21, /* still unacknowledged when the client
                                      was closed */
    PANELAGENT_EBUSY = -22,        /* not allowed from inside a callback
                                      (flush, close) */
    PANELAGENT_EINTERNAL = -23,    /* a bug; please report it */
} panelagent_err;

/* A short description of |err|.  Never NULL; static storage. */
PANELAGENT_API const char *panelagent_strerror(int err);

/* ---- callbacks --------------------------------------------------------------- */

/* The gateway acknowledged frame |seq| (HTTP 202: committed to storage).
 * Runs on the client's I/O thread: it must not block for long and must not
 * call panelagent_client_flush/close (they return PANELAGENT_EBUSY there);
 * submitting from it is allowed. */
typedef void (*panelagent_ack_fn)(uint64_t seq, void *ud);

/* Something went wrong: |err| is a reported PANELAGENT_E* code, |seq| the
 * frame it concerns (0 when it concerns the connection), |detail| a
 * human-readable line valid only during the call.  Same thread rules as
 * panelagent_ack_fn. */
typedef void (*panelagent_error_fn)(int err, uint64_t seq, const char *detail, void *ud);

/* Log levels. */
enum {
    PANELAGENT_LOG_ERROR = 0,
    PANELAGENT_LOG_WARN = 1,
    PANELAGENT_LOG_INFO = 2,
    PANELAGENT_LOG_DEBUG = 3,
};

/* One log line (no trailing newline), valid only during the call.  Never
 * contains key material or viewer addresses.  May run on any library
 * thread. */
typedef void (*panelagent_log_fn)(int level, const char *msg, void *ud);

/* ---- configuration ----------------------------------------------------------- */

typedef struct panelagent_config panelagent_config;

/* Option identifiers.  Append-only; the comment gives the type (set with
 * panelagent_config_set_str or _i64), the default and the range. */
typedef enum panelagent_opt {
    /* strings */
    PANELAGENT_OPT_GATEWAY_HOST = 1, /* host name or address; required
                                        unless PANELAGENT_OPT_GATEWAYS is
                                        set (not both) */
    PANELAGENT_OPT_GATEWAY_NAME = 2, /* name sent as SNI and checked against
                                        the gateway certificate; default: the
                                        host (of each of GATEWAYS).  "" = do
                                        not check the name
                                        (the CA and the pin still apply) */
    PANELAGENT_OPT_CA_FILE = 3,      /* panel CA certificate(s), PEM;
                                        required */
    PANELAGENT_OPT_CERT_FILE = 4,    /* this agent's certificate (chain),
                                        PEM; required */
    PANELAGENT_OPT_KEY_FILE = 5,     /* its private key, PEM; required */
    PANELAGENT_OPT_GATEWAY_PIN = 6,  /* optional: SHA-256 of the gateway
                                        certificate's SubjectPublicKeyInfo,
                                        64 hex digits (what `panelgatectl
                                        show` prints for a key) */
    PANELAGENT_OPT_SEQ_FILE = 7,     /* optional: file that keeps the last
                                        seq across restarts (see SDK.md);
                                        without it seq follows the clock */
    PANELAGENT_OPT_GATEWAYS = 8,     /* instead of GATEWAY_HOST/PORT: several
                                        gateways, "host[:port],host[:port],
                                        [v6addr]:port" (up to 32; a missing
                                        port is GATEWAY_PORT).  Every address
                                        each name resolves to is a candidate;
                                        a failed connect or handshake, or a
                                        lost connection, moves on to the next
                                        one with the frames still unacked
                                        (same seqs), and the backoff applies
                                        between full rounds (SDK.md) */
    /* integers */
    PANELAGENT_OPT_GATEWAY_PORT = 20,     /* 8443; 1..65535 */
    PANELAGENT_OPT_QUEUE_MAX_FRAMES = 21, /* 1000; 1..1000000 */
    PANELAGENT_OPT_QUEUE_MAX_BYTES = 22,  /* 64 MiB; 4096..4 GiB */
    PANELAGENT_OPT_QUEUE_POLICY = 23,     /* PANELAGENT_QUEUE_REJECT_NEW */
    PANELAGENT_OPT_MAX_IN_FLIGHT = 24,    /* 8; 1..100: requests at once,
                                             also capped by the gateway's
                                             MAX_CONCURRENT_STREAMS */
    PANELAGENT_OPT_CONNECT_TIMEOUT_MS = 25, /* 10000; 100..600000: TCP +
                                               TLS handshake */
    PANELAGENT_OPT_REQUEST_TIMEOUT_MS = 26, /* 30000; 100..600000: from
                                               sending a frame to its answer;
                                               then the connection is
                                               dropped and the frame resent */
    PANELAGENT_OPT_BACKOFF_INITIAL_MS = 27, /* 500; 10..600000 */
    PANELAGENT_OPT_BACKOFF_MAX_MS = 28,     /* 30000; 10..3600000 */
    PANELAGENT_OPT_REFUSED_BACKOFF_MS = 29, /* 60000; 10..3600000: the
                                               first wait after a refusal
                                               retrying cannot fix; doubles
                                               up to 16x this value */
    PANELAGENT_OPT_IDLE_TIMEOUT_MS = 30,    /* 60000; 0..86400000: close the
                                               connection after this long
                                               with nothing to send (0 =
                                               keep it open) */
} panelagent_opt;

/* Queue policies (PANELAGENT_OPT_QUEUE_POLICY) when a frame would exceed
 * QUEUE_MAX_FRAMES or QUEUE_MAX_BYTES. */
enum {
    /* submit returns PANELAGENT_EAGAIN; the queued frames are kept */
    PANELAGENT_QUEUE_REJECT_NEW = 0,
    /* the oldest frames not yet sent are dropped (each reported with
     * PANELAGENT_EDROPPED) until the new one fits */
    PANELAGENT_QUEUE_DROP_OLDEST = 1,
};

/* A config with every default.  Caller frees with panelagent_config_free;
 * a client copies what it needs, so the config may be freed (or reused
 * for another client) once panelagent_client_new returns. */
PANELAGENT_API int panelagent_config_new(panelagent_config **out);
PANELAGENT_API void panelagent_config_free(panelagent_config *c);

/* Sets a string option (copied).  NULL resets it to its default.
 * PANELAGENT_EINVAL for an unknown id, a wrong type or a malformed value
 * (a pin that is not 64 hex digits). */
PANELAGENT_API int panelagent_config_set_str(panelagent_config *c, panelagent_opt id,
                                             const char *v);
/* Sets an integer option; PANELAGENT_EINVAL outside its range. */
PANELAGENT_API int panelagent_config_set_i64(panelagent_config *c, panelagent_opt id,
                                             int64_t v);

/* Callbacks; NULL fn removes one.  |ud| is passed back unchanged. */
PANELAGENT_API int panelagent_config_set_ack(panelagent_config *c, panelagent_ack_fn fn,
                                             void *ud);
PANELAGENT_API int panelagent_config_set_error(panelagent_config *c, panelagent_error_fn fn,
                                               void *ud);
PANELAGENT_API int panelagent_config_set_log(panelagent_config *c, panelagent_log_fn fn,
                                             void *ud);

/* ---- frames ------------------------------------------------------------------ */

typedef struct panelagent_frame panelagent_frame;

/* Agent kinds (server.kind on the wire). */
enum {
    PANELAGENT_KIND_NIMBLE = 1,
    PANELAGENT_KIND_WOWZA = 2,
};

/* An empty frame.  Every setter checks its value and the protocol's limits
 * at once (PANELAGENT_EINVAL / PANELAGENT_ELIMIT, with the field in
 * panelagent_frame_error()), so an agent learns of a bad frame while it
 * builds it.  A failed setter leaves the frame as it was. */
PANELAGENT_API int panelagent_frame_new(panelagent_frame **out);
PANELAGENT_API void panelagent_frame_free(panelagent_frame *f);

/* A frame from an encoded v1 frame (msgpack, as `panelagent encode`
 * writes).  Fully validated; on PANELAGENT_EFRAME the reason ("field.path:
 * reason") is copied to |err| when it is not NULL.  Its seq is replaced at
 * submit. */
PANELAGENT_API int panelagent_frame_new_msgpack(panelagent_frame **out, const uint8_t *buf,
                                                size_t len, char *err, size_t errlen);

/* Required: server.name (1..255 bytes), kind (PANELAGENT_KIND_*) and the
 * agent's version string (1..1024 bytes). */
PANELAGENT_API int panelagent_frame_set_server(panelagent_frame *f, const char *name,
                                               int kind, const char *agent_version);
/* One of the server's own addresses, IPv4 or IPv6 text (up to 64). */
PANELAGENT_API int panelagent_frame_add_server_ip(panelagent_frame *f, const char *ip);
/* Unix time of the sample in milliseconds; 0 (default) = the time of
 * submit. */
PANELAGENT_API int panelagent_frame_set_time(panelagent_frame *f, uint64_t ts_ms);
/* Required: CPU 0..100 % of the machine; RAM used <= total, total > 0. */
PANELAGENT_API int panelagent_frame_set_load(panelagent_frame *f, double cpu_pct,
                                             uint64_t ram_used, uint64_t ram_total);
/* Required: bytes in/out since the previous frame, over |period_ms|. */
PANELAGENT_API int panelagent_frame_set_traffic(panelagent_frame *f, uint64_t bytes_in,
                                                uint64_t bytes_out, uint64_t period_ms);
/* One stream at vhost / application / application instance / stream; the
 * tree nodes are created on first use and found by name afterwards.  Names
 * 1..255 bytes.  The same stream twice is PANELAGENT_EINVAL. */
PANELAGENT_API int panelagent_frame_add_stream(panelagent_frame *f, const char *vhost,
                                               const char *app, const char *instance,
                                               const char *stream, uint64_t viewers,
                                               uint64_t bitrate_bps, uint64_t bytes_in,
                                               uint64_t bytes_out);
/* One viewer connection by address text (IPv4 or IPv6) and the traffic it
 * consumed since the previous frame.  The address is personal data: the
 * gateway reduces it to country/ASN aggregates and drops it. */
PANELAGENT_API int panelagent_frame_add_conn(panelagent_frame *f, const char *ip,
                                             uint64_t bytes_in, uint64_t bytes_out);
/* The same with a binary address of 4 or 16 bytes (network order). */
PANELAGENT_API int panelagent_frame_add_conn_raw(panelagent_frame *f, const uint8_t *addr,
                                                 size_t addr_len, uint64_t bytes_in,
                                                 uint64_t bytes_out);

/* The configuration map: a bounded tree of scalars, arrays and maps.
 * Values go into the innermost open map (|key| required, unique) or array
 * (|key| must be NULL).  begin_map/begin_array open a container under
 * |key|; end closes the innermost one; containers left open are closed at
 * submit. */
PANELAGENT_API int panelagent_frame_config_str(panelagent_frame *f, const char *key,
                                               const char *v);
PANELAGENT_API int panelagent_frame_config_i64(panelagent_frame *f, const char *key,
                                               int64_t v);
PANELAGENT_API int panelagent_frame_config_f64(panelagent_frame *f, const char *key,
                                               double v);
PANELAGENT_API int panelagent_frame_config_bool(panelagent_frame *f, const char *key, int v);
PANELAGENT_API int panelagent_frame_config_begin_map(panelagent_frame *f, const char *key);
PANELAGENT_API int panelagent_frame_config_begin_array(panelagent_frame *f, const char *key);
PANELAGENT_API int panelagent_frame_config_end(panelagent_frame *f);

/* Validates the whole frame exactly as the gateway will (required fields
 * set, every limit).  PANELAGENT_OK or PANELAGENT_EFRAME. */
PANELAGENT_API int panelagent_frame_check(panelagent_frame *f);

/* The reason of the last failed call on |f| ("conns[3]: not an IP
 * address"), "" when there is none.  Valid until the next call on |f|. */
PANELAGENT_API const char *panelagent_frame_error(const panelagent_frame *f);

/* Encodes |f| with |seq| (and the current time when none was set) into a
 * new buffer (*out, *len) that the caller frees with panelagent_free.
 * For tools and tests; a client encodes frames itself. */
PANELAGENT_API int panelagent_frame_encode(panelagent_frame *f, uint64_t seq, uint8_t **out,
                                           size_t *len);
/* Frees a buffer the library returned. */
PANELAGENT_API void panelagent_free(void *p);

/* ---- the client -------------------------------------------------------------- */

typedef struct panelagent_client panelagent_client;

/* Loads the certificates and key, checks they belong together, and starts
 * the client's I/O thread.  It connects when there is something to send,
 * and from then on keeps delivering: every frame is retried with the same
 * seq until the gateway acknowledges it.  On failure *out is NULL and, when
 * |err| is not NULL, a reason is copied there (PANELAGENT_ECONFIG: which
 * option, which file). */
PANELAGENT_API int panelagent_client_new(panelagent_client **out, const panelagent_config *c,
                                         char *err, size_t errlen);

/* Queues frame |f| for delivery and gives it the next seq (*seq_out when not
 * NULL).  Always takes |f|: it is freed whatever the result.  Never blocks
 * on the network.  PANELAGENT_EFRAME when the frame is not valid (reason in
 * |err| when given), PANELAGENT_EAGAIN when the queue is full under
 * PANELAGENT_QUEUE_REJECT_NEW, PANELAGENT_ECLOSED while closing.  seq is
 * strictly increasing for the life of the agent's registration, across
 * restarts too (SDK.md). */
PANELAGENT_API int panelagent_client_submit_take(panelagent_client *cl, panelagent_frame *f,
                                                 uint64_t *seq_out, char *err,
                                                 size_t errlen);

/* Waits until every frame submitted before the call has been acknowledged
 * or finally failed (rejected, dropped).  |timeout_ms| < 0 waits for ever.
 * PANELAGENT_OK, PANELAGENT_ETIMEDOUT, or PANELAGENT_EBUSY from a
 * callback. */
PANELAGENT_API int panelagent_client_flush(panelagent_client *cl, int timeout_ms);

/* Counters and gauges (panelagent_client_stat). */
typedef enum panelagent_stat {
    PANELAGENT_STAT_SUBMITTED = 1,      /* frames accepted by submit */
    PANELAGENT_STAT_ACKED = 2,          /* frames acknowledged */
    PANELAGENT_STAT_QUEUED = 3,         /* gauge: frames not yet acked */
    PANELAGENT_STAT_QUEUED_BYTES = 4,   /* gauge: their encoded bytes */
    PANELAGENT_STAT_REJECTED_FULL = 5,  /* submits refused: queue full */
    PANELAGENT_STAT_DROPPED_OLDEST = 6, /* frames dropped to make room */
    PANELAGENT_STAT_REJECTED = 7,       /* frames refused by the gateway */
    PANELAGENT_STAT_RETRIES = 8,        /* frames sent more than once */
    PANELAGENT_STAT_CONNECTS = 9,       /* TLS sessions established */
    PANELAGENT_STAT_CONNECT_FAILURES = 10, /* attempts that failed */
    PANELAGENT_STAT_RESUMED = 11,       /* of CONNECTS, resumed sessions */
    PANELAGENT_STAT_LAST_ACKED_SEQ = 12, /* highest seq acknowledged */
    PANELAGENT_STAT_UNDELIVERED = 13,   /* frames reported undelivered at
                                           close */
} panelagent_stat;

/* Reads one counter into *out.  PANELAGENT_EINVAL for an unknown id. */
PANELAGENT_API int panelagent_client_stat(panelagent_client *cl, panelagent_stat id,
                                          uint64_t *out);

/* Flushes for up to |timeout_ms| (< 0: for ever), then stops the I/O
 * thread, reports every frame still unacknowledged through the error
 * callback (PANELAGENT_EUNDELIVERED, with its seq), and frees the client.
 * Returns how many frames were undelivered (>= 0), or PANELAGENT_EBUSY from
 * a callback (nothing is freed then). */
PANELAGENT_API int panelagent_client_close(panelagent_client *cl, int timeout_ms);

/* panelagent_client_close(cl, 0) without the count.  Accepts NULL. */
PANELAGENT_API void panelagent_client_free(panelagent_client *cl);

/* ---- keys -------------------------------------------------------------------- */

/* Makes a new P-256 private key (written to |key_path| with mode 0600; the
 * file must not exist yet) and a certificate signing request for it with
 * subject CN=|common_name| (written to |csr_path|, PEM), for `panelgatectl
 * register NAME --csr FILE`.  The key never leaves this host.  On failure
 * nothing is left behind and a reason is copied to |err| when given. */
PANELAGENT_API int panelagent_keygen(const char *key_path, const char *csr_path,
                                     const char *common_name, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* PANELAGENT_H */
