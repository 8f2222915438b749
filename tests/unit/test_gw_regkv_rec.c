/*
 * test_gw_regkv_rec.c - the registry bucket's keys and server record codec
 * (gateway/storage/regkv.h, regkv_rec.c): round trips, the exact layout of
 * docs/STORAGE.md, and a table of values that break it, each refused with
 * the field named and never the value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "regkv.h"
#include "testutil.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void make_server(struct gw_regdb_server *s, unsigned n_pins)
{
    memset(s, 0, sizeof *s);
    s->id = 7;
    snprintf(s->name, sizeof s->name, "edge.eu-1");
    snprintf(s->kind, sizeof s->kind, "nimble");
    snprintf(s->status, sizeof s->status, "active");
    s->created_at = 1764000000;
    for (unsigned i = 0; i < n_pins; i++) {
        memset(s->pins[i].spki, (int)(0x10 + i), GW_SPKI_LEN);
        s->pins[i].created_at = 1764000000 + (int64_t)(n_pins - i);
        s->pins[i].not_after = i == 0 ? 0 : 1764100000 + (int64_t)i;
    }
    s->n_pins = s->n_pins_total = n_pins;
}

static void test_keys(void **state)
{
    (void)state;
    char k[GW_REGKV_KEY_MAX];
    assert_int_equal(gw_regkv_server_key("edge-1", k, sizeof k), 0);
    assert_string_equal(k, "server.edge-1");
    assert_int_equal(gw_regkv_server_key("edge.eu", k, sizeof k), 0);
    assert_string_equal(k, "server.edge=2eeu");
    assert_int_equal(gw_regkv_server_key("a.b.c_d", k, sizeof k), 0);
    assert_string_equal(k, "server.a=2eb=2ec_d");
    /* what gw_regdb_name_ok refuses, a key that does not fit */
    assert_int_equal(gw_regkv_server_key(".x", k, sizeof k), GW_EINVAL);
    assert_int_equal(gw_regkv_server_key("", k, sizeof k), GW_EINVAL);
    assert_int_equal(gw_regkv_server_key("a b", k, sizeof k), GW_EINVAL);
    assert_int_equal(gw_regkv_server_key("a=2e", k, sizeof k), GW_EINVAL);
    assert_int_equal(gw_regkv_server_key("abc.d", k, 12), GW_EINVAL);
    /* the longest name, every byte escaped, fits GW_REGKV_KEY_MAX */
    char name[256];
    memset(name, '.', 255);
    name[0] = 'a';
    name[255] = '\0';
    assert_int_equal(gw_regkv_server_key(name, k, sizeof k), 0);
    assert_int_equal(strlen(k), 7 + 1 + 3 * 254);

    uint8_t spki[GW_SPKI_LEN];
    memset(spki, 0xaa, sizeof spki);
    char pk[4 + 2 * GW_SPKI_LEN + 1];
    gw_regkv_pin_key(spki, pk);
    assert_string_equal(pk, "pin." HEX_A);
}

static void test_encode_layout(void **state)
{
    (void)state;
    struct gw_regdb_server s;
    make_server(&s, 1);
    memset(s.pins[0].spki, 0xaa, GW_SPKI_LEN);
    size_t len = 0;
    char *txt = gw_regkv_rec_encode(&s, &len);
    assert_non_null(txt);
    assert_int_equal(len, strlen(txt));
    assert_string_equal(txt, "{\"id\":7,\"name\":\"edge.eu-1\",\"kind\":\"nimble\",\"status\":"
                             "\"active\",\"created_at\":1764000000,\"pins\":[{\"spki_sha256\":"
                             "\"" HEX_A "\",\"created_at\":1764000001,\"not_after\":null}]}");
    gw_free(txt);
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= GW_REGKV_MAX_PINS; n++) {
        struct gw_regdb_server s, back;
        make_server(&s, n);
        if (n % 2 == 0)
            snprintf(s.status, sizeof s.status, "revoked");
        size_t len;
        char *txt = gw_regkv_rec_encode(&s, &len);
        assert_non_null(txt);
        char err[256] = "";
        /* no NUL needed: only len bytes are read */
        assert_int_equal(gw_regkv_rec_decode(txt, len, &back, err, sizeof err), 0);
        assert_memory_equal(&s, &back, sizeof s);
        gw_free(txt);
    }
}

static void test_entries(void **state)
{
    (void)state;
    struct gw_regdb_server s;
    struct gw_server e[GW_REGKV_MAX_PINS];
    size_t n = 99;
    make_server(&s, 3);
    snprintf(s.status, sizeof s.status, "revoked");
    gw_regkv_rec_entries(&s, e, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(e[i].id, 7);
        assert_string_equal(e[i].name, "edge.eu-1");
        assert_string_equal(e[i].kind, "nimble");
        assert_int_equal(e[i].status, GW_SERVER_REVOKED);
        assert_memory_equal(e[i].spki, s.pins[i].spki, GW_SPKI_LEN);
        assert_int_equal(e[i].pin_not_after, s.pins[i].not_after);
    }
    snprintf(s.status, sizeof s.status, "active");
    gw_regkv_rec_entries(&s, e, &n);
    assert_int_equal(e[0].status, GW_SERVER_ACTIVE);
}

/* A pin, a record around one pins array. */
#define PIN(hex, c, na) "{\"spki_sha256\":\"" hex "\",\"created_at\":" #c ",\"not_after\":" na "}"
#define REC(id, name, kind, status, created, pins)                                              \
    "{\"id\":" id ",\"name\":" name ",\"kind\":" kind ",\"status\":" status                     \
    ",\"created_at\":" created ",\"pins\":" pins "}"
#define GOOD_PIN PIN(HEX_A, 1764000000, "null")
#define GOOD REC("7", "\"edge-1\"", "\"nimble\"", "\"active\"", "1764000000", "[" GOOD_PIN "]")

static void test_good_variants(void **state)
{
    (void)state;
    static const char *const good[] = {
        GOOD,
        /* key order is free, white space too */
        "{ \"pins\": [" GOOD_PIN "], \"created_at\": 1, \"status\": \"revoked\", \"kind\": "
        "\"wowza\", \"name\": \"a.b\", \"id\": 9007199254740991 }",
        REC("1", "\"e\"", "\"nimble\"", "\"active\"", "0",
            "[" PIN(HEX_B, 5, "1764000000") "," GOOD_PIN "]"),
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(good); i++) {
        struct gw_regdb_server s;
        char err[256] = "";
        int rv = gw_regkv_rec_decode(good[i], strlen(good[i]), &s, err, sizeof err);
        if (rv != 0)
            fail_msg("good[%zu] refused: %s", i, err);
    }
}

struct bad_case {
    const char *value;
    const char *field; /* must appear in err */
};

static void test_bad_values(void **state)
{
    (void)state;
    static const struct bad_case bad[] = {
        {"", "value"},
        {"{", "value"},
        {"[]", "record"},
        {"7", "record"},
        {"{\"id\":7}", "record.name"},
        {GOOD "x", "value"},
        /* a field too many, one missing, one twice */
        {"{\"id\":7,\"name\":\"edge-1\",\"kind\":\"nimble\",\"status\":\"active\",\"created_at\":1,"
         "\"pins\":[" GOOD_PIN "],\"extra\":1}",
         "record"},
        {"{\"id\":7,\"name\":\"edge-1\",\"kind\":\"nimble\",\"status\":\"active\",\"created_at\":1,"
         "\"pins\":[" GOOD_PIN "],\"id\":8}",
         "twice"},
        /* types and ranges */
        {REC("\"7\"", "\"edge-1\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "id"},
        {REC("0", "\"edge-1\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "id"},
        {REC("-3", "\"edge-1\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "id"},
        {REC("7.5", "\"edge-1\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "id"},
        {REC("1e300", "\"edge-1\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "id"},
        {REC("9007199254740993", "\"e\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"),
         "id"},
        {REC("7", "7", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "name"},
        {REC("7", "\"-edge\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "name"},
        {REC("7", "\"a b\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "name"},
        {REC("7", "\"\"", "\"nimble\"", "\"active\"", "1", "[" GOOD_PIN "]"), "name"},
        {REC("7", "\"e\"", "\"flash\"", "\"active\"", "1", "[" GOOD_PIN "]"), "kind"},
        {REC("7", "\"e\"", "\"nimble\"", "\"paused\"", "1", "[" GOOD_PIN "]"), "status"},
        {REC("7", "\"e\"", "\"nimble\"", "null", "1", "[" GOOD_PIN "]"), "status"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "-1", "[" GOOD_PIN "]"), "created_at"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "null", "[" GOOD_PIN "]"), "created_at"},
        /* pins */
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[]"), "pins"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "{}"), "pins"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "null"), "pins"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1",
             "[" GOOD_PIN "," GOOD_PIN "]"),
         "pins[1].spki_sha256"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1",
             "[" GOOD_PIN "," GOOD_PIN "," GOOD_PIN "," GOOD_PIN "," GOOD_PIN "," GOOD_PIN
             "," GOOD_PIN "," GOOD_PIN "," GOOD_PIN "]"),
         "pins"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[7]"), "pins[0]"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1",
             "[" PIN("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1, "null")
             "]"),
         "pins[0].spki_sha256"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[" PIN("abcd", 1, "null") "]"),
         "pins[0].spki_sha256"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[" PIN(HEX_A, -1, "null") "]"),
         "pins[0].created_at"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[" PIN(HEX_A, 1, "0") "]"),
         "pins[0].not_after"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1", "[" PIN(HEX_A, 1, "\"x\"") "]"),
         "pins[0].not_after"},
        {REC("7", "\"e\"", "\"nimble\"", "\"active\"", "1",
             "[{\"spki_sha256\":\"" HEX_A "\",\"created_at\":1}]"),
         "pins[0].not_after"},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(bad); i++) {
        struct gw_regdb_server s;
        char err[256] = "";
        int rv = gw_regkv_rec_decode(bad[i].value, strlen(bad[i].value), &s, err, sizeof err);
        if (rv != GW_EINVAL)
            fail_msg("bad[%zu] (%s): rv %d, want GW_EINVAL", i, bad[i].value, rv);
        if (strstr(err, bad[i].field) == NULL)
            fail_msg("bad[%zu]: err '%s' does not name %s", i, err, bad[i].field);
        /* the value never reaches the message */
        assert_null(strstr(err, HEX_A));
        assert_null(strstr(err, "edge-1"));
        assert_int_equal(s.id, 0);
    }
    /* a NUL inside the value */
    struct gw_regdb_server s;
    char err[256];
    static const char nul[] = "{\"id\":7\0}";
    assert_int_equal(gw_regkv_rec_decode(nul, sizeof nul - 1, &s, err, sizeof err), GW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_encode_layout),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_good_variants),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
