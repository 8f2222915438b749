/*
 * test_pa_builder.c - the frame builder (panelagent_frame_*) and
 * pa_builder_encode: what is set comes back exactly from the decoder, every
 * setter refuses bad values and limits with the field named, and a failed
 * call (allocation failures included) leaves the frame as it was.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <panelproto/frame.h>
#include "internal.h"
#include "panelagent.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */

static panelagent_frame *new_frame(void)
{
    panelagent_frame *f = NULL;
    assert_int_equal(panelagent_frame_new(&f), PANELAGENT_OK);
    assert_non_null(f);
    return f;
}

/* A frame with the required parts. */
static panelagent_frame *base_frame(void)
{
    panelagent_frame *f = new_frame();
    assert_int_equal(panelagent_frame_set_server(f, "edge-01", PANELAGENT_KIND_NIMBLE, "4.1"),
                     PANELAGENT_OK);
    assert_int_equal(panelagent_frame_set_load(f, 12.5, 10, 100), PANELAGENT_OK);
    assert_int_equal(panelagent_frame_set_traffic(f, 1, 2, 5000), PANELAGENT_OK);
    return f;
}

/* Encodes with seq 1 at time 1 into a fresh buffer (caller cleans up). */
static void encode_into(panelagent_frame *f, struct pa_buf *b)
{
    char err[256] = "";
    pa_buf_init(b, NULL);
    int rv = pa_builder_encode(f, 1, 1, b, err, sizeof err);
    if (rv != PANELAGENT_OK)
        fail_msg("pa_builder_encode: %d %s", rv, err);
}

/* Snapshot of a frame: its encoding. */
struct snap {
    struct pa_buf b;
};

static void snap_take(panelagent_frame *f, struct snap *s)
{
    encode_into(f, &s->b);
}

static void snap_same(panelagent_frame *f, struct snap *s)
{
    struct pa_buf now;
    encode_into(f, &now);
    assert_int_equal(now.len, s->b.len);
    assert_memory_equal(now.data, s->b.data, now.len);
    pa_buf_cleanup(&now);
    pa_buf_cleanup(&s->b);
}

/* The call failed with |code| and the error text contains |needle|. */
#define EXPECT_FAIL(f, call, code, needle)                                                 \
    do {                                                                                   \
        int rv_ = (call);                                                                  \
        if (rv_ != (code))                                                                 \
            fail_msg("%s: got %d (%s), want %d", #call, rv_, panelagent_frame_error(f),    \
                     (code));                                                              \
        if (strstr(panelagent_frame_error(f), (needle)) == NULL)                           \
            fail_msg("%s: error '%s' does not contain '%s'", #call,                       \
                     panelagent_frame_error(f), (needle));                                \
    } while (0)

/* EXPECT_FAIL and the frame's encoding did not change. */
#define EXPECT_FAIL_SAME(f, call, code, needle)                                            \
    do {                                                                                   \
        struct snap s_;                                                                    \
        snap_take((f), &s_);                                                               \
        EXPECT_FAIL((f), (call), (code), (needle));                                        \
        snap_same((f), &s_);                                                               \
    } while (0)

static struct pa_frame *decode(struct pa_arena *a, const struct pa_buf *b)
{
    struct pa_frame *pf = NULL;
    struct pa_frame_error e;
    int rv = pa_frame_decode(b->data, b->len, NULL, a, &pf, &e);
    if (rv != 0)
        fail_msg("decode: %s: %s", e.path, e.msg);
    return pf;
}

/* ---- round trip -------------------------------------------------------------------- */

static void t_roundtrip_every_setter(void **state)
{
    (void)state;
    struct pa_arena a, d;
    struct pa_buf b;
    char err[256];
    panelagent_frame *f = new_frame();
    static const uint8_t raw6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                     0,    0,    0,    0,    0, 0, 0, 9};
    static const uint8_t raw4[4] = {198, 51, 100, 7};

    pa_arena_init(&a, 0, NULL);
    pa_arena_init(&d, 0, NULL);
    assert_int_equal(panelagent_frame_set_server(f, "wowza-01", PANELAGENT_KIND_WOWZA,
                                                 "Wowza Streaming Engine 4.8.26"),
                     0);
    assert_int_equal(panelagent_frame_add_server_ip(f, "192.0.2.10"), 0);
    assert_int_equal(panelagent_frame_add_server_ip(f, "2001:db8::1"), 0);
    assert_int_equal(panelagent_frame_set_time(f, 1732838400123ull), 0);
    assert_int_equal(panelagent_frame_set_load(f, 37.25, 3ull << 30, 16ull << 30), 0);
    assert_int_equal(panelagent_frame_set_traffic(f, UINT64_MAX, 7, 5000), 0);
    /* tree: two vhosts, the first with two apps; found by name afterwards */
    assert_int_equal(panelagent_frame_add_stream(f, "_defaultVHost_", "live", "_definst_",
                                                 "cam1", 3, 2500000, 10, 20), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "vh2", "vod", "_definst_", "m1", 0, 0, 0,
                                                 0), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "_defaultVHost_", "live", "_definst_",
                                                 "cam2", 1, 800000, 11, 21), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "_defaultVHost_", "rec", "i2", "cam1",
                                                 UINT64_MAX, 1, 2, 3), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "_defaultVHost_", "live", "other",
                                                 "cam1", 5, 6, 7, 8), 0);
    assert_int_equal(panelagent_frame_add_conn(f, "203.0.113.7", 100, 200), 0);
    assert_int_equal(panelagent_frame_add_conn(f, "2001:db8:1::2", 0, UINT64_MAX), 0);
    assert_int_equal(panelagent_frame_add_conn_raw(f, raw4, 4, 1, 2), 0);
    assert_int_equal(panelagent_frame_add_conn_raw(f, raw6, 16, 3, 4), 0);
    /* config {"name":"x","n":-5,"u":7,"f":0.5,"on":true,
     *         "apps":{"live":{"codecs":["h264",1,{"k":false}]}},"empty":[]} */
    assert_int_equal(panelagent_frame_config_str(f, "name", "x\xc3\xa9"), 0);
    assert_int_equal(panelagent_frame_config_i64(f, "n", -5), 0);
    assert_int_equal(panelagent_frame_config_i64(f, "u", 7), 0);
    assert_int_equal(panelagent_frame_config_f64(f, "f", 0.5), 0);
    assert_int_equal(panelagent_frame_config_bool(f, "on", 42), 0);
    assert_int_equal(panelagent_frame_config_begin_map(f, "apps"), 0);
    assert_int_equal(panelagent_frame_config_begin_map(f, "live"), 0);
    assert_int_equal(panelagent_frame_config_begin_array(f, "codecs"), 0);
    assert_int_equal(panelagent_frame_config_str(f, NULL, "h264"), 0);
    assert_int_equal(panelagent_frame_config_i64(f, NULL, 1), 0);
    assert_int_equal(panelagent_frame_config_begin_map(f, NULL), 0);
    assert_int_equal(panelagent_frame_config_bool(f, "k", 0), 0);
    assert_int_equal(panelagent_frame_config_end(f), 0);
    assert_int_equal(panelagent_frame_config_end(f), 0);
    assert_int_equal(panelagent_frame_config_end(f), 0);
    assert_int_equal(panelagent_frame_config_end(f), 0);
    assert_int_equal(panelagent_frame_config_begin_array(f, "empty"), 0);
    /* left open: closed at encode */
    assert_int_equal(panelagent_frame_check(f), PANELAGENT_OK);
    assert_string_equal(panelagent_frame_error(f), "");

    pa_buf_init(&b, NULL);
    assert_int_equal(pa_builder_encode(f, 42, 999, &b, err, sizeof err), PANELAGENT_OK);
    struct pa_frame *got = decode(&d, &b);

    /* the expected frame, by hand */
    struct pa_frame *x = tu_frame_new(&a);
    x->version = 1;
    x->seq = 42;
    x->ts_ms = 1732838400123ull;
    x->server.name = "wowza-01";
    x->server.kind = PA_KIND_WOWZA;
    x->server.version = "Wowza Streaming Engine 4.8.26";
    x->server.n_ips = 2;
    x->server.ips = tu_new(&a, 2, sizeof(struct pa_ip));
    x->server.ips[0] = tu_ip4(192, 0, 2, 10);
    x->server.ips[1] = tu_ip6(0, 1);
    x->load.cpu_pct = 37.25;
    x->load.ram_used = 3ull << 30;
    x->load.ram_total = 16ull << 30;
    x->traffic.bytes_in = UINT64_MAX;
    x->traffic.bytes_out = 7;
    x->traffic.period_ms = 5000;
    x->n_vhosts = 2;
    x->vhosts = tu_new(&a, 2, sizeof(struct pa_vhost));
    struct pa_vhost *v0 = &x->vhosts[0], *v1 = &x->vhosts[1];
    v0->name = "_defaultVHost_";
    v0->n_apps = 2;
    v0->apps = tu_new(&a, 2, sizeof(struct pa_app));
    v0->apps[0].name = "live";
    v0->apps[0].n_instances = 2;
    v0->apps[0].instances = tu_new(&a, 2, sizeof(struct pa_instance));
    v0->apps[0].instances[0].name = "_definst_";
    v0->apps[0].instances[0].n_streams = 2;
    v0->apps[0].instances[0].streams = tu_new(&a, 2, sizeof(struct pa_stream));
    v0->apps[0].instances[0].streams[0] = (struct pa_stream){"cam1", 3, 2500000, 10, 20};
    v0->apps[0].instances[0].streams[1] = (struct pa_stream){"cam2", 1, 800000, 11, 21};
    v0->apps[0].instances[1].name = "other";
    v0->apps[0].instances[1].n_streams = 1;
    v0->apps[0].instances[1].streams = tu_new(&a, 1, sizeof(struct pa_stream));
    v0->apps[0].instances[1].streams[0] = (struct pa_stream){"cam1", 5, 6, 7, 8};
    v0->apps[1].name = "rec";
    v0->apps[1].n_instances = 1;
    v0->apps[1].instances = tu_new(&a, 1, sizeof(struct pa_instance));
    v0->apps[1].instances[0].name = "i2";
    v0->apps[1].instances[0].n_streams = 1;
    v0->apps[1].instances[0].streams = tu_new(&a, 1, sizeof(struct pa_stream));
    v0->apps[1].instances[0].streams[0] = (struct pa_stream){"cam1", UINT64_MAX, 1, 2, 3};
    v1->name = "vh2";
    v1->n_apps = 1;
    v1->apps = tu_new(&a, 1, sizeof(struct pa_app));
    v1->apps[0].name = "vod";
    v1->apps[0].n_instances = 1;
    v1->apps[0].instances = tu_new(&a, 1, sizeof(struct pa_instance));
    v1->apps[0].instances[0].name = "_definst_";
    v1->apps[0].instances[0].n_streams = 1;
    v1->apps[0].instances[0].streams = tu_new(&a, 1, sizeof(struct pa_stream));
    v1->apps[0].instances[0].streams[0] = (struct pa_stream){"m1", 0, 0, 0, 0};
    x->n_conns = 4;
    x->conns = tu_new(&a, 4, sizeof(struct pa_conn));
    x->conns[0] = (struct pa_conn){tu_ip4(203, 0, 113, 7), 100, 200};
    x->conns[1] = (struct pa_conn){tu_ip6(1, 2), 0, UINT64_MAX};
    x->conns[2] = (struct pa_conn){tu_ip4(198, 51, 100, 7), 1, 2};
    x->conns[3] = (struct pa_conn){tu_ip6(0, 9), 3, 4};
    x->config = tu_cv_map(&a, 7);
    tu_cv_set(&a, &x->config, 0, "name", tu_cv_str(&a, "x\xc3\xa9"));
    tu_cv_set(&a, &x->config, 1, "n", tu_cv_int(-5));
    tu_cv_set(&a, &x->config, 2, "u", tu_cv_uint(7));
    tu_cv_set(&a, &x->config, 3, "f", tu_cv_float(0.5));
    tu_cv_set(&a, &x->config, 4, "on", tu_cv_bool(true));
    struct pa_cval apps = tu_cv_map(&a, 1), live = tu_cv_map(&a, 1), codecs = tu_cv_arr(&a, 3),
                   inner = tu_cv_map(&a, 1);
    tu_cv_set(&a, &inner, 0, "k", tu_cv_bool(false));
    codecs.v.arr.items[0] = tu_cv_str(&a, "h264");
    codecs.v.arr.items[1] = tu_cv_uint(1);
    codecs.v.arr.items[2] = inner;
    tu_cv_set(&a, &live, 0, "codecs", codecs);
    tu_cv_set(&a, &apps, 0, "live", live);
    tu_cv_set(&a, &x->config, 5, "apps", apps);
    tu_cv_set(&a, &x->config, 6, "empty", tu_cv_arr(&a, 0));

    char why[256];
    if (!tu_frame_eq(x, got, 0, why, sizeof why))
        fail_msg("round trip differs: %s", why);

    pa_buf_cleanup(&b);
    pa_arena_cleanup(&a);
    pa_arena_cleanup(&d);
    panelagent_frame_free(f);
}

static void t_time_of_submit(void **state)
{
    (void)state;
    struct pa_arena d;
    struct pa_buf b;
    panelagent_frame *f = base_frame();

    pa_arena_init(&d, 0, NULL);
    pa_buf_init(&b, NULL);
    assert_int_equal(pa_builder_encode(f, 7, 123456, &b, NULL, 0), 0);
    struct pa_frame *got = decode(&d, &b);
    assert_int_equal(got->ts_ms, 123456);
    assert_int_equal(got->seq, 7);
    /* the content did not change: a second encode at another time moves ts */
    b.len = 0;
    assert_int_equal(pa_builder_encode(f, 8, 654321, &b, NULL, 0), 0);
    got = decode(&d, &b);
    assert_int_equal(got->ts_ms, 654321);
    assert_int_equal(panelagent_frame_set_time(f, 5), 0);
    b.len = 0;
    assert_int_equal(pa_builder_encode(f, 9, 654321, &b, NULL, 0), 0);
    got = decode(&d, &b);
    assert_int_equal(got->ts_ms, 5);
    /* seq 0 is caught by validation */
    char err[128] = "";
    size_t len0 = b.len;
    assert_int_equal(pa_builder_encode(f, 0, 1, &b, err, sizeof err), PANELAGENT_EFRAME);
    assert_non_null(strstr(err, "seq"));
    assert_int_equal(b.len, len0);
    pa_buf_cleanup(&b);
    pa_arena_cleanup(&d);
    panelagent_frame_free(f);
}

static void t_public_encode(void **state)
{
    (void)state;
    struct pa_arena d;
    uint8_t *out = (uint8_t *)"x";
    size_t len = 99;
    panelagent_frame *f = base_frame();

    pa_arena_init(&d, 0, NULL);
    EXPECT_FAIL(f, panelagent_frame_encode(f, 0, &out, &len), PANELAGENT_EINVAL, "seq");
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(panelagent_frame_encode(f, 77, &out, &len), PANELAGENT_OK);
    struct pa_buf b = {.data = out, .len = len};
    struct pa_frame *got = decode(&d, &b);
    assert_int_equal(got->seq, 77);
    assert_true(got->ts_ms > 1600000000000ull); /* the current time */
    assert_string_equal(got->server.name, "edge-01");
    panelagent_free(out);
    assert_int_equal(panelagent_frame_encode(NULL, 1, &out, &len), PANELAGENT_EINVAL);
    pa_arena_cleanup(&d);
    panelagent_frame_free(f);
    panelagent_frame_free(NULL);
    assert_string_equal(panelagent_frame_error(NULL), "");
}

/* ---- required fields ------------------------------------------------------------------ */

static void t_missing_required(void **state)
{
    (void)state;
    char err[128];
    struct pa_buf b;
    panelagent_frame *f = new_frame();

    pa_buf_init(&b, NULL);
    EXPECT_FAIL(f, panelagent_frame_check(f), PANELAGENT_EFRAME, "server: missing");
    assert_int_equal(pa_builder_encode(f, 1, 1, &b, err, sizeof err), PANELAGENT_EFRAME);
    assert_non_null(strstr(err, "server: missing"));
    assert_int_equal(b.len, 0);
    assert_int_equal(panelagent_frame_set_server(f, "s", PANELAGENT_KIND_NIMBLE, "1"), 0);
    EXPECT_FAIL(f, panelagent_frame_check(f), PANELAGENT_EFRAME, "load: missing");
    assert_int_equal(panelagent_frame_set_load(f, 0, 0, 1), 0);
    EXPECT_FAIL(f, panelagent_frame_check(f), PANELAGENT_EFRAME, "traffic: missing");
    uint8_t *out = NULL;
    size_t len = 0;
    EXPECT_FAIL(f, panelagent_frame_encode(f, 1, &out, &len), PANELAGENT_EFRAME,
                "traffic: missing");
    assert_null(out);
    assert_int_equal(panelagent_frame_set_traffic(f, 0, 0, 0), 0);
    assert_int_equal(panelagent_frame_check(f), PANELAGENT_OK);
    pa_buf_cleanup(&b);
    panelagent_frame_free(f);
}

/* ---- rejections ------------------------------------------------------------------------ */

static void t_reject_server(void **state)
{
    (void)state;
    char name256[257], ver1025[1026];
    panelagent_frame *f = base_frame();

    memset(name256, 'n', 256);
    name256[256] = '\0';
    memset(ver1025, 'v', 1025);
    ver1025[1025] = '\0';
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, NULL, 1, "1"), PANELAGENT_EINVAL,
                     "server.name");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "", 1, "1"), PANELAGENT_EINVAL,
                     "server.name: empty");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, name256, 1, "1"), PANELAGENT_ELIMIT,
                     "server.name: longer than 255");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "a\xff", 1, "1"), PANELAGENT_EINVAL,
                     "server.name: string is not valid UTF-8");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "\xed\xa0\x80", 1, "1"),
                     PANELAGENT_EINVAL, "server.name: string is not valid UTF-8");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "ok", 0, "1"), PANELAGENT_EINVAL,
                     "server.kind");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "ok", 3, "1"), PANELAGENT_EINVAL,
                     "server.kind");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "ok", 1, ""), PANELAGENT_EINVAL,
                     "server.version: empty");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "ok", 1, NULL), PANELAGENT_EINVAL,
                     "server.version");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_server(f, "ok", 1, ver1025), PANELAGENT_ELIMIT,
                     "server.version: longer than 1024");
    /* the limits themselves are accepted */
    name256[255] = '\0';
    ver1025[1024] = '\0';
    assert_int_equal(panelagent_frame_set_server(f, name256, 2, ver1025), 0);
    assert_int_equal(panelagent_frame_check(f), 0);
    /* the error stays until the next failure */
    assert_non_null(strstr(panelagent_frame_error(f), "server.version"));
    assert_int_equal(panelagent_frame_set_server(NULL, "a", 1, "1"), PANELAGENT_EINVAL);
    panelagent_frame_free(f);
}

static void t_reject_ips(void **state)
{
    (void)state;
    panelagent_frame *f = base_frame();

    EXPECT_FAIL_SAME(f, panelagent_frame_add_server_ip(f, "300.1.1.1"), PANELAGENT_EINVAL,
                     "server.ips[0]: not an IP address");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_server_ip(f, "example.com"), PANELAGENT_EINVAL,
                     "server.ips[0]: not an IP address");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_server_ip(f, NULL), PANELAGENT_EINVAL,
                     "server.ips[0]");
    assert_int_equal(panelagent_frame_add_server_ip(f, "::1"), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_add_server_ip(f, "fe80::1%eth0"), PANELAGENT_EINVAL,
                     "server.ips[1]: not an IP address");
    for (int i = 1; i < 64; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.0.0.%d", i);
        assert_int_equal(panelagent_frame_add_server_ip(f, ip), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_add_server_ip(f, "10.0.1.1"), PANELAGENT_ELIMIT,
                     "server.ips: more than 64");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);
}

static void t_reject_load(void **state)
{
    (void)state;
    panelagent_frame *f = base_frame();

    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, NAN, 1, 2), PANELAGENT_EINVAL,
                     "load.cpu: not a finite number");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, INFINITY, 1, 2), PANELAGENT_EINVAL,
                     "load.cpu: not a finite number");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, -0.001, 1, 2), PANELAGENT_EINVAL,
                     "load.cpu: must be within 0..100");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, 100.001, 1, 2), PANELAGENT_EINVAL,
                     "load.cpu: must be within 0..100");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, 50, 0, 0), PANELAGENT_EINVAL,
                     "load.ram_total: must be >= 1");
    EXPECT_FAIL_SAME(f, panelagent_frame_set_load(f, 50, 3, 2), PANELAGENT_EINVAL,
                     "load.ram_used: exceeds load.ram_total");
    assert_int_equal(panelagent_frame_set_load(f, 100, UINT64_MAX, UINT64_MAX), 0);
    assert_int_equal(panelagent_frame_set_load(f, 0, 0, 1), 0);
    assert_int_equal(panelagent_frame_set_load(NULL, 0, 0, 1), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_frame_set_traffic(NULL, 0, 0, 1), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_frame_set_time(NULL, 0), PANELAGENT_EINVAL);
    panelagent_frame_free(f);
}

static void t_reject_streams(void **state)
{
    (void)state;
    char long256[257];
    panelagent_frame *f = base_frame();

    memset(long256, 's', 256);
    long256[256] = '\0';
    assert_int_equal(panelagent_frame_add_stream(f, "v", "a", "i", "s", 1, 2, 3, 4), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "v", "a", "i", "t", 1, 2, 3, 4), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a", "i", "s", 9, 9, 9, 9),
                     PANELAGENT_EINVAL,
                     "vhosts[0].apps[0].instances[0].streams[0].name: stream already in");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "", "a", "i", "s", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "vhosts[1].name: empty");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "", "i", "s", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "vhosts[0].apps[1].name: empty");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a", NULL, "s", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "vhosts[0].apps[0].instances[1].name");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a", "i", "", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "vhosts[0].apps[0].instances[0].streams[2].name: empty");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "w", "b", "c", long256, 0, 0, 0, 0),
                     PANELAGENT_ELIMIT,
                     "vhosts[1].apps[0].instances[0].streams[0].name: longer than 255");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a\xc0\x80", "i", "s", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "vhosts[0].apps[1].name: string is not valid UTF-8");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(NULL, "v", "a", "i", "x", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "");
    panelagent_frame_free(f);
}

static void t_limits_tree(void **state)
{
    (void)state;
    char v[32], s[32];
    panelagent_frame *f = base_frame();

    /* 256 vhosts; the 257th is refused, a stream under an existing one not */
    for (int i = 0; i < 256; i++) {
        snprintf(v, sizeof v, "vh%d", i);
        assert_int_equal(panelagent_frame_add_stream(f, v, "a", "i", "s", 0, 0, 0, 0), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "vh256", "a", "i", "s", 0, 0, 0, 0),
                     PANELAGENT_ELIMIT, "vhosts: more than 256 vhosts");
    assert_int_equal(panelagent_frame_add_stream(f, "vh255", "a", "i", "s2", 0, 0, 0, 0), 0);
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);

    /* apps are counted over the whole frame */
    f = base_frame();
    for (int i = 0; i < 4096; i++) {
        snprintf(v, sizeof v, "vh%d", i % 200);
        snprintf(s, sizeof s, "app%d", i);
        assert_int_equal(panelagent_frame_add_stream(f, v, s, "i", "s", 0, 0, 0, 0), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "vh0", "one-more", "i", "s", 0, 0, 0, 0),
                     PANELAGENT_ELIMIT, "vhosts[0].apps: more than 4096 applications");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);

    /* 16384 streams, in one instance: found by name fast enough */
    f = base_frame();
    for (int i = 0; i < 16384; i++) {
        snprintf(s, sizeof s, "stream-%d", i);
        assert_int_equal(panelagent_frame_add_stream(f, "v", "a", "i", s, 1, 2, 3, 4), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a", "i", "x", 0, 0, 0, 0),
                     PANELAGENT_ELIMIT,
                     "vhosts[0].apps[0].instances[0].streams: more than 16384 streams");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_stream(f, "v", "a", "i", "stream-77", 0, 0, 0, 0),
                     PANELAGENT_EINVAL, "streams[77].name: stream already in the frame");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);
}

static void t_reject_conns(void **state)
{
    (void)state;
    static const uint8_t five[5] = {1, 2, 3, 4, 5};
    panelagent_frame *f = base_frame();

    for (int i = 0; i < 3; i++)
        assert_int_equal(panelagent_frame_add_conn(f, "192.0.2.1", 1, 1), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn(f, "192.0.2", 1, 1), PANELAGENT_EINVAL,
                     "conns[3]: not an IP address");
    assert_string_equal(panelagent_frame_error(f), "conns[3]: not an IP address");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn(f, "", 1, 1), PANELAGENT_EINVAL,
                     "conns[3]: not an IP address");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn(f, NULL, 1, 1), PANELAGENT_EINVAL,
                     "conns[3]");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn_raw(f, five, 5, 1, 1), PANELAGENT_EINVAL,
                     "conns[3]: address must be 4 or 16 bytes, got 5");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn_raw(f, NULL, 4, 1, 1), PANELAGENT_EINVAL,
                     "conns[3]");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn_raw(f, five, 0, 1, 1), PANELAGENT_EINVAL,
                     "conns[3]");
    panelagent_frame_free(f);
}

static void t_limits_conns(void **state)
{
    (void)state;
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    panelagent_frame *f = base_frame();

    for (uint32_t i = 0; i < 100000; i++) {
        uint8_t ip[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        assert_int_equal(panelagent_frame_add_conn_raw(f, ip, 4, i, i), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn(f, "10.9.9.9", 1, 1), PANELAGENT_ELIMIT,
                     "conns: more than 100000 connections");
    EXPECT_FAIL_SAME(f, panelagent_frame_add_conn_raw(f, v6, 16, 1, 1), PANELAGENT_ELIMIT,
                     "conns: more than 100000 connections");
    assert_int_equal(panelagent_frame_check(f), PANELAGENT_OK);
    panelagent_frame_free(f);

    /* counts within the limits but an encoded frame over 4 MiB: only the
     * whole-frame check can see it */
    f = base_frame();
    for (uint32_t i = 0; i < 100000; i++)
        assert_int_equal(panelagent_frame_add_conn_raw(f, v6, 16, UINT64_MAX, UINT64_MAX), 0);
    EXPECT_FAIL(f, panelagent_frame_check(f), PANELAGENT_EFRAME, "exceeds the limit");
    panelagent_frame_free(f);
}

static void t_config(void **state)
{
    (void)state;
    char key256[257], str1025[1026];
    panelagent_frame *f = base_frame();

    memset(key256, 'k', 256);
    key256[256] = '\0';
    memset(str1025, 'x', 1025);
    str1025[1025] = '\0';
    EXPECT_FAIL_SAME(f, panelagent_frame_config_end(f), PANELAGENT_EINVAL,
                     "config: no open map or array");
    assert_int_equal(panelagent_frame_config_i64(f, "a", 1), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, "a", 2), PANELAGENT_EINVAL,
                     "config.a: duplicate key");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_begin_map(f, "a"), PANELAGENT_EINVAL,
                     "config.a: duplicate key");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, NULL, 2), PANELAGENT_EINVAL,
                     "config: a value in a map needs a key");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, "", 2), PANELAGENT_EINVAL,
                     "config.: empty key");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, key256, 2), PANELAGENT_ELIMIT,
                     "longer than 255 bytes");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_str(f, "b", str1025), PANELAGENT_ELIMIT,
                     "config.b: longer than 1024 bytes");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_str(f, "b", NULL), PANELAGENT_EINVAL,
                     "config.b");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_str(f, "b", "\x80"), PANELAGENT_EINVAL,
                     "config.b: string is not valid UTF-8");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_str(f, "b\xff\"", "x"), PANELAGENT_EINVAL,
                     "config.b\\xff\\x22: string is not valid UTF-8");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_f64(f, "b", NAN), PANELAGENT_EINVAL,
                     "config.b: not a finite number");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_f64(f, "b", -INFINITY), PANELAGENT_EINVAL,
                     "config.b: not a finite number");
    /* the same key in different maps is fine; arrays take no keys */
    assert_int_equal(panelagent_frame_config_begin_map(f, "m"), 0);
    assert_int_equal(panelagent_frame_config_i64(f, "a", 1), 0);
    assert_int_equal(panelagent_frame_config_begin_array(f, "list"), 0);
    assert_int_equal(panelagent_frame_config_str(f, NULL, ""), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_config_bool(f, "k", 1), PANELAGENT_EINVAL,
                     "config.m.list[1]: a value in an array takes no key");
    assert_int_equal(panelagent_frame_config_end(f), 0);
    assert_int_equal(panelagent_frame_config_end(f), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_config_end(f), PANELAGENT_EINVAL,
                     "config: no open map or array");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);
}

static void t_config_depth(void **state)
{
    (void)state;
    panelagent_frame *f = base_frame();

    /* config is depth 2: 14 more levels fit under max_depth 16:
     * arrays "d" holding one map each */
    for (int i = 0; i < 14; i++)
        assert_int_equal(i % 2 ? panelagent_frame_config_begin_map(f, NULL)
                               : panelagent_frame_config_begin_array(f, "d"),
                         0);
    /* innermost is a map (i = 13) */
    EXPECT_FAIL_SAME(f, panelagent_frame_config_begin_map(f, "x"), PANELAGENT_ELIMIT,
                     "config.d[0].d[0].d[0].d[0].d[0].d[0].d[0].x: nested deeper than 16");
    EXPECT_FAIL_SAME(f, panelagent_frame_config_begin_array(f, "y"), PANELAGENT_ELIMIT,
                     "nested deeper than 16");
    assert_int_equal(panelagent_frame_config_i64(f, "z", 1), 0); /* scalars still fit */
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);
}

static void t_config_nodes(void **state)
{
    (void)state;
    char k[32];
    panelagent_frame *f = base_frame();

    /* the config map counts one: 4095 values fit */
    assert_int_equal(panelagent_frame_config_begin_array(f, "list"), 0);
    for (int i = 1; i < 4095; i++)
        assert_int_equal(panelagent_frame_config_i64(f, NULL, i), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, NULL, 1), PANELAGENT_ELIMIT,
                     "config: more than 4096 config values");
    assert_int_equal(panelagent_frame_config_end(f), 0);
    EXPECT_FAIL_SAME(f, panelagent_frame_config_str(f, "x", "y"), PANELAGENT_ELIMIT,
                     "config: more than 4096 config values");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);

    /* many keys in one map: duplicate found among them */
    f = base_frame();
    for (int i = 0; i < 4000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        assert_int_equal(panelagent_frame_config_i64(f, k, i), 0);
    }
    EXPECT_FAIL_SAME(f, panelagent_frame_config_i64(f, "key3999", 1), PANELAGENT_EINVAL,
                     "config.key3999: duplicate key");
    assert_int_equal(panelagent_frame_check(f), 0);
    panelagent_frame_free(f);
}

/* ---- from msgpack ------------------------------------------------------------------------ */

static void t_new_msgpack_bad(void **state)
{
    (void)state;
    struct pa_arena a;
    struct pa_buf b;
    char err[256] = "";
    panelagent_frame *f = (panelagent_frame *)&a;

    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&b, NULL);
    struct pa_frame *x = tu_frame_min(&a);
    x->load.cpu_pct = 101;
    assert_int_equal(pa_frame_encode(x, &b), 0);
    assert_int_equal(panelagent_frame_new_msgpack(&f, b.data, b.len, err, sizeof err),
                     PANELAGENT_EFRAME);
    assert_null(f);
    assert_string_equal(err, "load.cpu: must be within 0..100");
    /* truncated inside the last field */
    x->load.cpu_pct = 1;
    b.len = 0;
    assert_int_equal(pa_frame_encode(x, &b), 0);
    f = (panelagent_frame *)&a;
    assert_int_equal(panelagent_frame_new_msgpack(&f, b.data, b.len - 3, err, sizeof err),
                     PANELAGENT_EFRAME);
    assert_null(f);
    if (strstr(err, "traffic") == NULL)
        fail_msg("truncated frame: '%s'", err);
    assert_int_equal(panelagent_frame_new_msgpack(&f, NULL, 0, err, sizeof err),
                     PANELAGENT_EFRAME);
    assert_string_equal(err, "empty frame");
    assert_int_equal(panelagent_frame_new_msgpack(NULL, b.data, b.len, NULL, 0),
                     PANELAGENT_EINVAL);
    pa_buf_cleanup(&b);
    pa_arena_cleanup(&a);
}

/* Frame -> msgpack -> new_msgpack -> pa_builder_encode gives the same frame
 * with the new seq (and the ts it had). */
static void roundtrip_msgpack(const struct pa_frame *x)
{
    struct pa_arena d;
    struct pa_buf in, out;
    char err[256] = "", why[256];
    panelagent_frame *f = NULL;

    pa_arena_init(&d, 0, NULL);
    pa_buf_init(&in, NULL);
    pa_buf_init(&out, NULL);
    assert_int_equal(pa_frame_encode(x, &in), 0);
    int rv = panelagent_frame_new_msgpack(&f, in.data, in.len, err, sizeof err);
    if (rv != 0)
        fail_msg("new_msgpack: %d %s", rv, err);
    rv = pa_builder_encode(f, x->seq + 1 ? x->seq + 1 : 1, x->ts_ms, &out, err, sizeof err);
    if (rv != 0)
        fail_msg("pa_builder_encode: %d %s", rv, err);
    struct pa_frame *got = decode(&d, &out);
    assert_int_equal(got->seq, x->seq + 1 ? x->seq + 1 : 1);
    got->seq = x->seq;
    if (!tu_frame_eq(x, got, TU_EQ_IGNORE_UNKNOWN, why, sizeof why))
        fail_msg("new_msgpack round trip differs: %s", why);
    panelagent_frame_free(f);
    pa_buf_cleanup(&in);
    pa_buf_cleanup(&out);
    pa_arena_cleanup(&d);
}

static void t_new_msgpack_roundtrip(void **state)
{
    (void)state;
    struct pa_arena a;
    struct tu_rng r = {tu_seed(20240607)};

    pa_arena_init(&a, 0, NULL);
    roundtrip_msgpack(tu_frame_min(&a));
    roundtrip_msgpack(tu_frame_nimble(&a, 50, 3));
    roundtrip_msgpack(tu_frame_wowza(&a, 50, 4));
    for (int i = 0; i < (tu_quick() ? 30 : 300); i++) {
        pa_arena_reset(&a);
        roundtrip_msgpack(tu_frame_random(&a, &r, (unsigned)(i % 2)));
    }
    pa_arena_cleanup(&a);
}

/* A frame read from msgpack can be extended: the tree is found by name. */
static void t_new_msgpack_extend(void **state)
{
    (void)state;
    struct pa_arena a, d;
    struct pa_buf b;
    panelagent_frame *f = NULL;

    pa_arena_init(&a, 0, NULL);
    pa_arena_init(&d, 0, NULL);
    pa_buf_init(&b, NULL);
    assert_int_equal(panelagent_frame_new(&f), 0);
    assert_int_equal(panelagent_frame_set_server(f, "s", 1, "1"), 0);
    assert_int_equal(panelagent_frame_set_load(f, 1, 1, 1), 0);
    assert_int_equal(panelagent_frame_set_traffic(f, 1, 1, 1), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "v", "a", "i", "s1", 1, 1, 1, 1), 0);
    assert_int_equal(panelagent_frame_config_begin_map(f, "m"), 0);
    assert_int_equal(panelagent_frame_config_i64(f, "k", 1), 0);
    assert_int_equal(pa_builder_encode(f, 1, 1, &b, NULL, 0), 0);
    panelagent_frame_free(f);
    f = NULL;
    assert_int_equal(panelagent_frame_new_msgpack(&f, b.data, b.len, NULL, 0), 0);
    assert_int_equal(panelagent_frame_add_stream(f, "v", "a", "i", "s2", 2, 2, 2, 2), 0);
    EXPECT_FAIL(f, panelagent_frame_add_stream(f, "v", "a", "i", "s1", 2, 2, 2, 2),
                PANELAGENT_EINVAL, "streams[0].name: stream already in the frame");
    EXPECT_FAIL(f, panelagent_frame_config_i64(f, "m", 2), PANELAGENT_EINVAL,
                "config.m: duplicate key");
    EXPECT_FAIL(f, panelagent_frame_config_end(f), PANELAGENT_EINVAL, "no open map");
    b.len = 0;
    assert_int_equal(pa_builder_encode(f, 2, 1, &b, NULL, 0), 0);
    struct pa_frame *got = decode(&d, &b);
    assert_int_equal(got->n_vhosts, 1);
    assert_int_equal(got->vhosts[0].apps[0].instances[0].n_streams, 2);
    assert_string_equal(got->vhosts[0].apps[0].instances[0].streams[1].name, "s2");
    assert_int_equal(got->config.v.map.n, 1);
    panelagent_frame_free(f);
    pa_buf_cleanup(&b);
    pa_arena_cleanup(&a);
    pa_arena_cleanup(&d);
}

/* ---- allocation failures -------------------------------------------------------------------- */

/* Builds a frame step by step with allocation number |fail_at| failing;
 * every step that fails must fail with ENOMEM and leave the frame as it
 * was, and nothing may leak.  Returns whether an allocation failed. */
static bool build_with_failure(long fail_at)
{
    struct tu_alloc t;
    panelagent_frame *f = NULL;

    tu_alloc_init(&t);
    t.fail_at = fail_at;
    int rv = pa_builder_frame_new_with(&f, &t.pa);
    if (rv != 0) {
        assert_int_equal(rv, PANELAGENT_ENOMEM);
        assert_null(f);
        assert_int_equal(t.live, 0);
        return true;
    }
    /* required parts first, so the frame can be snapshotted */
    for (int step = 0; step < 3; step++) {
        rv = step == 0   ? panelagent_frame_set_server(f, "srv", 1, "v1")
             : step == 1 ? panelagent_frame_set_load(f, 1, 1, 2)
                         : panelagent_frame_set_traffic(f, 1, 2, 3);
        if (rv != 0) {
            assert_int_equal(rv, PANELAGENT_ENOMEM);
            assert_int_equal(panelagent_frame_check(f), PANELAGENT_EFRAME);
            panelagent_frame_free(f);
            assert_int_equal(t.live, 0);
            return true;
        }
    }
    for (int step = 0; step < 40; step++) {
        char n[32];
        struct snap s;
        long calls = t.calls, fail_at0 = t.fail_at;
        /* snapshots go through the frame's allocator too: not counted,
         * never failed */
        t.fail_at = 0;
        snap_take(f, &s);
        t.calls = calls;
        t.fail_at = fail_at0;
        long failures0 = t.failures;
        snprintf(n, sizeof n, "n%d", step);
        switch (step % 8) {
        case 0: rv = panelagent_frame_add_stream(f, n, "a", "i", "s", 1, 2, 3, 4); break;
        case 1: rv = panelagent_frame_add_stream(f, "n0", n, "i", "s", 1, 2, 3, 4); break;
        case 2: rv = panelagent_frame_add_conn(f, "192.0.2.9", 5, 6); break;
        case 3: rv = panelagent_frame_config_begin_map(f, n); break;
        case 4: rv = panelagent_frame_config_str(f, n, "value"); break;
        case 5: rv = panelagent_frame_add_server_ip(f, "::1"); break;
        case 6: rv = panelagent_frame_set_server(f, n, 2, "v2"); break;
        default: rv = panelagent_frame_check(f); break;
        }
        if (t.failures != failures0) {
            assert_int_equal(rv, PANELAGENT_ENOMEM);
            assert_string_equal(panelagent_frame_error(f), "out of memory");
            t.fail_at = 0;
            snap_same(f, &s);
            panelagent_frame_free(f);
            assert_int_equal(t.live, 0);
            return true;
        }
        assert_int_equal(rv, PANELAGENT_OK);
        pa_buf_cleanup(&s.b);
    }
    long failures0 = t.failures;
    rv = panelagent_frame_check(f);
    assert_int_equal(rv, t.failures != failures0 ? PANELAGENT_ENOMEM : PANELAGENT_OK);
    panelagent_frame_free(f);
    assert_int_equal(t.live, 0);
    return t.failures != failures0;
}

static void t_alloc_failures(void **state)
{
    (void)state;
    long n;
    for (n = 1; n < 5000; n++)
        if (!build_with_failure(n))
            break;
    assert_true(n > 20); /* the sweep did reach a lot of allocations */
    assert_true(n < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_roundtrip_every_setter),
        cmocka_unit_test(t_time_of_submit),
        cmocka_unit_test(t_public_encode),
        cmocka_unit_test(t_missing_required),
        cmocka_unit_test(t_reject_server),
        cmocka_unit_test(t_reject_ips),
        cmocka_unit_test(t_reject_load),
        cmocka_unit_test(t_reject_streams),
        cmocka_unit_test(t_limits_tree),
        cmocka_unit_test(t_reject_conns),
        cmocka_unit_test(t_limits_conns),
        cmocka_unit_test(t_config),
        cmocka_unit_test(t_config_depth),
        cmocka_unit_test(t_config_nodes),
        cmocka_unit_test(t_new_msgpack_bad),
        cmocka_unit_test(t_new_msgpack_roundtrip),
        cmocka_unit_test(t_new_msgpack_extend),
        cmocka_unit_test(t_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
