/*
 * ratelimit.h - token buckets and the bounded tables that hold them.
 *
 * Pure: no sockets, no globals, no I/O.  Every call takes the clock as a
 * parameter (milliseconds, any monotonic origin) and the hash tables take
 * their secret hash key from the caller, so tests are exact.
 *
 *   - struct gw_bucket: one token bucket (rate per second + burst), in
 *     thousandths of a token so that any integer rate refills smoothly.
 *   - struct gw_rl_addrs: per-source-address buckets for new connections,
 *     a fixed-size set-associative table (8 ways per set).  A full set gives
 *     up the entry that would lose the least by being forgotten: the one
 *     with the most tokens (then the least recently used).  So a flood of
 *     distinct addresses recycles its own entries while an address that
 *     has spent its tokens stays limited, and memory never grows.
 *   - struct gw_rl_servers: per-registered-server state, the same layout:
 *     frames/s and bytes/s buckets shared by all of a server's connections,
 *     its 429 strikes, its ban, and counts for the activity log.
 *   - gw_rl_resolve: a server's limits: [ratelimit.server NAME] over
 *     [ratelimit.KIND] over [ratelimit], key by key.
 *   - gw_rl_request / gw_rl_body: the verdict for one request.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

/* What gw_rl_take/gw_rl_wait return when a cost can never be met (it is
 * larger than the burst). */
#define GW_RL_NEVER INT64_MAX

/* Largest rate or burst the arithmetic takes (larger values are clamped);
 * thousandths of it still fit in 64 bits with room to spare. */
#define GW_RL_MAX ((uint64_t)1 << 52)

/* Tokens per second and bucket size.  per_s 0 = unlimited. */
struct gw_rl_rate {
    uint64_t per_s;
    uint64_t burst;
};

/* A zeroed bucket is full: it is filled on first use. */
struct gw_bucket {
    uint64_t milli;  /* tokens x 1000 */
    int64_t last_ms; /* when milli was last brought up to date */
    bool primed;
};

/* Takes |cost| tokens at |now_ms|.  Returns 0 when they were taken, else
 * the milliseconds until they would be there (nothing is taken), or
 * GW_RL_NEVER when cost > burst.  An unlimited rate always returns 0. */
int64_t gw_rl_take(struct gw_bucket *b, const struct gw_rl_rate *r, uint64_t cost,
                   int64_t now_ms);

/* The same answer without taking anything. */
int64_t gw_rl_wait(struct gw_bucket *b, const struct gw_rl_rate *r, uint64_t cost,
                   int64_t now_ms);

/* Whole tokens in the bucket at |now_ms| (burst for a fresh bucket). */
uint64_t gw_rl_tokens(const struct gw_bucket *b, const struct gw_rl_rate *r, int64_t now_ms);

/* A wait in milliseconds as a retry-after value: whole seconds rounded up,
 * at least 1, at most 86400 (GW_RL_NEVER included). */
uint32_t gw_rl_retry_after_s(int64_t wait_ms);

/* ---- per-source-address table ------------------------------------------- */

#define GW_RL_KEY_LEN 16
#define GW_RL_WAYS 8

struct gw_rl_addrs;

/* A table of at least |size| entries (rounded up to a multiple of
 * GW_RL_WAYS), hashed with the secret key (k0, k1).  Returns 0 or
 * GW_ENOMEM (*out NULL). */
int gw_rl_addrs_new(struct gw_rl_addrs **out, uint32_t size, uint64_t k0, uint64_t k1);
void gw_rl_addrs_free(struct gw_rl_addrs *t);
uint32_t gw_rl_addrs_capacity(const struct gw_rl_addrs *t);
uint32_t gw_rl_addrs_used(const struct gw_rl_addrs *t);
uint64_t gw_rl_addrs_evictions(const struct gw_rl_addrs *t);

/* Takes one token from |key|'s bucket (an entry is made, evicting another
 * when the set is full).  Returns as gw_rl_take. */
int64_t gw_rl_addrs_take(struct gw_rl_addrs *t, const uint8_t key[GW_RL_KEY_LEN],
                         const struct gw_rl_rate *r, int64_t now_ms);

/* Moves what fits of |src| into |dst| (a resize at reload). */
void gw_rl_addrs_move(struct gw_rl_addrs *dst, const struct gw_rl_addrs *src,
                      const struct gw_rl_rate *r, int64_t now_ms);

/* The table key of a socket address (struct sockaddr_in / sockaddr_in6 as
 * |sa| of |salen| bytes): an IPv4 address as ::ffff:a.b.c.d (an
 * IPv4-mapped IPv6 address is the same key), an IPv6 address by its /64
 * prefix, which a single host usually owns whole.  Returns 0, or GW_EINVAL
 * for another family. */
int gw_rl_addr_key(const void *sa, size_t salen, uint8_t key[GW_RL_KEY_LEN]);

/* The key as text for logs and the activity log: "192.0.2.1" or
 * "2001:db8:1:2::/64".  |buf| of at least 48 bytes. */
void gw_rl_addr_text(const uint8_t key[GW_RL_KEY_LEN], char *buf, size_t len);

/* ---- per-server table ----------------------------------------------------- */

enum gw_rl_verdict {
    GW_RL_OK = 0,
    GW_RL_FRAMES,  /* the server's frames/s bucket */
    GW_RL_BYTES,   /* the server's bytes/s bucket */
    GW_RL_GLOBAL,  /* the gateway-wide frames/s bucket */
    GW_RL_BANNED,  /* escalation: refused until the ban ends */
    GW_RL_N_VERDICTS
};

/* "frames", "bytes", "global", "banned" ("ok" for GW_RL_OK). */
const char *gw_rl_verdict_name(enum gw_rl_verdict v);

struct gw_rl_server {
    int64_t id;      /* 0 = free slot */
    uint32_t gen;    /* configuration generation the limits come from; 0 =
                        not resolved yet */
    struct gw_rl_rate frames, bytes;
    struct gw_bucket fb, bb;
    uint32_t strikes;        /* 429s in the current abuse window */
    int64_t window_ms;       /* when that window started */
    int64_t banned_until_ms; /* 0 = never banned */
    int64_t last_ms;         /* last request */
    /* 429s since the last activity flush, by verdict */
    uint32_t limited[GW_RL_N_VERDICTS];
    int64_t limited_first_ms, limited_last_ms;
};

struct gw_rl_servers;

int gw_rl_servers_new(struct gw_rl_servers **out, uint32_t size, uint64_t k0, uint64_t k1);
void gw_rl_servers_free(struct gw_rl_servers *t);
uint32_t gw_rl_servers_capacity(const struct gw_rl_servers *t);
uint32_t gw_rl_servers_used(const struct gw_rl_servers *t);

/* Server |id|'s entry.  With |create|, one is made when missing (evicting
 * another when the set is full: never a banned one or one with 429s not
 * yet flushed while another is there, then the fullest frames bucket);
 * a new entry has gen 0.  Without, NULL when missing. */
struct gw_rl_server *gw_rl_servers_get(struct gw_rl_servers *t, int64_t id, bool create,
                                       int64_t now_ms);

/* Calls |fn| for each entry in use. */
void gw_rl_servers_each(struct gw_rl_servers *t, void (*fn)(struct gw_rl_server *e, void *ud),
                        void *ud);

void gw_rl_servers_move(struct gw_rl_servers *dst, const struct gw_rl_servers *src,
                        int64_t now_ms);

/* ---- limits and verdicts ---------------------------------------------------- */

/* What rate limiting reads of the configuration: [ratelimit] and its
 * override sections, the global bucket and the escalation.  A view made
 * by gw_rl_config_from: |servers| points into the gw_config it came from,
 * so the view lives as long as that configuration. */
struct gw_rl_config {
    struct gw_rl_limits base;                     /* [ratelimit] */
    struct gw_rl_override kind[GW_RL_N_KINDS];    /* [ratelimit.KIND] */
    const struct gw_rl_server_override *servers;  /* [ratelimit.server NAME] */
    uint32_t n_servers;
    struct gw_rl_rate global;                     /* global_frames_per_s, _burst */
    uint32_t abuse_threshold;                     /* 0 = no bans */
    uint32_t abuse_window_s;
    uint32_t ban_s;
};

void gw_rl_config_from(struct gw_rl_config *out, const struct gw_config *cfg);

/* The four per-server limits for server |name| of agent kind |kind|
 * ("nimble", "wowza"; NULL or another value = none): each key from
 * [ratelimit.server NAME] when set there, else from [ratelimit.KIND], else
 * [ratelimit]. */
void gw_rl_resolve(const struct gw_rl_config *rc, const char *name, const char *kind,
                   struct gw_rl_limits *out);

/* Fills e->frames and e->bytes from resolved limits. */
void gw_rl_server_set_limits(struct gw_rl_server *e, const struct gw_rl_limits *l);

/* Milliseconds the ban of |e| still lasts at |now_ms|; 0 = not banned. */
int64_t gw_rl_banned_ms(const struct gw_rl_server *e, int64_t now_ms);

struct gw_rl_result {
    enum gw_rl_verdict verdict;
    int64_t wait_ms;  /* > 0 unless OK: for retry-after */
    bool ban_started; /* this 429 crossed abuse_threshold: the ban begins */
};

/* A request's headers are complete.  Checks the ban, the server's frames
 * bucket, the global bucket (|global| may be NULL) and, when the body's
 * length is declared (|content_length| >= 0) and within the burst, that
 * the bytes bucket holds it; takes one frame token from both frame buckets
 * only when everything passes.  A FRAMES or BYTES refusal is a strike: the
 * abuse_threshold-th strike within abuse_window_s starts a ban of ban_s
 * (GLOBAL is not the server's fault and is no strike). */
void gw_rl_request(struct gw_rl_server *e, struct gw_bucket *global, const struct gw_rl_config *rc,
                   int64_t content_length, int64_t now_ms, struct gw_rl_result *res);

/* A request's body (|bytes| long) is complete: checks the ban, then takes
 * the bytes from the server's bytes bucket; a refusal is a strike. */
void gw_rl_body(struct gw_rl_server *e, const struct gw_rl_config *rc, uint64_t bytes,
                int64_t now_ms, struct gw_rl_result *res);

#endif /* GW_RATELIMIT_H */
