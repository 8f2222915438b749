/*
 * privacy.c - viewer IPs -> geo/ASN aggregates (see privacy.h).
 *
 * Each connection becomes one (cc, asn, 1, in, out) record in a block sized
 * from n_conns; the block is sorted by (cc, asn) and equal neighbours are
 * merged in place.  So memory is bounded by the frame's own connection
 * count (itself capped by [frame] max_conns), whatever the addresses, and
 * the output order (hence the stored bytes) is reproducible.
 *
 * The only copies of an address made here are the struct sockaddr built
 * for a lookup, on the stack, wiped right after it.
 */
#include "privacy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <maxminddb.h>
#include <msgpack.h>

#include "alloc.h"
#include "err.h"

enum { DB_COUNTRY, DB_ASN, N_DB };

struct gw_geo {
    MMDB_s db[N_DB];
    bool open[N_DB];
};

static const char *const db_key[N_DB] = {"country_db", "asn_db"};

/* ---- databases ---------------------------------------------------------- */

static int open_db(struct gw_geo *g, int which, const char *path, char *err, size_t errlen)
{
    if (!path || !*path)
        return 0;
    errno = 0;
    int st = MMDB_open(path, MMDB_MODE_MMAP, &g->db[which]);
    if (st != MMDB_SUCCESS) {
        int e = errno;
        if ((st == MMDB_FILE_OPEN_ERROR || st == MMDB_IO_ERROR) && e != 0)
            gw_seterr(err, errlen, "[geo] %s %s: %s (%s)", db_key[which], path,
                      MMDB_strerror(st), strerror(e));
        else
            gw_seterr(err, errlen, "[geo] %s %s: %s", db_key[which], path, MMDB_strerror(st));
        return GW_EIO;
    }
    g->open[which] = true;
    return 0;
}

int gw_geo_open(struct gw_geo **out, const char *country_path, const char *asn_path,
                char *err, size_t errlen)
{
    struct gw_geo *g;

    *out = NULL;
    g = gw_calloc(1, sizeof *g);
    if (!g) {
        gw_seterr(err, errlen, "[geo]: out of memory");
        return GW_ENOMEM;
    }
    int rv;
    if ((rv = open_db(g, DB_COUNTRY, country_path, err, errlen)) != 0 ||
        (rv = open_db(g, DB_ASN, asn_path, err, errlen)) != 0) {
        gw_geo_free(g);
        return rv;
    }
    *out = g;
    return 0;
}

void gw_geo_free(struct gw_geo *g)
{
    if (!g)
        return;
    for (int i = 0; i < N_DB; i++)
        if (g->open[i])
            MMDB_close(&g->db[i]);
    gw_free(g);
}

bool gw_geo_has_country(const struct gw_geo *g)
{
    return g && g->open[DB_COUNTRY];
}

bool gw_geo_has_asn(const struct gw_geo *g)
{
    return g && g->open[DB_ASN];
}

const char *gw_geo_describe(const struct gw_geo *g, char *buf, size_t n)
{
    static const char *const label[N_DB] = {"country", "asn"};
    size_t off = 0;

    if (n == 0)
        return buf;
    buf[0] = '\0';
    for (int i = 0; i < N_DB; i++) {
        char day[16] = "?";
        int w;
        if (g && g->open[i]) {
            const MMDB_metadata_s *m = &g->db[i].metadata;
            time_t t = (time_t)m->build_epoch;
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(day, sizeof day, "%Y-%m-%d", &tm);
            w = snprintf(buf + off, n - off, "%s%s=%.64s/%s", i ? " " : "", label[i],
                         m->database_type ? m->database_type : "?", day);
        } else {
            w = snprintf(buf + off, n - off, "%s%s=none", i ? " " : "", label[i]);
        }
        if (w < 0 || (size_t)w >= n - off)
            break;
        off += (size_t)w;
    }
    return buf;
}

/* ---- addresses ------------------------------------------------------------ */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* IPv4 ranges that are never public (RFC 6890 and friends). */
static const struct {
    uint32_t net, mask;
} v4_special[] = {
    {0x00000000u, 0xff000000u}, /* 0.0.0.0/8      "this network" */
    {0x0a000000u, 0xff000000u}, /* 10.0.0.0/8     private */
    {0x64400000u, 0xffc00000u}, /* 100.64.0.0/10  shared (CGNAT) */
    {0x7f000000u, 0xff000000u}, /* 127.0.0.0/8    loopback */
    {0xa9fe0000u, 0xffff0000u}, /* 169.254.0.0/16 link-local */
    {0xac100000u, 0xfff00000u}, /* 172.16.0.0/12  private */
    {0xc0000000u, 0xffffff00u}, /* 192.0.0.0/24   IETF protocol assignments */
    {0xc0a80000u, 0xffff0000u}, /* 192.168.0.0/16 private */
    {0xe0000000u, 0xe0000000u}, /* 224.0.0.0/3    multicast, reserved, broadcast */
};

/* |ip| with an IPv4-mapped IPv6 address turned into IPv4; 0 when the
 * family is neither 4 nor 6 (the decoder never lets that through). */
static int normalize(const struct pa_ip *ip, uint8_t a[16])
{
    if (ip->family == 4) {
        memcpy(a, ip->addr, 4);
        return 4;
    }
    if (ip->family != 6)
        return 0;
    if (memcmp(ip->addr, v4_mapped, sizeof v4_mapped) == 0) {
        memcpy(a, ip->addr + 12, 4);
        return 4;
    }
    memcpy(a, ip->addr, 16);
    return 6;
}

static bool public_addr(int fam, const uint8_t a[16])
{
    if (fam == 6)
        return (a[0] & 0xe0) == 0x20; /* global unicast, 2000::/3 */
    if (fam != 4)
        return false;
    uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    for (size_t i = 0; i < sizeof v4_special / sizeof v4_special[0]; i++)
        if ((v & v4_special[i].mask) == v4_special[i].net)
            return false;
    return true;
}

bool gw_privacy_ip_public(const struct pa_ip *ip)
{
    uint8_t a[16];
    int fam = normalize(ip, a);
    bool pub = public_addr(fam, a);
    explicit_bzero(a, sizeof a);
    return pub;
}

/* ---- lookups ----------------------------------------------------------------- */

/* The entry for the address in one database; false when none (or on an
 * error, which is counted). */
static bool lookup(const MMDB_s *db, int fam, const uint8_t a[16], MMDB_entry_s *entry,
                   uint32_t *errors)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa;
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r;

    if (fam == 6 && db->metadata.ip_version == 4)
        return false; /* an IPv4-only database knows no IPv6 address */
    memset(&sa, 0, sizeof sa);
    if (fam == 4) {
        sa.in.sin_family = AF_INET;
        memcpy(&sa.in.sin_addr, a, 4);
    } else {
        sa.in6.sin6_family = AF_INET6;
        memcpy(&sa.in6.sin6_addr, a, 16);
    }
    r = MMDB_lookup_sockaddr(db, &sa.sa, &mmdb_error);
    explicit_bzero(&sa, sizeof sa);
    if (mmdb_error != MMDB_SUCCESS) {
        (*errors)++;
        return false;
    }
    *entry = r.entry;
    return r.found_entry;
}

/* The paths of the values looked up, for MMDB_aget_value: MMDB_get_value's
 * varargs go through MMDB_vget_value, which mallocs and frees a copy of
 * the path on every call (two or three per viewer connection). */
static const char *const path_country[] = {"country", "iso_code", NULL};
static const char *const path_registered[] = {"registered_country", "iso_code", NULL};
static const char *const path_asn[] = {"autonomous_system_number", NULL};

static bool iso_code(MMDB_entry_s *e, const char *const *path, char cc[3], uint32_t *errors)
{
    MMDB_entry_data_s d;
    int st = MMDB_aget_value(e, &d, path);

    if (st != MMDB_SUCCESS) {
        if (st != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR)
            (*errors)++;
        return false;
    }
    if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
        return false;
    for (int i = 0; i < 2; i++)
        if (d.utf8_string[i] < 'A' || d.utf8_string[i] > 'Z')
            return false;
    memcpy(cc, d.utf8_string, 2);
    cc[2] = '\0';
    return true;
}

/* What the data records met in one frame gave, by record offset: a frame's
 * viewers come from a few networks, and one record answers for every
 * address of its network, so the walk through its map (MMDB_aget_value)
 * is done once per record, not once per viewer.  It holds offsets into the
 * databases and what they gave, never an address; it lives on the stack
 * of one gw_privacy_reduce call.  A read that failed is not kept, so a
 * corrupt record is counted in lookup_errors for every viewer, as before. */
#define RECORD_SLOTS 64u

struct record_slot {
    bool used;
    uint32_t offset;
    char cc[3];
    uint32_t asn;
};

struct record_cache {
    struct record_slot slot[N_DB][RECORD_SLOTS];
};

static struct record_slot *record_slot(struct record_cache *rc, int db, uint32_t offset)
{
    return &rc->slot[db][(offset * 2654435761u) >> 26]; /* Fibonacci hash, 6 bits */
}

static void country_of(const struct gw_geo *g, int fam, const uint8_t a[16], char cc[3],
                       uint32_t *errors, struct record_cache *rc)
{
    MMDB_entry_s e;

    memcpy(cc, GW_CC_UNKNOWN, 3);
    if (!lookup(&g->db[DB_COUNTRY], fam, a, &e, errors))
        return;
    struct record_slot *sl = record_slot(rc, DB_COUNTRY, e.offset);
    if (sl->used && sl->offset == e.offset) {
        memcpy(cc, sl->cc, 3);
        return;
    }
    uint32_t errors0 = *errors;
    /* GeoLite2 leaves "country" out for some networks (satellite, anycast)
     * and keeps the registered country */
    if (!iso_code(&e, path_country, cc, errors))
        iso_code(&e, path_registered, cc, errors);
    if (*errors == errors0)
        *sl = (struct record_slot){.used = true, .offset = e.offset, .cc = {cc[0], cc[1], cc[2]}};
}

/* The ASN record |e| gives; 0 when none (or on an error, counted). */
static uint32_t asn_value(MMDB_entry_s *e, uint32_t *errors)
{
    MMDB_entry_data_s d;
    int st = MMDB_aget_value(e, &d, path_asn);
    if (st != MMDB_SUCCESS) {
        if (st != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR)
            (*errors)++;
        return 0;
    }
    if (!d.has_data)
        return 0;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        return d.uint16;
    case MMDB_DATA_TYPE_UINT32:
        return d.uint32;
    case MMDB_DATA_TYPE_UINT64:
        return d.uint64 <= UINT32_MAX ? (uint32_t)d.uint64 : 0;
    default:
        return 0;
    }
}

static uint32_t asn_of(const struct gw_geo *g, int fam, const uint8_t a[16], uint32_t *errors,
                       struct record_cache *rc)
{
    MMDB_entry_s e;

    if (!lookup(&g->db[DB_ASN], fam, a, &e, errors))
        return 0;
    struct record_slot *sl = record_slot(rc, DB_ASN, e.offset);
    if (sl->used && sl->offset == e.offset)
        return sl->asn;
    uint32_t errors0 = *errors, asn = asn_value(&e, errors);
    if (*errors == errors0)
        *sl = (struct record_slot){.used = true, .offset = e.offset, .asn = asn};
    return asn;
}

/* ---- reduction ------------------------------------------------------------------ */

/* (cc, asn) as one number that orders as memcmp(cc, 2), then asn, do. */
static uint64_t agg_key(const struct gw_viewer_agg *r)
{
    return (uint64_t)(uint8_t)r->cc[0] << 40 | (uint64_t)(uint8_t)r->cc[1] << 32 | r->asn;
}

static void agg_swap(struct gw_viewer_agg *x, struct gw_viewer_agg *y)
{
    struct gw_viewer_agg t = *x;
    *x = *y;
    *y = t;
}

static void sift_down(struct gw_viewer_agg *v, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && agg_key(&v[child]) < agg_key(&v[child + 1]))
            child++;
        if (agg_key(&v[root]) >= agg_key(&v[child]))
            return;
        agg_swap(&v[root], &v[child]);
        root = child;
    }
}

/* Sorts by agg_key in place: a heapsort, O(n log n) for any input up to
 * [frame] max_conns, with no memory of its own (qsort took a malloc per
 * frame past 1 KiB of records, and an indirect call and a memcmp per
 * comparison).  Equal keys are merged afterwards, so stability does not
 * matter. */
static void sort_aggs(struct gw_viewer_agg *v, size_t n)
{
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        agg_swap(&v[0], &v[end]);
        sift_down(v, 0, end);
    }
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int gw_privacy_reduce(const struct gw_geo *geo, const struct pa_conn *conns, uint32_t n_conns,
                      struct pa_arena *a, struct gw_viewers *out)
{
    bool by_country = gw_geo_has_country(geo), by_asn = gw_geo_has_asn(geo);
    struct gw_viewer_agg *v;
    uint32_t n = 0;

    memset(out, 0, sizeof *out);
    if (n_conns == 0)
        return 0;
    v = pa_arena_calloc(a, n_conns, sizeof *v);
    if (!v)
        return GW_ENOMEM;
    struct record_cache rc;
    if (by_country || by_asn)
        memset(&rc, 0, sizeof rc);
    for (uint32_t i = 0; i < n_conns; i++) {
        uint8_t addr[16];
        int fam = normalize(&conns[i].ip, addr);
        struct gw_viewer_agg *r = &v[i];

        if (!public_addr(fam, addr)) {
            memcpy(r->cc, GW_CC_PRIVATE, 3);
        } else {
            if (by_country)
                country_of(geo, fam, addr, r->cc, &out->lookup_errors, &rc);
            else
                memcpy(r->cc, GW_CC_NONE, 3);
            if (by_asn)
                r->asn = asn_of(geo, fam, addr, &out->lookup_errors, &rc);
        }
        explicit_bzero(addr, sizeof addr);
        r->conns = 1;
        r->bytes_in = conns[i].bytes_in;
        r->bytes_out = conns[i].bytes_out;
    }
    sort_aggs(v, n_conns);
    for (uint32_t i = 0; i < n_conns; i++) {
        if (n > 0 && agg_key(&v[n - 1]) == agg_key(&v[i])) {
            struct gw_viewer_agg *m = &v[n - 1];
            m->conns++;
            m->bytes_in = sat_add(m->bytes_in, v[i].bytes_in);
            m->bytes_out = sat_add(m->bytes_out, v[i].bytes_out);
        } else {
            v[n++] = v[i];
        }
    }
    out->aggs = v;
    out->n = n;
    return 0;
}

/* ---- the stored form -------------------------------------------------------------- */

static int write_cb(void *data, const char *buf, size_t len)
{
    return pa_buf_append(data, buf, len);
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

/* A key, a string literal shorter than 32 bytes: the fixstr msgpack-c
 * would write, in one append and without a strlen. */
static int pack_keyn(struct pa_buf *out, const char *k, size_t n)
{
    uint8_t b[32];

    b[0] = (uint8_t)(0xa0u | n);
    memcpy(b + 1, k, n);
    return pa_buf_append(out, b, n + 1);
}

#define pack_key(out, k) pack_keyn((out), "" k, sizeof(k) - 1)

/* The most bytes one record of "viewers" takes: a fixmap of 5, the keys
 * (3 + 4 + 6 + 3 + 4 bytes), cc (a fixstr of 2), a uint32 and three
 * uint64. */
#define VIEWER_MAX_BYTES (1 + 20 + 3 + 5 + 3 * 9)

int gw_privacy_encode(const struct pa_frame *f, const struct gw_viewers *v, struct pa_buf *out)
{
    size_t len0 = out->len;
    msgpack_packer pk;
    int bad = 0;

    if (pa_frame_encode_flags(f, out, PA_ENCODE_NO_CONNS) != 0)
        return GW_ENOMEM;
    if (v->n == 0)
        return 0;
    /* one more key in the top-level map: the encoder always writes it as a
     * fixmap of at most PA_ENCODE_MAX_TOP_KEYS keys (frame.h) */
    uint8_t *hdr = out->data + len0;
    if ((*hdr & 0xf0) != 0x80 || (*hdr & 0x0f) == 0x0f) {
        out->len = len0;
        return GW_EINTERNAL; /* the encoder's own top-level map */
    }
    (*hdr)++;
    msgpack_packer_init(&pk, out, write_cb);
    /* one allocation for the whole array rather than doublings: v->n is
     * at most [frame] max_conns */
    bad |= pa_buf_reserve(out, 16 + (size_t)v->n * VIEWER_MAX_BYTES) != 0;
    bad |= bad || pack_key(out, "viewers") || msgpack_pack_array(&pk, v->n);
    for (uint32_t i = 0; i < v->n && !bad; i++) {
        const struct gw_viewer_agg *g = &v->aggs[i];
        bad |= msgpack_pack_map(&pk, 5) || pack_key(out, "cc") || pack_str(&pk, g->cc) ||
               pack_key(out, "asn") || msgpack_pack_uint64(&pk, g->asn) ||
               pack_key(out, "conns") || msgpack_pack_uint64(&pk, g->conns) ||
               pack_key(out, "in") || msgpack_pack_uint64(&pk, g->bytes_in) ||
               pack_key(out, "out") || msgpack_pack_uint64(&pk, g->bytes_out);
    }
    if (bad) {
        out->len = len0;
        return GW_ENOMEM;
    }
    return 0;
}
