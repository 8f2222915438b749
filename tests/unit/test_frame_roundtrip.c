/*
 * test_frame_roundtrip.c - pa_frame_encode / pa_frame_decode agree with each
 * other and with docs/.schema-notes.md ("Canonical encoding"): struct ->
 * bytes -> struct is the identity, canonical bytes -> struct -> bytes too,
 * and the decoder takes every non-canonical but valid form.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <panelproto/frame.h>
#include "testutil.h"

struct fixture {
    struct pa_arena a; /* builders */
    struct pa_arena d; /* decoder output */
    struct pa_buf b;
    struct tu_pool pool;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    pa_arena_init(&fx->a, 0, NULL);
    pa_arena_init(&fx->d, 0, NULL);
    pa_buf_init(&fx->b, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    pa_arena_cleanup(&fx->a);
    pa_arena_cleanup(&fx->d);
    pa_buf_cleanup(&fx->b);
    tu_pool_free(&fx->pool);
    free(fx);
    return 0;
}

/* Decodes and fails the test (with path and msg) unless it succeeds. */
static struct pa_frame *decode_ok(struct fixture *fx, const uint8_t *p, size_t n,
                                  const struct pa_frame_limits *lim)
{
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    int rv = pa_frame_decode(p, n, lim, &fx->d, &f, &err);
    if (rv != 0) {
        char hex[200];
        fail_msg("decode: %s (%d) at %s: %s [offset %zu] bytes %s", pa_frame_errname(rv), rv,
                 err.path, err.msg, err.offset, tu_hex(p, n, hex, sizeof hex));
    }
    assert_non_null(f);
    return f;
}

static void assert_frames_equal(const struct pa_frame *x, const struct pa_frame *y,
                                unsigned flags)
{
    char why[256];
    if (!tu_frame_eq(x, y, flags, why, sizeof why))
        fail_msg("frames differ: %s", why);
}

/*
 * The full round trip for one frame:
 *   encode(f) equals the independent canonical writer in testutil.h,
 *   decode(encode(f)) == f, encode(decode(encode(f))) == encode(f).
 */
static void roundtrip(struct fixture *fx, const struct pa_frame *f)
{
    struct pa_buf again;
    size_t len;

    fx->b.len = 0;
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);

    struct tu_node tree = tu_frame_tree(&fx->pool, f);
    uint8_t *want = tu_bytes(&fx->pool, &tree, &len);
    if (len != fx->b.len || memcmp(want, fx->b.data, len) != 0) {
        size_t i = 0;
        while (i < len && i < fx->b.len && want[i] == fx->b.data[i])
            i++;
        fail_msg("encoding is not canonical: %zu vs %zu bytes, first difference at %zu",
                 fx->b.len, len, i);
    }

    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
    assert_frames_equal(f, back, 0);

    pa_buf_init(&again, NULL);
    assert_int_equal(pa_frame_encode(back, &again), 0);
    assert_int_equal(again.len, fx->b.len);
    assert_memory_equal(again.data, fx->b.data, again.len);
    pa_buf_cleanup(&again);
}

/* ---- realistic frames ------------------------------------------------- */

static void test_nimble_roundtrip(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_nimble(&fx->a, 300, 1);
    roundtrip(fx, f);
    assert_true(fx->b.len > 300 * 20);

    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
    assert_int_equal(back->n_conns, 300);
    assert_int_equal(back->server.kind, PA_KIND_NIMBLE);
    assert_int_equal(back->config.type, PA_CV_MAP);
    assert_int_equal(back->config.v.map.n, 6);
    assert_string_equal(back->config.v.map.kv[3].key, "transcoder");
    assert_int_equal(back->n_unknown, 0);
}

static void test_wowza_roundtrip(void **state)
{
    struct fixture *fx = *state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        pa_arena_reset(&fx->a);
        pa_arena_reset(&fx->d);
        struct pa_frame *f = tu_frame_wowza(&fx->a, 500 + (uint32_t)seed, seed);
        roundtrip(fx, f);
        struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
        assert_int_equal(back->n_vhosts, 3);
        assert_string_equal(back->vhosts[2].name, "вхост-азия");
        assert_int_equal(back->vhosts[2].n_apps, 0);
        assert_int_equal(back->conns[0].bytes_in, UINT64_MAX);
    }
}

static void test_decode_under_schema_minimum_depth(void **state)
{
    /* the schema nests 9 deep, so the smallest allowed max_depth decodes a
     * full frame whose config is shallow enough */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_wowza(&fx->a, 10, 9);
    f->config = tu_cv_map(&fx->a, 0);
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);
    struct pa_frame_limits lim;
    pa_frame_limits_default(&lim);
    lim.max_depth = PA_LIMIT_MIN_DEPTH;
    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, &lim);
    assert_frames_equal(f, back, 0);
}

/* ---- optional fields -------------------------------------------------- */

static void test_minimal_frame(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_min(&fx->a);
    roundtrip(fx, f);
    /* v seq ts server load traffic, nothing else */
    assert_int_equal(fx->b.data[0], 0x86);
    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
    assert_int_equal(back->server.n_ips, 0);
    assert_int_equal(back->n_vhosts, 0);
    assert_int_equal(back->n_conns, 0);
    assert_int_equal(back->config.type, PA_CV_MAP);
    assert_int_equal(back->config.v.map.n, 0);
}

static void test_each_optional_field_omitted(void **state)
{
    struct fixture *fx = *state;
    for (int which = 0; which < 8; which++) {
        pa_arena_reset(&fx->a);
        pa_arena_reset(&fx->d);
        struct pa_frame *f = tu_frame_nimble(&fx->a, 20, 2);
        struct pa_instance *in0 = &f->vhosts[0].apps[0].instances[0];
        switch (which) {
        case 0:
            f->server.n_ips = 0;
            f->server.ips = NULL;
            break;
        case 1:
            f->config = tu_cv_map(&fx->a, 0);
            break;
        case 2:
            f->n_vhosts = 0;
            f->vhosts = NULL;
            break;
        case 3:
            f->n_conns = 0;
            f->conns = NULL;
            break;
        case 4:
            f->vhosts[0].n_apps = 0;
            break;
        case 5:
            f->vhosts[0].apps[1].n_instances = 0;
            break;
        case 6:
            in0->n_streams = 0;
            break;
        default: /* all at once */
            f->server.n_ips = 0;
            f->config = tu_cv_map(&fx->a, 0);
            f->vhosts[0].apps[0].n_instances = 0;
            f->vhosts[0].apps[1].instances[0].n_streams = 0;
            f->n_conns = 0;
            break;
        }
        roundtrip(fx, f);
    }
}

static void test_explicit_empty_optionals_decode(void **state)
{
    /* "ips": [], "config": {}, "apps": [] ... are valid and mean "absent";
     * they re-encode without the keys */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_min(&fx->a);
    struct tu_node root = tu_frame_tree(&fx->pool, f);
    struct tu_node vh = tu_map(), app = tu_map(), inst = tu_map();
    tu_put(&fx->pool, &inst, "name", tu_str("i"));
    tu_put(&fx->pool, &inst, "streams", tu_arr());
    struct tu_node insts = tu_arr();
    tu_push(&fx->pool, &insts, inst);
    tu_put(&fx->pool, &app, "name", tu_str("a"));
    tu_put(&fx->pool, &app, "instances", insts);
    struct tu_node apps = tu_arr();
    tu_push(&fx->pool, &apps, app);
    tu_put(&fx->pool, &vh, "name", tu_str("v"));
    tu_put(&fx->pool, &vh, "apps", apps);
    struct tu_node vhs = tu_arr();
    tu_push(&fx->pool, &vhs, vh);
    struct tu_node vh2 = tu_map();
    tu_put(&fx->pool, &vh2, "name", tu_str("w"));
    tu_put(&fx->pool, &vh2, "apps", tu_arr());
    tu_push(&fx->pool, &vhs, vh2);
    assert_true(tu_add(&fx->pool, &root, "server", "ips", tu_arr()));
    tu_put(&fx->pool, &root, "config", tu_map());
    tu_put(&fx->pool, &root, "vhosts", vhs);
    tu_put(&fx->pool, &root, "conns", tu_arr());

    size_t len;
    uint8_t *p = tu_bytes(&fx->pool, &root, &len);
    struct pa_frame *back = decode_ok(fx, p, len, NULL);
    assert_int_equal(back->server.n_ips, 0);
    assert_int_equal(back->config.type, PA_CV_MAP);
    assert_int_equal(back->config.v.map.n, 0);
    assert_int_equal(back->n_conns, 0);
    assert_int_equal(back->n_vhosts, 2);
    assert_int_equal(back->vhosts[0].apps[0].instances[0].n_streams, 0);
    assert_int_equal(back->vhosts[1].n_apps, 0);
    roundtrip(fx, back);
}

static void test_zero_initialised_frame_has_no_config(void **state)
{
    /* A builder that zero-fills its struct pa_frame leaves config.type at 0
     * (PA_CV_NIL).  The config is optional and absent: the frame must
     * still encode into something the gateway accepts. */
    struct fixture *fx = *state;
    struct pa_frame f;
    struct pa_frame_error err;
    memset(&f, 0, sizeof f);
    f.version = PA_PROTOCOL_VERSION;
    f.seq = 1;
    f.server.name = "srv";
    f.server.kind = PA_KIND_WOWZA;
    f.server.version = "4.8";
    f.load.ram_total = 1;
    int rv = pa_frame_encode_checked(&f, NULL, &fx->b, &err);
    if (rv != 0)
        fail_msg("zero-initialised frame rejected: %s at \"%s\": %s", pa_frame_errname(rv),
                 err.path, err.msg);
}

/* ---- numbers ----------------------------------------------------------- */

static void test_uint64_extremes(void **state)
{
    struct fixture *fx = *state;
    static const uint64_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
                                    0xffffffffull, 0x100000000ull, UINT64_MAX - 1,
                                    UINT64_MAX};
    for (size_t i = 0; i < TU_ARRAY_LEN(vals); i++) {
        pa_arena_reset(&fx->a);
        pa_arena_reset(&fx->d);
        struct pa_frame *f = tu_frame_nimble(&fx->a, 4, 3);
        uint64_t v = vals[i];
        f->seq = v ? v : 1;
        f->ts_ms = v;
        f->load.ram_total = v ? v : 1;
        f->load.ram_used = v;
        if (f->load.ram_used > f->load.ram_total)
            f->load.ram_used = f->load.ram_total;
        f->traffic.bytes_in = v;
        f->traffic.bytes_out = v;
        f->traffic.period_ms = v;
        struct pa_stream *s = &f->vhosts[0].apps[0].instances[0].streams[0];
        s->viewers = s->bitrate = s->bytes_in = s->bytes_out = v;
        f->conns[3].bytes_in = f->conns[3].bytes_out = v;
        f->config.v.map.kv[4].val = tu_cv_uint(v);
        roundtrip(fx, f);
    }

    /* seq at both ends, negative config ints at their extremes */
    pa_arena_reset(&fx->a);
    struct pa_frame *f = tu_frame_min(&fx->a);
    f->seq = UINT64_MAX;
    f->load.ram_used = f->load.ram_total = UINT64_MAX;
    f->config = tu_cv_map(&fx->a, 4);
    tu_cv_set(&fx->a, &f->config, 0, "min", tu_cv_int(INT64_MIN));
    tu_cv_set(&fx->a, &f->config, 1, "m1", tu_cv_int(-1));
    tu_cv_set(&fx->a, &f->config, 2, "m33", tu_cv_int(-33));
    tu_cv_set(&fx->a, &f->config, 3, "max", tu_cv_uint(UINT64_MAX));
    roundtrip(fx, f);
    f->seq = 1;
    roundtrip(fx, f);
}

static void test_cpu_bounds_and_forms(void **state)
{
    struct fixture *fx = *state;
    static const double cpus[] = {0.0, 100.0, 0.001, 99.999, 50.5, 4.9e-324};
    for (size_t i = 0; i < TU_ARRAY_LEN(cpus); i++) {
        pa_arena_reset(&fx->a);
        struct pa_frame *f = tu_frame_min(&fx->a);
        f->load.cpu_pct = cpus[i];
        roundtrip(fx, f);
    }

    /* cpu may come as any integer form or as float32 */
    static const struct {
        const char *raw;
        size_t len;
        double want;
    } forms[] = {
        {"\x00", 1, 0.0},
        {"\x64", 1, 100.0},
        {"\xcc\x32", 2, 50.0},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9, 7.0},
        {"\xd0\x05", 2, 5.0},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x64", 9, 100.0},
        {"\xca\x42\x4a\x00\x00", 5, 50.5},
        {"\xca\x00\x00\x00\x00", 5, 0.0},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(forms); i++) {
        pa_arena_reset(&fx->a);
        pa_arena_reset(&fx->d);
        struct pa_frame *f = tu_frame_min(&fx->a);
        struct tu_node root = tu_frame_tree(&fx->pool, f);
        assert_true(tu_set(&root, "load.cpu", tu_raw(forms[i].raw, forms[i].len)));
        size_t len;
        uint8_t *p = tu_bytes(&fx->pool, &root, &len);
        struct pa_frame *back = decode_ok(fx, p, len, NULL);
        assert_true(back->load.cpu_pct == forms[i].want);
        /* re-encoded as float64 */
        fx->b.len = 0;
        assert_int_equal(pa_frame_encode(back, &fx->b), 0);
        f->load.cpu_pct = forms[i].want;
        roundtrip(fx, f);
    }
}

static void test_noncanonical_integer_forms(void **state)
{
    /* a "uint" field accepts every msgpack integer format holding a value
     * >= 0: uint8..64 and int8..64, also for small values */
    struct fixture *fx = *state;
    static const struct {
        const char *raw;
        size_t len;
        uint64_t want;
    } forms[] = {
        {"\xcc\x05", 2, 5},
        {"\xcd\x00\x05", 3, 5},
        {"\xce\x00\x00\x00\x05", 5, 5},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xd0\x05", 2, 5},
        {"\xd1\x00\x05", 3, 5},
        {"\xd2\x00\x00\x00\x05", 5, 5},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
        {"\xd0\x00", 2, 0},
    };
    static const char *const fields[] = {"seq", "ts", "traffic.in", "load.ram_total",
                                         "vhosts[0].apps[0].instances[0].streams[0].bitrate",
                                         "conns[1].out"};
    for (size_t i = 0; i < TU_ARRAY_LEN(forms); i++) {
        for (size_t k = 0; k < TU_ARRAY_LEN(fields); k++) {
            if (forms[i].want == 0 && (k == 0 || k == 3))
                continue; /* seq and ram_total must be >= 1 */
            pa_arena_reset(&fx->a);
            pa_arena_reset(&fx->d);
            struct pa_frame *f = tu_frame_nimble(&fx->a, 2, 4);
            f->load.ram_used = 0;
            struct tu_node root = tu_frame_tree(&fx->pool, f);
            assert_true(tu_set(&root, fields[k], tu_raw(forms[i].raw, forms[i].len)));
            size_t len;
            uint8_t *p = tu_bytes(&fx->pool, &root, &len);
            struct pa_frame *back = decode_ok(fx, p, len, NULL);
            uint64_t got = k == 0   ? back->seq
                           : k == 1 ? back->ts_ms
                           : k == 2 ? back->traffic.bytes_in
                           : k == 3 ? back->load.ram_total
                           : k == 4 ? back->vhosts[0].apps[0].instances[0].streams[0].bitrate
                                    : back->conns[1].bytes_out;
            assert_int_equal(got, forms[i].want);
        }
    }
}

static void test_noncanonical_str_bin_forms(void **state)
{
    /* str8/16/32 for short keys and values, bin16/32 for IPs, map16/32 and
     * array16/32 headers with small counts: all decode the same frame */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_min(&fx->a);
    f->server.n_ips = 1;
    f->server.ips = tu_new(&fx->a, 1, sizeof *f->server.ips);
    f->server.ips[0] = tu_ip4(192, 0, 2, 1);
    f->n_conns = 1;
    f->conns = tu_new(&fx->a, 1, sizeof *f->conns);
    f->conns[0].ip = tu_ip6(7, 7);
    f->conns[0].bytes_in = 9;

    struct tu_node root = tu_frame_tree(&fx->pool, f);
    /* key "v" as str32, server.name as str16, kind as str8 */
    root.kids[0] = tu_raw("\xdb\x00\x00\x00\x01v", 6);
    assert_true(tu_set(&root, "server.name", tu_raw("\xda\x00\x01s", 4)));
    assert_true(tu_set(&root, "server.kind", tu_raw("\xd9\x06nimble", 8)));
    assert_true(tu_set(&root, "server.ips[0]", tu_raw("\xc5\x00\x04\xc0\x00\x02\x01", 7)));
    uint8_t ip6[6 + 16] = {0xc6, 0, 0, 0, 16};
    memcpy(ip6 + 5, f->conns[0].ip.addr, 16);
    assert_true(tu_set(&root, "conns[0].ip", tu_raw(ip6, 5 + 16)));
    /* traffic as map16, conns as array32 */
    struct tu_node *tr = tu_at(&root, "traffic");
    size_t tlen;
    uint8_t *tb = tu_bytes(&fx->pool, tr, &tlen);
    uint8_t *t16 = tu_pool_alloc(&fx->pool, tlen + 2);
    t16[0] = 0xde;
    t16[1] = 0;
    t16[2] = 3;
    memcpy(t16 + 3, tb + 1, tlen - 1);
    *tr = tu_raw(t16, tlen + 2);
    struct tu_node *cs = tu_at(&root, "conns");
    size_t clen;
    uint8_t *cb = tu_bytes(&fx->pool, cs, &clen);
    uint8_t *c32 = tu_pool_alloc(&fx->pool, clen + 4);
    memcpy(c32, "\xdd\x00\x00\x00\x01", 5);
    memcpy(c32 + 5, cb + 1, clen - 1);
    *cs = tu_raw(c32, clen + 4);

    size_t len;
    uint8_t *p = tu_bytes(&fx->pool, &root, &len);
    struct pa_frame *back = decode_ok(fx, p, len, NULL);
    assert_frames_equal(f, back, 0);
    roundtrip(fx, back);
}

/* ---- strings and addresses -------------------------------------------- */

static void test_ipv4_and_ipv6(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_min(&fx->a);
    f->server.n_ips = 4;
    f->server.ips = tu_new(&fx->a, 4, sizeof *f->server.ips);
    f->server.ips[0] = tu_ip4(0, 0, 0, 0);
    f->server.ips[1] = tu_ip4(255, 255, 255, 255);
    f->server.ips[2] = tu_ip6(0, 1);
    memset(&f->server.ips[3], 0, sizeof f->server.ips[3]);
    f->server.ips[3].family = 6;
    memset(f->server.ips[3].addr, 0xff, 16);
    f->n_conns = 2;
    f->conns = tu_new(&fx->a, 2, sizeof *f->conns);
    f->conns[0].ip = tu_ip4(203, 0, 113, 7);
    f->conns[1].ip = tu_ip6(0xabcd, 0x1234);
    roundtrip(fx, f);

    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
    assert_int_equal(back->server.ips[0].family, 4);
    assert_int_equal(back->server.ips[3].family, 6);
    assert_int_equal(back->conns[0].ip.family, 4);
    assert_memory_equal(back->conns[0].ip.addr, "\xcb\x00\x71\x07", 4);
    assert_int_equal(back->conns[1].ip.family, 6);
    assert_memory_equal(back->conns[1].ip.addr, f->conns[1].ip.addr, 16);
}

static void test_utf8_boundaries_accepted(void **state)
{
    struct fixture *fx = *state;
    static const char *const ok[] = {
        "\x7f",                 /* U+007F */
        "\xc2\x80",             /* U+0080 */
        "\xdf\xbf",             /* U+07FF */
        "\xe0\xa0\x80",         /* U+0800 */
        "\xed\x9f\xbf",         /* U+D7FF */
        "\xee\x80\x80",         /* U+E000 */
        "\xef\xbf\xbf",         /* U+FFFF */
        "\xf0\x90\x80\x80",     /* U+10000 */
        "\xf4\x8f\xbf\xbf",     /* U+10FFFF */
        "\xef\xbb\xbf\x62om",    /* BOM is just a character */
        "name with spaces \"quotes\" \\ and \t tab",
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(ok); i++) {
        pa_arena_reset(&fx->a);
        pa_arena_reset(&fx->d);
        struct pa_frame *f = tu_frame_nimble(&fx->a, 1, 5);
        f->server.name = ok[i];
        f->vhosts[0].apps[0].instances[0].streams[0].name = ok[i];
        f->config.v.map.kv[2].val.v.map.kv[1].val.v.s = ok[i]; /* cache.path */
        f->config.v.map.kv[5].key = ok[i];
        roundtrip(fx, f);
    }
}

static void test_name_and_string_length_limits_inclusive(void **state)
{
    struct fixture *fx = *state;
    char name[256], str[1025];
    memset(name, 'n', 255);
    name[255] = '\0';
    memset(str, 's', 1024);
    str[1024] = '\0';
    struct pa_frame *f = tu_frame_nimble(&fx->a, 1, 6);
    f->server.name = name;
    f->server.version = str;
    f->vhosts[0].name = name;
    f->vhosts[0].apps[2].instances[0].streams[1].name = name;
    f->config.v.map.kv[0].key = name;
    f->config.v.map.kv[2].val.v.map.kv[1].val.v.s = str;
    roundtrip(fx, f);
    /* 255 bytes of multibyte text */
    char mb[256];
    for (int i = 0; i < 85; i++)
        memcpy(mb + 3 * i, "\xe2\x82\xac", 3); /* U+20AC */
    mb[255] = '\0';
    f->server.name = mb;
    roundtrip(fx, f);
}

/* ---- key order and unknown keys -------------------------------------- */

static void test_keys_in_any_order(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_wowza(&fx->a, 40, 7);
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);

    struct tu_node root = tu_frame_tree(&fx->pool, f);
    tu_reverse_maps(&root);
    size_t len;
    uint8_t *p = tu_bytes(&fx->pool, &root, &len);
    assert_int_equal(len, fx->b.len);
    assert_memory_not_equal(p, fx->b.data, len);

    struct pa_frame *back = decode_ok(fx, p, len, NULL);
    /* config is free-form: its key order is data and comes back reversed */
    struct tu_node ctree = tu_cval_tree(&fx->pool, &f->config);
    tu_reverse_maps(&ctree);
    size_t clen, blen;
    uint8_t *cwant = tu_bytes(&fx->pool, &ctree, &clen);
    struct tu_node btree = tu_cval_tree(&fx->pool, &back->config);
    uint8_t *cgot = tu_bytes(&fx->pool, &btree, &blen);
    assert_int_equal(clen, blen);
    assert_memory_equal(cwant, cgot, clen);
    back->config = f->config;
    assert_frames_equal(f, back, 0);

    /* a rotation instead of a reversal: "conns" first, "v" last */
    struct tu_node r2 = tu_frame_tree(&fx->pool, f);
    struct tu_node first = r2.kids[0], firstv = r2.kids[1];
    memmove(&r2.kids[0], &r2.kids[2], (size_t)(r2.n - 1) * 2 * sizeof(struct tu_node));
    r2.kids[2 * r2.n - 2] = first;
    r2.kids[2 * r2.n - 1] = firstv;
    p = tu_bytes(&fx->pool, &r2, &len);
    back = decode_ok(fx, p, len, NULL);
    assert_frames_equal(f, back, 0);
    fx->b.len = 0;
    roundtrip(fx, back);
}

static void test_unknown_keys_skipped_and_counted(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_nimble(&fx->a, 8, 8);
    struct tu_node root = tu_frame_tree(&fx->pool, f);
    static const uint8_t blob[] = {0, 1, 2, 0xc1, 0xff};

    struct tu_node deep = tu_map();
    struct tu_node inner = tu_arr();
    tu_push(&fx->pool, &inner, tu_nil());
    tu_push(&fx->pool, &inner, tu_f32(1.5f));
    tu_push(&fx->pool, &inner, tu_map());
    tu_put(&fx->pool, &deep, "x", inner);
    tu_put(&fx->pool, &deep, "y", tu_str("z"));
    tu_putk(&fx->pool, &deep, tu_uint(7), tu_bool(true)); /* any key type inside */

    tu_put(&fx->pool, &root, "future_top", deep);
    tu_put(&fx->pool, &root, "x_int", tu_int(-5));
    assert_true(tu_add(&fx->pool, &root, "server", "region", tu_str("eu-central")));
    assert_true(tu_add(&fx->pool, &root, "load", "load1", tu_f64(0.5)));
    assert_true(tu_add(&fx->pool, &root, "traffic", "blob", tu_bin(blob, sizeof blob)));
    assert_true(tu_add(&fx->pool, &root, "vhosts[0]", "alias", tu_arr()));
    assert_true(tu_add(&fx->pool, &root, "vhosts[0].apps[0]", "type", tu_str("live")));
    assert_true(tu_add(&fx->pool, &root, "vhosts[0].apps[0].instances[0]", "n", tu_nil()));
    assert_true(tu_add(&fx->pool, &root, "vhosts[0].apps[0].instances[0].streams[3]",
                       "codec", tu_str("h264")));
    assert_true(tu_add(&fx->pool, &root, "conns[5]", "proto", tu_str("rtmp")));
    assert_true(tu_add(&fx->pool, &root, "conns[6]", "", tu_uint(1))); /* empty key */
    /* unknown keys go anywhere in the map, not only at the end */
    struct tu_node *srv = tu_at(&root, "server");
    tu_reverse_maps(srv);

    size_t len;
    uint8_t *p = tu_bytes(&fx->pool, &root, &len);
    struct pa_frame *back = decode_ok(fx, p, len, NULL);
    assert_int_equal(back->n_unknown, 11);
    assert_frames_equal(f, back, TU_EQ_IGNORE_UNKNOWN);
    /* unknown keys are not kept: re-encoding gives the canonical bytes */
    fx->b.len = 0;
    back->n_unknown = 0;
    roundtrip(fx, back);
}

static void test_same_unknown_key_in_different_maps(void **state)
{
    /* Duplicate detection is per map (schema notes: "Duplicate key in any
     * one map").  The same unknown key in a nested map and in its parent,
     * or in sibling maps, is not a duplicate. */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_nimble(&fx->a, 4, 9);
    static const char *const layouts[][3] = {
        {"server", "", NULL},            /* nested first, then parent */
        {"", "server", NULL},            /* parent first, then nested */
        {"conns[0]", "conns[1]", ""},    /* siblings, then parent */
        {"vhosts[0].apps[0]", "vhosts[0]", ""},
        {"load", "traffic", "server"},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(layouts); i++) {
        pa_arena_reset(&fx->d);
        struct tu_node root = tu_frame_tree(&fx->pool, f);
        uint32_t n = 0;
        for (size_t k = 0; k < 3 && layouts[i][k] != NULL; k++, n++) {
            assert_true(tu_add(&fx->pool, &root, layouts[i][k], "ext_info", tu_uint(k)));
            if (layouts[i][k][0] == '\0' && k == 0) {
                /* make the top-level one come first on the wire */
                struct tu_node key = root.kids[2 * root.n - 2];
                struct tu_node val = root.kids[2 * root.n - 1];
                memmove(&root.kids[2], &root.kids[0],
                        (size_t)(root.n - 1) * 2 * sizeof(struct tu_node));
                root.kids[0] = key;
                root.kids[1] = val;
            }
        }
        size_t len;
        uint8_t *p = tu_bytes(&fx->pool, &root, &len);
        struct pa_frame *back = NULL;
        struct pa_frame_error err;
        int rv = pa_frame_decode(p, len, NULL, &fx->d, &back, &err);
        if (rv != 0)
            fail_msg("layout %zu (\"ext_info\" in %s, then %s): %s at \"%s\": %s", i,
                     layouts[i][0][0] ? layouts[i][0] : "<top>",
                     layouts[i][1][0] ? layouts[i][1] : "<top>", pa_frame_errname(rv),
                     err.path, err.msg);
        assert_int_equal(back->n_unknown, n);
        assert_frames_equal(f, back, TU_EQ_IGNORE_UNKNOWN);
    }
}

static void test_unknown_keys_at_limit(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_min(&fx->a);
    struct tu_node root = tu_frame_tree(&fx->pool, f);
    char keys[64][16];
    for (int i = 0; i < 64; i++) {
        snprintf(keys[i], sizeof keys[i], "u%d", i);
        tu_put(&fx->pool, &root, keys[i], tu_uint((uint64_t)i));
    }
    size_t len;
    uint8_t *p = tu_bytes(&fx->pool, &root, &len);
    struct pa_frame *back = decode_ok(fx, p, len, NULL);
    assert_int_equal(back->n_unknown, 64);
}

/* ---- pa_frame_encode_checked ----------------------------------------- */

static void test_encode_checked(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame_error err;
    struct pa_frame *f = tu_frame_wowza(&fx->a, 30, 10);

    /* success appends exactly what pa_frame_encode writes */
    assert_int_equal(pa_buf_append(&fx->b, "prefix", 6), 0);
    assert_int_equal(pa_frame_encode_checked(f, NULL, &fx->b, &err), 0);
    struct pa_buf plain;
    pa_buf_init(&plain, NULL);
    assert_int_equal(pa_frame_encode(f, &plain), 0);
    assert_int_equal(fx->b.len, 6 + plain.len);
    assert_memory_equal(fx->b.data, "prefix", 6);
    assert_memory_equal(fx->b.data + 6, plain.data, plain.len);
    pa_buf_cleanup(&plain);

    static const struct {
        int what;
        int code;
        const char *path;
        const char *msg;
    } bad[] = {
        {0, PA_FE_INVALID, "server.name", "empty"},
        {1, PA_FE_INVALID, "vhosts[1].apps[2].instances[0].name", "empty"},
        {2, PA_FE_RANGE, "seq", "must be >= 1"},
        {3, PA_FE_RANGE, "load.cpu", NULL},
        {4, PA_FE_NONFINITE, "config.JVM.GCPauseTarget", NULL},
        {5, PA_FE_INVALID, "load.ram_used", NULL},
        {6, PA_FE_TOO_MANY, "conns", NULL},
        {7, PA_FE_UTF8, "vhosts[0].name", NULL},
        {8, PA_FE_VERSION, "v", NULL},
        {9, PA_FE_INVALID, "server.kind", NULL},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(bad); i++) {
        pa_arena_reset(&fx->a);
        f = tu_frame_wowza(&fx->a, 30, 10);
        struct pa_frame_limits lim;
        pa_frame_limits_default(&lim);
        switch (bad[i].what) {
        case 0:
            f->server.name = "";
            break;
        case 1:
            f->vhosts[1].apps[2].instances[0].name = "";
            break;
        case 2:
            f->seq = 0;
            break;
        case 3:
            f->load.cpu_pct = 100.01;
            break;
        case 4:
            f->config.v.map.kv[1].val.v.map.kv[1].val.v.f = INFINITY;
            break;
        case 5:
            f->load.ram_used = f->load.ram_total + 1;
            break;
        case 6:
            lim.max_conns = 29;
            break;
        case 7:
            f->vhosts[0].name = "\xc0\x80";
            break;
        case 8:
            f->version = 2;
            break;
        default:
            f->server.kind = (enum pa_agent_kind)7;
            break;
        }
        size_t before = fx->b.len;
        memset(&err, 0, sizeof err);
        int rv = pa_frame_encode_checked(f, &lim, &fx->b, &err);
        assert_int_equal(rv, bad[i].code);
        assert_int_equal(err.code, bad[i].code);
        assert_string_equal(err.path, bad[i].path);
        if (bad[i].msg)
            assert_string_equal(err.msg, bad[i].msg);
        assert_true(err.msg[0] != '\0');
        assert_int_equal(fx->b.len, before);
        assert_memory_equal(fx->b.data, "prefix", 6);
    }
}

static void test_encode_without_viewer_ips(void **state)
{
    /* PA_ENCODE_NO_VIEWER_IPS: the storage form is the canonical frame with
     * every "ip" of conns removed (server.ips stay), and not a valid wire
     * frame */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_wowza(&fx->a, 120, 13);
    assert_int_equal(pa_frame_encode_flags(f, &fx->b, PA_ENCODE_NO_VIEWER_IPS), 0);

    struct tu_node root = tu_frame_tree(&fx->pool, f);
    for (uint32_t i = 0; i < f->n_conns; i++) {
        char path[32];
        snprintf(path, sizeof path, "conns[%u].ip", i);
        assert_true(tu_del(&root, path));
    }
    size_t len;
    uint8_t *want = tu_bytes(&fx->pool, &root, &len);
    assert_int_equal(fx->b.len, len);
    assert_memory_equal(fx->b.data, want, len);
    /* belt and braces: no IPv6 viewer address anywhere in the output */
    for (uint32_t i = 0; i < f->n_conns; i++) {
        size_t n = f->conns[i].ip.family == 4 ? 4 : 16;
        for (size_t at = 0; at + n <= fx->b.len; at++)
            if (memcmp(fx->b.data + at, f->conns[i].ip.addr, n) == 0 &&
                f->conns[i].ip.family == 6)
                fail_msg("conns[%u].ip found at offset %zu", i, at);
    }
    struct pa_frame *back = NULL;
    struct pa_frame_error err;
    assert_int_equal(pa_frame_decode(fx->b.data, fx->b.len, NULL, &fx->d, &back, &err),
                     PA_FE_MISSING);
    assert_string_equal(err.path, "conns[0].ip");

    /* flags 0 is pa_frame_encode */
    struct pa_buf plain;
    pa_buf_init(&plain, NULL);
    fx->b.len = 0;
    assert_int_equal(pa_frame_encode_flags(f, &fx->b, 0), 0);
    assert_int_equal(pa_frame_encode(f, &plain), 0);
    assert_int_equal(plain.len, fx->b.len);
    assert_memory_equal(plain.data, fx->b.data, plain.len);
    pa_buf_cleanup(&plain);
}

static void test_encode_without_conns(void **state)
{
    /* PA_ENCODE_NO_CONNS: the canonical frame without its "conns" key, a
     * valid wire frame; the top-level map stays a fixmap (frame.h) */
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_nimble(&fx->a, 40, 5);
    assert_int_equal(pa_frame_encode_flags(f, &fx->b, PA_ENCODE_NO_CONNS), 0);

    struct tu_node root = tu_frame_tree(&fx->pool, f);
    assert_true(tu_del(&root, "conns"));
    size_t len;
    uint8_t *want = tu_bytes(&fx->pool, &root, &len);
    assert_int_equal(fx->b.len, len);
    assert_memory_equal(fx->b.data, want, len);
    assert_true(fx->b.data[0] >= 0x86 && fx->b.data[0] <= 0x80 + PA_ENCODE_MAX_TOP_KEYS - 1);

    struct pa_frame *back = decode_ok(fx, fx->b.data, fx->b.len, NULL);
    assert_int_equal(back->n_conns, 0);
    assert_int_equal(back->n_vhosts, f->n_vhosts);
    /* with both flags, still no conns */
    size_t one = fx->b.len;
    assert_int_equal(
        pa_frame_encode_flags(f, &fx->b, PA_ENCODE_NO_CONNS | PA_ENCODE_NO_VIEWER_IPS), 0);
    assert_int_equal(fx->b.len, 2 * one);
    assert_memory_equal(fx->b.data + one, fx->b.data, one);
    /* every optional key present: the most keys the encoder writes */
    fx->b.len = 0;
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);
    assert_int_equal(fx->b.data[0], 0x80 + PA_ENCODE_MAX_TOP_KEYS);
}

/* ---- allocation failures ---------------------------------------------- */

static void test_decode_allocation_failure_sweep(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_wowza(&fx->a, 300, 11);
    /* also a big config so the sweep crosses many chunks */
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);
    struct pa_frame *ref = decode_ok(fx, fx->b.data, fx->b.len, NULL);

    long n;
    for (n = 1; n < 100000; n++) {
        struct tu_alloc t;
        struct pa_arena a;
        struct pa_frame *out = (struct pa_frame *)&n; /* must become NULL */
        struct pa_frame_error err;
        tu_alloc_init(&t);
        t.fail_at = n;
        pa_arena_init(&a, 0, &t.pa);
        int rv = pa_frame_decode(fx->b.data, fx->b.len, NULL, &a, &out, &err);
        if (rv == 0) {
            assert_non_null(out);
            assert_frames_equal(ref, out, 0);
        } else {
            if (rv != PA_FE_NOMEM)
                fail_msg("N=%ld: %s at \"%s\": %s", n, pa_frame_errname(rv), err.path,
                         err.msg);
            assert_null(out);
            assert_int_equal(err.code, PA_FE_NOMEM);
            assert_true(err.msg[0] != '\0');
            assert_true(t.failures > 0);
        }
        pa_arena_cleanup(&a);
        assert_int_equal(t.live, 0);
        assert_int_equal(t.live_bytes, 0);
        if (rv == 0 && t.failures == 0)
            break;
    }
    assert_true(n > 1);
    assert_true(n < 100000);

    /* the same with an allocator that fails from the Nth call on */
    for (n = 1; n < 100000; n++) {
        struct tu_alloc t;
        struct pa_arena a;
        struct pa_frame *out;
        tu_alloc_init(&t);
        t.fail_from = n;
        pa_arena_init(&a, 0, &t.pa);
        int rv = pa_frame_decode(fx->b.data, fx->b.len, NULL, &a, &out, NULL);
        assert_true(rv == 0 || rv == PA_FE_NOMEM);
        pa_arena_cleanup(&a);
        assert_int_equal(t.live, 0);
        if (rv == 0 && t.failures == 0)
            break;
    }
}

static void test_encode_allocation_failure_sweep(void **state)
{
    struct fixture *fx = *state;
    struct pa_frame *f = tu_frame_nimble(&fx->a, 300, 12);
    assert_int_equal(pa_frame_encode(f, &fx->b), 0);

    for (int checked = 0; checked < 2; checked++) {
        long n;
        for (n = 1; n < 100000; n++) {
            struct tu_alloc t;
            struct pa_buf b;
            struct pa_frame_error err;
            tu_alloc_init(&t);
            pa_buf_init(&b, &t.pa);
            assert_int_equal(pa_buf_append(&b, "keep", 4), 0);
            t.fail_at = t.calls + n;
            int rv = checked ? pa_frame_encode_checked(f, NULL, &b, &err)
                             : pa_frame_encode(f, &b);
            if (rv == 0) {
                assert_int_equal(b.len, 4 + fx->b.len);
                assert_memory_equal(b.data + 4, fx->b.data, fx->b.len);
            } else {
                assert_int_equal(rv, PA_FE_NOMEM);
                assert_int_equal(b.len, 4);
                if (checked)
                    assert_int_equal(err.code, PA_FE_NOMEM);
            }
            assert_memory_equal(b.data, "keep", 4);
            pa_buf_cleanup(&b);
            assert_int_equal(t.live, 0);
            if (rv == 0 && t.failures == 0)
                break;
        }
        assert_true(n > 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nimble_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wowza_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_under_schema_minimum_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimal_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_optional_field_omitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_empty_optionals_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_initialised_frame_has_no_config, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_uint64_extremes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_bounds_and_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noncanonical_integer_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noncanonical_str_bin_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_and_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_boundaries_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_and_string_length_limits_inclusive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keys_in_any_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys_skipped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_unknown_key_in_different_maps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys_at_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_without_viewer_ips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_without_conns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_allocation_failure_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_allocation_failure_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
