/*
 * test_frame_reject.c - every way pa_frame_decode refuses a frame, one test
 * per rejection class (docs/.schema-notes.md), each case checking the code,
 * the exact path and, where the schema fixes it, the message.
 *
 * A case starts from a valid frame (Nimble-style, Wowza-style or minimal),
 * turned into a msgpack tree (testutil.h), edits it in up to three steps and
 * decodes the result through a counting allocator: a rejected frame must
 * leave *out NULL, fill struct pa_frame_error and leak nothing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include <panelproto/frame.h>
#include "testutil.h"

/* The case tables below leave trailing members out on purpose. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

/* ---- cases -------------------------------------------------------------- */

enum base { B_NIMBLE, B_WOWZA, B_MIN };

enum op {
    OP_NONE,
    OP_SET,  /* value at path := v */
    OP_DEL,  /* remove the entry at path */
    OP_ADD,  /* map at path gets "key": v */
    OP_ADDK, /* map at path gets k: v (any key node) */
    OP_DUP,  /* the entry at path is repeated at the end of its map */
};

struct vspec {
    enum tu_t t;
    uint64_t u;
    int64_t i;
    double f;
    const char *s;
    size_t len;
    int8_t ext;
};

#define V_NIL {.t = TU_NIL}
#define V_TRUE {.t = TU_BOOL, .u = 1}
#define V_UINT(x) {.t = TU_UINT, .u = (x)}
#define V_INT(x) {.t = TU_INT, .i = (x)}
#define V_F64(x) {.t = TU_F64, .f = (x)}
#define V_F32(x) {.t = TU_F32, .f = (x)}
#define V_STR(x) {.t = TU_STR, .s = (x), .len = sizeof(x) - 1}
#define V_BIN(x) {.t = TU_BIN, .s = (x), .len = sizeof(x) - 1}
#define V_RAW(x) {.t = TU_RAW, .s = (x), .len = sizeof(x) - 1}
#define V_EXT(ty, x) {.t = TU_EXT, .ext = (ty), .s = (x), .len = sizeof(x) - 1}
#define V_ARR {.t = TU_ARR}
#define V_MAP {.t = TU_MAP}

struct step {
    enum op op;
    const char *path;
    const char *key; /* OP_ADD */
    struct vspec v;
    struct vspec k; /* OP_ADDK */
};

enum tweak {
    T_NONE,
    T_CONNS_10,
    T_CONNS_19,
    T_VHOSTS_2,
    T_IPS_2,
    T_STREAMS_10,
    T_INSTANCES_2,
    T_APPS_5,
    T_CONFIG_5,
    T_CONFIG_32,
    T_UNKNOWN_2,
    T_UNKNOWN_0,
    T_NAME_9,
    T_NAME_6,
    T_STR_4,
    T_DEPTH_9,
    T_ARENA_1K,
};

struct rcase {
    const char *name;
    enum base base;
    struct step s[3];
    enum tweak tweak;
    int code;
    const char *path; /* exact; NULL: not checked */
    const char *msg;  /* prefix of err.msg; NULL: only non-empty */
};

static void apply_tweak(struct pa_frame_limits *lim, enum tweak t)
{
    switch (t) {
    case T_NONE:
        break;
    case T_CONNS_10:
        lim->max_conns = 10;
        break;
    case T_CONNS_19:
        lim->max_conns = 19;
        break;
    case T_VHOSTS_2:
        lim->max_vhosts = 2;
        break;
    case T_IPS_2:
        lim->max_server_ips = 2;
        break;
    case T_STREAMS_10:
        lim->max_streams = 10;
        break;
    case T_INSTANCES_2:
        lim->max_instances = 2;
        break;
    case T_APPS_5:
        lim->max_apps = 5;
        break;
    case T_CONFIG_5:
        lim->max_config_nodes = 5;
        break;
    case T_CONFIG_32:
        lim->max_config_nodes = 32;
        break;
    case T_UNKNOWN_2:
        lim->max_unknown_keys = 2;
        break;
    case T_UNKNOWN_0:
        lim->max_unknown_keys = 0;
        break;
    case T_NAME_9:
        lim->max_name_len = 9;
        break;
    case T_NAME_6:
        lim->max_name_len = 6;
        break;
    case T_STR_4:
        lim->max_str_len = 4;
        break;
    case T_DEPTH_9:
        lim->max_depth = 9;
        break;
    case T_ARENA_1K:
        lim->max_arena_bytes = 1024;
        break;
    }
}

static struct tu_node node_of(const struct vspec *v)
{
    struct tu_node n = tu_n(v->t);
    n.u = v->u;
    n.b = v->u != 0;
    n.i = v->i;
    n.f = v->f;
    n.p = v->s;
    n.len = v->len;
    n.ext = v->ext;
    return n;
}

static bool apply_step(struct tu_pool *pool, struct tu_node *root, const struct step *s)
{
    struct tu_node *parent = NULL, *m;
    uint32_t slot = 0;

    switch (s->op) {
    case OP_NONE:
        return true;
    case OP_SET:
        return tu_set(root, s->path, node_of(&s->v));
    case OP_DEL:
        return tu_del(root, s->path);
    case OP_ADD:
        return tu_add(pool, root, s->path, s->key, node_of(&s->v));
    case OP_ADDK:
        m = tu_at(root, s->path);
        if (m == NULL || m->t != TU_MAP)
            return false;
        tu_putk(pool, m, node_of(&s->k), node_of(&s->v));
        return true;
    case OP_DUP:
        if (tu_find(root, s->path, &parent, &slot) == NULL || parent == NULL ||
            parent->t != TU_MAP)
            return false;
        tu_putk(pool, parent, parent->kids[slot - 1], parent->kids[slot]);
        return true;
    }
    return false;
}

static struct pa_frame *build_base(struct pa_arena *a, enum base b)
{
    switch (b) {
    case B_NIMBLE:
        return tu_frame_nimble(a, 20, 1);
    case B_WOWZA:
        return tu_frame_wowza(a, 20, 1);
    default:
        return tu_frame_min(a);
    }
}

/* The bytes of |c| applied to its base frame (pool-owned). */
static uint8_t *case_bytes(const struct rcase *c, struct tu_pool *pool, struct pa_arena *a,
                           size_t *len)
{
    struct tu_node root = tu_frame_tree(pool, build_base(a, c->base));
    for (size_t i = 0; i < TU_ARRAY_LEN(c->s); i++)
        if (!apply_step(pool, &root, &c->s[i]))
            fail_msg("%s: step %zu: no such path \"%s\"", c->name, i, c->s[i].path);
    return tu_bytes(pool, &root, len);
}

/* Decodes |p| and checks the outcome against |c|; prints and returns false
 * on a mismatch. */
static bool check_decode(const struct rcase *c, const uint8_t *p, size_t len,
                         const struct pa_frame_limits *lim)
{
    struct tu_alloc t;
    struct pa_arena d;
    struct pa_frame *out = (struct pa_frame *)&t; /* must become NULL */
    struct pa_frame_error err;
    bool ok = true;
    char hex[200];

    tu_alloc_init(&t);
    pa_arena_init(&d, 0, &t.pa);
    memset(&err, 0x5a, sizeof err);
    int rv = pa_frame_decode(p, len, lim, &d, &out, &err);

    if (rv != c->code || err.code != c->code) {
        print_error("%s: want %s, got %s (err.code %d) at \"%.160s\": %.96s\n", c->name,
                    pa_frame_errname(c->code), pa_frame_errname(rv), err.code,
                    rv ? err.path : "", rv ? err.msg : "");
        ok = false;
    } else if (rv != 0) {
        if (out != NULL) {
            print_error("%s: *out not NULL on failure\n", c->name);
            ok = false;
        }
        if (memchr(err.path, '\0', sizeof err.path) == NULL ||
            memchr(err.msg, '\0', sizeof err.msg) == NULL) {
            print_error("%s: path or msg not terminated\n", c->name);
            ok = false;
        } else {
            if (c->path != NULL && strcmp(err.path, c->path) != 0) {
                print_error("%s: path want \"%s\" got \"%s\" (msg %s)\n", c->name, c->path,
                            err.path, err.msg);
                ok = false;
            }
            if (err.msg[0] == '\0' ||
                (c->msg != NULL && strncmp(err.msg, c->msg, strlen(c->msg)) != 0)) {
                print_error("%s: msg want \"%s...\" got \"%s\"\n", c->name,
                            c->msg ? c->msg : "", err.msg);
                ok = false;
            }
        }
        if (err.offset > len) {
            print_error("%s: offset %zu past the input (%zu)\n", c->name, err.offset, len);
            ok = false;
        }
    }
    if (!ok)
        print_error("  input (%zu bytes): %s\n", len, tu_hex(p, len, hex, sizeof hex));
    pa_arena_cleanup(&d);
    if (t.live != 0) {
        print_error("%s: %ld blocks leaked\n", c->name, t.live);
        ok = false;
    }
    return ok;
}

static bool run_case(const struct rcase *c)
{
    struct tu_pool pool = {0};
    struct pa_arena a;
    struct pa_frame_limits lim;
    size_t len;

    pa_arena_init(&a, 0, NULL);
    uint8_t *p = case_bytes(c, &pool, &a, &len);
    pa_frame_limits_default(&lim);
    apply_tweak(&lim, c->tweak);
    bool ok = check_decode(c, p, len, &lim);
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
    return ok;
}

static void run_table(const struct rcase *cases, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!run_case(&cases[i]))
            bad++;
    if (bad)
        fail_msg("%zu of %zu cases failed", bad, n);
}

#define RUN(table) run_table(table, TU_ARRAY_LEN(table))

/* Decodes raw bytes with default limits against an expected outcome. */
static bool run_raw(const char *name, const void *p, size_t len, int code, const char *path,
                    const char *msg)
{
    struct rcase c = {.name = name, .code = code, .path = path, .msg = msg};
    return check_decode(&c, p, len, NULL);
}

#define STREAM0 "vhosts[0].apps[0].instances[0].streams[0]"

/* ---- wrong types ---------------------------------------------------------- */

static void test_reject_type(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"str for seq", B_NIMBLE, {{OP_SET, "seq", NULL, V_STR("5")}}, 0, PA_FE_TYPE, "seq", NULL},
        {"float for conns[3].in", B_NIMBLE, {{OP_SET, "conns[3].in", NULL, V_F64(1.0)}}, 0,
         PA_FE_TYPE, "conns[3].in", NULL},
        {"float32 for viewers", B_NIMBLE, {{OP_SET, STREAM0 ".viewers", NULL, V_F32(2.0)}}, 0,
         PA_FE_TYPE, STREAM0 ".viewers", NULL},
        {"float for period_ms", B_NIMBLE, {{OP_SET, "traffic.period_ms", NULL, V_F64(5000.0)}},
         0, PA_FE_TYPE, "traffic.period_ms", NULL},
        {"bin for server.name", B_NIMBLE, {{OP_SET, "server.name", NULL, V_BIN("abc")}}, 0,
         PA_FE_TYPE, "server.name", NULL},
        {"nil for ts", B_NIMBLE, {{OP_SET, "ts", NULL, V_NIL}}, 0, PA_FE_TYPE, "ts", NULL},
        {"nil for v", B_NIMBLE, {{OP_SET, "v", NULL, V_NIL}}, 0, PA_FE_TYPE, "v", NULL},
        {"nil for server.version", B_NIMBLE, {{OP_SET, "server.version", NULL, V_NIL}}, 0,
         PA_FE_TYPE, "server.version", NULL},
        {"nil for server", B_NIMBLE, {{OP_SET, "server", NULL, V_NIL}}, 0, PA_FE_TYPE, "server",
         NULL},
        {"bool for ram_total", B_NIMBLE, {{OP_SET, "load.ram_total", NULL, V_TRUE}}, 0,
         PA_FE_TYPE, "load.ram_total", NULL},
        {"str for cpu", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_STR("50")}}, 0, PA_FE_TYPE,
         "load.cpu", NULL},
        {"nil for cpu", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_NIL}}, 0, PA_FE_TYPE, "load.cpu",
         NULL},
        {"uint for kind", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_UINT(1)}}, 0, PA_FE_TYPE,
         "server.kind", NULL},
        {"array for server", B_NIMBLE, {{OP_SET, "server", NULL, V_ARR}}, 0, PA_FE_TYPE, "server",
         NULL},
        {"uint for load", B_NIMBLE, {{OP_SET, "load", NULL, V_UINT(3)}}, 0, PA_FE_TYPE, "load",
         NULL},
        {"map for vhosts", B_NIMBLE, {{OP_SET, "vhosts", NULL, V_MAP}}, 0, PA_FE_TYPE, "vhosts",
         NULL},
        {"str for vhosts[0]", B_NIMBLE, {{OP_SET, "vhosts[0]", NULL, V_STR("v")}}, 0, PA_FE_TYPE,
         "vhosts[0]", NULL},
        {"uint for conns[2]", B_NIMBLE, {{OP_SET, "conns[2]", NULL, V_UINT(5)}}, 0, PA_FE_TYPE,
         "conns[2]", NULL},
        {"map for apps", B_NIMBLE, {{OP_SET, "vhosts[0].apps", NULL, V_MAP}}, 0, PA_FE_TYPE,
         "vhosts[0].apps", NULL},
        {"array for config", B_NIMBLE, {{OP_SET, "config", NULL, V_ARR}}, 0, PA_FE_TYPE, "config",
         NULL},
        {"nil for config", B_NIMBLE, {{OP_SET, "config", NULL, V_NIL}}, 0, PA_FE_TYPE, "config",
         NULL},
        {"bin for server.ips", B_NIMBLE, {{OP_SET, "server.ips", NULL, V_BIN("\1\2\3\4")}}, 0,
         PA_FE_TYPE, "server.ips", NULL},
        {"bin in config", B_NIMBLE, {{OP_ADD, "config", "x", V_BIN("\1")}}, 0, PA_FE_TYPE,
         "config.x", NULL},
        {"bin deep in config", B_NIMBLE,
         {{OP_SET, "config.transcoder.profiles[2].height", NULL, V_BIN("")}}, 0, PA_FE_TYPE,
         "config.transcoder.profiles[2].height", NULL},
        {"uint key at top", B_NIMBLE, {{OP_ADDK, "", NULL, V_UINT(1), V_UINT(7)}}, 0, PA_FE_TYPE,
         "", NULL},
        {"nil key in server", B_NIMBLE, {{OP_ADDK, "server", NULL, V_UINT(1), V_NIL}}, 0,
         PA_FE_TYPE, "server", NULL},
        {"bin key in stream", B_NIMBLE, {{OP_ADDK, STREAM0, NULL, V_UINT(1), V_BIN("name")}}, 0,
         PA_FE_TYPE, STREAM0, NULL},
        {"int key in config", B_NIMBLE, {{OP_ADDK, "config.cache", NULL, V_UINT(1), V_INT(-1)}},
         0, PA_FE_TYPE, "config.cache", NULL},
    };
    RUN(cases);
}

/* ---- missing required fields -------------------------------------------- */

static void test_reject_missing(void **state)
{
    (void)state;
#define MISSING(p) {"missing " p, B_NIMBLE, {{OP_DEL, p}}, 0, PA_FE_MISSING, p, "missing"}
    static const struct rcase cases[] = {
        MISSING("v"),
        MISSING("seq"),
        MISSING("ts"),
        MISSING("server"),
        MISSING("load"),
        MISSING("traffic"),
        MISSING("server.name"),
        MISSING("server.kind"),
        MISSING("server.version"),
        MISSING("load.cpu"),
        MISSING("load.ram_used"),
        MISSING("load.ram_total"),
        MISSING("traffic.in"),
        MISSING("traffic.out"),
        MISSING("traffic.period_ms"),
        MISSING("vhosts[0].name"),
        MISSING("vhosts[0].apps[1].name"),
        MISSING("vhosts[0].apps[0].instances[0].name"),
        MISSING(STREAM0 ".name"),
        MISSING(STREAM0 ".viewers"),
        MISSING(STREAM0 ".bitrate"),
        MISSING("vhosts[0].apps[2].instances[0].streams[1].in"),
        MISSING(STREAM0 ".out"),
        MISSING("conns[5].ip"),
        MISSING("conns[0].in"),
        MISSING("conns[19].out"),
    };
#undef MISSING
    RUN(cases);

    /* everything gone: the first required field is named */
    struct rcase empty_map = {"empty map", .code = PA_FE_MISSING, .path = "v", .msg = "missing"};
    assert_true(check_decode(&empty_map, (const uint8_t *)"\x80", 1, NULL));
}

/* ---- out of range -------------------------------------------------------- */

static void test_reject_range(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"negative conns[17].out", B_NIMBLE, {{OP_SET, "conns[17].out", NULL, V_INT(-1)}}, 0,
         PA_FE_RANGE, "conns[17].out", "negative"},
        {"INT64_MIN conns[17].out", B_NIMBLE,
         {{OP_SET, "conns[17].out", NULL, V_INT(INT64_MIN)}}, 0, PA_FE_RANGE, "conns[17].out",
         "negative"},
        {"int8 -128", B_NIMBLE, {{OP_SET, "conns[17].out", NULL, V_RAW("\xd0\x80")}}, 0,
         PA_FE_RANGE, "conns[17].out", "negative"},
        {"negative fixint", B_NIMBLE, {{OP_SET, "conns[17].out", NULL, V_RAW("\xff")}}, 0,
         PA_FE_RANGE, "conns[17].out", "negative"},
        {"int64 -1", B_NIMBLE,
         {{OP_SET, "conns[17].out", NULL, V_RAW("\xd3\xff\xff\xff\xff\xff\xff\xff\xff")}}, 0,
         PA_FE_RANGE, "conns[17].out", "negative"},
        {"negative viewers", B_NIMBLE,
         {{OP_SET, "vhosts[0].apps[0].instances[0].streams[2].viewers", NULL, V_INT(-3)}}, 0,
         PA_FE_RANGE, "vhosts[0].apps[0].instances[0].streams[2].viewers", "negative"},
        {"negative ts", B_NIMBLE, {{OP_SET, "ts", NULL, V_INT(-1)}}, 0, PA_FE_RANGE, "ts",
         "negative"},
        {"negative v", B_NIMBLE, {{OP_SET, "v", NULL, V_INT(-1)}}, 0, PA_FE_RANGE, "v",
         "negative"},
        {"seq 0", B_NIMBLE, {{OP_SET, "seq", NULL, V_UINT(0)}}, 0, PA_FE_RANGE, "seq",
         "must be >= 1"},
        {"seq 0 as int64", B_NIMBLE,
         {{OP_SET, "seq", NULL, V_RAW("\xd3\x00\x00\x00\x00\x00\x00\x00\x00")}}, 0, PA_FE_RANGE,
         "seq", "must be >= 1"},
        {"cpu 100.5", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(100.5)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"cpu 100.5 float32", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F32(100.5)}}, 0,
         PA_FE_RANGE, "load.cpu", NULL},
        {"cpu just above 100", B_NIMBLE,
         {{OP_SET, "load.cpu", NULL, V_F64(100.00000000000001)}}, 0, PA_FE_RANGE, "load.cpu",
         NULL},
        {"cpu -0.001", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(-0.001)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"cpu 1e308", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(1e308)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"cpu uint 101", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_UINT(101)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"cpu UINT64_MAX", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_UINT(UINT64_MAX)}}, 0,
         PA_FE_RANGE, "load.cpu", NULL},
        {"cpu int -1", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_INT(-1)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"ram_total 0", B_MIN, {{OP_SET, "load.ram_total", NULL, V_UINT(0)}}, 0, PA_FE_RANGE,
         "load.ram_total", NULL},
        /* inconsistent values: PA_FE_INVALID at load.ram_used */
        {"ram_used > ram_total", B_NIMBLE,
         {{OP_SET, "load.ram_used", NULL, V_UINT((16ull << 30) + 1)}}, 0, PA_FE_INVALID,
         "load.ram_used", NULL},
        {"ram_used max", B_NIMBLE, {{OP_SET, "load.ram_used", NULL, V_UINT(UINT64_MAX)}}, 0,
         PA_FE_INVALID, "load.ram_used", NULL},
    };
    RUN(cases);

    /* ram_used arriving after ram_total is still compared */
    struct tu_pool pool = {0};
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_min(&a));
    struct tu_node *load = tu_at(&root, "load");
    tu_reverse_maps(load);
    assert_true(tu_set(&root, "load.ram_used", tu_uint(2)));
    size_t len;
    uint8_t *p = tu_bytes(&pool, &root, &len);
    struct rcase rev = {"ram_used last", .code = PA_FE_INVALID, .path = "load.ram_used"};
    assert_true(check_decode(&rev, p, len, NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

/* ---- NaN and infinities ---------------------------------------------------- */

static void test_reject_nonfinite(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"cpu NaN f64", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(NAN)}}, 0, PA_FE_NONFINITE,
         "load.cpu", NULL},
        {"cpu +Inf f64", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(INFINITY)}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu -Inf f64", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(-INFINITY)}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu NaN f32", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F32(NAN)}}, 0, PA_FE_NONFINITE,
         "load.cpu", NULL},
        {"cpu +Inf f32", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F32(INFINITY)}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu -Inf f32", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F32(-INFINITY)}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu negative quiet NaN", B_NIMBLE,
         {{OP_SET, "load.cpu", NULL, V_RAW("\xcb\xff\xf8\x00\x00\x00\x00\x00\x00")}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu signalling NaN", B_NIMBLE,
         {{OP_SET, "load.cpu", NULL, V_RAW("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x01")}}, 0,
         PA_FE_NONFINITE, "load.cpu", NULL},
        {"cpu f32 NaN payload", B_NIMBLE,
         {{OP_SET, "load.cpu", NULL, V_RAW("\xca\x7f\x80\x00\x01")}}, 0, PA_FE_NONFINITE,
         "load.cpu", NULL},
        {"config NaN f64", B_NIMBLE, {{OP_SET, "config.cache.ratio", NULL, V_F64(NAN)}}, 0,
         PA_FE_NONFINITE, "config.cache.ratio", NULL},
        {"config +Inf f64", B_NIMBLE, {{OP_SET, "config.cache.ratio", NULL, V_F64(INFINITY)}}, 0,
         PA_FE_NONFINITE, "config.cache.ratio", NULL},
        {"config +Inf f32", B_NIMBLE, {{OP_SET, "config.cache.ratio", NULL, V_F32(INFINITY)}}, 0,
         PA_FE_NONFINITE, "config.cache.ratio", NULL},
        {"config -Inf in array", B_NIMBLE,
         {{OP_SET, "config.hls.abr[1]", NULL, V_F64(-INFINITY)}}, 0, PA_FE_NONFINITE,
         "config.hls.abr[1]", NULL},
        {"config NaN f32 nested", B_NIMBLE,
         {{OP_SET, "config.transcoder.profiles[2].height", NULL, V_F32(NAN)}}, 0,
         PA_FE_NONFINITE, "config.transcoder.profiles[2].height", NULL},
        {"config -Inf f32 top", B_NIMBLE, {{OP_SET, "config.workers", NULL, V_F32(-INFINITY)}},
         0, PA_FE_NONFINITE, "config.workers", NULL},
    };
    RUN(cases);
}

/* ---- UTF-8 and NUL ---------------------------------------------------------- */

static const struct {
    const char *what;
    const char *s;
} bad_utf8[] = {
    {"overlong 2-byte /", "\xc0\xaf"},
    {"overlong 2-byte c1", "ok\xc1\xbf"},
    {"overlong 3-byte", "\xe0\x80\xaf"},
    {"overlong 3-byte max", "\xe0\x9f\xbf"},
    {"overlong 4-byte", "\xf0\x80\x80\xaf"},
    {"overlong 4-byte max", "\xf0\x8f\xbf\xbf"},
    {"high surrogate", "a\xed\xa0\x80"},
    {"low surrogate", "\xed\xbf\xbf" "b"},
    {"surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80"},
    {"truncated 3-byte", "\xe2\x82"},
    {"truncated at end", "abc\xf0\x9f\x98"},
    {"truncated before ASCII", "\xe2\x82z"},
    {"above U+10FFFF", "\xf4\x90\x80\x80"},
    {"lead f5", "\xf5\x80\x80\x80"},
    {"5-byte form", "\xf8\x88\x80\x80\x80"},
    {"lone continuation", "\x80"},
    {"byte fe", "x\xfe"},
    {"byte ff", "\xff"},
    {"bad continuation", "\xe2\x28\xa1"},
};

static void test_reject_utf8(void **state)
{
    (void)state;
    size_t bad = 0, n = 0;
    for (size_t i = 0; i < TU_ARRAY_LEN(bad_utf8); i++) {
        char name[7][64];
        const char *s = bad_utf8[i].s;
        struct vspec v = {.t = TU_STR, .s = s, .len = strlen(s)};
        struct rcase cases[7] = {
            {name[0], B_NIMBLE, {{OP_SET, "vhosts[0].apps[1].name", NULL, v}}, 0, PA_FE_UTF8,
             "vhosts[0].apps[1].name", NULL},
            {name[1], B_NIMBLE, {{OP_SET, "server.name", NULL, v}}, 0, PA_FE_UTF8, "server.name",
             NULL},
            {name[2], B_NIMBLE, {{OP_SET, "server.version", NULL, v}}, 0, PA_FE_UTF8,
             "server.version", NULL},
            {name[3], B_NIMBLE, {{OP_SET, "config.cache.path", NULL, v}}, 0, PA_FE_UTF8,
             "config.cache.path", NULL},
            {name[4], B_NIMBLE, {{OP_SET, "config.transcoder.profiles[3].name", NULL, v}}, 0,
             PA_FE_UTF8, "config.transcoder.profiles[3].name", NULL},
            /* keys: the key cannot be named, the path is its map */
            {name[5], B_NIMBLE, {{OP_ADDK, "config.rtmp", NULL, V_NIL, v}}, 0, PA_FE_UTF8,
             "config.rtmp", NULL},
            {name[6], B_NIMBLE, {{OP_ADDK, "conns[4]", NULL, V_UINT(1), v}}, 0, PA_FE_UTF8,
             "conns[4]", NULL},
        };
        for (size_t k = 0; k < 7; k++) {
            snprintf(name[k], sizeof name[k], "%s #%zu", bad_utf8[i].what, k);
            n++;
            if (!run_case(&cases[k]))
                bad++;
        }
    }
    /* an unknown top-level key */
    static const struct rcase top[] = {
        {"bad key at top", B_NIMBLE, {{OP_ADDK, "", NULL, V_UINT(1), V_STR("k\xc0\x80")}}, 0,
         PA_FE_UTF8, "", NULL},
        {"bad key in unknown value is not checked", B_MIN,
         {{OP_ADD, "", "zz", V_RAW("\x81\xa2\xc0\x80\x01")}}, 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(top); i++, n++)
        if (!run_case(&top[i]))
            bad++;
    if (bad)
        fail_msg("%zu of %zu cases failed", bad, n);
}

static void test_reject_nul(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"NUL in vhost name", B_NIMBLE, {{OP_SET, "vhosts[0].name", NULL, V_STR("ab\0c")}}, 0,
         PA_FE_NUL, "vhosts[0].name", NULL},
        {"NUL alone in server.name", B_NIMBLE, {{OP_SET, "server.name", NULL, V_STR("\0")}}, 0,
         PA_FE_NUL, "server.name", NULL},
        {"NUL at the end of a stream name", B_NIMBLE,
         {{OP_SET, STREAM0 ".name", NULL, V_STR("cam\0")}}, 0, PA_FE_NUL, STREAM0 ".name", NULL},
        {"NUL after kind", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("nimble\0")}}, 0,
         PA_FE_NUL, "server.kind", NULL},
        {"NUL in version", B_NIMBLE, {{OP_SET, "server.version", NULL, V_STR("4.1\0.2")}}, 0,
         PA_FE_NUL, "server.version", NULL},
        {"NUL in config string", B_NIMBLE, {{OP_SET, "config.cache.path", NULL, V_STR("/v\0")}},
         0, PA_FE_NUL, "config.cache.path", NULL},
        {"NUL in config key", B_NIMBLE,
         {{OP_ADDK, "config.cache", NULL, V_UINT(1), V_STR("k\0ey")}}, 0, PA_FE_NUL,
         "config.cache", NULL},
        {"NUL in unknown key", B_NIMBLE, {{OP_ADDK, "load", NULL, V_UINT(1), V_STR("\0")}}, 0,
         PA_FE_NUL, "load", NULL},
    };
    RUN(cases);
}

/* ---- IP addresses -------------------------------------------------------- */

static void test_reject_ip(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"5-byte conn ip", B_NIMBLE, {{OP_SET, "conns[2].ip", NULL, V_BIN("\1\2\3\4\5")}}, 0,
         PA_FE_IP, "conns[2].ip", NULL},
        {"0-byte server ip", B_NIMBLE, {{OP_SET, "server.ips[0]", NULL, V_BIN("")}}, 0,
         PA_FE_IP, "server.ips[0]", NULL},
        {"3-byte", B_NIMBLE, {{OP_SET, "conns[0].ip", NULL, V_BIN("\1\2\3")}}, 0, PA_FE_IP,
         "conns[0].ip", NULL},
        {"15-byte", B_NIMBLE,
         {{OP_SET, "conns[19].ip", NULL, V_BIN("0123456789abcde")}}, 0, PA_FE_IP,
         "conns[19].ip", NULL},
        {"17-byte", B_NIMBLE,
         {{OP_SET, "server.ips[2]", NULL, V_BIN("0123456789abcdefg")}}, 0, PA_FE_IP,
         "server.ips[2]", NULL},
        {"32-byte", B_NIMBLE,
         {{OP_SET, "conns[1].ip", NULL, V_BIN("0123456789abcdef0123456789abcdef")}}, 0,
         PA_FE_IP, "conns[1].ip", NULL},
        /* not bin at all: a type error at the same path */
        {"str instead of bin", B_NIMBLE, {{OP_SET, "conns[0].ip", NULL, V_STR("1.2.3.4")}}, 0,
         PA_FE_TYPE, "conns[0].ip", NULL},
        {"16-byte str", B_NIMBLE,
         {{OP_SET, "server.ips[1]", NULL, V_STR("0123456789abcdef")}}, 0, PA_FE_TYPE,
         "server.ips[1]", NULL},
        {"uint ip", B_NIMBLE, {{OP_SET, "conns[7].ip", NULL, V_UINT(0x7f000001)}}, 0,
         PA_FE_TYPE, "conns[7].ip", NULL},
        {"nil ip", B_NIMBLE, {{OP_SET, "conns[7].ip", NULL, V_NIL}}, 0, PA_FE_TYPE,
         "conns[7].ip", NULL},
    };
    RUN(cases);
}

/* ---- duplicate keys --------------------------------------------------------- */

static void test_reject_dupkey(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"seq twice", B_NIMBLE, {{OP_DUP, "seq"}}, 0, PA_FE_DUPKEY, "seq", NULL},
        {"v twice", B_MIN, {{OP_DUP, "v"}}, 0, PA_FE_DUPKEY, "v", NULL},
        {"server twice", B_NIMBLE, {{OP_DUP, "server"}}, 0, PA_FE_DUPKEY, "server", NULL},
        {"conns twice", B_NIMBLE, {{OP_DUP, "conns"}}, 0, PA_FE_DUPKEY, "conns", NULL},
        {"server.name twice", B_NIMBLE, {{OP_DUP, "server.name"}}, 0, PA_FE_DUPKEY,
         "server.name", NULL},
        {"server.ips twice", B_NIMBLE, {{OP_DUP, "server.ips"}}, 0, PA_FE_DUPKEY, "server.ips",
         NULL},
        {"load.cpu twice", B_NIMBLE, {{OP_DUP, "load.cpu"}}, 0, PA_FE_DUPKEY, "load.cpu", NULL},
        {"conns[4].in twice", B_NIMBLE, {{OP_DUP, "conns[4].in"}}, 0, PA_FE_DUPKEY,
         "conns[4].in", NULL},
        {"stream out twice", B_NIMBLE, {{OP_DUP, "vhosts[0].apps[0].instances[0].streams[1].out"}},
         0, PA_FE_DUPKEY, "vhosts[0].apps[0].instances[0].streams[1].out", NULL},
        {"apps twice", B_NIMBLE, {{OP_DUP, "vhosts[0].apps"}}, 0, PA_FE_DUPKEY, "vhosts[0].apps",
         NULL},
        {"same key, other str form", B_NIMBLE,
         {{OP_ADDK, "", NULL, V_UINT(2), V_RAW("\xd9\x03seq")}}, 0, PA_FE_DUPKEY, "seq", NULL},
        {"config key twice", B_NIMBLE, {{OP_DUP, "config.workers"}}, 0, PA_FE_DUPKEY,
         "config.workers", NULL},
        {"nested config key twice", B_NIMBLE, {{OP_DUP, "config.cache.size_mb"}}, 0,
         PA_FE_DUPKEY, "config.cache.size_mb", NULL},
        {"config key in array item twice", B_NIMBLE,
         {{OP_DUP, "config.transcoder.profiles[1].name"}}, 0, PA_FE_DUPKEY,
         "config.transcoder.profiles[1].name", NULL},
        {"config key twice, other value", B_NIMBLE,
         {{OP_ADD, "config.rtmp", "port", V_STR("x")}}, 0, PA_FE_DUPKEY, "config.rtmp.port",
         NULL},
        {"unknown key twice at top", B_NIMBLE,
         {{OP_ADD, "", "zz", V_UINT(1)}, {OP_ADD, "", "zz", V_NIL}}, 0, PA_FE_DUPKEY, "<key 10>",
         NULL},
        {"unknown key twice in conn", B_NIMBLE,
         {{OP_ADD, "conns[3]", "p", V_UINT(1)}, {OP_ADD, "conns[3]", "p", V_UINT(1)}}, 0,
         PA_FE_DUPKEY, "conns[3].<key 4>", NULL},
        {"unknown key twice in stream", B_NIMBLE,
         {{OP_ADD, STREAM0, "codec", V_STR("a")}, {OP_ADD, STREAM0, "codec", V_STR("b")}}, 0,
         PA_FE_DUPKEY, STREAM0 ".<key 6>", NULL},
        {"unknown key twice, escaped", B_MIN,
         {{OP_ADD, "", "a\"b\\", V_UINT(1)}, {OP_ADD, "", "a\"b\\", V_UINT(1)}}, 0,
         PA_FE_DUPKEY, "<key 7>", NULL},
    };
    RUN(cases);

    /* a config map large enough to take the sorted duplicate check */
    struct tu_pool pool = {0};
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_min(&a));
    struct tu_node cfg = tu_map();
    char keys[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02d", (i * 7) % 40);
        tu_put(&pool, &cfg, keys[i], tu_uint((uint64_t)i));
    }
    tu_put(&pool, &cfg, "k13", tu_nil());
    tu_put(&pool, &root, "config", cfg);
    size_t len;
    uint8_t *p = tu_bytes(&pool, &root, &len);
    struct rcase big = {"dup in a 41-key config", .code = PA_FE_DUPKEY, .path = "config.k13"};
    assert_true(check_decode(&big, p, len, NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

/* ---- extension types -------------------------------------------------------- */

static void test_reject_ext(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"timestamp32 for ts", B_NIMBLE, {{OP_SET, "ts", NULL, V_EXT(-1, "\0\0\0\1")}}, 0,
         PA_FE_EXT, "ts", NULL},
        {"timestamp64 for ts", B_NIMBLE,
         {{OP_SET, "ts", NULL, V_EXT(-1, "\0\0\0\0\0\0\0\1")}}, 0, PA_FE_EXT, "ts", NULL},
        {"timestamp96 (ext8) for ts", B_NIMBLE,
         {{OP_SET, "ts", NULL, V_EXT(-1, "\0\0\0\0\0\0\0\0\0\0\0\1")}}, 0, PA_FE_EXT, "ts", NULL},
        {"fixext1 for seq", B_NIMBLE, {{OP_SET, "seq", NULL, V_EXT(1, "a")}}, 0, PA_FE_EXT, "seq",
         NULL},
        {"ext8 for server.version", B_NIMBLE,
         {{OP_SET, "server.version", NULL, V_EXT(5, "abc")}}, 0, PA_FE_EXT, "server.version",
         NULL},
        {"ext16 raw", B_NIMBLE, {{OP_SET, "ts", NULL, V_RAW("\xc8\x00\x01\x05\x00")}}, 0,
         PA_FE_EXT, "ts", NULL},
        {"ext32 raw", B_NIMBLE, {{OP_SET, "ts", NULL, V_RAW("\xc9\x00\x00\x00\x01\x05\x00")}}, 0,
         PA_FE_EXT, "ts", NULL},
        {"fixext1 nested", B_NIMBLE, {{OP_SET, "conns[1].in", NULL, V_EXT(1, "a")}}, 0,
         PA_FE_EXT, "conns[1].in", NULL},
        {"fixext2 as IP", B_NIMBLE, {{OP_SET, "server.ips[1]", NULL, V_EXT(0, "ab")}}, 0,
         PA_FE_EXT, "server.ips[1]", NULL},
        {"fixext8 as a vhost", B_NIMBLE, {{OP_SET, "vhosts[0]", NULL, V_EXT(3, "abcdefgh")}}, 0,
         PA_FE_EXT, "vhosts[0]", NULL},
        {"fixext16 in config", B_NIMBLE,
         {{OP_SET, "config.rtmp.port", NULL, V_EXT(9, "0123456789abcdef")}}, 0, PA_FE_EXT,
         "config.rtmp.port", NULL},
        {"timestamp in config array", B_NIMBLE,
         {{OP_SET, "config.hls.abr[0]", NULL, V_EXT(-1, "\0\0\0\1")}}, 0, PA_FE_EXT,
         "config.hls.abr[0]", NULL},
        {"ext as config", B_NIMBLE, {{OP_SET, "config", NULL, V_EXT(1, "a")}}, 0, PA_FE_EXT,
         "config", NULL},
        {"ext in unknown value", B_NIMBLE, {{OP_ADD, "", "zz", V_RAW("\x92\x01\xd4\x01\x00")}},
         0, PA_FE_EXT, "<key 9>", NULL},
        {"ext as unknown value", B_NIMBLE, {{OP_ADD, "server", "zz", V_EXT(-1, "\0\0\0\1")}}, 0,
         PA_FE_EXT, "server.<key 4>", NULL},
        {"ext key in unknown map", B_NIMBLE,
         {{OP_ADD, STREAM0, "zz", V_RAW("\x81\xd4\x01\x00\x01")}}, 0, PA_FE_EXT, STREAM0 ".<key 5>",
         NULL},
        {"ext as a key", B_NIMBLE, {{OP_ADDK, "", NULL, V_UINT(1), V_EXT(1, "k")}}, 0, PA_FE_EXT,
         "", NULL},
        {"ext as a config key", B_NIMBLE,
         {{OP_ADDK, "config.cache", NULL, V_UINT(1), V_EXT(1, "k")}}, 0, PA_FE_EXT,
         "config.cache", NULL},
    };
    RUN(cases);
    assert_true(run_raw("ext as the whole input", "\xd4\x01\x00", 3, PA_FE_EXT, "", NULL));
    assert_true(run_raw("timestamp as the whole input", "\xd6\xff\x00\x00\x00\x01", 6,
                        PA_FE_EXT, "", NULL));
}

/* ---- count limits --------------------------------------------------------- */

static void test_reject_too_many(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"conns > max_conns", B_NIMBLE, {{OP_NONE}}, T_CONNS_10, PA_FE_TOO_MANY, "conns", NULL},
        {"conns = max_conns + 1", B_NIMBLE, {{OP_NONE}}, T_CONNS_19, PA_FE_TOO_MANY, "conns",
         NULL},
        {"vhosts > max_vhosts", B_WOWZA, {{OP_NONE}}, T_VHOSTS_2, PA_FE_TOO_MANY, "vhosts", NULL},
        {"server.ips > max", B_NIMBLE, {{OP_NONE}}, T_IPS_2, PA_FE_TOO_MANY, "server.ips", NULL},
        /* totals over the whole frame: 8 + 3 streams > 10 */
        {"streams total across instances", B_NIMBLE, {{OP_NONE}}, T_STREAMS_10, PA_FE_TOO_MANY,
         "vhosts[0].apps[1].instances[0].streams", NULL},
        {"instances total across apps", B_NIMBLE, {{OP_NONE}}, T_INSTANCES_2, PA_FE_TOO_MANY,
         "vhosts[0].apps[2].instances", NULL},
        {"apps total across vhosts", B_WOWZA, {{OP_NONE}}, T_APPS_5, PA_FE_TOO_MANY,
         "vhosts[1].apps", NULL},
        /* config root, rtmp, port, enabled, hls: the 6th value is refused */
        {"config nodes", B_NIMBLE, {{OP_NONE}}, T_CONFIG_5, PA_FE_TOO_MANY,
         "config.hls.segment_s", NULL},
        /* the Nimble config holds 33 values: the last one is refused */
        {"config nodes off by one", B_NIMBLE, {{OP_NONE}}, T_CONFIG_32, PA_FE_TOO_MANY,
         "config.logging", NULL},
        {"unknown keys over the limit", B_NIMBLE,
         {{OP_ADD, "server", "u1", V_NIL}, {OP_ADD, "conns[0]", "u2", V_NIL},
          {OP_ADD, "", "u3", V_NIL}}, T_UNKNOWN_2, PA_FE_TOO_MANY, "<key 9>", NULL},
        {"unknown key with none allowed", B_MIN, {{OP_ADD, "traffic", "x", V_NIL}}, T_UNKNOWN_0,
         PA_FE_TOO_MANY, "traffic.<key 3>", NULL},
        {"unknown key path is escaped and cut", B_MIN,
         {{OP_ADD, "", "k\x01\"\xc3\xa9" "0123456789012345678901234567890123456789", V_NIL}},
         T_UNKNOWN_0, PA_FE_TOO_MANY, "<key 6>",
         NULL},
    };
    RUN(cases);

    /* exactly at each limit decodes */
    static const struct rcase at_limit[] = {
        {"33 config values allowed", B_NIMBLE, {{OP_NONE}}, T_NONE, 0, NULL, NULL},
    };
    struct pa_frame_limits lim;
    struct tu_pool pool = {0};
    struct pa_arena a;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    uint8_t *p = case_bytes(&at_limit[0], &pool, &a, &len);
    pa_frame_limits_default(&lim);
    lim.max_config_nodes = 33;
    lim.max_conns = 20;
    lim.max_server_ips = 3;
    lim.max_streams = 13;
    lim.max_instances = 3;
    lim.max_apps = 3;
    lim.max_vhosts = 1;
    assert_true(check_decode(&at_limit[0], p, len, &lim));

    /* 65 server addresses with the default limit of 64 */
    struct tu_node root = tu_frame_tree(&pool, tu_frame_min(&a));
    struct tu_node ips = tu_arr();
    for (int i = 0; i < 65; i++)
        tu_push(&pool, &ips, tu_bin("\x0a\x00\x00\x01", 4));
    assert_true(tu_add(&pool, &root, "server", "ips", ips));
    p = tu_bytes(&pool, &root, &len);
    struct rcase ips65 = {"65 server ips", .code = PA_FE_TOO_MANY, .path = "server.ips"};
    assert_true(check_decode(&ips65, p, len, NULL));

    /* 65 unknown keys with the default limit of 64 */
    root = tu_frame_tree(&pool, tu_frame_min(&a));
    char keys[65][16];
    for (int i = 0; i < 65; i++) {
        snprintf(keys[i], sizeof keys[i], "u%d", i + 1);
        tu_put(&pool, &root, keys[i], tu_uint(1));
    }
    p = tu_bytes(&pool, &root, &len);
    struct rcase u65 = {"65 unknown keys", .code = PA_FE_TOO_MANY, .path = "<key 70>"};
    assert_true(check_decode(&u65, p, len, NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

/* ---- string lengths --------------------------------------------------------- */

static void test_reject_too_long(void **state)
{
    (void)state;
    static char s256[257], s1025[1026];
    memset(s256, 'a', 256);
    memset(s1025, 'b', 1025);
    struct vspec v256 = {.t = TU_STR, .s = s256, .len = 256};
    struct vspec v1025 = {.t = TU_STR, .s = s1025, .len = 1025};
    const struct rcase cases[] = {
        {"server.name 256 bytes", B_NIMBLE, {{OP_SET, "server.name", NULL, v256}}, 0,
         PA_FE_TOO_LONG, "server.name", NULL},
        {"vhost name 256 bytes", B_NIMBLE, {{OP_SET, "vhosts[0].name", NULL, v256}}, 0,
         PA_FE_TOO_LONG, "vhosts[0].name", NULL},
        {"stream name 256 bytes", B_NIMBLE, {{OP_SET, STREAM0 ".name", NULL, v256}}, 0,
         PA_FE_TOO_LONG, STREAM0 ".name", NULL},
        {"kind 256 bytes", B_NIMBLE, {{OP_SET, "server.kind", NULL, v256}}, 0, PA_FE_TOO_LONG,
         "server.kind", NULL},
        {"version 1025 bytes", B_NIMBLE, {{OP_SET, "server.version", NULL, v1025}}, 0,
         PA_FE_TOO_LONG, "server.version", NULL},
        {"config string 1025 bytes", B_NIMBLE, {{OP_SET, "config.cache.path", NULL, v1025}}, 0,
         PA_FE_TOO_LONG, "config.cache.path", NULL},
        {"config key 256 bytes", B_NIMBLE, {{OP_ADDK, "config.cache", NULL, V_NIL, v256}}, 0,
         PA_FE_TOO_LONG, "config.cache", NULL},
        {"unknown key 256 bytes", B_NIMBLE, {{OP_ADDK, "", NULL, V_NIL, v256}}, 0,
         PA_FE_TOO_LONG, "", NULL},
        {"name over a lowered limit", B_MIN, {{OP_SET, "server.name", NULL, V_STR("abcdefghij")}},
         T_NAME_9, PA_FE_TOO_LONG, "server.name", NULL},
        {"version over a lowered limit", B_NIMBLE, {{OP_NONE}}, T_STR_4, PA_FE_TOO_LONG,
         "server.version", NULL},
    };
    run_table(cases, TU_ARRAY_LEN(cases));
}

static void test_small_name_limit_keeps_schema_keys(void **state)
{
    /* max_name_len bounds names and peer keys; pa_frame_limits_check()
     * accepts 6, so a frame whose names fit must still decode even though
     * schema keys such as "ram_total" are longer than 6 bytes */
    (void)state;
    static const struct rcase cases[] = {
        {"max_name_len 6, short names", B_MIN, {{OP_NONE}}, T_NAME_6, 0, NULL, NULL},
    };
    struct pa_frame_limits lim;
    pa_frame_limits_default(&lim);
    apply_tweak(&lim, T_NAME_6);
    assert_int_equal(pa_frame_limits_check(&lim), 0);
    RUN(cases);
}

/* ---- nesting depth ------------------------------------------------------------ */

/* "\x91" * n followed by a 1: n nested arrays. */
static uint8_t *deep_arrays(struct tu_pool *pool, size_t n, size_t *len)
{
    uint8_t *p = tu_pool_alloc(pool, n + 1);
    memset(p, 0x91, n);
    p[n] = 0x01;
    *len = n + 1;
    return p;
}

static void test_reject_too_deep(void **state)
{
    (void)state;
    struct tu_pool pool = {0};
    struct pa_arena a;
    struct pa_frame_limits lim;
    size_t len, dlen;
    uint8_t *p;
    char path[256];
    pa_arena_init(&a, 0, NULL);
    pa_frame_limits_default(&lim);

    /* config maps nested 20 deep: the config map is at depth 2, so the map
     * at config + 15 x ".a" would be the 17th level */
    struct tu_node root = tu_frame_tree(&pool, tu_frame_min(&a));
    struct tu_node inner = tu_map();
    for (int i = 0; i < 20; i++) {
        struct tu_node m = tu_map();
        tu_put(&pool, &m, "a", inner);
        inner = m;
    }
    tu_put(&pool, &root, "config", inner);
    p = tu_bytes(&pool, &root, &len);
    strcpy(path, "config");
    for (int i = 0; i < 15; i++)
        strcat(path, ".a");
    struct rcase cmaps = {"config maps 20 deep", .code = PA_FE_TOO_DEEP, .path = path};
    assert_true(check_decode(&cmaps, p, len, NULL));

    /* the deepest allowed config under max_depth 9: config + 7 levels */
    for (int extra = 0; extra < 2; extra++) {
        root = tu_frame_tree(&pool, tu_frame_min(&a));
        inner = tu_map();
        for (int i = 0; i < 7 + extra; i++) {
            struct tu_node m = tu_map();
            tu_put(&pool, &m, "a", inner);
            inner = m;
        }
        tu_put(&pool, &root, "config", inner);
        p = tu_bytes(&pool, &root, &len);
        strcpy(path, "config");
        for (int i = 0; i < 7 + extra; i++)
            strcat(path, ".a");
        struct rcase c9 = {extra ? "config one past max_depth 9" : "config at max_depth 9",
                           .code = extra ? PA_FE_TOO_DEEP : 0, .path = path};
        lim.max_depth = 9;
        assert_true(check_decode(&c9, p, len, &lim));
        lim.max_depth = 16;
    }

    /* 100000 nested arrays: refused quickly, without deep recursion */
    uint8_t *deep = deep_arrays(&pool, 100000, &dlen);
    static const struct {
        const char *name, *at, *key;
        const char *path;
    } where[] = {
        {"deep unknown value at top", "", "zz", "<key 9>"},
        {"deep unknown value in a stream", STREAM0, "zz", STREAM0 ".<key 5>"},
        {"deep config value", "config", "x",
         "config.x[0][0][0][0][0][0][0][0][0][0][0][0][0][0]"},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(where); i++) {
        root = tu_frame_tree(&pool, tu_frame_nimble(&a, 2, 1));
        assert_true(tu_add(&pool, &root, where[i].at, where[i].key, tu_raw(deep, dlen)));
        p = tu_bytes(&pool, &root, &len);
        struct rcase c = {where[i].name, .code = PA_FE_TOO_DEEP, .path = where[i].path};
        clock_t t0 = clock();
        assert_true(check_decode(&c, p, len, NULL));
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        if (secs > 1.0)
            fail_msg("%s took %.2f s", where[i].name, secs);
    }

    /* 100000 nested maps {"a": {"a": ...}} as an unknown value */
    size_t n = 100000;
    uint8_t *maps = tu_pool_alloc(&pool, 3 * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(maps + 3 * i, "\x81\xa1" "a", 3);
    maps[3 * n] = 0xc0;
    root = tu_frame_tree(&pool, tu_frame_min(&a));
    tu_put(&pool, &root, "zz", tu_raw(maps, 3 * n + 1));
    p = tu_bytes(&pool, &root, &len);
    struct rcase cm = {"deep maps unknown", .code = PA_FE_TOO_DEEP, .path = "<key 6>"};
    assert_true(check_decode(&cm, p, len, NULL));

    /* an unknown map inside a stream (depth 10) under max_depth 9 */
    root = tu_frame_tree(&pool, tu_frame_nimble(&a, 2, 1));
    assert_true(tu_add(&pool, &root, STREAM0, "zz", tu_map()));
    p = tu_bytes(&pool, &root, &len);
    struct rcase cs = {"unknown map below a stream", .code = PA_FE_TOO_DEEP,
                       .path = STREAM0 ".<key 5>"};
    lim.max_depth = 9;
    assert_true(check_decode(&cs, p, len, &lim));
    /* the same frame without it is fine at depth 9 */
    assert_true(tu_del(&root, STREAM0 ".zz"));
    assert_true(tu_add(&pool, &root, STREAM0, "zz", tu_uint(1)));
    p = tu_bytes(&pool, &root, &len);
    struct rcase ok9 = {"scalar unknown below a stream", .code = 0};
    assert_true(check_decode(&ok9, p, len, &lim));

    /* the whole input a 100000-deep array: not a map, refused at once */
    clock_t t0 = clock();
    assert_true(run_raw("deep array input", deep, dlen, PA_FE_TYPE, "", NULL));
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);

    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

/* ---- declared lengths past the input ---------------------------------------- */

static void test_reject_truncated(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"str32 claiming 4 GB", B_NIMBLE,
         {{OP_SET, "server.name", NULL, V_RAW("\xdb\xff\xff\xff\xff" "abc")}}, 0,
         PA_FE_TRUNCATED, "server.name", NULL},
        {"str16 claiming 64 KB", B_NIMBLE,
         {{OP_SET, "server.version", NULL, V_RAW("\xda\xff\xff" "abc")}}, 0, PA_FE_TRUNCATED,
         "server.version", NULL},
        {"array32 of 2^32-1 conns", B_NIMBLE,
         {{OP_SET, "conns", NULL, V_RAW("\xdd\xff\xff\xff\xff")}}, 0, PA_FE_TRUNCATED, "conns",
         NULL},
        {"array16 of vhosts", B_NIMBLE, {{OP_SET, "vhosts", NULL, V_RAW("\xdc\xff\xff")}}, 0,
         PA_FE_TRUNCATED, "vhosts", NULL},
        {"array32 of server ips", B_MIN,
         {{OP_ADD, "server", "ips", V_RAW("\xdd\x00\x01\x00\x00")}}, 0, PA_FE_TRUNCATED,
         "server.ips", NULL},
        {"huge map32 config", B_NIMBLE, {{OP_SET, "config", NULL, V_RAW("\xdf\x7f\xff\xff\xff")}},
         0, PA_FE_TRUNCATED, "config", NULL},
        {"huge map32 in config", B_NIMBLE,
         {{OP_SET, "config.rtmp", NULL, V_RAW("\xdf\xff\xff\xff\xff")}}, 0, PA_FE_TRUNCATED,
         "config.rtmp", NULL},
        {"huge array32 in config", B_NIMBLE,
         {{OP_SET, "config.hls.abr", NULL, V_RAW("\xdd\xff\xff\xff\xff")}}, 0, PA_FE_TRUNCATED,
         "config.hls.abr", NULL},
        {"map32 for a conn", B_NIMBLE,
         {{OP_SET, "conns[0]", NULL, V_RAW("\xdf\x00\x10\x00\x00")}}, 0, PA_FE_TRUNCATED,
         "conns[0]", NULL},
        {"bin32 ip claiming 4 GB", B_NIMBLE,
         {{OP_SET, "conns[0].ip", NULL, V_RAW("\xc6\xff\xff\xff\xff")}}, 0, PA_FE_TRUNCATED,
         "conns[0].ip", NULL},
        {"huge array in unknown value", B_NIMBLE,
         {{OP_ADD, "", "zz", V_RAW("\xdd\xff\xff\xff\xff")}}, 0, PA_FE_TRUNCATED, "<key 9>", NULL},
        {"huge bin in unknown value", B_NIMBLE,
         {{OP_ADD, "load", "zz", V_RAW("\xc6\x7f\xff\xff\xff")}}, 0, PA_FE_TRUNCATED,
         "load.<key 3>", NULL},
        {"huge str key", B_NIMBLE,
         {{OP_ADDK, "traffic", NULL, V_NIL, V_RAW("\xdb\xff\xff\xff\xf0")}}, 0,
         PA_FE_TRUNCATED, "traffic", NULL},
    };
    size_t bad = 0;
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        const struct rcase *c = &cases[i];
        struct tu_pool pool = {0};
        struct pa_arena a, d;
        struct tu_alloc t;
        struct pa_frame *out;
        size_t len;
        pa_arena_init(&a, 0, NULL);
        uint8_t *p = case_bytes(c, &pool, &a, &len);
        if (!check_decode(c, p, len, NULL))
            bad++;
        /* nothing is allocated for the declared size */
        tu_alloc_init(&t);
        pa_arena_init(&d, 0, &t.pa);
        pa_frame_decode(p, len, NULL, &d, &out, NULL);
        if (t.max_request > 64 * 1024 || t.total_bytes > 256 * 1024) {
            print_error("%s: allocated %zu bytes (largest %zu)\n", c->name, t.total_bytes,
                        t.max_request);
            bad++;
        }
        pa_arena_cleanup(&d);
        tu_pool_free(&pool);
        pa_arena_cleanup(&a);
    }
    assert_true(run_raw("top-level map32 claiming 2^32-1 pairs", "\xdf\xff\xff\xff\xff\xa1v\x01",
                        8, PA_FE_TRUNCATED, "", NULL));
    assert_true(run_raw("lone map16 header", "\xde\x00", 2, PA_FE_TRUNCATED, "", NULL));
    if (bad)
        fail_msg("%zu truncation cases failed", bad);

    /* every proper prefix of a valid frame */
    struct tu_pool pool = {0};
    struct pa_arena a;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_wowza(&a, 5, 2));
    uint8_t *p = tu_bytes(&pool, &root, &len);
    for (size_t n = 1; n < len; n++) {
        struct rcase c = {"prefix", .code = PA_FE_TRUNCATED};
        if (!check_decode(&c, p, n, NULL))
            fail_msg("prefix of %zu of %zu bytes", n, len);
    }
    struct rcase whole = {"whole", .code = 0};
    assert_true(check_decode(&whole, p, len, NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

/* ---- whole-input problems ------------------------------------------------------ */

static void test_reject_trailing(void **state)
{
    (void)state;
    struct tu_pool pool = {0};
    struct pa_arena a;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_nimble(&a, 3, 1));
    uint8_t *p = tu_bytes(&pool, &root, &len);
    uint8_t *q = tu_pool_alloc(&pool, 2 * len);
    memcpy(q, p, len);
    static const char *const tails[] = {"\x00", "\xc0", "\xc1", "\x80", "\xdd\xff"};
    for (size_t i = 0; i < TU_ARRAY_LEN(tails); i++) {
        size_t tl = tails[i][0] ? strlen(tails[i]) : 1;
        memcpy(q + len, tails[i], tl);
        struct rcase c = {"trailing", .code = PA_FE_TRAILING, .path = ""};
        assert_true(check_decode(&c, q, len + tl, NULL));
    }
    memcpy(q + len, p, len); /* two frames back to back */
    struct rcase two = {"two frames", .code = PA_FE_TRAILING, .path = ""};
    assert_true(check_decode(&two, q, 2 * len, NULL));

    struct pa_arena d;
    struct pa_frame *out;
    struct pa_frame_error err;
    pa_arena_init(&d, 0, NULL);
    assert_int_equal(pa_frame_decode(q, len + 1, NULL, &d, &out, &err), PA_FE_TRAILING);
    assert_int_equal(err.offset, len);
    pa_arena_cleanup(&d);
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

static void test_reject_empty(void **state)
{
    (void)state;
    static const uint8_t one[1] = {0x80};
    assert_true(run_raw("empty", one, 0, PA_FE_EMPTY, "", NULL));
    assert_true(run_raw("NULL and 0", NULL, 0, PA_FE_EMPTY, "", NULL));
}

static void test_reject_too_big(void **state)
{
    (void)state;
    struct tu_pool pool = {0};
    struct pa_arena a;
    struct pa_frame_limits lim;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_nimble(&a, 50, 1));
    uint8_t *p = tu_bytes(&pool, &root, &len);
    pa_frame_limits_default(&lim);
    lim.max_frame_bytes = len - 1;
    struct rcase c = {"one byte over", .code = PA_FE_TOO_BIG, .path = ""};
    assert_true(check_decode(&c, p, len, &lim));
    lim.max_frame_bytes = len;
    struct rcase ok = {"at the limit", .code = 0};
    assert_true(check_decode(&ok, p, len, &lim));

    /* default limit: 4 MiB + 1, refused before parsing */
    size_t big = (4u << 20) + 1;
    uint8_t *b = tu_pool_alloc(&pool, big);
    memset(b, 0xc1, big);
    assert_true(run_raw("4 MiB + 1", b, big, PA_FE_TOO_BIG, "", NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

static void test_reject_top_not_map(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *p;
        size_t len;
    } raw[] = {
        {"empty array", "\x90", 1},
        {"uint", "\x01", 1},
        {"nil", "\xc0", 1},
        {"str", "\xa3" "abc", 4},
        {"bin", "\xc4\x01\x00", 3},
        {"float", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9},
        {"array holding a map", "\x91\x80", 2},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(raw); i++)
        assert_true(run_raw(raw[i].name, raw[i].p, raw[i].len, PA_FE_TYPE, "", NULL));

    /* a valid frame wrapped in an array */
    struct tu_pool pool = {0};
    struct pa_arena a;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    struct tu_node arr = tu_arr();
    tu_push(&pool, &arr, tu_frame_tree(&pool, tu_frame_min(&a)));
    uint8_t *p = tu_bytes(&pool, &arr, &len);
    assert_true(run_raw("frame in an array", p, len, PA_FE_TYPE, "", NULL));
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

static void test_reject_version(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"v 2", B_NIMBLE, {{OP_SET, "v", NULL, V_UINT(2)}}, 0, PA_FE_VERSION, "v", NULL},
        {"v 0", B_NIMBLE, {{OP_SET, "v", NULL, V_UINT(0)}}, 0, PA_FE_VERSION, "v", NULL},
        {"v 255", B_MIN, {{OP_SET, "v", NULL, V_UINT(255)}}, 0, PA_FE_VERSION, "v", NULL},
        {"v max", B_MIN, {{OP_SET, "v", NULL, V_UINT(UINT64_MAX)}}, 0, PA_FE_VERSION, "v", NULL},
        {"v 2^32 + 1", B_MIN, {{OP_SET, "v", NULL, V_UINT(0x100000001ull)}}, 0, PA_FE_VERSION,
         "v", NULL},
        {"v 1 as uint64", B_MIN,
         {{OP_SET, "v", NULL, V_RAW("\xcf\x00\x00\x00\x00\x00\x00\x00\x01")}}, 0, 0, NULL, NULL},
        {"v last", B_NIMBLE, {{OP_DEL, "v"}, {OP_ADD, "", "v", V_UINT(2)}}, 0, PA_FE_VERSION, "v",
         NULL},
    };
    RUN(cases);
}

static void test_reject_reserved_c1(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"0xc1 for ts", B_NIMBLE, {{OP_SET, "ts", NULL, V_RAW("\xc1")}}, 0, PA_FE_INVALID, "ts",
         NULL},
        {"0xc1 for a conn", B_NIMBLE, {{OP_SET, "conns[9]", NULL, V_RAW("\xc1")}}, 0,
         PA_FE_INVALID, "conns[9]", NULL},
        {"0xc1 in config", B_NIMBLE, {{OP_SET, "config.rtmp.port", NULL, V_RAW("\xc1")}}, 0,
         PA_FE_INVALID, "config.rtmp.port", NULL},
        {"0xc1 in unknown value", B_NIMBLE, {{OP_ADD, "", "zz", V_RAW("\x92\x01\xc1")}}, 0,
         PA_FE_INVALID, "<key 9>", NULL},
        {"0xc1 as a key", B_NIMBLE, {{OP_ADDK, "", NULL, V_UINT(1), V_RAW("\xc1")}}, 0,
         PA_FE_INVALID, "", NULL},
    };
    RUN(cases);
    assert_true(run_raw("0xc1 alone", "\xc1", 1, PA_FE_INVALID, "", NULL));
    assert_true(run_raw("0xc1 then a map", "\xc1\x80", 2, PA_FE_INVALID, "", NULL));
}

static void test_reject_unknown_kind(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"red5", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("red5")}}, 0, PA_FE_INVALID,
         "server.kind", "unknown agent kind"},
        {"case matters", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("Nimble")}}, 0,
         PA_FE_INVALID, "server.kind", "unknown agent kind"},
        {"trailing space", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("wowza ")}}, 0,
         PA_FE_INVALID, "server.kind", "unknown agent kind"},
        {"prefix", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("nim")}}, 0, PA_FE_INVALID,
         "server.kind", "unknown agent kind"},
        {"longer", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("nimblex")}}, 0, PA_FE_INVALID,
         "server.kind", "unknown agent kind"},
        {"empty kind", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("")}}, 0, PA_FE_INVALID,
         "server.kind", NULL},
    };
    RUN(cases);
}

static void test_reject_empty_name(void **state)
{
    (void)state;
    static const struct rcase cases[] = {
        {"server.name", B_NIMBLE, {{OP_SET, "server.name", NULL, V_STR("")}}, 0, PA_FE_INVALID,
         "server.name", "empty"},
        {"vhost name", B_NIMBLE, {{OP_SET, "vhosts[0].name", NULL, V_STR("")}}, 0, PA_FE_INVALID,
         "vhosts[0].name", "empty"},
        {"app name", B_NIMBLE, {{OP_SET, "vhosts[0].apps[2].name", NULL, V_STR("")}}, 0,
         PA_FE_INVALID, "vhosts[0].apps[2].name", "empty"},
        {"instance name", B_NIMBLE,
         {{OP_SET, "vhosts[0].apps[0].instances[0].name", NULL, V_STR("")}}, 0, PA_FE_INVALID,
         "vhosts[0].apps[0].instances[0].name", "empty"},
        {"stream name", B_NIMBLE, {{OP_SET, STREAM0 ".name", NULL, V_STR("")}}, 0, PA_FE_INVALID,
         STREAM0 ".name", "empty"},
        {"server.version", B_NIMBLE, {{OP_SET, "server.version", NULL, V_STR("")}}, 0,
         PA_FE_INVALID, "server.version", "empty"},
        {"empty config key", B_NIMBLE, {{OP_ADD, "config.cache", "", V_UINT(1)}}, 0,
         PA_FE_INVALID, "config.cache", "empty"},
        /* an empty config string is a value, not a name */
        {"empty config string is fine", B_NIMBLE,
         {{OP_SET, "config.cache.path", NULL, V_STR("")}}, 0, 0, NULL, NULL},
    };
    RUN(cases);
}

/* ---- memory and arguments ---------------------------------------------------- */

static void test_reject_arena_limits(void **state)
{
    (void)state;
    /* frame.h: a decoded form larger than max_arena_bytes is a property of
     * the frame (TOO_BIG); a failing allocator or the arena's own cap is a
     * property of the moment (NOMEM) */
    static const struct rcase cases[] = {
        {"max_arena_bytes 1 KiB", B_WOWZA, {{OP_NONE}}, T_ARENA_1K, PA_FE_TOO_BIG, NULL, NULL},
    };
    RUN(cases);

    /* the arena's own cap */
    struct tu_pool pool = {0};
    struct pa_arena a, d;
    struct pa_frame *out;
    struct pa_frame_error err;
    size_t len;
    pa_arena_init(&a, 0, NULL);
    struct tu_node root = tu_frame_tree(&pool, tu_frame_wowza(&a, 300, 1));
    uint8_t *p = tu_bytes(&pool, &root, &len);
    pa_arena_init(&d, 8192, NULL);
    assert_int_equal(pa_frame_decode(p, len, NULL, &d, &out, &err), PA_FE_NOMEM);
    assert_null(out);
    assert_int_equal(err.code, PA_FE_NOMEM);
    pa_arena_cleanup(&d);
    tu_pool_free(&pool);
    pa_arena_cleanup(&a);
}

static void test_reject_arg(void **state)
{
    (void)state;
    struct pa_arena d;
    struct pa_frame *out;
    struct pa_frame_error err;
    struct pa_frame_limits lim;
    const uint8_t in[] = {0x80};
    pa_arena_init(&d, 0, NULL);

    assert_int_equal(pa_frame_decode(in, 1, NULL, NULL, &out, &err), PA_FE_ARG);
    assert_int_equal(pa_frame_decode(in, 1, NULL, &d, NULL, &err), PA_FE_ARG);
    assert_int_equal(pa_frame_decode(NULL, 5, NULL, &d, &out, &err), PA_FE_ARG);
    pa_frame_limits_default(&lim);
    lim.max_depth = PA_LIMIT_MIN_DEPTH - 1;
    assert_int_equal(pa_frame_limits_check(&lim), PA_FE_ARG);
    assert_int_equal(pa_frame_decode(in, 1, &lim, &d, &out, &err), PA_FE_ARG);
    lim.max_depth = PA_LIMIT_MAX_DEPTH + 1;
    assert_int_equal(pa_frame_decode(in, 1, &lim, &d, &out, &err), PA_FE_ARG);
    lim.max_depth = PA_LIMIT_MAX_DEPTH;
    assert_int_equal(pa_frame_limits_check(&lim), 0);
    pa_frame_limits_default(&lim);
    lim.max_frame_bytes = 0;
    assert_int_equal(pa_frame_decode(in, 1, &lim, &d, &out, &err), PA_FE_ARG);
    assert_int_equal(pa_frame_limits_check(NULL), PA_FE_ARG);
    pa_arena_cleanup(&d);
}

/* ---- error reporting --------------------------------------------------------- */

static void test_errors_name_no_values(void **state)
{
    /* schema notes: values are NEVER printed in errors */
    (void)state;
    static const struct rcase cases[] = {
        {"version value", B_MIN, {{OP_SET, "v", NULL, V_UINT(987654321)}}, 0, PA_FE_VERSION, "v",
         NULL},
        {"negative value", B_NIMBLE, {{OP_SET, "conns[17].out", NULL, V_INT(-987654321)}}, 0,
         PA_FE_RANGE, "conns[17].out", NULL},
        {"cpu value", B_NIMBLE, {{OP_SET, "load.cpu", NULL, V_F64(987654321.0)}}, 0, PA_FE_RANGE,
         "load.cpu", NULL},
        {"kind value", B_NIMBLE, {{OP_SET, "server.kind", NULL, V_STR("k987654321")}}, 0,
         PA_FE_INVALID, "server.kind", NULL},
        {"ip bytes", B_NIMBLE, {{OP_SET, "conns[0].ip", NULL, V_BIN("987654321")}}, 0, PA_FE_IP,
         "conns[0].ip", NULL},
        {"name text", B_NIMBLE, {{OP_SET, "server.name", NULL, V_STR("987654321\xc0")}}, 0,
         PA_FE_UTF8, "server.name", NULL},
    };
    size_t bad = 0;
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        struct tu_pool pool = {0};
        struct pa_arena a, d;
        struct pa_frame *out;
        struct pa_frame_error err;
        char text[300];
        size_t len;
        pa_arena_init(&a, 0, NULL);
        pa_arena_init(&d, 0, NULL);
        uint8_t *p = case_bytes(&cases[i], &pool, &a, &len);
        if (!check_decode(&cases[i], p, len, NULL))
            bad++;
        pa_frame_decode(p, len, NULL, &d, &out, &err);
        pa_frame_error_format(&err, text, sizeof text);
        if (strstr(text, "987654321") != NULL || strstr(text, "9.87654321") != NULL) {
            print_error("%s: the value appears in the error: \"%s\"\n", cases[i].name, text);
            bad++;
        }
        pa_arena_cleanup(&d);
        tu_pool_free(&pool);
        pa_arena_cleanup(&a);
    }
    if (bad)
        fail_msg("%zu cases failed", bad);
}

static void test_error_names_and_format(void **state)
{
    (void)state;
    static const char *const names[] = {
        "ok",       "empty",  "truncated", "trailing", "type",     "missing",  "range",
        "nonfinite", "utf8",  "nul",       "ip",       "dupkey",   "ext",      "too_many",
        "too_long", "too_deep", "too_big", "version",  "invalid",  "nomem",    "arg",
    };
    for (int i = 0; i < (int)TU_ARRAY_LEN(names); i++) {
        assert_string_equal(pa_frame_errname(-i), names[i]);
        assert_non_null(pa_frame_strerror(-i));
        assert_true(pa_frame_strerror(-i)[0] != '\0');
    }
    assert_non_null(pa_frame_errname(-999));
    assert_non_null(pa_frame_errname(5));
    assert_non_null(pa_frame_strerror(-999));

    struct pa_frame_error e;
    char buf[64];
    memset(&e, 0, sizeof e);
    e.code = PA_FE_RANGE;
    strcpy(e.path, "conns[17].out");
    strcpy(e.msg, "negative");
    assert_int_equal(pa_frame_error_format(&e, buf, sizeof buf), 23);
    assert_string_equal(buf, "conns[17].out: negative");
    e.path[0] = '\0';
    pa_frame_error_format(&e, buf, sizeof buf);
    assert_string_equal(buf, "negative");
    strcpy(e.path, "conns[17].out");
    assert_int_equal(pa_frame_error_format(&e, buf, 5), 23);
    assert_string_equal(buf, "conn");

    assert_string_equal(pa_agent_kind_name(PA_KIND_NIMBLE), "nimble");
    assert_string_equal(pa_agent_kind_name(PA_KIND_WOWZA), "wowza");
    assert_int_equal(pa_agent_kind_parse("nimble", 6), PA_KIND_NIMBLE);
    assert_int_equal(pa_agent_kind_parse("wowza", 5), PA_KIND_WOWZA);
    assert_int_equal(pa_agent_kind_parse("wowzaX", 5), PA_KIND_WOWZA);
    assert_int_equal(pa_agent_kind_parse("wowza", 4), 0);
    assert_int_equal(pa_agent_kind_parse("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reject_type),
        cmocka_unit_test(test_reject_missing),
        cmocka_unit_test(test_reject_range),
        cmocka_unit_test(test_reject_nonfinite),
        cmocka_unit_test(test_reject_utf8),
        cmocka_unit_test(test_reject_nul),
        cmocka_unit_test(test_reject_ip),
        cmocka_unit_test(test_reject_dupkey),
        cmocka_unit_test(test_reject_ext),
        cmocka_unit_test(test_reject_too_many),
        cmocka_unit_test(test_reject_too_long),
        cmocka_unit_test(test_small_name_limit_keeps_schema_keys),
        cmocka_unit_test(test_reject_too_deep),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_trailing),
        cmocka_unit_test(test_reject_empty),
        cmocka_unit_test(test_reject_too_big),
        cmocka_unit_test(test_reject_top_not_map),
        cmocka_unit_test(test_reject_version),
        cmocka_unit_test(test_reject_reserved_c1),
        cmocka_unit_test(test_reject_unknown_kind),
        cmocka_unit_test(test_reject_empty_name),
        cmocka_unit_test(test_reject_arena_limits),
        cmocka_unit_test(test_reject_arg),
        cmocka_unit_test(test_errors_name_no_values),
        cmocka_unit_test(test_error_names_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
