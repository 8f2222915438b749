/*
 * test_gw_privacy.c - the privacy reduction (gateway/policy/privacy.h): viewer
 * connections -> (country, ASN) aggregates, and the stored form.
 *
 * The MaxMind-format databases are built at test time by
 * tests/data/make_test_mmdb.pl (libmaxmind-db-writer-perl) into a scratch
 * directory; nothing binary is committed.  What they map (documentation
 * ranges, plus private ranges that must never be looked up) is listed in
 * that script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privacy.h"
#include "testutil.h"

/* ---- the databases ---------------------------------------------------------- */

static char dir[64];
static char country_db[128], country_v4_db[128], asn_db[128];

static int group_setup(void **state)
{
    const char *data = getenv("PANELGATE_TEST_DATA");
    char cmd[512];
    (void)state;

    snprintf(dir, sizeof dir, "gwpriv.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof cmd, "perl '%s/make_test_mmdb.pl' '%s'", data ? data : "../../../tests/data",
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot build the test databases (%s); is libmaxmind-db-writer-perl "
                        "installed (scripts/deps.sh)?\n", cmd);
        return -1;
    }
    snprintf(country_db, sizeof country_db, "%s/test-country.mmdb", dir);
    snprintf(country_v4_db, sizeof country_v4_db, "%s/test-country-v4.mmdb", dir);
    snprintf(asn_db, sizeof asn_db, "%s/test-asn.mmdb", dir);
    return 0;
}

static int group_teardown(void **state)
{
    char p[192];
    static const char *const files[] = {"test-country.mmdb", "test-country-v4.mmdb",
                                        "test-asn.mmdb", "garbage.mmdb"};
    (void)state;
    for (size_t i = 0; i < TU_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static struct gw_geo *geo_open(const char *c, const char *a)
{
    struct gw_geo *g = NULL;
    char err[256] = "";
    if (gw_geo_open(&g, c, a, err, sizeof err) != 0)
        fail_msg("gw_geo_open: %s", err);
    assert_non_null(g);
    return g;
}

/* ---- helpers ------------------------------------------------------------------ */

static struct pa_ip ip_of(const char *text)
{
    struct pa_ip ip;
    memset(&ip, 0, sizeof ip);
    if (inet_pton(AF_INET, text, ip.addr) == 1)
        ip.family = 4;
    else if (inet_pton(AF_INET6, text, ip.addr) == 1)
        ip.family = 6;
    else
        fail_msg("bad address %s", text);
    return ip;
}

/* A viewer, the bucket it falls in with both databases, and whether it is
 * public. */
struct viewer {
    const char *ip;
    const char *cc;
    uint32_t asn;
};

static const struct viewer mixed[] = {
    {"192.0.2.1", "DE", 64500},
    {"10.1.2.3", "XP", 0}, /* mapped to CN/64999 in the databases: never looked up */
    {"2001:db8:1::1", "JP", 64502},
    {"192.0.2.200", "DE", 64500},
    {"::ffff:192.0.2.7", "DE", 64500}, /* IPv4-mapped: as 192.0.2.7 */
    {"198.51.100.9", "FR", 64501},
    {"2001:db8:2::5", "DE", 64500}, /* IPv6, same bucket as the IPv4 ones */
    {"192.168.1.1", "XP", 0},
    {"198.51.100.200", "ZZ", 64501}, /* a record without iso_code */
    {"203.0.113.5", "US", 0},        /* in the country database only */
    {"198.18.0.1", "NL", 64510},     /* registered_country only */
    {"2001:db8:3::1", "ZZ", 0},      /* malformed iso_code "d3" */
    {"2001:db8:ffff::1", "ZZ", 0},   /* public, in neither database */
    {"8.8.8.8", "ZZ", 0},
    {"172.16.5.5", "XP", 0},
    {"100.64.1.1", "XP", 0}, /* CGNAT */
    {"169.254.1.1", "XP", 0},
    {"127.0.0.1", "XP", 0},
    {"::1", "XP", 0},
    {"fe80::1", "XP", 0},
    {"fd12:3456::1", "XP", 0}, /* mapped to CN in the country database */
    {"::ffff:10.0.0.1", "XP", 0},
    {"0.0.0.0", "XP", 0},
    {"224.0.0.1", "XP", 0},
    {"255.255.255.255", "XP", 0},
    {"192.0.2.1", "DE", 64500}, /* the same address twice */
};

#define N_MIXED ((uint32_t)TU_ARRAY_LEN(mixed))

static struct pa_conn *conns_of(struct pa_arena *a, const struct viewer *v, uint32_t n)
{
    struct pa_conn *c = pa_arena_calloc(a, n, sizeof *c);
    assert_non_null(c);
    for (uint32_t i = 0; i < n; i++) {
        c[i].ip = ip_of(v[i].ip);
        c[i].bytes_in = 100 + i;
        c[i].bytes_out = 1000 * (i + 1);
    }
    return c;
}

enum mode { BOTH, COUNTRY_ONLY, ASN_ONLY, NONE };

/* The bucket of mixed[i] under |m|, derived from the both-databases one. */
static void bucket(const struct viewer *v, enum mode m, char cc[3], uint32_t *asn)
{
    bool priv = strcmp(v->cc, "XP") == 0;
    strcpy(cc, priv || m == BOTH || m == COUNTRY_ONLY ? v->cc : "--");
    *asn = m == BOTH || m == ASN_ONLY ? v->asn : 0;
}

/* Expected aggregates by simple grouping, sorted like the reducer. */
static uint32_t expect(const struct viewer *v, const struct pa_conn *c, uint32_t n, enum mode m,
                       struct gw_viewer_agg *out)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        char cc[3];
        uint32_t asn, j;
        bucket(&v[i], m, cc, &asn);
        for (j = 0; j < k; j++)
            if (strcmp(out[j].cc, cc) == 0 && out[j].asn == asn)
                break;
        if (j == k) {
            memset(&out[k], 0, sizeof out[k]);
            strcpy(out[k].cc, cc);
            out[k].asn = asn;
            k++;
        }
        out[j].conns++;
        out[j].bytes_in += c[i].bytes_in;
        out[j].bytes_out += c[i].bytes_out;
    }
    /* insertion sort by (cc, asn) */
    for (uint32_t i = 1; i < k; i++)
        for (uint32_t j = i; j > 0; j--) {
            int d = strcmp(out[j - 1].cc, out[j].cc);
            if (d < 0 || (d == 0 && out[j - 1].asn <= out[j].asn))
                break;
            struct gw_viewer_agg t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return k;
}

static void assert_aggs(const struct gw_viewers *got, const struct gw_viewer_agg *want,
                        uint32_t n)
{
    if (got->n != n) {
        for (uint32_t i = 0; i < got->n; i++)
            fprintf(stderr, "  got %s/%u x%llu\n", got->aggs[i].cc, got->aggs[i].asn,
                    (unsigned long long)got->aggs[i].conns);
    }
    assert_int_equal(got->n, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct gw_viewer_agg *g = &got->aggs[i], *w = &want[i];
        if (strcmp(g->cc, w->cc) != 0 || g->asn != w->asn || g->conns != w->conns ||
            g->bytes_in != w->bytes_in || g->bytes_out != w->bytes_out)
            fail_msg("bucket %u: got %s/%u conns=%llu in=%llu out=%llu, want %s/%u conns=%llu "
                     "in=%llu out=%llu",
                     i, g->cc, g->asn, (unsigned long long)g->conns,
                     (unsigned long long)g->bytes_in, (unsigned long long)g->bytes_out, w->cc,
                     w->asn, (unsigned long long)w->conns, (unsigned long long)w->bytes_in,
                     (unsigned long long)w->bytes_out);
    }
}

/* ---- tests -------------------------------------------------------------------- */

static void test_classify(void **state)
{
    static const struct {
        const char *ip;
        bool pub;
    } t[] = {
        {"8.8.8.8", true},          {"192.0.2.1", true},       {"198.18.0.1", true},
        {"100.63.255.255", true},   {"100.128.0.0", true},     {"172.15.255.255", true},
        {"172.32.0.0", true},       {"223.255.255.255", true}, {"192.0.1.255", true},
        {"0.1.2.3", false},         {"10.0.0.0", false},       {"10.255.255.255", false},
        {"100.64.0.0", false},      {"100.127.255.255", false}, {"127.0.0.1", false},
        {"169.254.0.1", false},     {"172.16.0.0", false},     {"172.31.255.255", false},
        {"192.0.0.8", false},       {"192.168.0.1", false},    {"224.0.0.1", false},
        {"239.1.1.1", false},       {"240.0.0.1", false},      {"255.255.255.255", false},
        {"2001:db8::1", true},      {"2a00:1450::1", true},    {"3fff:ffff::1", true},
        {"::", false},              {"::1", false},            {"::ffff:8.8.8.8", true},
        {"::ffff:192.168.1.1", false}, {"::8.8.8.8", false},   {"64:ff9b::808:808", false},
        {"100::1", false},          {"fc00::1", false},        {"fdff::1", false},
        {"fe80::1", false},         {"ff02::1", false},        {"4000::1", false},
    };
    (void)state;
    for (size_t i = 0; i < TU_ARRAY_LEN(t); i++) {
        struct pa_ip ip = ip_of(t[i].ip);
        if (gw_privacy_ip_public(&ip) != t[i].pub)
            fail_msg("%s: public=%d, want %d", t[i].ip, !t[i].pub, t[i].pub);
    }
    struct pa_ip none = {0};
    assert_false(gw_privacy_ip_public(&none));
}

static void run_mode(enum mode m, struct gw_geo *g)
{
    struct pa_arena a;
    struct gw_viewers v;
    struct gw_viewer_agg want[N_MIXED];

    pa_arena_init(&a, 0, NULL);
    struct pa_conn *c = conns_of(&a, mixed, N_MIXED);
    assert_int_equal(gw_privacy_reduce(g, c, N_MIXED, &a, &v), 0);
    assert_int_equal(v.lookup_errors, 0);
    assert_aggs(&v, want, expect(mixed, c, N_MIXED, m, want));
    pa_arena_cleanup(&a);
}

static void test_both_databases(void **state)
{
    (void)state;
    struct gw_geo *g = geo_open(country_db, asn_db);
    assert_true(gw_geo_has_country(g));
    assert_true(gw_geo_has_asn(g));
    run_mode(BOTH, g);

    /* and spelled out, so the grouping above is checked too */
    static const struct {
        const char *cc;
        uint32_t asn;
        uint64_t conns;
    } want[] = {
        {"DE", 64500, 5}, {"FR", 64501, 1}, {"JP", 64502, 1}, {"NL", 64510, 1},
        {"US", 0, 1},     {"XP", 0, 13},    {"ZZ", 0, 3},     {"ZZ", 64501, 1},
    };
    struct pa_arena a;
    struct gw_viewers v;
    pa_arena_init(&a, 0, NULL);
    struct pa_conn *c = conns_of(&a, mixed, N_MIXED);
    assert_int_equal(gw_privacy_reduce(g, c, N_MIXED, &a, &v), 0);
    assert_int_equal(v.n, TU_ARRAY_LEN(want));
    uint64_t total = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        assert_string_equal(v.aggs[i].cc, want[i].cc);
        assert_int_equal(v.aggs[i].asn, want[i].asn);
        assert_int_equal(v.aggs[i].conns, want[i].conns);
        total += v.aggs[i].conns;
    }
    assert_int_equal(total, N_MIXED);
    /* DE/64500: mixed[0], [3], [4], [6], [25] */
    assert_int_equal(v.aggs[0].bytes_in, 100 + 0 + 100 + 3 + 100 + 4 + 100 + 6 + 100 + 25);
    assert_int_equal(v.aggs[0].bytes_out, 1000 * (1 + 4 + 5 + 7 + 26));
    pa_arena_cleanup(&a);
    gw_geo_free(g);
}

static void test_country_only(void **state)
{
    (void)state;
    struct gw_geo *g = geo_open(country_db, NULL);
    assert_true(gw_geo_has_country(g));
    assert_false(gw_geo_has_asn(g));
    run_mode(COUNTRY_ONLY, g);
    gw_geo_free(g);
}

static void test_asn_only(void **state)
{
    (void)state;
    struct gw_geo *g = geo_open("", asn_db);
    assert_false(gw_geo_has_country(g));
    assert_true(gw_geo_has_asn(g));
    run_mode(ASN_ONLY, g);
    gw_geo_free(g);
}

static void test_no_databases(void **state)
{
    (void)state;
    run_mode(NONE, NULL);
    struct gw_geo *g = geo_open(NULL, NULL);
    assert_false(gw_geo_has_country(g));
    assert_false(gw_geo_has_asn(g));
    run_mode(NONE, g);
    gw_geo_free(g);

    /* two buckets at most: public "--" and private "XP" */
    struct pa_arena a;
    struct gw_viewers v;
    pa_arena_init(&a, 0, NULL);
    struct pa_conn *c = conns_of(&a, mixed, N_MIXED);
    assert_int_equal(gw_privacy_reduce(NULL, c, N_MIXED, &a, &v), 0);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.aggs[0].cc, "--");
    assert_string_equal(v.aggs[1].cc, "XP");
    assert_int_equal(v.aggs[0].conns + v.aggs[1].conns, N_MIXED);
    pa_arena_cleanup(&a);
}

static void test_ipv4_only_database(void **state)
{
    /* an IPv6 address in an IPv4-only database: unknown, not an error */
    static const struct viewer vs[] = {
        {"192.0.2.1", "DE", 0},
        {"2001:db8:1::1", "ZZ", 0},
        {"::ffff:198.51.100.9", "FR", 0},
        {"fc00::1", "XP", 0},
    };
    struct pa_arena a;
    struct gw_viewers v;
    struct gw_viewer_agg want[4];
    (void)state;
    struct gw_geo *g = geo_open(country_v4_db, NULL);
    pa_arena_init(&a, 0, NULL);
    struct pa_conn *c = conns_of(&a, vs, 4);
    assert_int_equal(gw_privacy_reduce(g, c, 4, &a, &v), 0);
    assert_int_equal(v.lookup_errors, 0);
    assert_aggs(&v, want, expect(vs, c, 4, COUNTRY_ONLY, want));
    pa_arena_cleanup(&a);
    gw_geo_free(g);
}

static void test_open_errors(void **state)
{
    struct gw_geo *g = (struct gw_geo *)(uintptr_t)1; /* must be reset to NULL */
    char err[256], garbage[192];
    (void)state;

    assert_int_equal(gw_geo_open(&g, "/nonexistent/c.mmdb", NULL, err, sizeof err), GW_EIO);
    assert_null(g);
    assert_non_null(strstr(err, "country_db"));
    assert_non_null(strstr(err, "/nonexistent/c.mmdb"));

    g = (struct gw_geo *)(uintptr_t)1;
    assert_int_equal(gw_geo_open(&g, country_db, "/nonexistent/a.mmdb", err, sizeof err), GW_EIO);
    assert_null(g);
    assert_non_null(strstr(err, "asn_db /nonexistent/a.mmdb"));

    snprintf(garbage, sizeof garbage, "%s/garbage.mmdb", dir);
    FILE *fp = fopen(garbage, "w");
    assert_non_null(fp);
    fputs("this is not a MaxMind database\n", fp);
    fclose(fp);
    assert_int_equal(gw_geo_open(&g, garbage, NULL, err, sizeof err), GW_EIO);
    assert_null(g);
    assert_non_null(strstr(err, garbage));
    gw_geo_free(NULL);

    char desc[128];
    g = geo_open(country_db, NULL);
    gw_geo_describe(g, desc, sizeof desc);
    assert_non_null(strstr(desc, "country=PanelgateTest-Country/"));
    assert_non_null(strstr(desc, "asn=none"));
    gw_geo_free(g);
    assert_string_equal(gw_geo_describe(NULL, desc, sizeof desc), "country=none asn=none");
    gw_geo_describe(NULL, desc, 8); /* truncates, stays a string */
    assert_true(strlen(desc) < 8);
}

static bool find(const struct pa_buf *b, const void *needle, size_t n)
{
    for (size_t at = 0; at + n <= b->len; at++)
        if (memcmp(b->data + at, needle, n) == 0)
            return true;
    return false;
}

/* Encodes a small frame carrying |c| as its connections, the stored way. */
static void stored(struct gw_geo *g, struct pa_arena *a, const struct pa_conn *c, uint32_t n,
                   struct pa_buf *out)
{
    struct pa_frame *f = tu_frame_min(a);
    struct gw_viewers v;
    f->conns = (struct pa_conn *)c;
    f->n_conns = n;
    assert_int_equal(gw_privacy_reduce(g, c, n, a, &v), 0);
    assert_int_equal(gw_privacy_encode(f, &v, out), 0);
}

static void test_deterministic(void **state)
{
    /* any order of the same connections gives the same stored bytes */
    struct tu_rng r = {tu_seed(0x9e1f)};
    struct pa_arena a;
    struct pa_buf first, again;
    (void)state;
    struct gw_geo *g = geo_open(country_db, asn_db);
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&first, NULL);
    pa_buf_init(&again, NULL);
    struct pa_conn *c = conns_of(&a, mixed, N_MIXED);
    stored(g, &a, c, N_MIXED, &first);
    for (int round = 0; round < 50; round++) {
        for (uint32_t i = N_MIXED - 1; i > 0; i--) { /* Fisher-Yates */
            uint32_t j = tu_rng_below(&r, i + 1);
            struct pa_conn t = c[i];
            c[i] = c[j];
            c[j] = t;
        }
        again.len = 0;
        stored(g, &a, c, N_MIXED, &again);
        assert_int_equal(again.len, first.len);
        assert_memory_equal(again.data, first.data, first.len);
    }
    pa_buf_cleanup(&first);
    pa_buf_cleanup(&again);
    pa_arena_cleanup(&a);
    gw_geo_free(g);
}

static void test_stored_form(void **state)
{
    struct tu_pool pool = {0};
    struct pa_arena a;
    struct pa_buf out;
    struct gw_viewers v;
    (void)state;
    struct gw_geo *g = geo_open(country_db, asn_db);
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&out, NULL);

    /* a full frame (config, vhosts, server.ips: the most top-level keys) */
    struct pa_frame *f = tu_frame_nimble(&a, 0, 3);
    f->conns = conns_of(&a, mixed, N_MIXED);
    f->n_conns = N_MIXED;
    assert_int_equal(gw_privacy_reduce(g, f->conns, f->n_conns, &a, &v), 0);
    assert_int_equal(pa_buf_append(&out, "pre", 3), 0); /* appends */
    assert_int_equal(gw_privacy_encode(f, &v, &out), 0);
    assert_memory_equal(out.data, "pre", 3);

    /* exactly: the canonical frame, "conns" removed, "viewers" added */
    struct tu_node root = tu_frame_tree(&pool, f);
    assert_true(tu_del(&root, "conns"));
    struct tu_node arr = tu_arr();
    for (uint32_t i = 0; i < v.n; i++) {
        struct tu_node m = tu_map();
        tu_put(&pool, &m, "cc", tu_str(v.aggs[i].cc));
        tu_put(&pool, &m, "asn", tu_uint(v.aggs[i].asn));
        tu_put(&pool, &m, "conns", tu_uint(v.aggs[i].conns));
        tu_put(&pool, &m, "in", tu_uint(v.aggs[i].bytes_in));
        tu_put(&pool, &m, "out", tu_uint(v.aggs[i].bytes_out));
        tu_push(&pool, &arr, m);
    }
    tu_put(&pool, &root, "viewers", arr);
    size_t len;
    uint8_t *want = tu_bytes(&pool, &root, &len);
    assert_int_equal(out.len - 3, len);
    assert_memory_equal(out.data + 3, want, len);

    /* one msgpack map, nothing after it */
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, (const char *)out.data + 3, out.len - 3, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, out.len - 3);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(up.data.via.map.size, 9);
    msgpack_unpacked_destroy(&up);

    /* no viewer address in it, in any form (server.ips are not viewers) */
    for (uint32_t i = 0; i < N_MIXED; i++) {
        const struct pa_ip *ip = &f->conns[i].ip;
        size_t n = ip->family == 4 ? 4 : 16;
        const uint8_t *p = ip->addr;
        if (ip->family == 6 && memcmp(ip->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
            p += 12;
            n = 4;
        }
        if (n == 4 && (memcmp(p, "\0\0\0\0", 4) == 0 || memcmp(p, "\xff\xff\xff\xff", 4) == 0))
            continue; /* too common to search for */
        if (find(&out, p, n))
            fail_msg("%s found as %zu-byte binary", mixed[i].ip, n);
        if (strlen(mixed[i].ip) > 4 && find(&out, mixed[i].ip, strlen(mixed[i].ip)))
            fail_msg("%s found as text", mixed[i].ip);
    }

    /* no connections: no "viewers", the same as PA_ENCODE_NO_CONNS */
    struct pa_buf plain;
    pa_buf_init(&plain, NULL);
    out.len = 0;
    f->n_conns = 0;
    assert_int_equal(gw_privacy_reduce(g, f->conns, 0, &a, &v), 0);
    assert_int_equal(v.n, 0);
    assert_null(v.aggs);
    assert_int_equal(gw_privacy_encode(f, &v, &out), 0);
    assert_int_equal(pa_frame_encode_flags(f, &plain, PA_ENCODE_NO_CONNS), 0);
    assert_int_equal(out.len, plain.len);
    assert_memory_equal(out.data, plain.data, plain.len);
    pa_buf_cleanup(&plain);

    pa_buf_cleanup(&out);
    pa_arena_cleanup(&a);
    tu_pool_free(&pool);
    gw_geo_free(g);
}

static void test_saturating_sums(void **state)
{
    struct pa_arena a;
    struct gw_viewers v;
    struct pa_conn c[3];
    (void)state;
    pa_arena_init(&a, 0, NULL);
    for (int i = 0; i < 3; i++) {
        c[i].ip = ip_of("8.8.8.8");
        c[i].bytes_in = UINT64_MAX - 1;
        c[i].bytes_out = (uint64_t)i;
    }
    assert_int_equal(gw_privacy_reduce(NULL, c, 3, &a, &v), 0);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.aggs[0].conns, 3);
    assert_true(v.aggs[0].bytes_in == UINT64_MAX);
    assert_int_equal(v.aggs[0].bytes_out, 3);
    pa_arena_cleanup(&a);
}

static void test_memory_bounded(void **state)
{
    /* one block of n_conns records, however many distinct buckets; an
     * arena that cannot give it fails cleanly */
    enum { N = 50000 };
    struct pa_arena a;
    struct gw_viewers v;
    (void)state;
    struct gw_geo *g = geo_open(country_db, asn_db);
    pa_arena_init(&a, 0, NULL);
    struct pa_conn *c = calloc(N, sizeof *c);
    assert_non_null(c);
    for (uint32_t i = 0; i < N; i++) {
        /* IPv6 all over 2001:db8:1::/48 .. :3::/48 and elsewhere, IPv4 spread */
        if (i % 2) {
            c[i].ip.family = 6;
            c[i].ip.addr[0] = 0x20;
            c[i].ip.addr[1] = 0x01;
            c[i].ip.addr[2] = 0x0d;
            c[i].ip.addr[3] = 0xb8;
            c[i].ip.addr[5] = (uint8_t)(i % 5);
            memcpy(c[i].ip.addr + 12, &i, sizeof i);
        } else {
            c[i].ip.family = 4;
            c[i].ip.addr[0] = (uint8_t)(i % 256);
            c[i].ip.addr[1] = (uint8_t)(i / 256);
            c[i].ip.addr[3] = 1;
        }
        c[i].bytes_in = i;
        c[i].bytes_out = 2ull * i;
    }
    size_t used0 = a.used;
    assert_int_equal(gw_privacy_reduce(g, c, N, &a, &v), 0);
    size_t spent = a.used - used0;
    assert_true(spent >= (size_t)N * sizeof(struct gw_viewer_agg));
    assert_true(spent <= (size_t)N * sizeof(struct gw_viewer_agg) + 64);
    uint64_t conns = 0, in = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        conns += v.aggs[i].conns;
        in += v.aggs[i].bytes_in;
        if (i)
            assert_true(strcmp(v.aggs[i - 1].cc, v.aggs[i].cc) < 0 ||
                        (strcmp(v.aggs[i - 1].cc, v.aggs[i].cc) == 0 &&
                         v.aggs[i - 1].asn < v.aggs[i].asn));
    }
    assert_int_equal(conns, N);
    assert_int_equal(in, (uint64_t)N * (N - 1) / 2);
    pa_arena_cleanup(&a);

    /* a capped arena too small for the block */
    pa_arena_init(&a, 4096, NULL);
    assert_int_equal(gw_privacy_reduce(g, c, 1000, &a, &v), GW_ENOMEM);
    assert_int_equal(v.n, 0);
    assert_null(v.aggs);
    pa_arena_cleanup(&a);
    free(c);
    gw_geo_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_both_databases),
        cmocka_unit_test(test_country_only),
        cmocka_unit_test(test_asn_only),
        cmocka_unit_test(test_no_databases),
        cmocka_unit_test(test_ipv4_only_database),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_stored_form),
        cmocka_unit_test(test_saturating_sums),
        cmocka_unit_test(test_memory_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
