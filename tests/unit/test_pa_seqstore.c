/*
 * test_pa_seqstore.c - seq only goes up: in memory, with a seq file across
 * reopen (also when the clock is behind), the high-water mark written only
 * when a block is used up, and corrupt, unreadable or unwritable files
 * refused with a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_internal.h"

struct dir {
    char path[256];
    char file[300];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -1;
    snprintf(d->path, sizeof d->path, "%s/pa_seq.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(d->path) == NULL) {
        free(d);
        return -1;
    }
    snprintf(d->file, sizeof d->file, "%s/seq", d->path);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    if (system(cmd) != 0)
        return -1;
    free(d);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static uint64_t read_hwm(const char *path)
{
    char buf[64] = "";
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof buf, fp));
    fclose(fp);
    return strtoull(buf, NULL, 10);
}

static void test_memory_monotonic(void **state)
{
    (void)state;
    struct pa_seqstore *s = NULL;
    char err[256];
    uint64_t a, b, c, d;

    assert_int_equal(pa_seq_open(&s, NULL, PA_SEQ_BLOCK, 5000, err, sizeof err), 0);
    assert_int_equal(pa_seq_last(s), 0);
    assert_int_equal(pa_seq_next(s, 5000, &a, err, sizeof err), 0);
    assert_int_equal(a, 5000); /* follows the clock */
    assert_int_equal(pa_seq_next(s, 5000, &b, err, sizeof err), 0);
    assert_int_equal(b, 5001); /* same millisecond: last + 1 */
    assert_int_equal(pa_seq_next(s, 100, &c, err, sizeof err), 0);
    assert_int_equal(c, 5002); /* clock stepped back: still up */
    assert_int_equal(pa_seq_next(s, 9000, &d, err, sizeof err), 0);
    assert_int_equal(d, 9000);
    assert_int_equal(pa_seq_last(s), 9000);
    pa_seq_close(s);
}

/* Across reopen the next seq is above everything handed out before, even
 * with a clock that went back, and the file is written only when the
 * block is used up. */
static void test_file_blocks_and_reopen(void **state)
{
    struct dir *d = *state;
    struct pa_seqstore *s = NULL;
    char err[256];
    uint64_t seq, max = 0;

    assert_int_equal(pa_seq_open(&s, d->file, 10, 1000, err, sizeof err), 0);
    assert_int_equal(read_hwm(d->file), 1010); /* written at open: now + block */
    for (int i = 0; i < 11; i++) {
        assert_int_equal(pa_seq_next(s, 1000, &seq, err, sizeof err), 0);
        assert_true(seq > max);
        max = seq;
    }
    assert_int_equal(max, 1010);
    assert_int_equal(read_hwm(d->file), 1010); /* the block 1000..1010 cost no write */
    assert_int_equal(pa_seq_next(s, 1000, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 1011);
    assert_int_equal(read_hwm(d->file), 1021); /* next block reserved first */
    max = seq;
    /* a clock jump forward reserves from the new seq */
    assert_int_equal(pa_seq_next(s, 50000, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 50000);
    assert_int_equal(read_hwm(d->file), 50010);
    max = seq;
    pa_seq_close(s);

    /* a "crash" after 50000: reopen with the clock far behind */
    s = NULL;
    assert_int_equal(pa_seq_open(&s, d->file, 10, 10, err, sizeof err), 0);
    assert_int_equal(pa_seq_last(s), 50010);
    assert_int_equal(pa_seq_next(s, 10, &seq, err, sizeof err), 0);
    assert_true(seq > max);
    assert_int_equal(seq, 50011);
    pa_seq_close(s);

    /* no temporary file left behind */
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->file);
    assert_int_equal(access(tmp, F_OK), -1);
    struct stat st;
    assert_int_equal(stat(d->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_corrupt(void **state)
{
    struct dir *d = *state;
    static const char *const bad[] = {
        "", "\n", "abc\n", "12x\n", "-5\n", "1 2\n", "18446744073709551616\n",
        "123456789012345678901\n", "5\n\n", " 5\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pa_seqstore *s = (struct pa_seqstore *)1;
        char err[256] = "";
        write_text(d->file, bad[i]);
        assert_int_equal(pa_seq_open(&s, d->file, 10, 1000, err, sizeof err),
                         PANELAGENT_ECONFIG);
        assert_null(s);
        assert_non_null(strstr(err, "corrupt"));
        assert_non_null(strstr(err, d->file));
    }
    /* the largest value is fine, and a seq above it cannot be made */
    {
        struct pa_seqstore *s = NULL;
        char err[256] = "";
        write_text(d->file, "18446744073709551615\n");
        assert_int_equal(pa_seq_open(&s, d->file, 10, 1000, err, sizeof err),
                         PANELAGENT_ECONFIG);
        assert_non_null(strstr(err, "exhausted"));
    }
    /* without a newline is accepted */
    {
        struct pa_seqstore *s = NULL;
        char err[256] = "";
        uint64_t seq;
        write_text(d->file, "777");
        assert_int_equal(pa_seq_open(&s, d->file, 10, 5, err, sizeof err), 0);
        assert_int_equal(pa_seq_next(s, 5, &seq, err, sizeof err), 0);
        assert_int_equal(seq, 778);
        pa_seq_close(s);
    }
}

static void test_unreadable_unwritable(void **state)
{
    struct dir *d = *state;
    struct pa_seqstore *s = NULL;
    char err[256] = "", path[400];

    /* a directory where the file should be: cannot be read */
    assert_int_equal(mkdir(d->file, 0700), 0);
    assert_int_equal(pa_seq_open(&s, d->file, 10, 1000, err, sizeof err), PANELAGENT_EIO);
    assert_null(s);
    assert_non_null(strstr(err, d->file));
    rmdir(d->file);

    /* a directory that does not exist: cannot be written */
    snprintf(path, sizeof path, "%s/no/such/dir/seq", d->path);
    err[0] = '\0';
    assert_int_equal(pa_seq_open(&s, path, 10, 1000, err, sizeof err), PANELAGENT_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "seq file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_monotonic),
        cmocka_unit_test_setup_teardown(test_file_blocks_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_unwritable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
