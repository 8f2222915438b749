/*
 * test_ctl_parse.c - panelgatectl's parsers of option values (ctl.h:
 * ctl_parse_uint, ctl_parse_duration, ctl_parse_time), table-driven; the
 * same parsers are fuzzed by fuzz/fuzz_ctl_parse.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "ctl.h"
#include "testutil.h"

#define NOW 1800000000LL

/* Issue 11 (fuzz_ctl_parse): with a maximum below 9, "max - d" wrapped
 * for a digit above the maximum and let the value through ("1" under a
 * maximum of 0 came back as 1).  Today's callers pass maxima of 3650 and
 * more; the function promises "no larger than max" for any. */
static void test_uint_small_max_issue11(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        unsigned long long max;
        int rv;
        unsigned long long v;
    } cases[] = {
        {"0", 0, 0, 0},
        {"1", 0, GW_EINVAL, 0},
        {"00", 0, 0, 0},
        {"1", 1, 0, 1},
        {"2", 1, GW_EINVAL, 0},
        {"9", 8, GW_EINVAL, 0},
        {"8", 8, 0, 8},
        {"10", 9, GW_EINVAL, 0},
        {"36500", 36500, 0, 36500},
        {"36501", 36500, GW_EINVAL, 0},
        {"18446744073709551615", ULLONG_MAX, 0, ULLONG_MAX},
        {"18446744073709551616", ULLONG_MAX, GW_EINVAL, 0},
        {"", 10, GW_EINVAL, 0},
        {"+1", 10, GW_EINVAL, 0},
        {"1 ", 10, GW_EINVAL, 0},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        unsigned long long v = 777;
        int rv = ctl_parse_uint(cases[i].s, cases[i].max, &v);
        if (rv != cases[i].rv)
            fail_msg("ctl_parse_uint(\"%s\", %llu) = %d, want %d (value %llu)", cases[i].s,
                     cases[i].max, rv, cases[i].rv, v);
        assert_int_equal(v, rv == 0 ? cases[i].v : 777); /* *out only on success */
    }
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rv;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},          {"30s", 0, 30},        {"15m", 0, 900},
        {"12h", 0, 43200},    {"3650d", 0, 315360000}, {"3651d", GW_EINVAL, 0},
        {"d", GW_EINVAL, 0},  {"5", GW_EINVAL, 0},   {"-5s", GW_EINVAL, 0},
        {"5w", GW_EINVAL, 0}, {"", GW_EINVAL, 0},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        int64_t v = -1;
        int rv = ctl_parse_duration(cases[i].s, &v);
        if (rv != cases[i].rv || (rv == 0 && v != cases[i].v))
            fail_msg("ctl_parse_duration(\"%s\") = %d (%lld)", cases[i].s, rv, (long long)v);
    }
}

static void test_time(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool upper;
        int rv;
        int64_t v;
    } cases[] = {
        {"1764000000", false, 0, 1764000000},
        {"2026-11-29", false, 0, 1795910400},
        {"2026-11-29", true, 0, 1795910400 + 86399},
        {"2026-11-29T02:20:54Z", false, 0, 1795918854},
        {"7d", false, 0, NOW - 7 * 86400},
        {"1970-01-01", false, -1, 0}, /* 0 is "no bound" */
        {"1970-01-01", true, 0, 86399},
        {"2026-02-30", false, -1, 0},
        {"2026-11-29T24:00:00Z", false, -1, 0},
        {"2026-1-029", false, -1, 0},
        {" 2026-11-29", false, -1, 0},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        int64_t v = -1;
        int rv = ctl_parse_time(cases[i].s, cases[i].upper, NOW, &v);
        if (rv != cases[i].rv || (rv == 0 && v != cases[i].v))
            fail_msg("ctl_parse_time(\"%s\", %d) = %d (%lld)", cases[i].s, cases[i].upper, rv,
                     (long long)v);
    }
}

/* Issue 11 (fuzz_ctl_parse): sscanf skips any isspace before a number and
 * the check after it knew only ' ', so "2026-11-29T02:24:\v4Z" read as
 * 02:24:04.  The form is now checked first, a digit in every field. */
static void test_time_blanks_issue11(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "2026-11-29T02:24:\v4Z", "2026-11-29T02:24:\t4Z", "2026-11-29T\n2:24:04Z",
        "2026-11-\f9",           "2026-\r1-29",           "2026-11-29T02:24:+4Z",
        "2026-11-29T02:-4:04Z", "2026-11-29t02:24:04Z",  "2026-11-29T02:24:04z",
        "+026-11-29",
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(bad); i++) {
        int64_t v = -1;
        if (ctl_parse_time(bad[i], false, NOW, &v) == 0)
            fail_msg("ctl_parse_time(case %zu) took %lld", i, (long long)v);
    }
    int64_t v = -1;
    assert_int_equal(ctl_parse_time("2026-11-29T02:24:04Z", false, NOW, &v), 0);
    assert_int_equal(v, 1795919044);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint_small_max_issue11),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_time_blanks_issue11),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
