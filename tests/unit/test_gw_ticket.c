/*
 * test_gw_ticket.c - session-ticket keys from a key file (gateway/net/ticket.h):
 * the file is made with mode 0600, a ticket round-trips through mbedTLS's
 * session serialization, a rotation keeps the previous key for the tickets
 * it issued and a second one drops it, two contexts on one file accept each
 * other's tickets, a read-only (0400) file is never rotated, and a tampered,
 * truncated or expired ticket, a loose mode or a corrupt file are refused.
 * Time for rotation is injected; ticket expiry uses the wall clock, as
 * mbedTLS's own ticket code does.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/ssl.h>

#include "alloc.h"
#include "err.h"
#include "ticket.h"

#define LIFETIME 3600
#define T0 1800000000

struct fx {
    char dir[64];
    char path[128];
    char err[512];
    uint8_t rng_state;
};

/* Deterministic "randomness": distinct bytes on every call. */
static int test_rng(void *p, unsigned char *out, size_t n)
{
    struct fx *f = p;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(f->rng_state++ * 37u + 11u);
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "ticket.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/tickets.key", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[192];
    const char *const suffix[] = {"", ".lock", ".tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void put_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

struct ticket {
    unsigned char b[2048];
    size_t len;
};

/* A ticket of a session started |age_s| seconds ago. */
static void issue(struct gw_ticket *t, struct ticket *out, int64_t age_s)
{
    mbedtls_ssl_session s;
    uint32_t lifetime = 0;
    mbedtls_ssl_session_init(&s);
    s.start = time(NULL) - age_s;
    s.ciphersuite = MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256;
    memset(s.master, 0x5a, sizeof s.master);
    assert_int_equal(gw_ticket_write(t, &s, out->b, out->b + sizeof out->b, &out->len, &lifetime),
                     0);
    assert_int_equal(lifetime, LIFETIME);
    assert_true(out->len > 34);
    mbedtls_ssl_session_free(&s);
}

/* gw_ticket_parse of a copy (it decrypts in place). */
static int parse(struct gw_ticket *t, const struct ticket *tk)
{
    struct ticket c = *tk;
    mbedtls_ssl_session s;
    mbedtls_ssl_session_init(&s);
    int ret = gw_ticket_parse(t, &s, c.b, c.len);
    if (ret == 0) {
        assert_int_equal(s.ciphersuite, MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
        assert_int_equal(s.master[0], 0x5a);
    }
    mbedtls_ssl_session_free(&s);
    return ret;
}

static struct gw_ticket *open_keys(struct fx *f, int64_t now)
{
    struct gw_ticket *t = NULL;
    if (gw_ticket_new(&t, f->path, LIFETIME, test_rng, f, now, f->err, sizeof f->err) != 0)
        fail_msg("gw_ticket_new: %s", f->err);
    return t;
}

static void test_file_made_0600(void **state)
{
    struct fx *f = *state;
    struct stat st;
    mode_t old = umask(022);
    struct gw_ticket *t = open_keys(f, T0);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char *text = slurp(f->path);
    assert_non_null(strstr(text, "\npanelgate-ticket-keys 1\ncurrent "));
    assert_non_null(strstr(text, " 1800000000 "));
    assert_null(strstr(text, "previous"));
    char name[9];
    int64_t created;
    gw_ticket_current(t, name, &created);
    assert_int_equal(created, T0);
    assert_int_equal(strlen(name), 8);
    gw_ticket_free(t);
}

static void test_rotation_keeps_previous(void **state)
{
    struct fx *f = *state;
    struct ticket a, b;
    char name0[9], name1[9];
    int64_t created;
    int changed = -1;

    struct gw_ticket *t = open_keys(f, T0);
    gw_ticket_current(t, name0, &created);
    issue(t, &a, 0);
    assert_int_equal(parse(t, &a), 0);

    /* not due yet: nothing changes */
    assert_int_equal(gw_ticket_refresh(t, T0 + LIFETIME - 1, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 0);
    /* due: a new current key, the old one kept as previous */
    assert_int_equal(gw_ticket_refresh(t, T0 + LIFETIME, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 1);
    gw_ticket_current(t, name1, &created);
    assert_int_equal(created, T0 + LIFETIME);
    assert_string_not_equal(name0, name1);
    char want[32];
    snprintf(want, sizeof want, "\nprevious %s ", name0);
    assert_non_null(strstr(slurp(f->path), want));
    assert_int_equal(parse(t, &a), 0);
    issue(t, &b, 0);
    assert_int_equal(parse(t, &b), 0);

    /* the next rotation drops the first key: its ticket is refused */
    assert_int_equal(gw_ticket_refresh(t, T0 + 2 * LIFETIME, &changed, f->err, sizeof f->err),
                     0);
    assert_int_equal(changed, 1);
    assert_int_equal(parse(t, &a), MBEDTLS_ERR_SSL_INVALID_MAC);
    assert_int_equal(parse(t, &b), 0);
    gw_ticket_free(t);
}

static void test_bad_tickets(void **state)
{
    struct fx *f = *state;
    struct ticket a, x;
    struct gw_ticket *t = open_keys(f, T0);

    issue(t, &a, 0);
    x = a;
    x.b[x.len - 20] ^= 1; /* the ciphertext */
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_INVALID_MAC);
    x = a;
    x.b[0] ^= 1; /* the key name: no such key */
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_INVALID_MAC);
    x = a;
    x.b[5] ^= 1; /* the IV (additional data) */
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_INVALID_MAC);
    x = a;
    x.len--; /* shorter than its length field says */
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
    x.len = 10;
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
    /* a session older than the lifetime */
    issue(t, &x, LIFETIME + 5);
    assert_int_equal(parse(t, &x), MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED);
    assert_int_equal(parse(t, &a), 0);
    gw_ticket_free(t);
}

static void test_shared_file(void **state)
{
    struct fx *f = *state;
    struct ticket a, b;
    int changed = -1;
    struct gw_ticket *t1 = open_keys(f, T0), *t2 = open_keys(f, T0 + 10);

    issue(t1, &a, 0);
    assert_int_equal(parse(t2, &a), 0);
    /* t1 rotates; t2 picks the new file up and takes the new key's tickets */
    assert_int_equal(gw_ticket_refresh(t1, T0 + LIFETIME, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 1);
    issue(t1, &b, 0);
    assert_int_equal(parse(t2, &b), MBEDTLS_ERR_SSL_INVALID_MAC);
    assert_int_equal(gw_ticket_refresh(t2, T0 + LIFETIME, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(parse(t2, &b), 0);
    assert_int_equal(parse(t2, &a), 0);
    /* a second look at an unchanged file changes nothing */
    assert_int_equal(gw_ticket_refresh(t2, T0 + LIFETIME + 1, &changed, f->err, sizeof f->err),
                     0);
    assert_int_equal(changed, 0);
    gw_ticket_free(t1);
    gw_ticket_free(t2);
}

/* A rotation on the loop does not wait for a lock another gateway holds:
 * the keys stay, and the next look rotates. */
static void test_lock_held_elsewhere(void **state)
{
    struct fx *f = *state;
    char lock[192];
    int changed = -1;
    struct gw_ticket *t = open_keys(f, T0);

    snprintf(lock, sizeof lock, "%s.lock", f->path);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(gw_ticket_refresh(t, T0 + LIFETIME, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 0);
    assert_null(strstr(slurp(f->path), "previous"));
    close(fd);
    assert_int_equal(gw_ticket_refresh(t, T0 + LIFETIME, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 1);
    assert_non_null(strstr(slurp(f->path), "previous"));
    gw_ticket_free(t);
}

static void test_read_only_not_rotated(void **state)
{
    struct fx *f = *state;
    int changed = -1;
    static const char text[] =
        "panelgate-ticket-keys 1\n"
        "current 0badc0de 1000 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    put_file(f->path, text, 0400);
    struct gw_ticket *t = open_keys(f, T0); /* long due */
    assert_int_equal(gw_ticket_refresh(t, T0 + 1, &changed, f->err, sizeof f->err), 0);
    assert_int_equal(changed, 0);
    char name[9];
    int64_t created;
    gw_ticket_current(t, name, &created);
    assert_string_equal(name, "0badc0de");
    assert_int_equal(created, 1000);
    assert_string_equal(slurp(f->path), text);
    gw_ticket_free(t);
}

/* Each allocation of gw_ticket_new failing in turn: GW_ENOMEM, nothing
 * left behind (LeakSanitizer in make sanitize), then a run that works. */
static void test_alloc_failures(void **state)
{
    struct fx *f = *state;
    struct gw_ticket *t;
    long n;
    for (n = 1;; n++) {
        t = (struct gw_ticket *)1;
        gw_alloc_fail_nth(n);
        int rv = gw_ticket_new(&t, f->path, LIFETIME, test_rng, f, T0, f->err, sizeof f->err);
        long injected = gw_alloc_injected();
        gw_alloc_fail_nth(0);
        if (injected == 0) {
            assert_int_equal(rv, 0);
            break;
        }
        assert_int_equal(rv, GW_ENOMEM);
        assert_null(t);
    }
    assert_true(n > 1);
    struct ticket a;
    issue(t, &a, 0);
    assert_int_equal(parse(t, &a), 0);
    gw_ticket_free(t);
}

#define K64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void test_bad_files(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *text;
        mode_t mode;
        const char *reason;
    } cases[] = {
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "\n", 0644,
         ": mode 0644 lets group or others at the ticket keys"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "\n", 0660, ": mode 0660"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "\n", 0604, ": mode 0604"},
        {"", 0600, ": no 'current' key line"},
        {"# only a comment\n\n", 0600, ": no 'current' key line"},
        {"current 0badc0de 1000 " K64 "\n", 0600, ": line 1: not a panelgate ticket key file"},
        {"panelgate-ticket-keys 2\n", 0600, ": line 1: not a panelgate ticket key file"},
        {"panelgate-ticket-keys 1\n\ncurrent 0badc0d 1000 " K64 "\n", 0600, ": line 3: want one"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de -5 " K64 "\n", 0600, ": line 2: want one"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "0\n", 0600, ": line 2: want one"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 " x\n", 0600, ": line 2: want one"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000\n", 0600, ": line 2: want one"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "\ncurrent 0badc0df 1 " K64 "\n",
         0600, ": line 3: want one"},
        {"panelgate-ticket-keys 1\nnext 0badc0de 1000 " K64 "\n", 0600, ": line 2: want one"},
        {"panelgate-ticket-keys 1\nprevious 0badc0de 1000 " K64 "\n", 0600,
         ": no 'current' key line"},
        {"panelgate-ticket-keys 1\ncurrent 0badc0de 1000 " K64 "\nprevious 0BADC0DE 9 " K64 "\n",
         0600, ": the current and the previous key have the same name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw_ticket *t = (struct gw_ticket *)1;
        put_file(f->path, cases[i].text, cases[i].mode);
        f->err[0] = '\0';
        int rv = gw_ticket_new(&t, f->path, LIFETIME, test_rng, f, T0, f->err, sizeof f->err);
        if (rv != GW_ECONFIG || !strstr(f->err, cases[i].reason) || !strstr(f->err, f->path))
            fail_msg("case %zu: rv %d, err '%s', want '%s'", i, rv, f->err, cases[i].reason);
        assert_null(t);
        unlink(f->path);
    }
    /* the good form of the same, with blanks, comments and upper-case hex */
    put_file(f->path,
             "# c\n  panelgate-ticket-keys 1\n\ncurrent\t0BADC0DE  1000 " K64 "\n"
             "previous 0ddba11a 900 " K64 "\n",
             0600);
    struct gw_ticket *t = open_keys(f, 1500);
    char name[9];
    int64_t created;
    gw_ticket_current(t, name, &created);
    assert_string_equal(name, "0badc0de");
    gw_ticket_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_made_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tickets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_held_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_not_rotated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
