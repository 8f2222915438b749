/*
 * test_gw_stored.c - the stored form read back (gateway/policy/stored.h).
 *
 * The promise the JetStream store consumer rests on: from the stored body
 * alone (gw_privacy_encode's output), gw_stored_decode + gw_samples_build
 * give exactly the samples the gateway built from the wire frame, for the
 * sample frames in tests/data, generated and random frames, under every
 * combination of geo databases (built as test_gw_privacy.c builds them).
 * And the reader takes nothing else: every way a body can differ from
 * what gw_privacy_encode writes is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <panelproto/frame_json.h>

#include "alloc.h"
#include "privacy.h"
#include "samples.h"
#include "stored.h"
#include "testutil.h"

/* ---- the databases (as in test_gw_privacy.c) ---- */

static char dir[64];
static char country_db[128], asn_db[128];

static int group_setup(void **state)
{
    const char *data = getenv("PANELGATE_TEST_DATA");
    char cmd[512];
    (void)state;

    snprintf(dir, sizeof dir, "gwstored.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof cmd, "perl '%s/make_test_mmdb.pl' '%s'",
             data ? data : "../../../tests/data", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot build the test databases (%s)\n", cmd);
        return -1;
    }
    snprintf(country_db, sizeof country_db, "%s/test-country.mmdb", dir);
    snprintf(asn_db, sizeof asn_db, "%s/test-asn.mmdb", dir);
    return 0;
}

static int group_teardown(void **state)
{
    char p[192];
    static const char *const files[] = {"test-country.mmdb", "test-country-v4.mmdb",
                                        "test-asn.mmdb"};
    (void)state;
    for (size_t i = 0; i < TU_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

enum mode { NONE, COUNTRY_ONLY, ASN_ONLY, BOTH, N_MODES };

static struct gw_geo *geo_of(enum mode m)
{
    struct gw_geo *g = NULL;
    char err[256] = "";
    const char *c = m == COUNTRY_ONLY || m == BOTH ? country_db : NULL;
    const char *a = m == ASN_ONLY || m == BOTH ? asn_db : NULL;
    if (gw_geo_open(&g, c, a, err, sizeof err) != 0)
        fail_msg("gw_geo_open: %s", err);
    return g;
}

static char *read_data(const char *name, size_t *len)
{
    const char *d = getenv("PANELGATE_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", d ? d : "../../../tests/data", name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* With PANELGATE_STORED_SEEDS=DIR, the bodies the tests read are also
 * written there, at most MAX_SEEDS of them (fuzz/gen_stored_seeds.sh names
 * them by hash into fuzz/corpus/gw_stored). */
#define MAX_SEEDS 40 /* of each: gateway-path bodies, hand-made ones */
static void seed_out(const uint8_t *p, size_t n, int made)
{
    static unsigned count[2];
    const char *d = getenv("PANELGATE_STORED_SEEDS");
    char path[512];
    if (d == NULL || count[made] >= MAX_SEEDS)
        return;
    snprintf(path, sizeof path, "%s/seed-%d-%u", d, made, count[made]++);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* ---- the two paths ---- */

/* What h2.c process_frame does with a wire body: decode, reduce, encode
 * the stored form, build the samples. */
static void gateway_path(const struct gw_geo *geo, const struct pa_buf *wire,
                         const struct pa_frame_limits *lim, struct pa_buf *stored,
                         struct gw_samples **s, struct pa_frame **frame, struct pa_arena *a)
{
    struct pa_frame_error fe;
    struct gw_viewers v;
    struct pa_frame *f = NULL;
    if (pa_frame_decode(wire->data, wire->len, lim, a, &f, &fe) != 0)
        fail_msg("wire decode: %s %s", fe.path, fe.msg);
    assert_int_equal(gw_privacy_reduce(geo, f->conns, f->n_conns, a, &v), 0);
    assert_int_equal(gw_privacy_encode(f, &v, stored), 0);
    assert_int_equal(gw_samples_build(f, &v, s), 0);
    *frame = f;
}

/* What the store consumer does with the stored body. */
static void store_path(const struct pa_buf *stored, const struct pa_frame_limits *lim,
                       struct gw_samples **s, struct pa_frame **frame, struct pa_arena *a)
{
    struct gw_viewers v;
    char err[256] = "";
    struct pa_frame *f = NULL;
    seed_out(stored->data, stored->len, 0);
    if (gw_stored_decode(stored->data, stored->len, lim, a, &f, &v, err, sizeof err) != 0)
        fail_msg("gw_stored_decode: %s", err);
    assert_non_null(f);
    assert_int_equal(f->n_conns, 0);
    assert_int_equal(v.lookup_errors, 0);
    assert_int_equal(gw_samples_build(f, &v, s), 0);
    *frame = f;
}

static void assert_samples_equal(const struct gw_samples *x, const struct gw_samples *y)
{
    /* server_samples */
    assert_memory_equal(&x->cpu_pct, &y->cpu_pct, sizeof x->cpu_pct);
    assert_int_equal(x->ram_used, y->ram_used);
    assert_int_equal(x->ram_total, y->ram_total);
    assert_int_equal(x->bytes_in, y->bytes_in);
    assert_int_equal(x->bytes_out, y->bytes_out);
    assert_int_equal(x->period_ms, y->period_ms);
    assert_int_equal(x->conns, y->conns);
    assert_int_equal(x->size, y->size);
    /* stream_samples, every row */
    assert_int_equal(x->n_streams, y->n_streams);
    for (uint32_t i = 0; i < x->n_streams; i++) {
        const struct gw_stream_sample *a = &x->streams[i], *b = &y->streams[i];
        assert_string_equal(a->vhost, b->vhost);
        assert_string_equal(a->app, b->app);
        assert_string_equal(a->instance, b->instance);
        assert_string_equal(a->stream, b->stream);
        assert_int_equal(a->viewers, b->viewers);
        assert_int_equal(a->bitrate, b->bitrate);
        assert_int_equal(a->bytes_in, b->bytes_in);
        assert_int_equal(a->bytes_out, b->bytes_out);
    }
    /* geo_samples, every row */
    assert_int_equal(x->n_viewers, y->n_viewers);
    for (uint32_t i = 0; i < x->n_viewers; i++) {
        const struct gw_viewer_agg *a = &x->viewers[i], *b = &y->viewers[i];
        assert_string_equal(a->cc, b->cc);
        assert_int_equal(a->asn, b->asn);
        assert_int_equal(a->conns, b->conns);
        assert_int_equal(a->bytes_in, b->bytes_in);
        assert_int_equal(a->bytes_out, b->bytes_out);
    }
}

/* Both paths for |f| under every geo mode; returns the number of buckets
 * seen (so a caller knows its frames did exercise them). */
static uint32_t check_frame(const struct pa_frame *f, const struct pa_frame_limits *lim,
                            struct gw_geo *const geos[N_MODES])
{
    struct pa_buf wire;
    uint32_t buckets = 0;
    pa_buf_init(&wire, NULL);
    assert_int_equal(pa_frame_encode(f, &wire), 0);
    for (int m = 0; m < N_MODES; m++) {
        struct pa_arena a;
        struct pa_buf stored;
        struct gw_samples *gs = NULL, *ss = NULL;
        struct pa_frame *gf = NULL, *sf = NULL;
        char why[256];
        pa_arena_init(&a, 0, NULL);
        pa_buf_init(&stored, NULL);
        gateway_path(geos[m], &wire, lim, &stored, &gs, &gf, &a);
        store_path(&stored, lim, &ss, &sf, &a);
        assert_samples_equal(gs, ss);
        assert_int_equal(ss->conns, gf->n_conns);
        buckets += ss->n_viewers;
        /* and the frame itself, but for its connections */
        gf->n_conns = 0;
        gf->conns = NULL;
        if (!tu_frame_eq(gf, sf, TU_EQ_IGNORE_UNKNOWN, why, sizeof why))
            fail_msg("stored frame differs: %s", why);
        gw_free(gs);
        gw_free(ss);
        pa_buf_cleanup(&stored);
        pa_arena_cleanup(&a);
    }
    pa_buf_cleanup(&wire);
    return buckets;
}

static void open_all(struct gw_geo *geos[N_MODES])
{
    for (int m = 0; m < N_MODES; m++)
        geos[m] = geo_of((enum mode)m);
}

static void free_all(struct gw_geo *geos[N_MODES])
{
    for (int m = 0; m < N_MODES; m++)
        gw_geo_free(geos[m]);
}

static void test_sample_files(void **state)
{
    static const char *const files[] = {"nimble.json", "wowza.json"};
    struct gw_geo *geos[N_MODES];
    (void)state;
    open_all(geos);
    for (size_t i = 0; i < TU_ARRAY_LEN(files); i++) {
        struct pa_arena a;
        struct pa_frame *f = NULL;
        struct pa_frame_error fe;
        size_t len;
        char *json = read_data(files[i], &len);
        pa_arena_init(&a, 0, NULL);
        assert_int_equal(pa_frame_from_json(json, len, &a, &f, &fe), 0);
        assert_true(f->n_conns > 0 && f->n_vhosts > 0);
        assert_true(check_frame(f, NULL, geos) > 0);
        pa_arena_cleanup(&a);
        free(json);
    }
    free_all(geos);
}

static void test_generated_frames(void **state)
{
    struct gw_geo *geos[N_MODES];
    struct tu_rng r = {tu_seed(0x5702ed)};
    (void)state;
    open_all(geos);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct pa_arena a;
        pa_arena_init(&a, 0, NULL);
        check_frame(tu_frame_nimble(&a, (uint32_t)(seed * 250), seed), NULL, geos);
        check_frame(tu_frame_wowza(&a, (uint32_t)(seed * 100), seed), NULL, geos);
        check_frame(tu_frame_nimble(&a, 0, seed), NULL, geos); /* no viewers */
        check_frame(tu_frame_min(&a), NULL, geos);
        pa_arena_cleanup(&a);
    }
    int rounds = tu_quick() ? 50 : 300;
    for (int i = 0; i < rounds; i++) {
        struct pa_arena a;
        pa_arena_init(&a, 0, NULL);
        check_frame(tu_frame_random(&a, &r, (unsigned)(i & 1)), NULL, geos);
        pa_arena_cleanup(&a);
    }
    free_all(geos);
}

/* A stored body may be larger than the wire frame it came from (a bucket
 * takes more bytes than a small connection): the reader takes it under
 * the same limits. */
static void test_larger_than_wire(void **state)
{
    static const char *const ips[] = {"192.0.2.1", "198.51.100.9", "203.0.113.5",
                                      "198.18.0.1", "10.1.2.3", "2001:db8:1::1"};
    struct gw_geo *geos[N_MODES];
    struct pa_arena a;
    struct pa_buf wire;
    (void)state;
    open_all(geos);
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&wire, NULL);
    struct pa_frame *f = tu_frame_min(&a);
    f->n_conns = (uint32_t)TU_ARRAY_LEN(ips);
    f->conns = tu_new(&a, f->n_conns, sizeof *f->conns);
    for (uint32_t i = 0; i < f->n_conns; i++) {
        struct pa_frame *p = NULL;
        char js[256];
        snprintf(js, sizeof js,
                 "{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"s\",\"kind\":\"nimble\","
                 "\"version\":\"1\"},\"load\":{\"cpu\":0,\"ram_used\":0,\"ram_total\":1},"
                 "\"traffic\":{\"in\":0,\"out\":0,\"period_ms\":1},"
                 "\"conns\":[{\"ip\":\"%s\",\"in\":0,\"out\":0}]}",
                 ips[i]);
        assert_int_equal(pa_frame_from_json(js, strlen(js), &a, &p, NULL), 0);
        f->conns[i] = p->conns[0];
    }
    assert_int_equal(pa_frame_encode(f, &wire), 0);
    struct pa_frame_limits lim;
    pa_frame_limits_default(&lim);
    lim.max_frame_bytes = wire.len; /* the wire frame just fits */
    lim.max_conns = f->n_conns;
    lim.max_unknown_keys = 0; /* "viewers" is still allowed */

    struct pa_buf stored;
    struct gw_samples *gs = NULL, *ss = NULL;
    struct pa_frame *gf = NULL, *sf = NULL;
    pa_buf_init(&stored, NULL);
    gateway_path(geos[BOTH], &wire, &lim, &stored, &gs, &gf, &a);
    assert_true(stored.len > wire.len);
    assert_true(stored.len <= gw_stored_max_bytes(&lim));
    store_path(&stored, &lim, &ss, &sf, &a);
    assert_samples_equal(gs, ss);
    assert_int_equal(ss->n_viewers, f->n_conns);
    gw_free(gs);
    gw_free(ss);

    /* and the bound is a bound: the defaults' worst case fits in it */
    pa_frame_limits_default(&lim);
    assert_true(gw_stored_max_bytes(&lim) > lim.max_frame_bytes);
    assert_true(gw_stored_max_bytes(&lim) < 3 * lim.max_frame_bytes);
    lim.max_conns = UINT32_MAX;
    lim.max_frame_bytes = SIZE_MAX - 1;
    assert_int_equal(gw_stored_max_bytes(&lim), SIZE_MAX); /* saturates */

    pa_buf_cleanup(&stored);
    pa_buf_cleanup(&wire);
    pa_arena_cleanup(&a);
    free_all(geos);
}

/* ---- what is refused ---- */

static struct tu_node bucket_node(struct tu_pool *p, const char *cc, uint64_t asn,
                                  uint64_t conns, uint64_t in, uint64_t out)
{
    struct tu_node m = tu_map();
    tu_put(p, &m, "cc", tu_str(cc));
    tu_put(p, &m, "asn", tu_uint(asn));
    tu_put(p, &m, "conns", tu_uint(conns));
    tu_put(p, &m, "in", tu_uint(in));
    tu_put(p, &m, "out", tu_uint(out));
    return m;
}

/* The stored tree of a small frame with viewers DE/64500 x2, FR/64501. */
static struct tu_node base_tree(struct tu_pool *p, struct pa_arena *a)
{
    struct pa_frame *f = tu_frame_nimble(a, 0, 7);
    struct tu_node root = tu_frame_tree(p, f);
    struct tu_node arr = tu_arr();
    tu_push(p, &arr, bucket_node(p, "DE", 64500, 2, 10, 20));
    tu_push(p, &arr, bucket_node(p, "FR", 64501, 1, 5, 6));
    tu_put(p, &root, "viewers", arr);
    return root;
}

static int decode_tree(struct tu_pool *p, const struct tu_node *root,
                       const struct pa_frame_limits *lim, char *err, size_t errlen)
{
    struct pa_arena a;
    struct pa_frame *f = (struct pa_frame *)1;
    struct gw_viewers v = {.n = 99};
    size_t len;
    uint8_t *b = tu_bytes(p, root, &len);
    seed_out(b, len, 1);
    pa_arena_init(&a, 0, NULL);
    err[0] = '\0';
    int rv = gw_stored_decode(b, len, lim, &a, &f, &v, err, errlen);
    if (rv != 0) {
        assert_null(f);
        assert_int_equal(v.n, 0);
        assert_null(v.aggs);
        assert_true(err[0] != '\0');
    } else {
        assert_non_null(f);
        assert_int_equal(v.n, 2);
        assert_string_equal(v.aggs[0].cc, "DE");
        assert_int_equal(v.aggs[0].conns, 2);
        assert_int_equal(v.aggs[1].asn, 64501);
    }
    pa_arena_cleanup(&a);
    return rv;
}

struct bad_case {
    const char *name;
    const char *path;   /* node replaced (or deleted when del) */
    int del;
    int kind;           /* what to put there, see mutate */
};

enum {
    K_U64_MAX, K_ZERO, K_LOWER_CC, K_CC3, K_INT, K_STR_X, K_EMPTY_ARR, K_MAP_EMPTY,
    K_F32, K_NEG, K_NIL, K_XP_ASN, K_DUP_BUCKET, K_SWAP, K_EXTRA_KEY, K_REVERSED,
};

static void mutate(struct tu_pool *p, struct tu_node *root, const struct bad_case *c)
{
    struct tu_node *arr = tu_at(root, "viewers");
    switch (c->kind) {
    case K_U64_MAX: assert_true(tu_set(root, c->path, tu_uint(UINT64_MAX))); break;
    case K_ZERO: assert_true(tu_set(root, c->path, tu_uint(0))); break;
    case K_LOWER_CC: assert_true(tu_set(root, c->path, tu_str("de"))); break;
    case K_CC3: assert_true(tu_set(root, c->path, tu_str("DEU"))); break;
    case K_INT: assert_true(tu_set(root, c->path, tu_uint(49))); break;
    case K_STR_X: assert_true(tu_set(root, c->path, tu_str("x"))); break;
    case K_EMPTY_ARR: assert_true(tu_set(root, c->path, tu_arr())); break;
    case K_MAP_EMPTY: assert_true(tu_set(root, c->path, tu_map())); break;
    case K_F32: assert_true(tu_set(root, c->path, tu_f32(1.5f))); break;
    case K_NEG: assert_true(tu_set(root, c->path, tu_int(-1))); break;
    case K_NIL: assert_true(tu_set(root, c->path, tu_nil())); break;
    case K_XP_ASN:
        assert_true(tu_set(root, "viewers[0]", bucket_node(p, "XP", 7, 2, 10, 20)));
        break;
    case K_DUP_BUCKET:
        assert_true(tu_set(root, "viewers[1]", bucket_node(p, "DE", 64500, 1, 5, 6)));
        break;
    case K_SWAP: {
        struct tu_node t = arr->kids[0];
        arr->kids[0] = arr->kids[1];
        arr->kids[1] = t;
        break;
    }
    case K_EXTRA_KEY: {
        struct tu_node *m = tu_at(root, c->path);
        tu_put(p, m, "ip", tu_str("192.0.2.1"));
        break;
    }
    case K_REVERSED: tu_reverse_maps(tu_at(root, c->path)); break;
    default: break;
    }
}

static void test_refused(void **state)
{
    static const struct bad_case cases[] = {
        {"no viewers key is fine, but an empty array is not", "viewers", 0, K_EMPTY_ARR},
        {"viewers not an array", "viewers", 0, K_MAP_EMPTY},
        {"a bucket not a map", "viewers[0]", 0, K_INT},
        {"a bucket of no keys", "viewers[0]", 0, K_MAP_EMPTY},
        {"a bucket missing out", "viewers[0].out", 1, 0},
        {"a bucket with a sixth key", "viewers[0]", 0, K_EXTRA_KEY},
        {"bucket keys in another order", "viewers[0]", 0, K_REVERSED},
        {"cc lower case", "viewers[0].cc", 0, K_LOWER_CC},
        {"cc of three letters", "viewers[0].cc", 0, K_CC3},
        {"cc an integer", "viewers[0].cc", 0, K_INT},
        {"asn above uint32", "viewers[0].asn", 0, K_U64_MAX},
        {"asn negative", "viewers[0].asn", 0, K_NEG},
        {"asn nil", "viewers[0].asn", 0, K_NIL},
        {"conns zero", "viewers[1].conns", 0, K_ZERO},
        {"conns beyond max_conns", "viewers[1].conns", 0, K_U64_MAX},
        {"in a string", "viewers[0].in", 0, K_STR_X},
        {"XP with an asn", "", 0, K_XP_ASN},
        {"the same bucket twice", "", 0, K_DUP_BUCKET},
        {"buckets out of order", "", 0, K_SWAP},
        {"cpu as float32 (not canonical)", "load.cpu", 0, K_F32},
        {"the frame's keys in another order", "", 0, K_REVERSED},
        {"a bad frame field", "load.ram_total", 0, K_ZERO},
    };
    (void)state;
    char err[256];
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        struct tu_pool p = {0};
        struct pa_arena a;
        pa_arena_init(&a, 0, NULL);
        struct tu_node root = base_tree(&p, &a);
        assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), 0);
        if (cases[i].del)
            assert_true(tu_del(&root, cases[i].path));
        else
            mutate(&p, &root, &cases[i]);
        int rv = decode_tree(&p, &root, NULL, err, sizeof err);
        if (rv != GW_EINVAL)
            fail_msg("%s: %d (%s)", cases[i].name, rv, err);
        print_message("  refused, %s: %s\n", cases[i].name, err);
        tu_pool_free(&p);
        pa_arena_cleanup(&a);
    }
}

/* Keys a stored body never has. */
static void test_refused_keys(void **state)
{
    struct tu_pool p = {0};
    struct pa_arena a;
    struct pa_frame_limits lim;
    char err[256];
    uint8_t ip[4] = {192, 0, 2, 1};
    (void)state;
    pa_arena_init(&a, 0, NULL);

    /* conns: a wire frame is not a stored one, even an empty conns */
    struct tu_node root = base_tree(&p, &a);
    struct tu_node conns = tu_arr(), c = tu_map();
    tu_put(&p, &c, "ip", tu_bin(ip, 4));
    tu_put(&p, &c, "in", tu_uint(1));
    tu_put(&p, &c, "out", tu_uint(1));
    tu_push(&p, &conns, c);
    tu_put(&p, &root, "conns", conns);
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "conns"));
    root = base_tree(&p, &a);
    tu_put(&p, &root, "conns", tu_arr());
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);

    /* an unknown key, at the top or nested */
    root = base_tree(&p, &a);
    tu_put(&p, &root, "x", tu_uint(1));
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);
    root = base_tree(&p, &a);
    assert_true(tu_add(&p, &root, "server", "x", tu_uint(1)));
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);
    /* "viewers" anywhere but the top */
    root = base_tree(&p, &a);
    assert_true(tu_del(&root, "viewers"));
    assert_true(tu_add(&p, &root, "vhosts[0]", "viewers", tu_arr()));
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);
    /* twice */
    root = base_tree(&p, &a);
    tu_put(&p, &root, "viewers", *tu_at(&root, "viewers"));
    assert_int_equal(decode_tree(&p, &root, NULL, err, sizeof err), GW_EINVAL);

    /* limits: more buckets, or more connections, than max_conns */
    root = base_tree(&p, &a);
    pa_frame_limits_default(&lim);
    lim.max_conns = 3;
    assert_int_equal(decode_tree(&p, &root, &lim, err, sizeof err), 0);
    lim.max_conns = 2;
    assert_int_equal(decode_tree(&p, &root, &lim, err, sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "connections"));
    lim.max_conns = 1;
    assert_int_equal(decode_tree(&p, &root, &lim, err, sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "buckets"));

    /* the bytes: truncated, trailing, empty, larger than the bound */
    size_t len;
    uint8_t *b = tu_bytes(&p, &root, &len);
    struct pa_frame *f = NULL;
    struct gw_viewers v;
    assert_int_equal(gw_stored_decode(b, len, NULL, &a, &f, &v, err, sizeof err), 0);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(gw_stored_decode(b, cut, NULL, &a, &f, &v, err, sizeof err),
                         GW_EINVAL);
    uint8_t *more = tu_pool_alloc(&p, len + 1);
    memcpy(more, b, len);
    more[len] = 0xc0;
    assert_int_equal(gw_stored_decode(more, len + 1, NULL, &a, &f, &v, err, sizeof err),
                     GW_EINVAL);
    pa_frame_limits_default(&lim);
    lim.max_frame_bytes = 1;
    lim.max_conns = 1;
    lim.max_config_nodes = 1;
    assert_true(gw_stored_max_bytes(&lim) < len);
    assert_int_equal(gw_stored_decode(b, len, &lim, &a, &f, &v, err, sizeof err), GW_EINVAL);

    /* the arena cap: out of memory, not "not a stored frame" */
    struct pa_arena small;
    pa_arena_init(&small, 64, NULL);
    assert_int_equal(gw_stored_decode(b, len, NULL, &small, &f, &v, err, sizeof err),
                     GW_ENOMEM);
    assert_null(f);
    pa_arena_cleanup(&small);

    tu_pool_free(&p);
    pa_arena_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_files),
        cmocka_unit_test(test_generated_frames),
        cmocka_unit_test(test_larger_than_wire),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refused_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
