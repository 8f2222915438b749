/*
 * test_gw_activity.c - aggregation of refused handshakes for the activity
 * log (gateway/net/activity.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activity.h"

struct row {
    char action[32];
    int64_t server_id;
    char details[512];
    int64_t at_ms;
};

struct sink {
    struct row rows[GW_REFUSAL_SLOTS + 4];
    unsigned n;
    int fail;
};

static int emit(void *ud, const char *action, int64_t server_id, const char *details,
                int64_t at_ms)
{
    struct sink *k = ud;
    if (k->fail)
        return -1;
    assert_true(k->n < sizeof k->rows / sizeof k->rows[0]);
    struct row *r = &k->rows[k->n++];
    snprintf(r->action, sizeof r->action, "%s", action);
    r->server_id = server_id;
    snprintf(r->details, sizeof r->details, "%s", details);
    r->at_ms = at_ms;
    return 0;
}

static void key(uint8_t spki[GW_SPKI_LEN], uint8_t v)
{
    memset(spki, v, GW_SPKI_LEN);
}

static void test_same_key_and_reason_is_one_row(void **state)
{
    struct gw_refusals r;
    struct sink k = {0};
    uint8_t a[GW_SPKI_LEN];
    (void)state;

    gw_refusals_init(&r);
    key(a, 0xab);
    for (int i = 0; i < 1000; i++)
        gw_refusals_note(&r, "unregistered", a, 0, "127.0.0.1:5000", 1000000 + i * 10);
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 1);
    assert_string_equal(k.rows[0].action, "handshake_refused");
    assert_int_equal(k.rows[0].at_ms, 1000000 + 999 * 10);
    assert_non_null(strstr(k.rows[0].details, "\"reason\":\"unregistered\""));
    assert_non_null(strstr(k.rows[0].details, "\"count\":1000"));
    assert_non_null(strstr(k.rows[0].details, "\"first\":1000,\"last\":1009"));
    assert_non_null(strstr(k.rows[0].details,
                           "\"spki_sha256\":\"abababababababababababababababababababab"
                           "abababababababababababab\""));
    /* flushed: nothing left */
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 0);
}

static void test_reason_key_and_server_kept_apart(void **state)
{
    struct gw_refusals r;
    struct sink k = {0};
    uint8_t a[GW_SPKI_LEN], b[GW_SPKI_LEN];
    (void)state;

    gw_refusals_init(&r);
    key(a, 1);
    key(b, 2);
    gw_refusals_note(&r, "unregistered", a, 0, "p1", 1000);
    gw_refusals_note(&r, "revoked", b, 42, "p2", 2000);
    gw_refusals_note(&r, "cert_expired", b, 0, "p3", 3000);
    gw_refusals_note(&r, "no_client_cert", NULL, 0, "p4", 4000);
    gw_refusals_note(&r, "no_client_cert", NULL, 0, "p5", 5000);
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 4);
    assert_int_equal(k.rows[1].server_id, 42);
    assert_non_null(strstr(k.rows[1].details, "\"reason\":\"revoked\""));
    assert_non_null(strstr(k.rows[3].details, "\"spki_sha256\":\"\""));
    assert_non_null(strstr(k.rows[3].details, "\"count\":2"));
    assert_non_null(strstr(k.rows[3].details, "\"peer\":\"p5\""));
}

static void test_full_table_counts_the_rest(void **state)
{
    struct gw_refusals r;
    struct sink k = {0};
    uint8_t a[GW_SPKI_LEN];
    (void)state;

    gw_refusals_init(&r);
    for (unsigned i = 0; i < GW_REFUSAL_SLOTS + 10; i++) {
        key(a, 0);
        memcpy(a, &i, sizeof i);
        gw_refusals_note(&r, "unregistered", a, 0, "p", 1000 + i);
    }
    assert_int_equal(gw_refusals_flush(&r, emit, &k), GW_REFUSAL_SLOTS + 1);
    assert_non_null(strstr(k.rows[GW_REFUSAL_SLOTS].details, "\"reason\":\"other\""));
    assert_non_null(strstr(k.rows[GW_REFUSAL_SLOTS].details, "\"count\":10"));
}

static void test_peer_is_json_escaped(void **state)
{
    struct gw_refusals r;
    struct sink k = {0};
    (void)state;

    gw_refusals_init(&r);
    gw_refusals_note(&r, "bad\"reason", NULL, 0, "a\"b\\c\n", 1000);
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 1);
    assert_non_null(strstr(k.rows[0].details, "\"reason\":\"bad\\\"reason\""));
    assert_non_null(strstr(k.rows[0].details, "\"peer\":\"a\\\"b\\\\c\\u000a\""));
}

static void test_emit_failure_still_empties(void **state)
{
    struct gw_refusals r;
    struct sink k = {.fail = 1};
    (void)state;

    gw_refusals_init(&r);
    gw_refusals_note(&r, "unregistered", NULL, 0, "p", 1000);
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 0);
    k.fail = 0;
    assert_int_equal(gw_refusals_flush(&r, emit, &k), 0);
}

/* Connections closed at accept: one handshake_throttled row per address
 * and interval, the overflow as "other". */
static void test_throttles(void **state)
{
    struct gw_throttles t;
    struct sink k = {0};
    char addr[48];
    (void)state;

    gw_throttles_init(&t);
    for (int i = 0; i < 500; i++)
        gw_throttles_note(&t, "127.0.0.2", 5000 + i);
    gw_throttles_note(&t, "2001:db8:1:2::/64", 7000);
    assert_int_equal(gw_throttles_flush(&t, emit, &k), 2);
    assert_string_equal(k.rows[0].action, "handshake_throttled");
    assert_int_equal(k.rows[0].server_id, 0);
    assert_string_equal(k.rows[0].details,
                        "{\"addr\":\"127.0.0.2\",\"count\":500,\"first\":5,\"last\":5}");
    assert_int_equal(k.rows[0].at_ms, 5499);
    assert_string_equal(k.rows[1].details,
                        "{\"addr\":\"2001:db8:1:2::/64\",\"count\":1,\"first\":7,\"last\":7}");
    /* emptied */
    assert_int_equal(gw_throttles_flush(&t, emit, &k), 0);

    /* a table full of addresses counts the rest under "other" */
    k.n = 0;
    for (int i = 0; i < GW_THROTTLE_SLOTS + 3; i++) {
        snprintf(addr, sizeof addr, "10.0.%d.%d", i / 256, i % 256);
        gw_throttles_note(&t, addr, 1000 * (int64_t)i);
    }
    assert_int_equal(gw_throttles_flush(&t, emit, &k), GW_THROTTLE_SLOTS + 1);
    char want[128];
    snprintf(want, sizeof want, "{\"addr\":\"other\",\"count\":3,\"first\":%d,\"last\":%d}",
             GW_THROTTLE_SLOTS, GW_THROTTLE_SLOTS + 2);
    assert_string_equal(k.rows[GW_THROTTLE_SLOTS].details, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_key_and_reason_is_one_row),
        cmocka_unit_test(test_reason_key_and_server_kept_apart),
        cmocka_unit_test(test_full_table_counts_the_rest),
        cmocka_unit_test(test_peer_is_json_escaped),
        cmocka_unit_test(test_emit_failure_still_empties),
        cmocka_unit_test(test_throttles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
