/*
 * test_frame_json.c - the JSON form of a frame (proto/src/frame_json.c).
 *
 * Round trips of the sample frames in tests/data through msgpack, uint64
 * values above 2^53, one table row per JSON error class, hostile nesting,
 * output escaping and allocation-failure sweeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <panelproto/frame.h>
#include <panelproto/frame_json.h>

/* ---- helpers ------------------------------------------------------------ */

static char *read_data(const char *name, size_t *len)
{
    const char *dir = getenv("PANELGATE_TEST_DATA");
    char path[1024];
    FILE *fp;
    char *buf;
    long n;

    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Parses |json|, returns its to_json text (malloc'd, NUL-terminated). */
static char *json_to_json(const char *json, size_t len, int flags)
{
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    struct pa_buf out;
    char *s;

    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&out, NULL);
    assert_int_equal(pa_frame_from_json(json, len, &a, &f, &err), 0);
    assert_int_equal(pa_frame_to_json(f, &out, flags), 0);
    s = strndup((const char *)out.data, out.len);
    assert_non_null(s);
    pa_buf_cleanup(&out);
    pa_arena_cleanup(&a);
    return s;
}

/* JSON -> frame -> JSON (j1) and -> msgpack -> frame -> JSON (j2): equal;
 * j1 read back gives j1 again and the same msgpack bytes. */
static void check_round_trip(const char *json, size_t len, int flags)
{
    struct pa_arena a;
    struct pa_frame *f1 = NULL, *f2 = NULL, *f3 = NULL;
    struct pa_frame_error err;
    struct pa_buf j1, j2, j3, mp, mp3;

    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&j1, NULL);
    pa_buf_init(&j2, NULL);
    pa_buf_init(&j3, NULL);
    pa_buf_init(&mp, NULL);
    pa_buf_init(&mp3, NULL);

    assert_int_equal(pa_frame_from_json(json, len, &a, &f1, &err), 0);
    assert_int_equal(pa_frame_to_json(f1, &j1, flags), 0);
    assert_int_equal(pa_frame_encode_checked(f1, NULL, &mp, &err), 0);
    assert_int_equal(pa_frame_decode(mp.data, mp.len, NULL, &a, &f2, &err), 0);
    assert_int_equal(pa_frame_to_json(f2, &j2, flags), 0);
    assert_int_equal(j1.len, j2.len);
    assert_memory_equal(j1.data, j2.data, j1.len);

    assert_int_equal(pa_frame_from_json((const char *)j1.data, j1.len, &a, &f3, &err), 0);
    assert_int_equal(pa_frame_to_json(f3, &j3, flags), 0);
    assert_int_equal(j1.len, j3.len);
    assert_memory_equal(j1.data, j3.data, j1.len);
    assert_int_equal(pa_frame_encode(f3, &mp3), 0);
    assert_int_equal(mp.len, mp3.len);
    assert_memory_equal(mp.data, mp3.data, mp.len);

    pa_buf_cleanup(&mp3);
    pa_buf_cleanup(&mp);
    pa_buf_cleanup(&j3);
    pa_buf_cleanup(&j2);
    pa_buf_cleanup(&j1);
    pa_arena_cleanup(&a);
}

/* ---- samples ------------------------------------------------------------ */

static void test_sample(const char *name, enum pa_agent_kind kind, uint32_t n_conns)
{
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    uint32_t v4 = 0, v6 = 0;
    size_t len;
    char *json = read_data(name, &len);

    pa_arena_init(&a, 0, NULL);
    assert_int_equal(pa_frame_from_json(json, len, &a, &f, &err), 0);
    assert_int_equal(f->server.kind, kind);
    assert_int_equal(f->n_conns, n_conns);
    assert_true(f->n_vhosts >= 1);
    assert_int_equal(f->config.type, PA_CV_MAP);
    assert_true(f->config.v.map.n > 0);
    for (uint32_t i = 0; i < f->n_conns; i++) {
        v4 += f->conns[i].ip.family == 4;
        v6 += f->conns[i].ip.family == 6;
    }
    assert_true(v4 > 0 && v6 > 0 && v4 + v6 == n_conns);
    pa_arena_cleanup(&a);

    check_round_trip(json, len, 0);
    check_round_trip(json, len, PA_JSON_PRETTY);
    free(json);
}

static void test_nimble(void **state)
{
    (void)state;
    test_sample("nimble.json", PA_KIND_NIMBLE, 300);
}

static void test_wowza(void **state)
{
    (void)state;
    test_sample("wowza.json", PA_KIND_WOWZA, 250);
}

/* ---- numbers -------------------------------------------------------------- */

#define SERVER "\"server\":{\"name\":\"s\",\"kind\":\"nimble\",\"version\":\"1\"}"
#define LOAD "\"load\":{\"cpu\":1.5,\"ram_used\":1,\"ram_total\":2}"
#define TRAFFIC "\"traffic\":{\"in\":0,\"out\":0,\"period_ms\":5000}"
#define FRAME_WITH(extra) "{\"v\":1,\"seq\":1,\"ts\":1," SERVER "," LOAD "," TRAFFIC extra "}"
#define FRAME FRAME_WITH("")

static void test_u64_above_2_53(void **state)
{
    static const char json[] =
        "{\"v\":1,\"seq\":\"18446744073709551615\",\"ts\":\"9007199254740993\"," SERVER ","
        "\"load\":{\"cpu\":0,\"ram_used\":\"00042\",\"ram_total\":9007199254740992},"
        "\"traffic\":{\"in\":\"9007199254740992\",\"out\":0,\"period_ms\":1}}";
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    char *out;

    (void)state;
    pa_arena_init(&a, 0, NULL);
    assert_int_equal(pa_frame_from_json(json, strlen(json), &a, &f, &err), 0);
    assert_true(f->seq == UINT64_MAX);
    assert_true(f->ts_ms == 9007199254740993ull);
    assert_true(f->load.ram_used == 42);
    assert_true(f->load.ram_total == 9007199254740992ull);
    assert_true(f->traffic.bytes_in == 9007199254740992ull);
    pa_arena_cleanup(&a);

    out = json_to_json(json, strlen(json), 0);
    assert_non_null(strstr(out, "\"seq\":\"18446744073709551615\""));
    assert_non_null(strstr(out, "\"ts\":\"9007199254740993\""));
    assert_non_null(strstr(out, "\"ram_total\":9007199254740992}"));
    assert_non_null(strstr(out, "\"in\":9007199254740992,")); /* 2^53 stays a number */
    assert_non_null(strstr(out, "\"cpu\":0.0,"));
    free(out);
    check_round_trip(json, strlen(json), 0);
}

static void test_config_values(void **state)
{
    static const char json[] = FRAME_WITH(
        ",\"config\":{\"i\":-7,\"u\":9007199254740992,\"f\":0.1,\"g\":1e300,\"h\":-2.5,"
        "\"whole\":50.0,\"b\":[true,false,null],\"e\":{},\"a\":[],\"s\":\"x\\u00e9\\n\"}");
    static const char want[] =
        "\"config\":{\"i\":-7,\"u\":9007199254740992,\"f\":0.1,\"g\":1e+300,"
        "\"h\":-2.5,\"whole\":50,\"b\":[true,false,null],\"e\":{},\"a\":[],\"s\":\"x\xc3\xa9\\u000a\"}";
    char *out;

    (void)state;
    out = json_to_json(json, strlen(json), 0);
    assert_non_null(strstr(out, want));
    free(out);
    check_round_trip(json, strlen(json), 0);
    check_round_trip(json, strlen(json), PA_JSON_PRETTY);
}

/* ---- errors ------------------------------------------------------------- */

struct err_case {
    const char *json;
    int code;
    const char *path;
};

static const struct err_case err_cases[] = {
    /* syntax */
    {"{", PA_FE_INVALID, ""},
    {"{\"v\":1,}", PA_FE_INVALID, ""},
    {FRAME " {}", PA_FE_INVALID, ""},
    {FRAME "x", PA_FE_INVALID, ""},
    {"", PA_FE_EMPTY, ""},
    {" \n\t ", PA_FE_EMPTY, ""},
    {"[1]", PA_FE_TYPE, ""},
    {"\"frame\"", PA_FE_TYPE, ""},
    /* unknown keys */
    {FRAME_WITH(",\"bogus\":1"), PA_FE_INVALID, "bogus"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"s\",\"kind\":\"nimble\",\"version\":\"1\","
     "\"x\\\"y\":1}," LOAD "," TRAFFIC "}",
     PA_FE_INVALID, "server.x\\x22y"},
    {FRAME_WITH(",\"vhosts\":[{\"name\":\"v\",\"apps\":[{\"name\":\"a\"},{\"name\":\"b\",\"nm\":1}]}]"),
     PA_FE_INVALID, "vhosts[0].apps[1].nm"},
    {FRAME_WITH(",\"conns\":[{\"ip\":\"192.0.2.1\",\"in\":1,\"out\":1,"
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}]"),
     PA_FE_INVALID, "conns[0].aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..."},
    {FRAME_WITH(",\"seq\":2"), PA_FE_DUPKEY, "seq"},
    /* missing */
    {"{\"v\":1,\"seq\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_MISSING, "ts"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"s\",\"version\":\"1\"}," LOAD "," TRAFFIC "}",
     PA_FE_MISSING, "server.kind"},
    {FRAME_WITH(",\"vhosts\":[{\"name\":\"v\",\"apps\":[{\"name\":\"a\",\"instances\":[{\"name\":\"i\","
                "\"streams\":[{\"name\":\"s\",\"viewers\":1,\"bitrate\":1,\"in\":1}]}]}]}]"),
     PA_FE_MISSING, "vhosts[0].apps[0].instances[0].streams[0].out"},
    {FRAME_WITH(",\"conns\":[{\"in\":1,\"out\":1}]"), PA_FE_MISSING, "conns[0].ip"},
    /* IPs */
    {FRAME_WITH(",\"conns\":[{\"ip\":\"192.0.2.1\",\"in\":1,\"out\":1},{\"ip\":\"300.1.2.3\",\"in\":1,\"out\":1}]"),
     PA_FE_IP, "conns[1].ip"},
    {FRAME_WITH(",\"conns\":[{\"ip\":\"2001:db8::1::2\",\"in\":1,\"out\":1}]"), PA_FE_IP, "conns[0].ip"},
    {FRAME_WITH(",\"conns\":[{\"ip\":\"\",\"in\":1,\"out\":1}]"), PA_FE_IP, "conns[0].ip"},
    {FRAME_WITH(",\"conns\":[{\"ip\":3221225985,\"in\":1,\"out\":1}]"), PA_FE_TYPE, "conns[0].ip"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"s\",\"ips\":[\"192.0.2.1\",\"fe80::1%eth0\"],"
     "\"kind\":\"nimble\",\"version\":\"1\"}," LOAD "," TRAFFIC "}",
     PA_FE_IP, "server.ips[1]"},
    /* types */
    {"{\"v\":1,\"seq\":true,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_TYPE, "seq"},
    {"{\"v\":1,\"seq\":null,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_TYPE, "seq"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":5,\"kind\":\"nimble\",\"version\":\"1\"}," LOAD
     "," TRAFFIC "}",
     PA_FE_TYPE, "server.name"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":[]," LOAD "," TRAFFIC "}", PA_FE_TYPE, "server"},
    {"{\"v\":1,\"seq\":1,\"ts\":1," SERVER ",\"load\":{\"cpu\":\"1\",\"ram_used\":1,\"ram_total\":2},"
     TRAFFIC "}",
     PA_FE_TYPE, "load.cpu"},
    {FRAME_WITH(",\"vhosts\":{}"), PA_FE_TYPE, "vhosts"},
    {FRAME_WITH(",\"vhosts\":[[]]"), PA_FE_TYPE, "vhosts[0]"},
    {FRAME_WITH(",\"config\":[]"), PA_FE_TYPE, "config"},
    {FRAME_WITH(",\"seq\":\"12a\""), PA_FE_DUPKEY, "seq"},
    {"{\"v\":1,\"seq\":\"12a\",\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_TYPE, "seq"},
    {"{\"v\":1,\"seq\":\"\",\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_TYPE, "seq"},
    {"{\"v\":1,\"seq\":\"-1\",\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_TYPE, "seq"},
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"s\",\"kind\":\"vlc\",\"version\":\"1\"}," LOAD
     "," TRAFFIC "}",
     PA_FE_INVALID, "server.kind"},
    /* numbers */
    {FRAME_WITH(",\"conns\":[{\"ip\":\"192.0.2.1\",\"in\":1,\"out\":-1}]"), PA_FE_RANGE, "conns[0].out"},
    {"{\"v\":1,\"seq\":1,\"ts\":1," SERVER "," LOAD ",\"traffic\":{\"in\":1.5,\"out\":0,\"period_ms\":1}}",
     PA_FE_TYPE, "traffic.in"},
    {"{\"v\":1,\"seq\":1,\"ts\":1," SERVER "," LOAD ",\"traffic\":{\"in\":1,\"out\":0,\"period_ms\":1e-3}}",
     PA_FE_TYPE, "traffic.period_ms"},
    {"{\"v\":1,\"seq\":9007199254740994,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_RANGE, "seq"},
    {"{\"v\":1,\"seq\":1e999,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_RANGE, "seq"},
    {"{\"v\":1,\"seq\":\"18446744073709551616\",\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_RANGE,
     "seq"},
    {"{\"v\":1,\"seq\":\"000000000000000000001\",\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_RANGE,
     "seq"},
    {"{\"v\":4294967296,\"seq\":1,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}", PA_FE_RANGE, "v"},
    {"{\"v\":1,\"seq\":1,\"ts\":1," SERVER ",\"load\":{\"cpu\":-1e999,\"ram_used\":1,\"ram_total\":2},"
     TRAFFIC "}",
     PA_FE_NONFINITE, "load.cpu"},
    {FRAME_WITH(",\"config\":{\"a\":{\"b\":[1,1e400]}}"), PA_FE_NONFINITE, "config.a.b[1]"},
    /* strings */
    {"{\"v\":1,\"seq\":1,\"ts\":1,\"server\":{\"name\":\"a\\u0000b\",\"kind\":\"nimble\",\"version\":\"1\"},"
     LOAD "," TRAFFIC "}",
     PA_FE_NUL, ""},
    {FRAME_WITH(",\"config\":{\"a\\u0000\":1}"), PA_FE_NUL, ""},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        const struct err_case *t = &err_cases[i];
        struct pa_arena a;
        struct pa_frame *f = (struct pa_frame *)&a; /* must come back NULL */
        struct pa_frame_error err;
        int rv;

        pa_arena_init(&a, 0, NULL);
        rv = pa_frame_from_json(t->json, strlen(t->json), &a, &f, &err);
        if (rv != t->code || strcmp(err.path, t->path) != 0 || err.code != rv)
            fail_msg("case %zu: got %s at \"%s\" (%s), want %s at \"%s\"\n  %s", i,
                     pa_frame_errname(rv), err.path, err.msg, pa_frame_errname(t->code),
                     t->path, t->json);
        assert_null(f);
        assert_true(err.msg[0] != '\0');
        pa_arena_cleanup(&a);
    }
}

/* The frame is accepted by the JSON reader but rejected by the real
 * decoder: the two layers compose as the CLI uses them. */
static void test_semantic_left_to_decoder(void **state)
{
    static const char json[] =
        "{\"v\":1,\"seq\":0,\"ts\":1," SERVER "," LOAD "," TRAFFIC "}";
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    struct pa_buf mp;

    (void)state;
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&mp, NULL);
    assert_int_equal(pa_frame_from_json(json, strlen(json), &a, &f, &err), 0);
    assert_int_equal(pa_frame_encode_checked(f, NULL, &mp, &err), PA_FE_RANGE);
    assert_string_equal(err.path, "seq");
    assert_int_equal(mp.len, 0);
    pa_buf_cleanup(&mp);
    pa_arena_cleanup(&a);
}

static void test_not_nul_terminated(void **state)
{
    static const char json[] = FRAME "GARBAGE";
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    char *copy = malloc(sizeof FRAME - 1);

    (void)state;
    assert_non_null(copy);
    memcpy(copy, json, sizeof FRAME - 1); /* exactly the frame, no NUL after */
    pa_arena_init(&a, 0, NULL);
    assert_int_equal(pa_frame_from_json(copy, sizeof FRAME - 1, &a, &f, &err), 0);
    assert_int_equal(pa_frame_from_json(json, sizeof json - 1, &a, &f, &err), PA_FE_INVALID);
    pa_arena_cleanup(&a);
    free(copy);
}

/* ---- nesting ------------------------------------------------------------ */

/* Parses head + n x open + n x close + tail. */
static int parse_repeated(const char *head, const char *open, size_t n, const char *close,
                          const char *tail, struct pa_frame_error *err)
{
    struct pa_buf b;
    struct pa_arena a;
    struct pa_frame *f = NULL;
    int rv;

    pa_buf_init(&b, NULL);
    assert_int_equal(pa_buf_append(&b, head, strlen(head)), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pa_buf_append(&b, open, strlen(open)), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pa_buf_append(&b, close, strlen(close)), 0);
    assert_int_equal(pa_buf_append(&b, tail, strlen(tail)), 0);
    pa_arena_init(&a, 0, NULL);
    rv = pa_frame_from_json((const char *)b.data, b.len, &a, &f, err);
    pa_arena_cleanup(&a);
    pa_buf_cleanup(&b);
    return rv;
}

static void test_deep_nesting(void **state)
{
    struct pa_frame_error err;
    char *s = malloc(100001);

    (void)state;
    assert_non_null(s);
    memset(s, '[', 100000);
    s[100000] = '\0';
    struct pa_arena a;
    struct pa_frame *f = NULL;
    pa_arena_init(&a, 0, NULL);
    assert_int_equal(pa_frame_from_json(s, 100000, &a, &f, &err), PA_FE_TOO_DEEP);
    memset(s, '{', 100000);
    assert_int_equal(pa_frame_from_json(s, 100000, &a, &f, &err), PA_FE_TOO_DEEP);
    pa_arena_cleanup(&a);
    free(s);

    /* balanced, deep, in the free-form config: frame 1, config 2, then
     * 62 arrays reach PA_JSON_MAX_DEPTH exactly */
    assert_int_equal(parse_repeated("{\"v\":1,\"seq\":1,\"ts\":1," SERVER "," LOAD "," TRAFFIC
                                    ",\"config\":{\"a\":",
                                    "[", 62, "]", "}}", &err),
                     0);
    assert_int_equal(parse_repeated("{\"v\":1,\"seq\":1,\"ts\":1," SERVER "," LOAD "," TRAFFIC
                                    ",\"config\":{\"a\":",
                                    "[", 63, "]", "}}", &err),
                     PA_FE_TOO_DEEP);
    assert_int_equal(parse_repeated("{\"config\":", "{\"k\":", 100000, "}", "}", &err),
                     PA_FE_TOO_DEEP);
    assert_int_equal(parse_repeated("", "[\"]\",", 5000, "]", "", &err), PA_FE_TOO_DEEP);
    /* brackets inside strings do not count */
    assert_int_equal(parse_repeated("{\"config\":{\"s\":\"", "[{\\\"", 1000, "", "\"}}", &err),
                     PA_FE_MISSING);
    assert_string_equal(err.path, "v");
}

/* ---- writing ------------------------------------------------------------ */

static void test_to_json_escapes(void **state)
{
    struct pa_ip ips[2] = {{.family = 4, .addr = {192, 0, 2, 1}},
                           {.family = 6, .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 1}}};
    struct pa_frame f = {
        .version = 1,
        .seq = 1,
        .ts_ms = 2,
        .server = {.name = "a\"b\\c\n\x01\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                   .ips = ips,
                   .n_ips = 2,
                   .kind = PA_KIND_WOWZA,
                   .version = "\xff\xc0\x80\xed\xa0\x80x\xe2\x82"},
        .load = {.cpu_pct = 12.5, .ram_used = 1, .ram_total = 2},
        .traffic = {.bytes_in = 3, .bytes_out = 4, .period_ms = 5},
        .config = {.type = PA_CV_MAP},
    };
    static const char want[] =
        "{\"v\":1,\"seq\":1,\"ts\":2,\"server\":{\"name\":\"a\\\"b\\\\c\\u000a\\u0001\x7f"
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"ips\":[\"192.0.2.1\",\"2001:db8::1\"],"
        "\"kind\":\"wowza\",\"version\":\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffdx\\ufffd\\ufffd\"},"
        "\"load\":{\"cpu\":12.5,\"ram_used\":1,\"ram_total\":2},"
        "\"traffic\":{\"in\":3,\"out\":4,\"period_ms\":5}}";
    struct pa_buf out;

    (void)state;
    pa_buf_init(&out, NULL);
    assert_int_equal(pa_frame_to_json(&f, &out, 0), 0);
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, out.len);

    /* appends; pretty output of the same frame re-reads to the same text */
    f.server.version = "4.8.27";
    out.len = 0;
    assert_int_equal(pa_frame_to_json(&f, &out, PA_JSON_PRETTY), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    assert_non_null(strstr((char *)out.data, "{\n  \"v\": 1,\n  \"seq\": 1,"));
    assert_non_null(strstr((char *)out.data, "\n    \"ips\": [\n      \"192.0.2.1\",\n"));
    char *again = json_to_json((char *)out.data, out.len - 1, PA_JSON_PRETTY);
    assert_string_equal(again, (char *)out.data);
    free(again);
    pa_buf_cleanup(&out);

    assert_int_equal(pa_frame_to_json(NULL, &out, 0), PA_FE_ARG);
}

static void test_doubles(void **state)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.0, "0.0"},        {-0.0, "-0.0"},   {50.0, "50.0"},     {12.5, "12.5"},
        {0.1, "0.1"},        {1.0 / 3, "0.3333333333333333"}, {1e-7, "1e-07"},
        {1e21, "1e+21"},     {100.0, "100.0"}, {99.999, "99.999"}, {0.30000000000000004, "0.30000000000000004"},
    };
    struct pa_frame f = {.version = 1, .seq = 1, .server = {.name = "s", .kind = PA_KIND_NIMBLE,
                                                             .version = "1"},
                         .load = {.ram_total = 1}, .config = {.type = PA_CV_MAP}};
    char want[64];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pa_buf out;
        pa_buf_init(&out, NULL);
        f.load.cpu_pct = cases[i].d;
        assert_int_equal(pa_frame_to_json(&f, &out, 0), 0);
        assert_int_equal(pa_buf_append(&out, "", 1), 0);
        snprintf(want, sizeof want, "\"cpu\":%s,", cases[i].text);
        if (!strstr((char *)out.data, want))
            fail_msg("cpu %.17g: want %s in %s", cases[i].d, want, (char *)out.data);

        /* reads back to the same double */
        struct pa_arena a;
        struct pa_frame *g = NULL;
        struct pa_frame_error err;
        pa_arena_init(&a, 0, NULL);
        assert_int_equal(pa_frame_from_json((char *)out.data, out.len - 1, &a, &g, &err), 0);
        assert_memory_equal(&g->load.cpu_pct, &cases[i].d, sizeof(double));
        pa_arena_cleanup(&a);
        pa_buf_cleanup(&out);
    }
}

/* ---- allocation failures -------------------------------------------- */

struct failing {
    int left; /* allocations that still succeed */
};

static void *f_malloc(size_t n, void *ud)
{
    struct failing *fl = ud;
    return fl->left-- > 0 ? malloc(n) : NULL;
}

static void *f_realloc(void *p, size_t n, void *ud)
{
    struct failing *fl = ud;
    return fl->left-- > 0 ? realloc(p, n) : NULL;
}

static void f_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static void test_nomem(void **state)
{
    struct failing fl;
    const struct pa_allocator mem = {f_malloc, f_realloc, f_free, &fl};
    size_t len;
    char *json = read_data("wowza.json", &len);
    struct pa_arena big, a;
    struct pa_frame *f = NULL, *g;
    struct pa_frame_error err;
    int rv, n;

    (void)state;
    pa_arena_init(&big, 0, NULL);
    assert_int_equal(pa_frame_from_json(json, len, &big, &f, &err), 0);

    /* from_json: every arena chunk allocation may fail */
    for (n = 0;; n++) {
        fl.left = n;
        pa_arena_init(&a, 0, &mem);
        g = NULL;
        rv = pa_frame_from_json(json, len, &a, &g, &err);
        pa_arena_cleanup(&a);
        if (rv == 0)
            break;
        assert_int_equal(rv, PA_FE_NOMEM);
        assert_null(g);
        assert_true(n < 1000);
    }
    /* a capped arena fails cleanly */
    pa_arena_init(&a, 8192, NULL);
    assert_int_equal(pa_frame_from_json(json, len, &a, &g, &err), PA_FE_NOMEM);
    pa_arena_cleanup(&a);

    /* to_json: every buffer growth may fail, and the buffer keeps its
     * previous contents */
    for (n = 0;; n++) {
        struct pa_buf out;
        fl.left = 1 << 20;
        pa_buf_init(&out, &mem);
        assert_int_equal(pa_buf_append(&out, "keep", 4), 0);
        fl.left = n;
        rv = pa_frame_to_json(f, &out, PA_JSON_PRETTY);
        if (rv == 0) {
            assert_true(out.len > 4);
            pa_buf_cleanup(&out);
            break;
        }
        assert_int_equal(rv, PA_FE_NOMEM);
        assert_int_equal(out.len, 4);
        assert_memory_equal(out.data, "keep", 4);
        pa_buf_cleanup(&out);
        assert_true(n < 1000);
    }
    pa_arena_cleanup(&big);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nimble),
        cmocka_unit_test(test_wowza),
        cmocka_unit_test(test_u64_above_2_53),
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_semantic_left_to_decoder),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_to_json_escapes),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
