/*
 * config.c - the gateway's settings: defaults, the INI file, validation.
 *
 * One table row per key (section, name, type, offset, range, flags: the
 * flags also say whether a reload may change it).  Loading, range checks,
 * validation, cleanup and the reload's restart-only check all walk that
 * table, so a new key is one row here plus its lines in docs/OPERATIONS.md
 * and gateway/panelgate.conf.sample.
 *
 * The file is read into memory and fed to inih line by line through our own
 * reader.  The reader counts lines (Debian's inih is built without
 * INI_HANDLER_LINENO), strips leading blanks (so an indented key is a key,
 * never a multi-line continuation), rejects lines longer than inih's line
 * buffer (inih would silently split them), NUL bytes and unknown sections.
 * Parsing stops at the first error.  Pure: no sockets, no globals.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "alloc.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define MAX_FILE_BYTES (1024u * 1024u)
#define DAY_MS 86400000ull

#if defined(__GNUC__)
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF(a, b)
#endif

enum ktype {
    K_LISTEN, /* struct gw_listen[] + n_listen */
    K_U32,    /* uint32_t */
    K_SIZE,   /* size_t */
    K_BOOL,   /* bool */
    K_STR,    /* char *, heap; empty value = NULL */
    K_LEVEL,  /* enum gw_log_level */
    K_SYNC,   /* enum gw_sqlite_sync */
    K_ENGINE, /* char *, "sqlite" or "jetstream" */
    K_ADDR,   /* one struct gw_listen (+ admin_on); empty = off */
};

#define F_BYTES 1u    /* a size in bytes: accepts a k/m/g suffix */
#define F_REQUIRED 2u /* string that must be set */
/* Restart only: a reload keeps the running value (gw_config_keep_restart_only).
 * A key without either flag is applied by a reload. */
#define F_LISTEN 4u  /* ... in group GW_RELOAD_LISTEN */
#define F_STORAGE 8u /* ... in group GW_RELOAD_STORAGE */

struct key {
    const char *section;
    const char *name;
    enum ktype type;
    size_t off;
    uint64_t min, max;
    unsigned flags;
};

#define OFF(field) offsetof(struct gw_config, field)
#define COUNT_MAX (16ull * 1024 * 1024)

static const struct key keys[] = {
    {"server", "listen", K_LISTEN, OFF(listen), 1, GW_MAX_LISTEN, F_LISTEN},
    {"server", "max_connections", K_U32, OFF(max_connections), 1, 1000000, 0},
    {"server", "max_handshakes", K_U32, OFF(max_handshakes), 1, 1000000, 0},
    {"server", "handshake_timeout_ms", K_U32, OFF(handshake_timeout_ms), 1, 600000, 0},
    {"server", "idle_timeout_ms", K_U32, OFF(idle_timeout_ms), 1, DAY_MS, 0},
    {"server", "request_timeout_ms", K_U32, OFF(request_timeout_ms), 1, 3600000, 0},
    {"server", "shutdown_timeout_ms", K_U32, OFF(shutdown_timeout_ms), 1, 3600000, 0},
    {"server", "port_file", K_STR, OFF(port_file), 0, 0, F_LISTEN},

    {"tls", "cert_file", K_STR, OFF(cert_file), 0, 0, F_REQUIRED},
    {"tls", "key_file", K_STR, OFF(key_file), 0, 0, F_REQUIRED},
    {"tls", "client_ca_file", K_STR, OFF(client_ca_file), 0, 0, F_REQUIRED},
    {"tls", "session_tickets", K_BOOL, OFF(session_tickets), 0, 1, F_STORAGE},
    {"tls", "ticket_lifetime_s", K_U32, OFF(ticket_lifetime_s), 1, 604800, F_STORAGE},
    {"tls", "ticket_key_file", K_STR, OFF(ticket_key_file), 0, 0, F_STORAGE},
    {"tls", "ticket_key_check_ms", K_U32, OFF(ticket_key_check_ms), 100, 3600000, 0},
    {"tls", "ciphersuites", K_STR, OFF(ciphersuites), 0, 0, 0},

    {"http2", "max_concurrent_streams", K_U32, OFF(max_concurrent_streams), 1, 1000, 0},
    {"http2", "max_header_list_size", K_U32, OFF(max_header_list_size), 1024, MIB, F_BYTES},
    {"http2", "initial_window_size", K_U32, OFF(initial_window_size), 65535, 2147483647,
     F_BYTES},
    {"http2", "stream_reset_burst", K_U32, OFF(stream_reset_burst), 1, 1000000, 0},
    {"http2", "stream_reset_rate", K_U32, OFF(stream_reset_rate), 1, 1000000, 0},
    {"http2", "max_continuations", K_U32, OFF(max_continuations), 0, 1000, 0},
    {"http2", "max_body_bytes", K_SIZE, OFF(max_body_bytes), 1, GIB, F_BYTES},
    {"http2", "max_conn_buffer_bytes", K_SIZE, OFF(max_conn_buffer_bytes), 1, 64 * GIB,
     F_BYTES},
    {"http2", "max_total_buffer_bytes", K_SIZE, OFF(max_total_buffer_bytes), 1, 64 * GIB,
     F_BYTES},

    {"frame", "max_frame_bytes", K_SIZE, OFF(frame.max_frame_bytes), 1, GIB, F_BYTES},
    {"frame", "max_arena_bytes", K_SIZE, OFF(frame.max_arena_bytes), 1, 4 * GIB, F_BYTES},
    {"frame", "max_depth", K_U32, OFF(frame.max_depth), PA_LIMIT_MIN_DEPTH,
     PA_LIMIT_MAX_DEPTH, 0},
    {"frame", "max_name_len", K_U32, OFF(frame.max_name_len), 1, 65535, F_BYTES},
    {"frame", "max_str_len", K_U32, OFF(frame.max_str_len), 1, MIB, F_BYTES},
    {"frame", "max_server_ips", K_U32, OFF(frame.max_server_ips), 0, COUNT_MAX, 0},
    {"frame", "max_vhosts", K_U32, OFF(frame.max_vhosts), 0, COUNT_MAX, 0},
    {"frame", "max_apps", K_U32, OFF(frame.max_apps), 0, COUNT_MAX, 0},
    {"frame", "max_instances", K_U32, OFF(frame.max_instances), 0, COUNT_MAX, 0},
    {"frame", "max_streams", K_U32, OFF(frame.max_streams), 0, COUNT_MAX, 0},
    {"frame", "max_conns", K_U32, OFF(frame.max_conns), 0, COUNT_MAX, 0},
    {"frame", "max_config_nodes", K_U32, OFF(frame.max_config_nodes), 0, COUNT_MAX, 0},
    {"frame", "max_unknown_keys", K_U32, OFF(frame.max_unknown_keys), 0, COUNT_MAX, 0},

    {"storage", "storage_engine", K_ENGINE, OFF(storage_engine), 0, 0,
     F_REQUIRED | F_STORAGE},
    {"storage", "sqlite_path", K_STR, OFF(sqlite_path), 0, 0, F_REQUIRED | F_STORAGE},
    {"storage", "sqlite_synchronous", K_SYNC, OFF(sqlite_synchronous), 0, 0, F_STORAGE},
    {"storage", "queue_max_frames", K_U32, OFF(queue_max_frames), 1, 1000000, F_STORAGE},
    {"storage", "queue_max_bytes", K_SIZE, OFF(queue_max_bytes), 1, 64 * GIB,
     F_BYTES | F_STORAGE},
    {"storage", "batch_max_frames", K_U32, OFF(batch_max_frames), 1, 100000, F_STORAGE},
    {"storage", "commit_delay_ms", K_U32, OFF(commit_delay_ms), 0, 100, F_STORAGE},
    {"storage", "busy_timeout_ms", K_U32, OFF(busy_timeout_ms), 1, 600000, F_STORAGE},
    {"storage", "retry_after_s", K_U32, OFF(retry_after_s), 1, 3600, 0},
    {"storage", "retention_days", K_U32, OFF(retention_days), 0, 36500, 0},
    {"storage", "retention_interval_s", K_U32, OFF(retention_interval_s), 1, 86400, 0},
    {"storage", "file_check_interval_ms", K_U32, OFF(file_check_interval_ms), 0, 60000,
     F_STORAGE},

    {"jetstream", "servers", K_STR, OFF(js_servers), 0, 0, F_STORAGE},
    {"jetstream", "tls_ca_file", K_STR, OFF(js_tls_ca_file), 0, 0, F_STORAGE},
    {"jetstream", "tls_cert_file", K_STR, OFF(js_tls_cert_file), 0, 0, F_STORAGE},
    {"jetstream", "tls_key_file", K_STR, OFF(js_tls_key_file), 0, 0, F_STORAGE},
    {"jetstream", "user", K_STR, OFF(js_user), 0, 0, F_STORAGE},
    {"jetstream", "password", K_STR, OFF(js_password), 0, 0, F_STORAGE},
    {"jetstream", "token", K_STR, OFF(js_token), 0, 0, F_STORAGE},
    {"jetstream", "creds_file", K_STR, OFF(js_creds_file), 0, 0, F_STORAGE},
    {"jetstream", "stream", K_STR, OFF(js_stream), 0, 0, F_REQUIRED | F_STORAGE},
    {"jetstream", "subject_prefix", K_STR, OFF(js_subject_prefix), 0, 0,
     F_REQUIRED | F_STORAGE},
    {"jetstream", "consumer", K_STR, OFF(js_consumer), 0, 0, F_REQUIRED | F_STORAGE},
    {"jetstream", "registry_bucket", K_STR, OFF(js_registry_bucket), 0, 0,
     F_REQUIRED | F_STORAGE},
    {"jetstream", "activity_stream", K_STR, OFF(js_activity_stream), 0, 0,
     F_REQUIRED | F_STORAGE},
    {"jetstream", "activity_subject_prefix", K_STR, OFF(js_activity_prefix), 0, 0,
     F_REQUIRED | F_STORAGE},
    {"jetstream", "replicas", K_U32, OFF(js_replicas), 1, 5, F_STORAGE},
    {"jetstream", "duplicate_window_s", K_U32, OFF(js_duplicate_window_s), 1, 86400,
     F_STORAGE},
    {"jetstream", "max_in_flight", K_U32, OFF(js_max_in_flight), 1, 65536, F_STORAGE},
    {"jetstream", "publish_timeout_ms", K_U32, OFF(js_publish_timeout_ms), 100, 600000,
     F_STORAGE},
    {"jetstream", "connect_timeout_ms", K_U32, OFF(js_connect_timeout_ms), 100, 600000,
     F_STORAGE},
    {"jetstream", "ack_wait_ms", K_U32, OFF(js_ack_wait_ms), 100, 3600000, F_STORAGE},

    {"geo", "country_db", K_STR, OFF(country_db), 0, 0, 0},
    {"geo", "asn_db", K_STR, OFF(asn_db), 0, 0, 0},

    {"registry", "registry_path", K_STR, OFF(registry_path), 0, 0, F_STORAGE},
    {"registry", "poll_interval_ms", K_U32, OFF(registry_poll_interval_ms), 0, 3600000, 0},

    {"ratelimit", "frames_per_s", K_U32, OFF(rl.frames_per_s), 0, 1000000, 0},
    {"ratelimit", "frames_burst", K_U32, OFF(rl.frames_burst), 1, 1000000000, 0},
    {"ratelimit", "bytes_per_s", K_SIZE, OFF(rl.bytes_per_s), 0, 64 * GIB, F_BYTES},
    {"ratelimit", "bytes_burst", K_SIZE, OFF(rl.bytes_burst), 1, 64 * GIB, F_BYTES},
    {"ratelimit", "global_frames_per_s", K_U32, OFF(rl_global_frames_per_s), 0, 100000000, 0},
    {"ratelimit", "global_frames_burst", K_U32, OFF(rl_global_frames_burst), 1, 1000000000, 0},
    {"ratelimit", "handshakes_per_s_per_addr", K_U32, OFF(rl_handshakes_per_s), 0, 1000000, 0},
    {"ratelimit", "handshakes_burst_per_addr", K_U32, OFF(rl_handshakes_burst), 1, 1000000, 0},
    {"ratelimit", "addr_table_size", K_U32, OFF(rl_addr_table_size), 8, 1048576, 0},
    {"ratelimit", "server_table_size", K_U32, OFF(rl_server_table_size), 8, 1048576, 0},
    {"ratelimit", "abuse_threshold", K_U32, OFF(rl_abuse_threshold), 0, 1000000, 0},
    {"ratelimit", "abuse_window_s", K_U32, OFF(rl_abuse_window_s), 1, 86400, 0},
    {"ratelimit", "ban_s", K_U32, OFF(rl_ban_s), 1, 86400, 0},

    {"admin", "listen", K_ADDR, OFF(admin_listen), 0, 0, F_LISTEN},

    {"log", "log_level", K_LEVEL, OFF(log_level), 0, 0, 0},
    {"log", "refusal_log_per_s", K_U32, OFF(refusal_log_per_s), 0, 100000, 0},
    {"log", "activity_interval_ms", K_U32, OFF(activity_interval_ms), 100, 86400000, 0},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {
    "server", "tls", "http2", "frame", "storage", "jetstream", "geo", "registry",
    "ratelimit", "ratelimit.nimble", "ratelimit.wowza", "admin", "log",
};

#define SECTION_LIST                                                                       \
    "server, tls, http2, frame, storage, jetstream, geo, registry, ratelimit, "               \
    "ratelimit.nimble, ratelimit.wowza, ratelimit.server NAME, admin, log"

/* The keys of [ratelimit.nimble], [ratelimit.wowza] and [ratelimit.server
 * NAME]: offsets into struct gw_rl_limits, the same ranges as [ratelimit].
 * Row i is bit (1 << i) of struct gw_rl_override's set (GW_RL_SET_*). */
#define LOFF(field) offsetof(struct gw_rl_limits, field)
static const struct key rl_keys[] = {
    {"ratelimit", "frames_per_s", K_U32, LOFF(frames_per_s), 0, 1000000, 0},
    {"ratelimit", "frames_burst", K_U32, LOFF(frames_burst), 1, 1000000000, 0},
    {"ratelimit", "bytes_per_s", K_SIZE, LOFF(bytes_per_s), 0, 64 * GIB, F_BYTES},
    {"ratelimit", "bytes_burst", K_SIZE, LOFF(bytes_burst), 1, 64 * GIB, F_BYTES},
};
#define N_RL_KEYS (sizeof rl_keys / sizeof rl_keys[0])

const char *const gw_rl_kind_names[GW_RL_N_KINDS] = {"nimble", "wowza"};

#define RL_SERVER_SECTION "ratelimit.server"

/* ------------------------------------------------------------ helpers */

static void *field(struct gw_config *c, const struct key *k)
{
    return (char *)c + k->off;
}

static const void *cfield(const struct gw_config *c, const struct key *k)
{
    return (const char *)c + k->off;
}

static char lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

static bool eq_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower(*a) != lower(*b))
            return false;
    return *a == *b;
}

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool known_section(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], s, len) == 0)
            return true;
    return false;
}

static uint64_t key_max(const struct key *k)
{
#if SIZE_MAX < UINT64_MAX
    if (k->type == K_SIZE && k->max > SIZE_MAX)
        return SIZE_MAX;
#endif
    return k->max;
}

static uint64_t get_uint(const struct gw_config *c, const struct key *k)
{
    if (k->type == K_SIZE)
        return *(const size_t *)cfield(c, k);
    return *(const uint32_t *)cfield(c, k);
}

/* Formats a reason into buf and returns -1, for "return bad(...)". */
PRINTF(3, 4)
static int bad(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return GW_ECONFIG;
}

/* Strict unsigned decimal, optional k/m/g suffix (KiB/MiB/GiB) for sizes. */
static int parse_uint(const char *v, unsigned flags, uint64_t *out, char *why, size_t n)
{
    const char *s = v;
    uint64_t x = 0;

    if (*s == '\0')
        return bad(why, n, "empty value");
    if (*s == '-')
        return bad(why, n, "'%.64s': negative values are not allowed", v);
    if (*s < '0' || *s > '9')
        return bad(why, n, "'%.64s' is not a whole number", v);
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return bad(why, n, "'%.64s' is too large", v);
        x = x * 10 + d;
    }
    if (*s != '\0') {
        uint64_t mult = 0;
        if (!(flags & F_BYTES))
            return bad(why, n, "'%.64s' is not a whole number", v);
        switch (s[1] == '\0' ? *s : '?') {
        case 'k': case 'K': mult = KIB; break;
        case 'm': case 'M': mult = MIB; break;
        case 'g': case 'G': mult = GIB; break;
        default:
            snprintf(why, n, "'%.64s': bad size suffix (use k, m or g for KiB, MiB, GiB)", v);
            return GW_ECONFIG;
        }
        if (x > UINT64_MAX / mult)
            return bad(why, n, "'%.64s' is too large", v);
        x *= mult;
    }
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (eq_nocase(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (eq_nocase(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return GW_ECONFIG;
}

/* One "HOST:PORT" / "[HOST]:PORT" entry of |len| bytes at |s|.  The host
 * is stored in its canonical numeric form. */
static int parse_hostport(const char *s, size_t len, struct gw_listen *out, char *why,
                          size_t n)
{
    char item[128], host[sizeof out->host];
    unsigned char bin[16];
    const char *h, *port;
    size_t hlen;
    int fam;

    if (len >= sizeof item)
        return bad(why, n, "'%.40s...': address too long", s);
    memcpy(item, s, len);
    item[len] = '\0';
    if (item[0] == '[') {
        const char *rb = strchr(item, ']');
        if (rb == NULL)
            return bad(why, n, "'%s': missing ']'", item);
        if (rb[1] != ':')
            return bad(why, n, "'%s': expected ':PORT' after ']'", item);
        fam = AF_INET6;
        h = item + 1;
        hlen = (size_t)(rb - h);
        port = rb + 2;
    } else {
        const char *colon = strrchr(item, ':');
        if (colon == NULL)
            return bad(why, n, "'%s': missing ':PORT'", item);
        if (memchr(item, ':', (size_t)(colon - item)) != NULL)
            return bad(why, n, "'%s': put IPv6 addresses in brackets, e.g. [::1]:8443", item);
        fam = AF_INET;
        h = item;
        hlen = (size_t)(colon - item);
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof host)
        return bad(why, n, "'%s': missing or overlong address", item);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (inet_pton(fam, host, bin) != 1)
        return bad(why, n, "'%s': '%s' is not a numeric %s address (names are not resolved)",
                   item, host, fam == AF_INET ? "IPv4" : "IPv6");
    unsigned long p = 0;
    size_t digits = 0;
    for (; port[digits] >= '0' && port[digits] <= '9' && digits < 6; digits++)
        p = p * 10 + (unsigned long)(port[digits] - '0');
    if (digits == 0 || port[digits] != '\0' || p > 65535)
        return bad(why, n, "'%s': port must be a number 0..65535", item);
    if (inet_ntop(fam, bin, out->host, sizeof out->host) == NULL)
        return bad(why, n, "'%s': cannot format address", item);
    out->port = (uint16_t)p;
    return 0;
}

/* Comma-separated list; replaces c->listen only when all of it is valid. */
static int parse_listen(struct gw_config *c, const char *v, char *why, size_t n)
{
    struct gw_listen tmp[GW_MAX_LISTEN];
    unsigned cnt = 0;
    const char *s = v;

    memset(tmp, 0, sizeof tmp);
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len > 0 && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 0)
            return bad(why, n, "empty address in the list");
        if (cnt == GW_MAX_LISTEN)
            return bad(why, n, "more than %d addresses", GW_MAX_LISTEN);
        if (parse_hostport(s, len, &tmp[cnt], why, n) != 0)
            return GW_ECONFIG;
        for (unsigned i = 0; i < cnt; i++) {
            if (tmp[i].port == tmp[cnt].port && strcmp(tmp[i].host, tmp[cnt].host) == 0 &&
                tmp[i].port != 0)
                return bad(why, n, "'%.*s' is listed twice", (int)len, s);
        }
        cnt++;
        if (end == NULL)
            break;
        s = end + 1;
    }
    memcpy(c->listen, tmp, sizeof tmp);
    c->n_listen = cnt;
    return 0;
}

static int set_str(char **slot, const char *v)
{
    char *copy = NULL;
    if (*v != '\0') {
        size_t len = strlen(v);
        copy = gw_malloc(len + 1);
        if (copy == NULL)
            return GW_ENOMEM;
        memcpy(copy, v, len + 1);
    }
    gw_free(*slot);
    *slot = copy;
    return 0;
}

/* A K_U32 or K_SIZE value into |slot|, range-checked. */
static int set_uint(void *slot, const struct key *k, unsigned flags, const char *v, char *why,
                    size_t n)
{
    uint64_t x = 0;

    if (parse_uint(v, flags, &x, why, n) != 0)
        return GW_ECONFIG;
    if (x < k->min || x > key_max(k))
        return bad(why, n, "'%.64s' is out of range %" PRIu64 "..%" PRIu64, v, k->min,
                   key_max(k));
    if (k->type == K_SIZE)
        *(size_t *)slot = (size_t)x;
    else
        *(uint32_t *)slot = (uint32_t)x;
    return 0;
}

static bool engine_known(const char *v)
{
    return strcmp(v, GW_ENGINE_SQLITE) == 0 || strcmp(v, GW_ENGINE_JETSTREAM) == 0;
}

bool gw_config_is_jetstream(const struct gw_config *c)
{
    return c->storage_engine != NULL && strcmp(c->storage_engine, GW_ENGINE_JETSTREAM) == 0;
}

static int set_value(struct gw_config *c, const struct key *k, const char *v, char *why,
                     size_t n)
{
    bool b;
    int lvl;

    switch (k->type) {
    case K_LISTEN:
        return parse_listen(c, v, why, n);
    case K_U32:
    case K_SIZE:
        return set_uint(field(c, k), k, k->flags, v, why, n);
    case K_BOOL:
        if (parse_bool(v, &b) != 0)
            return bad(why, n, "'%.64s' is not a boolean (true/false, yes/no, on/off, 1/0)", v);
        *(bool *)field(c, k) = b;
        return 0;
    case K_STR:
        if (set_str((char **)field(c, k), v) != 0) {
            snprintf(why, n, "out of memory");
            return GW_ENOMEM;
        }
        return 0;
    case K_LEVEL:
        lvl = gw_log_level_parse(v);
        if (lvl < 0)
            return bad(why, n, "'%.64s' is not a log level (debug, info, warn, error)", v);
        *(enum gw_log_level *)field(c, k) = (enum gw_log_level)lvl;
        return 0;
    case K_SYNC:
        if (eq_nocase(v, "normal")) {
            *(enum gw_sqlite_sync *)field(c, k) = GW_SYNC_NORMAL;
        } else if (eq_nocase(v, "full")) {
            *(enum gw_sqlite_sync *)field(c, k) = GW_SYNC_FULL;
        } else {
            snprintf(why, n, "'%.64s' is not normal or full", v);
            return GW_ECONFIG;
        }
        return 0;
    case K_ADDR:
        if (*v == '\0') {
            c->admin_on = false;
            return 0;
        }
        if (strchr(v, ',') != NULL)
            return bad(why, n, "one address only");
        if (parse_hostport(v, strlen(v), &c->admin_listen, why, n) != 0)
            return GW_ECONFIG;
        c->admin_on = true;
        return 0;
    case K_ENGINE:
        if (!engine_known(v))
            return bad(why, n, "unknown engine '%.64s' (sqlite or jetstream)", v);
        if (set_str((char **)field(c, k), v) != 0) {
            snprintf(why, n, "out of memory");
            return GW_ENOMEM;
        }
        return 0;
    }
    snprintf(why, n, "internal error: bad key type");
    return GW_EINTERNAL;
}

/* ------------------------------------------------------------ parsing */

struct parse {
    struct gw_config *c;
    const char *path;
    char *err;
    size_t errlen;
    const char *data;
    size_t len, pos;
    int lineno;
    int err_line;      /* line of the first error; 0 = none */
    bool nomem;        /* that error is an allocation failure (GW_ENOMEM) */
    int seen[N_KEYS];  /* line where each key was set; 0 = not set */
    /* the same for the override sections: per kind, and per entry of
     * c->rl_servers (grown with it) */
    int kind_seen[GW_RL_N_KINDS][N_RL_KEYS];
    int (*server_seen)[N_RL_KEYS];
    uint32_t server_cap;
    uint32_t cur_server; /* the [ratelimit.server NAME] being read */
};

/* Records the first error: "FILE:LINE: [section] key: reason" (section and
 * key parts only when given). */
PRINTF(4, 5)
static void fail(struct parse *p, const char *section, const char *name, const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    if (p->err_line != 0)
        return;
    p->err_line = p->lineno;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (p->err == NULL || p->errlen == 0)
        return;
    if (section != NULL && name != NULL)
        snprintf(p->err, p->errlen, "%s:%d: [%.64s] %.64s: %s", p->path, p->lineno, section,
                 name, reason);
    else if (section != NULL)
        snprintf(p->err, p->errlen, "%s:%d: [%.64s]: %s", p->path, p->lineno, section, reason);
    else if (name != NULL)
        snprintf(p->err, p->errlen, "%s:%d: %.64s: %s", p->path, p->lineno, name, reason);
    else
        snprintf(p->err, p->errlen, "%s:%d: %s", p->path, p->lineno, reason);
}

/* A server name as panelgatectl accepts it: 1..255 of A-Z a-z 0-9 . _ -,
 * not starting with '.' or '-'. */
static bool server_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 255 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* "[ratelimit.server NAME]" (|s|, |len|: between the brackets) selects
 * NAME's override, adding it on first sight; a section may repeat.
 * Returns 1 for such a section, 0 for any other, -1 on an error (reported). */
static int server_section(struct parse *p, const char *s, size_t len)
{
    const size_t plen = sizeof RL_SERVER_SECTION - 1;
    struct gw_config *c = p->c;
    uint32_t i;

    if (len < plen || memcmp(s, RL_SERVER_SECTION, plen) != 0)
        return 0;
    if (len > plen && s[plen] != ' ' && s[plen] != '\t')
        return 0; /* [ratelimit.serverX]: an unknown section */
    s += plen;
    len -= plen;
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0) {
        fail(p, RL_SERVER_SECTION, NULL, "needs a server name: [" RL_SERVER_SECTION " NAME]");
        return GW_ECONFIG;
    }
    if (!server_name_ok(s, len)) {
        fail(p, NULL, NULL,
             "[" RL_SERVER_SECTION " %.*s]: not a server name (1..255 of A-Z a-z 0-9 . _ -, "
             "not starting with . or -)",
             (int)(len > 64 ? 64 : len), s);
        return GW_ECONFIG;
    }
    for (i = 0; i < c->n_rl_servers; i++)
        if (c->rl_servers[i].name[len] == '\0' && memcmp(c->rl_servers[i].name, s, len) == 0)
            break;
    if (i == c->n_rl_servers) {
        if (i == GW_RL_MAX_SERVER_OVERRIDES) {
            fail(p, NULL, NULL, "more than %d [" RL_SERVER_SECTION " NAME] sections",
                 GW_RL_MAX_SERVER_OVERRIDES);
            return GW_ECONFIG;
        }
        if (i == p->server_cap) {
            uint32_t cap = p->server_cap ? 2 * p->server_cap : 8;
            struct gw_rl_server_override *o = gw_realloc(c->rl_servers, cap * sizeof *o);
            if (o != NULL)
                c->rl_servers = o;
            int(*seen)[N_RL_KEYS] = gw_realloc(p->server_seen, cap * sizeof *seen);
            if (seen != NULL)
                p->server_seen = seen;
            if (o == NULL || seen == NULL) {
                fail(p, NULL, NULL, "out of memory");
                p->nomem = true;
                return GW_ENOMEM;
            }
            p->server_cap = cap;
        }
        memset(&c->rl_servers[i], 0, sizeof c->rl_servers[i]);
        memcpy(c->rl_servers[i].name, s, len);
        memset(p->server_seen[i], 0, sizeof p->server_seen[i]);
        c->n_rl_servers++;
    }
    p->cur_server = i;
    return 1;
}

/* A key of an override section: [ratelimit.KIND] or, for section
 * "ratelimit.server", the [ratelimit.server NAME] read last.  Returns 0 when
 * |section| is not one of them. */
static int on_override(struct parse *p, const char *section, const char *name, const char *value)
{
    struct gw_rl_override *o = NULL;
    int *seen = NULL;
    char sect[300], why[256];
    size_t i;

    if (strcmp(section, RL_SERVER_SECTION) == 0 && p->cur_server < p->c->n_rl_servers) {
        o = &p->c->rl_servers[p->cur_server].o;
        seen = p->server_seen[p->cur_server];
        snprintf(sect, sizeof sect, RL_SERVER_SECTION " %s", p->c->rl_servers[p->cur_server].name);
    }
    for (int k = 0; k < GW_RL_N_KINDS && o == NULL; k++) {
        snprintf(sect, sizeof sect, "ratelimit.%s", gw_rl_kind_names[k]);
        if (strcmp(section, sect) == 0) {
            o = &p->c->rl_kind[k];
            seen = p->kind_seen[k];
        }
    }
    if (o == NULL)
        return 0;
    for (i = 0; i < N_RL_KEYS; i++)
        if (strcmp(rl_keys[i].name, name) == 0)
            break;
    if (i == N_RL_KEYS) {
        fail(p, sect, name,
             "unknown key (an override takes frames_per_s, frames_burst, bytes_per_s, "
             "bytes_burst)");
        return 1;
    }
    if (seen[i] != 0) {
        fail(p, sect, name, "duplicate key (first set on line %d)", seen[i]);
        return 1;
    }
    seen[i] = p->lineno;
    if (set_uint((char *)&o->v + rl_keys[i].off, &rl_keys[i], rl_keys[i].flags, value, why,
                 sizeof why) != 0) {
        fail(p, sect, name, "%s", why);
        return 1;
    }
    o->set |= 1u << i;
    return 1;
}

/* inih reader: hands over one line per call, so inih's line number and
 * ours agree. */
static char *next_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    const char *s, *nl;
    size_t len;

    if (p->err_line != 0 || p->pos >= p->len)
        return NULL;
    s = p->data + p->pos;
    nl = memchr(s, '\n', p->len - p->pos);
    len = nl ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += len + (nl ? 1 : 0);
    p->lineno++;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (memchr(s, '\0', len) != NULL) {
        fail(p, NULL, NULL, "NUL byte in the line");
        return NULL;
    }
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    if (num < 4 || len > (size_t)num - 3) {
        fail(p, NULL, NULL, "line longer than %d characters", num - 3);
        return NULL;
    }
    if (len > 0 && *s == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb != NULL) {
            size_t nlen = (size_t)(rb - s - 1);
            const char *t = rb + 1, *end = s + len;
            int srv = server_section(p, s + 1, nlen);
            if (srv < 0)
                return NULL;
            if (srv == 0 && !known_section(s + 1, nlen)) {
                fail(p, NULL, NULL, "[%.*s]: unknown section (known: " SECTION_LIST ")",
                     (int)(nlen > 64 ? 64 : nlen), s + 1);
                return NULL;
            }
            while (t < end && (*t == ' ' || *t == '\t'))
                t++;
            if (t < end && *t != ';' && *t != '#') {
                fail(p, NULL, NULL, "[%.*s]: unexpected text after ']'",
                     (int)(nlen > 64 ? 64 : nlen), s + 1);
                return NULL;
            }
            if (srv == 1) {
                /* inih keeps 50 characters of a section name: it gets
                 * the bare section, and the name stays in p->cur_server */
                static const char bare[] = "[" RL_SERVER_SECTION "]";
                memcpy(str, bare, sizeof bare - 1);
                str[sizeof bare - 1] = '\n';
                str[sizeof bare] = '\0';
                return str;
            }
        }
    }
    memcpy(str, s, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    const struct key *k;
    char why[256];
    size_t i;

    if (p->err_line != 0)
        return 0;
    if (*section == '\0') {
        fail(p, NULL, name, "outside any [section]");
        return 0;
    }
    if (on_override(p, section, name, value))
        return p->err_line == 0;
    if (!known_section(section, strlen(section))) {
        fail(p, section, NULL, "unknown section (known: " SECTION_LIST ")");
        return 0;
    }
    k = find_key(section, name);
    if (k == NULL) {
        fail(p, section, name, "unknown key");
        return 0;
    }
    i = (size_t)(k - keys);
    if (p->seen[i] != 0) {
        fail(p, section, name, "duplicate key (first set on line %d)", p->seen[i]);
        return 0;
    }
    p->seen[i] = p->lineno;
    int rv = set_value(p->c, k, value, why, sizeof why);
    if (rv != 0) {
        fail(p, section, name, "%s", why);
        p->nomem = rv == GW_ENOMEM;
        return 0;
    }
    return 1;
}

/* Reads at most MAX_FILE_BYTES of |path| into a NUL-terminated heap buffer. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int rv = GW_ENOMEM;

    *out = NULL;
    if (f == NULL)
        return gw_fail(GW_EIO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
    buf = gw_malloc(MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rv = GW_EIO;
        goto out;
    }
    if (n > MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
        rv = GW_ECONFIG;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rv = 0;
out:
    gw_free(buf);
    fclose(f);
    return rv;
}

/* ------------------------------------------------------------ public */

int gw_log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (s == NULL)
        return GW_EINVAL;
    for (int i = 0; i < 4; i++)
        if (eq_nocase(s, names[i]))
            return i;
    return GW_EINVAL;
}

int gw_config_defaults(struct gw_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen[0].host, "0.0.0.0");
    c->listen[0].port = 8443;
    strcpy(c->listen[1].host, "::");
    c->listen[1].port = 8443;
    c->n_listen = 2;
    c->max_connections = 10000;
    c->max_handshakes = GW_DEFAULT_MAX_HANDSHAKES(c->max_connections);
    c->handshake_timeout_ms = 10000;
    c->idle_timeout_ms = 120000;
    c->request_timeout_ms = 30000;
    c->shutdown_timeout_ms = 30000;

    c->session_tickets = true;
    c->ticket_lifetime_s = 86400;
    c->ticket_key_check_ms = 1000;

    c->max_concurrent_streams = 100;
    c->max_header_list_size = 16384;
    c->initial_window_size = 1048576;
    c->stream_reset_burst = 1000;
    c->stream_reset_rate = 33;
    c->max_continuations = 8;

    pa_frame_limits_default(&c->frame);
    c->max_body_bytes = c->frame.max_frame_bytes;
    c->max_conn_buffer_bytes = 16u << 20;
    c->max_total_buffer_bytes = (size_t)256 << 20;

    c->sqlite_synchronous = GW_SYNC_FULL;
    c->queue_max_frames = 4096;
    c->queue_max_bytes = 64u << 20;
    c->batch_max_frames = 512;
    c->commit_delay_ms = 5;
    c->sqlite_cache_size = 2000 * KIB; /* SQLite's own defaults */
    c->sqlite_mmap_size = 0;
    c->sqlite_wal_autocheckpoint = 1000;
    c->busy_timeout_ms = 5000;
    c->retry_after_s = 5;
    c->retention_days = 0;
    c->retention_interval_s = 3600;
    c->file_check_interval_ms = 1000;
    c->store_samples = true;
    snprintf(c->admin_listen.host, sizeof c->admin_listen.host, "127.0.0.1");
    c->admin_listen.port = 8445;
    c->admin_on = true;

    c->registry_poll_interval_ms = 250;

    c->rl.frames_per_s = 5;
    c->rl.frames_burst = 50;
    c->rl.bytes_per_s = 8u << 20;
    c->rl.bytes_burst = 32u << 20;
    c->rl_global_frames_per_s = 20000;
    c->rl_global_frames_burst = 40000;
    c->rl_handshakes_per_s = 10;
    c->rl_handshakes_burst = 40;
    c->rl_addr_table_size = 8192;
    c->rl_server_table_size = 16384;
    c->rl_abuse_threshold = 100;
    c->rl_abuse_window_s = 10;
    c->rl_ban_s = 60;

    c->log_level = GW_LOG_INFO;
    c->refusal_log_per_s = 10;
    c->activity_interval_ms = 60000;

    c->js_replicas = 3;
    c->js_duplicate_window_s = 120;
    c->js_max_in_flight = 1024;
    c->js_publish_timeout_ms = 5000;
    c->js_connect_timeout_ms = 5000;
    c->js_ack_wait_ms = 30000;

    if (set_str(&c->storage_engine, GW_ENGINE_SQLITE) != 0 ||
        set_str(&c->sqlite_path, "panelgate.db") != 0 ||
        set_str(&c->js_stream, "PANELGATE_FRAMES") != 0 ||
        set_str(&c->js_subject_prefix, "panelgate.frames") != 0 ||
        set_str(&c->js_consumer, "panelgate-store") != 0 ||
        set_str(&c->js_registry_bucket, "panelgate_registry") != 0 ||
        set_str(&c->js_activity_stream, "PANELGATE_ACTIVITY") != 0 ||
        set_str(&c->js_activity_prefix, "panelgate.activity") != 0) {
        gw_config_cleanup(c);
        return GW_ENOMEM;
    }
    return 0;
}

int gw_config_load(struct gw_config *c, const char *path, char *err, size_t errlen)
{
    struct parse p;
    char *data = NULL, why[512];
    size_t len = 0;
    int rc, rv;
    char dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if ((rv = read_file(path, &data, &len, err, errlen)) != 0)
        return rv;
    rv = GW_ECONFIG;

    memset(&p, 0, sizeof p);
    p.c = c;
    p.path = path;
    p.err = err;
    p.errlen = errlen;
    p.data = data;
    p.len = len;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3; /* UTF-8 byte order mark */

    rc = ini_parse_stream(next_line, &p, on_value, &p);
    if (rc > 0 && (p.err_line == 0 || rc < p.err_line)) {
        snprintf(err, errlen, "%s:%d: syntax error (expected '[section]' or 'key = value')",
                 path, rc);
        goto out;
    }
    if (p.err_line != 0) {
        if (p.nomem)
            rv = GW_ENOMEM;
        goto out;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: parser failed (%d)", path, rc);
        goto out;
    }

    /* The body limit follows the frame limit unless it is set explicitly. */
    if (p.seen[find_key("frame", "max_frame_bytes") - keys] != 0 &&
        p.seen[find_key("http2", "max_body_bytes") - keys] == 0)
        c->max_body_bytes = c->frame.max_frame_bytes;
    /* ... and the handshake budget follows max_connections. */
    if (p.seen[find_key("server", "max_handshakes") - keys] == 0)
        c->max_handshakes = GW_DEFAULT_MAX_HANDSHAKES(c->max_connections);

    if (gw_config_validate(c, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    rv = 0;
out:
    gw_free(p.server_seen);
    gw_free(data);
    return rv;
}

/* One override section: every key it sets in range, and a bytes burst that
 * holds the largest body. */
static int validate_override(const struct gw_config *c, const char *sect,
                             const struct gw_rl_override *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_RL_KEYS; i++) {
        const struct key *k = &rl_keys[i];
        const void *slot = (const char *)&o->v + k->off;
        uint64_t x = k->type == K_SIZE ? *(const size_t *)slot : *(const uint32_t *)slot;
        if (!(o->set & (1u << i)))
            continue;
        if (x < k->min || x > key_max(k))
            return bad(err, errlen,
                       "[%.280s] %s: %" PRIu64 " is out of range %" PRIu64 "..%" PRIu64, sect,
                       k->name, x, k->min, key_max(k));
    }
    if ((o->set & GW_RL_SET_BYTES_BURST) && o->v.bytes_burst < c->max_body_bytes)
        return bad(err, errlen,
                   "[%.280s] bytes_burst: %zu is smaller than [http2] max_body_bytes (%zu), so "
                   "a body of the largest allowed size could never pass",
                   sect, o->v.bytes_burst, c->max_body_bytes);
    return 0;
}

static int validate_rl(const struct gw_config *c, char *err, size_t errlen)
{
    char sect[300];

    if (c->rl.bytes_burst < c->max_body_bytes)
        return bad(err, errlen,
                   "[ratelimit] bytes_burst: %zu is smaller than [http2] max_body_bytes (%zu), "
                   "so a body of the largest allowed size could never pass",
                   c->rl.bytes_burst, c->max_body_bytes);
    for (int k = 0; k < GW_RL_N_KINDS; k++) {
        snprintf(sect, sizeof sect, "ratelimit.%s", gw_rl_kind_names[k]);
        if (validate_override(c, sect, &c->rl_kind[k], err, errlen) != 0)
            return GW_ECONFIG;
    }
    if (c->n_rl_servers > GW_RL_MAX_SERVER_OVERRIDES || (c->n_rl_servers && !c->rl_servers))
        return bad(err, errlen, "[" RL_SERVER_SECTION "]: bad override list");
    for (uint32_t i = 0; i < c->n_rl_servers; i++) {
        const struct gw_rl_server_override *o = &c->rl_servers[i];
        if (!server_name_ok(o->name, strnlen(o->name, sizeof o->name)) ||
            memchr(o->name, '\0', sizeof o->name) == NULL)
            return bad(err, errlen, "[" RL_SERVER_SECTION "]: entry %u has a bad name", i + 1);
        snprintf(sect, sizeof sect, RL_SERVER_SECTION " %s", o->name);
        if (validate_override(c, sect, &o->o, err, errlen) != 0)
            return GW_ECONFIG;
    }
    return 0;
}

static bool is_set(const char *s)
{
    return s != NULL && *s != '\0';
}

/* One NATS subject token: printable ASCII, no space, no '.', no wildcard. */
static bool subject_token_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '.' || ch == '*' || ch == '>')
            return false;
    }
    return true;
}

/* A subject of dot-separated tokens (no wildcards). */
static bool subject_ok(const char *s)
{
    const char *p = s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!subject_token_ok(p, len))
            return false;
        if (dot == NULL)
            return strlen(s) <= 200;
        p = dot + 1;
    }
}

/* A JetStream key-value bucket name: 1..64 of [A-Za-z0-9_-]. */
static bool bucket_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
            ch != '_' && ch != '-')
            return false;
    }
    return true;
}

/* True when subject prefix |a| is |b| or b's leading tokens, so a stream
 * taking "a.>" would also take b's subjects. */
static bool prefix_overlaps(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '.');
}

int gw_config_js_urls(const char *v, struct gw_js_urls *out, char *err, size_t errlen)
{
    char dummy[1];
    size_t vlen = v != NULL ? strlen(v) : 0;
    char *p;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    memset(out, 0, sizeof *out);
    if (v == NULL || *v == '\0')
        return bad(err, errlen, "[jetstream] servers: not set");
    out->buf = gw_malloc(vlen + 1);
    if (out->buf == NULL) {
        bad(err, errlen, "[jetstream] servers: out of memory");
        return GW_ENOMEM;
    }
    memcpy(out->buf, v, vlen + 1);
    p = out->buf;
    for (;;) {
        unsigned k = out->n + 1; /* the entry's number, for the messages */
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return bad(err, errlen, "[jetstream] servers: entry %u is empty (no URL)", k);
        size_t skip = 0;
        if (len > 7 && strncmp(p, "nats://", 7) == 0)
            skip = 7;
        else if (len > 6 && strncmp(p, "tls://", 6) == 0)
            skip = 6;
        if (skip == 0)
            return bad(err, errlen, "[jetstream] servers: entry %u is not a nats:// or tls:// URL",
                       k);
        for (size_t i = skip; i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch <= ' ' || ch >= 0x7f || ch == '@' || ch == '/')
                return bad(err, errlen,
                           "[jetstream] servers: entry %u: only scheme://HOST:PORT (no "
                           "credentials, paths or spaces)",
                           k);
        }
        if (out->n == GW_JS_MAX_URLS)
            return bad(err, errlen, "[jetstream] servers: at most %d URLs", GW_JS_MAX_URLS);
        out->tls |= skip == 6;
        out->url[out->n++] = p;
        p[len] = '\0'; /* the URL ends here; a ',' after it is overwritten */
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

void gw_config_js_urls_cleanup(struct gw_js_urls *u)
{
    if (u == NULL)
        return;
    gw_free(u->buf);
    memset(u, 0, sizeof *u);
}

/* [jetstream]: checked whenever set (a typo shows before the engine is
 * switched on); what only the engine needs, only with it. */
static int validate_js(const struct gw_config *c, char *err, size_t errlen)
{
    struct gw_js_urls urls;
    int kinds = (is_set(c->js_user) || is_set(c->js_password)) + is_set(c->js_token) +
                is_set(c->js_creds_file);

    if (kinds > 1)
        return bad(err, errlen,
                   "[jetstream]: set one kind of credentials at most (user/password, token "
                   "or creds_file)");
    if (is_set(c->js_servers)) {
        int rv = gw_config_js_urls(c->js_servers, &urls, err, errlen);
        gw_config_js_urls_cleanup(&urls);
        if (rv != 0)
            return rv;
    }
    if (is_set(c->js_subject_prefix) && !subject_ok(c->js_subject_prefix))
        return bad(err, errlen,
                   "[jetstream] subject_prefix: not a NATS subject (dot-separated tokens of "
                   "printable ASCII, no spaces, no '*' or '>', at most 200 bytes)");
    if (is_set(c->js_stream) && (!subject_token_ok(c->js_stream, strlen(c->js_stream)) ||
                              strchr(c->js_stream, '/') || strchr(c->js_stream, '\\') ||
                              strlen(c->js_stream) > 64))
        return bad(err, errlen,
                   "[jetstream] stream: not a stream name (printable ASCII without spaces, "
                   "'.', '*', '>', '/' or '\\', at most 64 bytes)");
    if (is_set(c->js_consumer) && (!subject_token_ok(c->js_consumer, strlen(c->js_consumer)) ||
                                strchr(c->js_consumer, '/') || strchr(c->js_consumer, '\\') ||
                                strlen(c->js_consumer) > 64))
        return bad(err, errlen,
                   "[jetstream] consumer: not a consumer name (printable ASCII without "
                   "spaces, '.', '*', '>', '/' or '\\', at most 64 bytes)");
    if (is_set(c->js_activity_prefix) && !subject_ok(c->js_activity_prefix))
        return bad(err, errlen,
                   "[jetstream] activity_subject_prefix: not a NATS subject (dot-separated "
                   "tokens of printable ASCII, no spaces, no '*' or '>', at most 200 bytes)");
    if (is_set(c->js_activity_stream) &&
        (!subject_token_ok(c->js_activity_stream, strlen(c->js_activity_stream)) ||
         strchr(c->js_activity_stream, '/') || strchr(c->js_activity_stream, '\\') ||
         strlen(c->js_activity_stream) > 64))
        return bad(err, errlen,
                   "[jetstream] activity_stream: not a stream name (printable ASCII without "
                   "spaces, '.', '*', '>', '/' or '\\', at most 64 bytes)");
    if (is_set(c->js_registry_bucket) && !bucket_ok(c->js_registry_bucket))
        return bad(err, errlen,
                   "[jetstream] registry_bucket: not a bucket name (1..64 of A-Z a-z 0-9 _ -)");
    if (is_set(c->js_activity_stream) && is_set(c->js_stream) &&
        strcmp(c->js_activity_stream, c->js_stream) == 0)
        return bad(err, errlen, "[jetstream] activity_stream: the same stream as stream");
    if (is_set(c->js_activity_prefix) && is_set(c->js_subject_prefix) &&
        (prefix_overlaps(c->js_activity_prefix, c->js_subject_prefix) ||
         prefix_overlaps(c->js_subject_prefix, c->js_activity_prefix)))
        return bad(err, errlen,
                   "[jetstream] activity_subject_prefix: overlaps subject_prefix (each "
                   "stream needs subjects of its own)");
    if (!gw_config_is_jetstream(c))
        return 0;
    if (!is_set(c->js_servers))
        return bad(err, errlen,
                   "[jetstream] servers: required when [storage] storage_engine = jetstream");
    if (is_set(c->js_tls_cert_file) != is_set(c->js_tls_key_file))
        return bad(err, errlen,
                   "[jetstream] tls_cert_file and tls_key_file: set both or neither");
    if (is_set(c->js_password) && !is_set(c->js_user))
        return bad(err, errlen, "[jetstream] password: set without user");
    return 0;
}

int gw_config_validate(const struct gw_config *c, char *err, size_t errlen)
{
    char dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        const char *s;
        switch (k->type) {
        case K_LISTEN:
            if (c->n_listen < 1 || c->n_listen > GW_MAX_LISTEN)
                return bad(err, errlen, "[server] listen: needs 1..%d addresses", GW_MAX_LISTEN);
            for (unsigned j = 0; j < c->n_listen; j++) {
                unsigned char bin[16];
                const char *h = c->listen[j].host;
                if (memchr(h, '\0', sizeof c->listen[j].host) == NULL ||
                    (inet_pton(AF_INET, h, bin) != 1 && inet_pton(AF_INET6, h, bin) != 1))
                    return bad(err, errlen, "[server] listen: entry %u is not a numeric address",
                               j + 1);
            }
            break;
        case K_U32:
        case K_SIZE: {
            uint64_t x = get_uint(c, k);
            if (x < k->min || x > key_max(k))
                return bad(err, errlen,
                           "[%s] %s: %" PRIu64 " is out of range %" PRIu64 "..%" PRIu64,
                           k->section, k->name, x, k->min, key_max(k));
            break;
        }
        case K_STR:
        case K_ENGINE:
            s = *(char *const *)cfield(c, k);
            if ((k->flags & F_REQUIRED) && (s == NULL || *s == '\0'))
                return bad(err, errlen, "[%s] %s: required, and not set", k->section, k->name);
            if (k->type == K_ENGINE && !engine_known(s))
                return bad(err, errlen, "[%s] %s: unknown engine (sqlite or jetstream)",
                           k->section, k->name);
            break;
        case K_LEVEL:
            if ((int)c->log_level < GW_LOG_DEBUG || (int)c->log_level > GW_LOG_ERROR)
                return bad(err, errlen, "[%s] %s: invalid level", k->section, k->name);
            break;
        case K_SYNC:
            if (c->sqlite_synchronous != GW_SYNC_NORMAL &&
                c->sqlite_synchronous != GW_SYNC_FULL)
                return bad(err, errlen, "[%s] %s: must be normal or full", k->section, k->name);
            break;
        case K_BOOL:
            break;
        case K_ADDR:
            if (c->admin_on) {
                unsigned char bin[16];
                const char *h = c->admin_listen.host;
                if (memchr(h, '\0', sizeof c->admin_listen.host) == NULL ||
                    (inet_pton(AF_INET, h, bin) != 1 && inet_pton(AF_INET6, h, bin) != 1))
                    return bad(err, errlen, "[%s] %s: not a numeric address", k->section,
                               k->name);
            }
            break;
        }
    }
    if (c->max_handshakes > c->max_connections)
        return bad(err, errlen,
                   "[server] max_handshakes: %" PRIu32 " is larger than max_connections (%" PRIu32
                   ")",
                   c->max_handshakes, c->max_connections);
    if (pa_frame_limits_check(&c->frame) != 0)
        return bad(err, errlen, "[frame]: limits rejected by the frame codec");
    if (c->max_body_bytes > c->frame.max_frame_bytes)
        return bad(err, errlen,
                   "[http2] max_body_bytes: %zu is larger than [frame] max_frame_bytes (%zu)",
                   c->max_body_bytes, c->frame.max_frame_bytes);
    if (c->max_conn_buffer_bytes < c->max_body_bytes)
        return bad(err, errlen,
                   "[http2] max_conn_buffer_bytes: %zu is smaller than max_body_bytes (%zu), "
                   "so a body of the largest allowed size could never be buffered",
                   c->max_conn_buffer_bytes, c->max_body_bytes);
    if (c->max_total_buffer_bytes < c->max_body_bytes)
        return bad(err, errlen,
                   "[http2] max_total_buffer_bytes: %zu is smaller than max_body_bytes (%zu), "
                   "so a body of the largest allowed size could never be buffered",
                   c->max_total_buffer_bytes, c->max_body_bytes);
    if (c->batch_max_frames > c->queue_max_frames)
        return bad(err, errlen,
                   "[storage] batch_max_frames: %" PRIu32 " is larger than queue_max_frames "
                   "(%" PRIu32 ")",
                   c->batch_max_frames, c->queue_max_frames);
    if (c->queue_max_bytes < c->max_body_bytes)
        return bad(err, errlen,
                   "[storage] queue_max_bytes: %zu is smaller than [http2] max_body_bytes "
                   "(%zu), so a frame of the largest allowed size could never be queued",
                   c->queue_max_bytes, c->max_body_bytes);
    if (validate_js(c, err, errlen) != 0)
        return GW_ECONFIG;
    return validate_rl(c, err, errlen);
}

void gw_config_cleanup(struct gw_config *c)
{
    if (c == NULL)
        return;
    gw_free(c->rl_servers);
    c->rl_servers = NULL;
    c->n_rl_servers = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].type == K_STR || keys[i].type == K_ENGINE) {
            char **slot = (char **)field(c, &keys[i]);
            gw_free(*slot);
            *slot = NULL;
        }
    }
}

/* ------------------------------------------------------------ reload */

static bool str_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool addr_eq(const struct gw_listen *a, const struct gw_listen *b)
{
    return a->port == b->port && strncmp(a->host, b->host, sizeof a->host) == 0;
}

/* Whether key |k| has the same value in |a| and |b|. */
static bool same_value(const struct gw_config *a, const struct gw_config *b, const struct key *k)
{
    switch (k->type) {
    case K_LISTEN:
        if (a->n_listen != b->n_listen || a->n_listen > GW_MAX_LISTEN)
            return false;
        for (unsigned i = 0; i < a->n_listen; i++)
            if (!addr_eq(&a->listen[i], &b->listen[i]))
                return false;
        return true;
    case K_ADDR:
        return a->admin_on == b->admin_on &&
               (!a->admin_on || addr_eq(cfield(a, k), cfield(b, k)));
    case K_STR:
    case K_ENGINE:
        return str_eq(*(char *const *)cfield(a, k), *(char *const *)cfield(b, k));
    case K_U32:
    case K_SIZE:
        return get_uint(a, k) == get_uint(b, k);
    case K_BOOL:
        return *(const bool *)cfield(a, k) == *(const bool *)cfield(b, k);
    case K_LEVEL:
        return *(const enum gw_log_level *)cfield(a, k) ==
               *(const enum gw_log_level *)cfield(b, k);
    case K_SYNC:
        return *(const enum gw_sqlite_sync *)cfield(a, k) ==
               *(const enum gw_sqlite_sync *)cfield(b, k);
    }
    return false;
}

/* Key |k|'s value from |from| into |to|.  GW_ENOMEM when out of memory
 * (|to| keeps its own value then). */
static int copy_value(struct gw_config *to, const struct gw_config *from, const struct key *k)
{
    const char *s;

    switch (k->type) {
    case K_LISTEN:
        memcpy(to->listen, from->listen, sizeof to->listen);
        to->n_listen = from->n_listen;
        return 0;
    case K_ADDR:
        *(struct gw_listen *)field(to, k) = *(const struct gw_listen *)cfield(from, k);
        to->admin_on = from->admin_on;
        return 0;
    case K_STR:
    case K_ENGINE:
        s = *(char *const *)cfield(from, k);
        return set_str((char **)field(to, k), s ? s : "");
    case K_U32:
        *(uint32_t *)field(to, k) = *(const uint32_t *)cfield(from, k);
        return 0;
    case K_SIZE:
        *(size_t *)field(to, k) = *(const size_t *)cfield(from, k);
        return 0;
    case K_BOOL:
        *(bool *)field(to, k) = *(const bool *)cfield(from, k);
        return 0;
    case K_LEVEL:
        *(enum gw_log_level *)field(to, k) = *(const enum gw_log_level *)cfield(from, k);
        return 0;
    case K_SYNC:
        *(enum gw_sqlite_sync *)field(to, k) = *(const enum gw_sqlite_sync *)cfield(from, k);
        return 0;
    }
    return GW_EINTERNAL;
}

/* Appends "[section] name" to the comma-separated list in |buf|. */
static void add_key_name(char *buf, size_t n, const struct key *k)
{
    size_t len = strnlen(buf, n);
    if (len + 1 < n)
        snprintf(buf + len, n - len, "%s[%s] %s", len ? ", " : "", k->section, k->name);
}

int gw_config_keep_restart_only(struct gw_config *nc, const struct gw_config *oc,
                                struct gw_reload_kept *kept)
{
    unsigned changed = 0;

    if (kept != NULL)
        memset(kept, 0, sizeof *kept);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        unsigned group = (k->flags & F_LISTEN)    ? GW_RELOAD_LISTEN
                         : (k->flags & F_STORAGE) ? GW_RELOAD_STORAGE
                                                  : 0;
        if (group == 0 || same_value(nc, oc, k))
            continue;
        int rv = copy_value(nc, oc, k);
        if (rv != 0)
            return rv;
        changed |= group;
        if (kept != NULL && group == GW_RELOAD_LISTEN)
            add_key_name(kept->listen, sizeof kept->listen, k);
        else if (kept != NULL)
            add_key_name(kept->storage, sizeof kept->storage, k);
    }
    return (int)changed;
}
