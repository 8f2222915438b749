/*
 * frame.h - the stats frame, wire protocol v1 (docs/PROTOCOL.md).
 *
 * One definition of the wire format, shared by the agent SDK (which builds
 * frames) and the gateway (which decodes them).  Internal header: it is not
 * installed, and nothing here is exported from libpanelagent.
 *
 * A decoded frame is a plain C struct whose every pointer lives in one
 * struct pa_arena owned by the caller; freeing or resetting the arena frees
 * the frame.  The decoder does no I/O, keeps no global state, never recurses
 * deeper than limits.max_depth and never allocates past limits.max_arena_bytes.
 */
#ifndef PANELPROTO_FRAME_H
#define PANELPROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <panelproto/arena.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PA_PROTOCOL_VERSION 1

/* Agent kinds, as sent in server.kind ("nimble" | "wowza"). */
enum pa_agent_kind {
    PA_KIND_NIMBLE = 1,
    PA_KIND_WOWZA = 2,
};

/* Decoder / validator result codes: 0 or negative.  Stable: append only. */
enum pa_frame_errcode {
    PA_FE_OK = 0,
    PA_FE_EMPTY = -1,      /* no input at all */
    PA_FE_TRUNCATED = -2,  /* input ends inside a value, or a declared
                              length/count is larger than what is left */
    PA_FE_TRAILING = -3,   /* bytes after the top-level map */
    PA_FE_TYPE = -4,       /* wrong msgpack type for the field */
    PA_FE_MISSING = -5,    /* a required field is absent */
    PA_FE_RANGE = -6,      /* number out of range (negative, too big, ...) */
    PA_FE_NONFINITE = -7,  /* NaN or infinity */
    PA_FE_UTF8 = -8,       /* string is not valid UTF-8 */
    PA_FE_NUL = -9,        /* NUL byte inside a string */
    PA_FE_IP = -10,        /* IP address is not 4 or 16 bytes */
    PA_FE_DUPKEY = -11,    /* the same key twice in one map */
    PA_FE_EXT = -12,       /* msgpack extension type (incl. timestamp) */
    PA_FE_TOO_MANY = -13,  /* a count limit is exceeded */
    PA_FE_TOO_LONG = -14,  /* a string length limit is exceeded */
    PA_FE_TOO_DEEP = -15,  /* nesting deeper than max_depth */
    PA_FE_TOO_BIG = -16,   /* input larger than max_frame_bytes, or its
                              decoded form larger than max_arena_bytes */
    PA_FE_VERSION = -17,   /* unsupported protocol version */
    PA_FE_INVALID = -18,   /* reserved byte 0xc1, empty name, unknown enum,
                              inconsistent values */
    PA_FE_NOMEM = -19,     /* the allocator failed (transient) */
    PA_FE_ARG = -20,       /* API misuse (NULL argument, bad limits) */
};

/* Every limit the decoder enforces.  pa_frame_limits_default() fills the
 * documented defaults; callers may lower or raise each one. */
struct pa_frame_limits {
    size_t max_frame_bytes;    /* whole encoded frame            4 MiB   */
    size_t max_arena_bytes;    /* decoded frame memory           32 MiB  */
    uint32_t max_depth;        /* map/array nesting; >= 9        16      */
    uint32_t max_name_len;     /* names (server, vhost, ...)     255     */
    uint32_t max_str_len;      /* version, config strings        1024    */
    uint32_t max_server_ips;   /* server.ips                     64      */
    uint32_t max_vhosts;       /* vhosts                         256     */
    uint32_t max_apps;         /* applications, whole frame      4096    */
    uint32_t max_instances;    /* app instances, whole frame     16384   */
    uint32_t max_streams;      /* streams, whole frame           16384   */
    uint32_t max_conns;        /* viewer connections             100000  */
    uint32_t max_config_nodes; /* config values, whole tree      4096    */
    uint32_t max_unknown_keys; /* skipped unknown keys per frame 64      */
};

#define PA_LIMIT_MIN_DEPTH 9u  /* the v1 schema itself nests 9 deep */
#define PA_LIMIT_MAX_DEPTH 64u /* hard ceiling on max_depth */

/* A raw IP address: family 4 (4 bytes used) or 6 (16 bytes used). */
struct pa_ip {
    uint8_t family;
    uint8_t addr[16];
};

struct pa_stream {
    const char *name;
    uint64_t viewers;   /* current viewers */
    uint64_t bitrate;   /* bits per second */
    uint64_t bytes_in;  /* since the previous frame */
    uint64_t bytes_out; /* since the previous frame */
};

struct pa_instance {
    const char *name;
    struct pa_stream *streams;
    uint32_t n_streams;
};

struct pa_app {
    const char *name;
    struct pa_instance *instances;
    uint32_t n_instances;
};

struct pa_vhost {
    const char *name;
    struct pa_app *apps;
    uint32_t n_apps;
};

/* One viewer connection.  The IP is personal data: the gateway reduces it
 * to aggregates and never stores, logs or echoes it. */
struct pa_conn {
    struct pa_ip ip;
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* Configuration values: a bounded tree of msgpack scalars, arrays and maps
 * with string keys. */
enum pa_cval_type {
    PA_CV_NIL = 0,
    PA_CV_BOOL,
    PA_CV_INT,   /* negative integer */
    PA_CV_UINT,  /* non-negative integer */
    PA_CV_FLOAT, /* finite double */
    PA_CV_STR,
    PA_CV_ARRAY,
    PA_CV_MAP,
};

struct pa_ckv;

struct pa_cval {
    enum pa_cval_type type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        const char *s;
        struct {
            struct pa_cval *items;
            uint32_t n;
        } arr;
        struct {
            struct pa_ckv *kv;
            uint32_t n;
        } map;
    } v;
};

struct pa_ckv {
    const char *key;
    struct pa_cval val;
};

struct pa_frame {
    uint32_t version; /* "v": PA_PROTOCOL_VERSION */
    uint64_t seq;     /* "seq": >= 1, strictly increasing per server */
    uint64_t ts_ms;   /* "ts": Unix time in milliseconds */
    struct {
        const char *name;    /* reported hostname, 1..max_name_len */
        struct pa_ip *ips;   /* the server's own addresses */
        uint32_t n_ips;
        enum pa_agent_kind kind;
        const char *version; /* agent version, 1..max_str_len */
    } server;
    struct {
        double cpu_pct;     /* 0..100 of the whole machine */
        uint64_t ram_used;  /* bytes, <= ram_total */
        uint64_t ram_total; /* bytes, > 0 */
    } load;
    struct {
        uint64_t bytes_in;  /* since the previous frame */
        uint64_t bytes_out;
        uint64_t period_ms; /* length of the period the counters cover */
    } traffic;
    struct pa_cval config; /* PA_CV_MAP (n = 0 when absent) */
    struct pa_vhost *vhosts;
    uint32_t n_vhosts;
    struct pa_conn *conns;
    uint32_t n_conns;
    uint32_t n_unknown; /* unknown keys skipped (not kept) */
};

/* Where and why decoding failed.  path is the field path
 * ("conns[17].out"), msg the reason ("negative"); peer-controlled bytes in
 * path (unknown keys) are escaped and truncated; values never appear. */
struct pa_frame_error {
    int code;
    size_t offset; /* byte offset in the input where it was noticed */
    char path[160];
    char msg[96];
};

void pa_frame_limits_default(struct pa_frame_limits *lim);

/* Checks that a limits struct is usable (depth within
 * [PA_LIMIT_MIN_DEPTH, PA_LIMIT_MAX_DEPTH], sizes non-zero).
 * Returns 0 or PA_FE_ARG. */
int pa_frame_limits_check(const struct pa_frame_limits *lim);

/* Decodes and validates one frame.  On success *out points into arena |a|
 * and 0 is returned.  On failure *out is NULL, a negative PA_FE_* code is
 * returned and |err| (optional) says where and why.  |lim| NULL means the
 * defaults.  The input is not referenced after return. */
int pa_frame_decode(const uint8_t *buf, size_t len,
                    const struct pa_frame_limits *lim, struct pa_arena *a,
                    struct pa_frame **out, struct pa_frame_error *err);

/* Encodes |f| into |out| (appended), canonically: fixed key order, the
 * shortest msgpack integer forms, float64 for cpu, str for strings, bin for
 * IPs; absent optional fields (empty config, vhosts, conns) are omitted.
 * Does not validate.  Returns 0 or PA_FE_NOMEM (|out| then keeps its
 * previous length). */
int pa_frame_encode(const struct pa_frame *f, struct pa_buf *out);

/* Encoding flags. */
enum {
    /* Conns entries keep their traffic but lose "ip".  Not a valid wire
     * frame.  (The gateway's first storage form; it now stores aggregates,
     * PA_ENCODE_NO_CONNS.) */
    PA_ENCODE_NO_VIEWER_IPS = 1u << 0,
    /* Storage form: no "conns" key at all (the gateway stores aggregates
     * instead, gateway/policy/privacy.h).  The rest is the canonical frame, so
     * the output is a valid wire frame without connections. */
    PA_ENCODE_NO_CONNS = 1u << 1,
};

/* Contract relied on by the gateway's stored form: the top-level map of
 * every encoding is a fixmap (one header byte, 0x80 | count) of 6 to 9
 * keys, so a caller may append up to 15 - count more key/value pairs right
 * after the output and add their number to that byte. */
#define PA_ENCODE_MAX_TOP_KEYS 9u

/* pa_frame_encode() with flags. */
int pa_frame_encode_flags(const struct pa_frame *f, struct pa_buf *out, unsigned flags);

/* pa_frame_encode() followed by pa_frame_decode() of the result with |lim|,
 * so a builder learns of a bad frame exactly as the gateway would reject it.
 * On failure |out| keeps its previous length. */
int pa_frame_encode_checked(const struct pa_frame *f,
                            const struct pa_frame_limits *lim,
                            struct pa_buf *out, struct pa_frame_error *err);

/* Short stable token for a code ("truncated", "type", ...), used in
 * problem+json type URIs.  Never NULL. */
const char *pa_frame_errname(int code);

/* Human description of a code.  Never NULL. */
const char *pa_frame_strerror(int code);

/* Formats "path: msg" (or "msg" when the path is empty) into buf; returns
 * the snprintf-style length. */
int pa_frame_error_format(const struct pa_frame_error *e, char *buf,
                          size_t n);

/* Field paths ("conns[17].out"), built the same way by the decoder, the
 * JSON reader and the SDK's builder.  Each appends to buf[*off..n), keeps
 * it NUL-terminated and silently truncates at n - 1 bytes. */
#define PA_PATH_KEY_SHOWN 32u /* bytes of an outside key shown in a path */
void pa_path_put(char *buf, size_t n, size_t *off, const char *s, size_t len);
/* A key from outside (peer or caller): bytes outside printable ASCII, '"'
 * and '\' as \xNN, at most PA_PATH_KEY_SHOWN bytes, then "...". */
void pa_path_put_key(char *buf, size_t n, size_t *off, const uint8_t *p, size_t len);
/* "[i]" */
void pa_path_put_index(char *buf, size_t n, size_t *off, uint32_t i);

/* Agent kind <-> its wire name; pa_agent_kind_parse returns 0 when unknown. */
const char *pa_agent_kind_name(enum pa_agent_kind k);
enum pa_agent_kind pa_agent_kind_parse(const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* PANELPROTO_FRAME_H */
