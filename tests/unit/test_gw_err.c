/*
 * test_gw_err.c - the gateway's error convention (gateway/base/err.h) and
 * the translation of SQLite's codes at the storage edge
 * (gw_sqlite_error, gateway/storage/store.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "store.h"

static const int codes[] = {
    GW_OK,       GW_EINVAL,  GW_ENOTFOUND, GW_EEXIST, GW_EPINNED, GW_EFULL,
    GW_ESTORAGE, GW_EREJECTED, GW_ECONFIG, GW_EIO,    GW_ETLS,    GW_EPROTO,
    GW_ECLOSED,  GW_EREVOKED, GW_ENOMEM, GW_EINTERNAL,
};
#define N_CODES (sizeof codes / sizeof codes[0])

/* Every code has its own text, and a number that is not a code says so. */
static void test_strerror(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *s = gw_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, gw_strerror(codes[j]));
    }
    assert_string_equal(gw_strerror(-14), "unknown error");
    assert_string_equal(gw_strerror(1), "unknown error");
    assert_string_equal(gw_strerror(GW_E_FATAL), "unknown error");
    assert_string_equal(gw_strerror(GW_ENOMEM), "out of memory");
}

/* Codes are 0 or negative, and exactly ENOMEM and EINTERNAL are fatal. */
static void test_fatal_band(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        int c = codes[i];
        assert_true(c <= 0);
        bool want = c == GW_ENOMEM || c == GW_EINTERNAL;
        assert_int_equal(gw_is_fatal(c), want);
    }
    assert_true(gw_is_fatal(GW_E_FATAL));
    assert_false(gw_is_fatal(GW_E_FATAL + 1));
}

static void test_fail(void **state)
{
    char err[16];
    (void)state;

    memset(err, 'x', sizeof err);
    assert_int_equal(gw_fail(GW_EIO, err, sizeof err, "%s: %d", "file", 42), GW_EIO);
    assert_string_equal(err, "file: 42");
    /* truncated, still terminated */
    assert_int_equal(gw_fail(GW_ECONFIG, err, sizeof err, "%s", "0123456789abcdefghij"),
                     GW_ECONFIG);
    assert_string_equal(err, "0123456789abcde");
    /* no buffer: just the code */
    assert_int_equal(gw_fail(GW_EINVAL, NULL, 0, "%s", "x"), GW_EINVAL);
    assert_int_equal(gw_fail(GW_EINVAL, err, 0, "%s", "y"), GW_EINVAL);
    assert_string_equal(err, "0123456789abcde");
}

/* What fails again on a retry is the item's fault; what may pass is the
 * storage's.  Extended codes fold onto their primary code. */
static void test_sqlite_error(void **state)
{
    static const int storage[] = {
        SQLITE_BUSY,          SQLITE_LOCKED,       SQLITE_FULL,        SQLITE_IOERR,
        SQLITE_READONLY,      SQLITE_CORRUPT,      SQLITE_NOTADB,      SQLITE_CANTOPEN,
        SQLITE_NOMEM,         SQLITE_PROTOCOL,     SQLITE_PERM,        SQLITE_INTERRUPT,
        SQLITE_ABORT,         SQLITE_IOERR_WRITE,  SQLITE_IOERR_FSYNC, SQLITE_BUSY_SNAPSHOT,
        SQLITE_READONLY_DBMOVED, SQLITE_CORRUPT_VTAB, SQLITE_CANTOPEN_NOTEMPDIR,
        SQLITE_ERROR, /* "no such table": every row alike, an outage */
        SQLITE_SCHEMA, SQLITE_MISUSE,
    };
    static const int row[] = {
        SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_TRIGGER,
        SQLITE_CONSTRAINT_CHECK, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE,
    };
    (void)state;

    assert_int_equal(gw_sqlite_error(SQLITE_OK), 0);
    assert_int_equal(gw_sqlite_error(SQLITE_ROW), 0);
    assert_int_equal(gw_sqlite_error(SQLITE_DONE), 0);
    for (size_t i = 0; i < sizeof storage / sizeof storage[0]; i++) {
        if (gw_sqlite_error(storage[i]) != GW_ESTORAGE)
            fail_msg("SQLite code %d (%s) is not GW_ESTORAGE", storage[i],
                     sqlite3_errstr(storage[i]));
    }
    for (size_t i = 0; i < sizeof row / sizeof row[0]; i++) {
        if (gw_sqlite_error(row[i]) != GW_EREJECTED)
            fail_msg("SQLite code %d (%s) is not GW_EREJECTED", row[i], sqlite3_errstr(row[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_fatal_band),
        cmocka_unit_test(test_fail),
        cmocka_unit_test(test_sqlite_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
