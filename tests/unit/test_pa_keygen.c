/*
 * test_pa_keygen.c - panelagent_keygen: a 0600 P-256 key created only if
 * absent, a CSR with the right CN whose signature verifies, and nothing
 * left behind when anything fails.
 */
#include <dirent.h>
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

#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_csr.h>

#include "panelagent.h"

struct dir {
    char path[256];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -1;
    snprintf(d->path, sizeof d->path, "%s/pa_keygen.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(d->path) == NULL) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* Number of entries in the directory (without . and ..). */
static int count_entries(const char *path)
{
    DIR *dp = opendir(path);
    struct dirent *e;
    int n = 0;
    assert_non_null(dp);
    while ((e = readdir(dp)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(dp);
    return n;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    int rc = system(cmd);
    free(d);
    return rc == 0 ? 0 : -1;
}

static const char *in(const struct dir *d, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", d->path, name);
    return buf;
}

/* Parses the CSR, checks its SHA-256 signature with its own key, its CN,
 * and that |key_path| holds the matching P-256 private key. */
static void check_pair(const char *key_path, const char *csr_path, const char *cn)
{
    mbedtls_x509_csr csr;
    mbedtls_pk_context key;
    unsigned char hash[32];
    char dn[256];

    mbedtls_x509_csr_init(&csr);
    mbedtls_pk_init(&key);
    assert_int_equal(mbedtls_x509_csr_parse_file(&csr, csr_path), 0);
    assert_int_equal(csr.sig_md, MBEDTLS_MD_SHA256);
    const mbedtls_md_info_t *mi = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    assert_int_equal(mbedtls_md(mi, csr.cri.p, csr.cri.len, hash), 0);
    assert_int_equal(mbedtls_pk_verify_ext(csr.sig_pk, csr.sig_opts, &csr.pk, csr.sig_md,
                                           hash, sizeof hash, csr.sig.p, csr.sig.len),
                     0);
    /* a flipped hash must not verify: the check above is real */
    hash[0] ^= 1;
    assert_int_not_equal(mbedtls_pk_verify_ext(csr.sig_pk, csr.sig_opts, &csr.pk, csr.sig_md,
                                               hash, sizeof hash, csr.sig.p, csr.sig.len),
                         0);
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &csr.subject) > 0);
    char want[128];
    snprintf(want, sizeof want, "CN=%s", cn);
    assert_string_equal(dn, want);
    assert_int_equal(mbedtls_pk_get_type(&csr.pk), MBEDTLS_PK_ECKEY);
    assert_int_equal(mbedtls_pk_ec(csr.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);

    assert_int_equal(mbedtls_pk_parse_keyfile(&key, key_path, NULL), 0);
    assert_int_equal(mbedtls_pk_check_pair(&csr.pk, &key), 0);
    mbedtls_pk_free(&key);
    mbedtls_x509_csr_free(&csr);
}

static void t_keygen_ok(void **state)
{
    struct dir *d = *state;
    char kp[300], cp[300], err[256] = "";
    struct stat st;

    /* a permissive umask must not widen the key's mode */
    mode_t old = umask(0);
    int rv = panelagent_keygen(in(d, "agent.key", kp, sizeof kp),
                               in(d, "agent.csr", cp, sizeof cp), "nimble-07", err, sizeof err);
    umask(old);
    if (rv != 0)
        fail_msg("keygen: %d %s", rv, err);
    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(cp, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    check_pair(kp, cp, "nimble-07");
    assert_int_equal(count_entries(d->path), 2); /* no temporary file left */
}

static void t_keygen_fresh_keys(void **state)
{
    struct dir *d = *state;
    char k1[300], k2[300], c1[300], c2[300];
    char a[1024] = "", b[1024] = "";

    mode_t old = umask(077);
    assert_int_equal(panelagent_keygen(in(d, "1.key", k1, sizeof k1),
                                       in(d, "1.csr", c1, sizeof c1), "a b", NULL, 0), 0);
    assert_int_equal(panelagent_keygen(in(d, "2.key", k2, sizeof k2),
                                       in(d, "2.csr", c2, sizeof c2), "a b", NULL, 0), 0);
    umask(old);
    check_pair(k1, c1, "a b");
    check_pair(k2, c2, "a b");
    FILE *f1 = fopen(k1, "r"), *f2 = fopen(k2, "r");
    assert_non_null(f1);
    assert_non_null(f2);
    assert_true(fread(a, 1, sizeof a - 1, f1) > 100);
    assert_true(fread(b, 1, sizeof b - 1, f2) > 100);
    fclose(f1);
    fclose(f2);
    assert_non_null(strstr(a, "PRIVATE KEY"));
    assert_string_not_equal(a, b);
}

static void t_keygen_existing_key(void **state)
{
    struct dir *d = *state;
    char kp[300], cp[300], err[256] = "", buf[64] = "";

    FILE *f = fopen(in(d, "agent.key", kp, sizeof kp), "w");
    assert_non_null(f);
    fputs("keep me\n", f);
    fclose(f);
    assert_int_equal(panelagent_keygen(kp, in(d, "agent.csr", cp, sizeof cp), "n", err,
                                       sizeof err),
                     PANELAGENT_EIO);
    assert_non_null(strstr(err, "agent.key"));
    f = fopen(kp, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "keep me\n");
    assert_int_equal(access(cp, F_OK), -1);
    assert_int_equal(count_entries(d->path), 1);

    /* a symlink named like the key is not followed either */
    char lp[300];
    assert_int_equal(symlink(kp, in(d, "link.key", lp, sizeof lp)), 0);
    assert_int_equal(panelagent_keygen(lp, cp, "n", NULL, 0), PANELAGENT_EIO);
    assert_int_equal(count_entries(d->path), 2);
}

static void t_keygen_existing_csr_replaced(void **state)
{
    struct dir *d = *state;
    char kp[300], cp[300];

    FILE *f = fopen(in(d, "agent.csr", cp, sizeof cp), "w");
    assert_non_null(f);
    fputs("old\n", f);
    fclose(f);
    assert_int_equal(panelagent_keygen(in(d, "agent.key", kp, sizeof kp), cp, "x", NULL, 0),
                     0);
    check_pair(kp, cp, "x");
    assert_int_equal(count_entries(d->path), 2);
}

static void t_keygen_bad_paths(void **state)
{
    struct dir *d = *state;
    char kp[300], cp[300], err[256] = "";

    /* the key's directory does not exist */
    assert_int_equal(panelagent_keygen(in(d, "no/such.key", kp, sizeof kp),
                                       in(d, "a.csr", cp, sizeof cp), "n", err, sizeof err),
                     PANELAGENT_EIO);
    assert_non_null(strstr(err, "no/such.key"));
    assert_int_equal(count_entries(d->path), 0);
    /* the CSR's directory does not exist: the key made first is removed */
    err[0] = '\0';
    assert_int_equal(panelagent_keygen(in(d, "a.key", kp, sizeof kp),
                                       in(d, "no/such.csr", cp, sizeof cp), "n", err,
                                       sizeof err),
                     PANELAGENT_EIO);
    assert_non_null(strstr(err, "no/such.csr"));
    assert_int_equal(count_entries(d->path), 0);
    /* the CSR path is a directory: rename fails after both were written */
    char sub[300];
    assert_int_equal(mkdir(in(d, "dir.csr", sub, sizeof sub), 0700), 0);
    char inner[300];
    FILE *f = fopen(in(d, "dir.csr/x", inner, sizeof inner), "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(panelagent_keygen(kp, sub, "n", err, sizeof err), PANELAGENT_EIO);
    assert_int_equal(count_entries(d->path), 1); /* only dir.csr */
    assert_int_equal(count_entries(sub), 1);
    /* key and CSR the same file */
    assert_int_equal(panelagent_keygen(kp, kp, "n", err, sizeof err), PANELAGENT_EINVAL);
    char kp2[300];
    snprintf(kp2, sizeof kp2, "%s/./a.key", d->path);
    assert_int_equal(panelagent_keygen(kp, kp2, "n", err, sizeof err), PANELAGENT_EINVAL);
    assert_int_equal(count_entries(d->path), 1);
    /* NULL and empty */
    assert_int_equal(panelagent_keygen(NULL, cp, "n", NULL, 0), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_keygen(kp, "", "n", NULL, 0), PANELAGENT_EINVAL);
    assert_int_equal(count_entries(d->path), 1);
}

static void t_keygen_bad_cn(void **state)
{
    struct dir *d = *state;
    char kp[300], cp[300], err[256];
    static const char *const bad[] = {"", "a,b", "CN=x", " lead", "trail ", "t\xc3\xa9",
                                      "x/y", "a\nb"};
    char cn65[66];
    in(d, "k.key", kp, sizeof kp);
    in(d, "k.csr", cp, sizeof cp);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(panelagent_keygen(kp, cp, bad[i], err, sizeof err),
                         PANELAGENT_EINVAL);
        assert_non_null(strstr(err, "common name"));
    }
    assert_int_equal(panelagent_keygen(kp, cp, NULL, NULL, 0), PANELAGENT_EINVAL);
    memset(cn65, 'c', 65);
    cn65[65] = '\0';
    assert_int_equal(panelagent_keygen(kp, cp, cn65, NULL, 0), PANELAGENT_EINVAL);
    assert_int_equal(count_entries(d->path), 0);
    /* 64 characters is the limit */
    cn65[64] = '\0';
    assert_int_equal(panelagent_keygen(kp, cp, cn65, NULL, 0), 0);
    check_pair(kp, cp, cn65);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_keygen_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(t_keygen_fresh_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(t_keygen_existing_key, setup, teardown),
        cmocka_unit_test_setup_teardown(t_keygen_existing_csr_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(t_keygen_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(t_keygen_bad_cn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
