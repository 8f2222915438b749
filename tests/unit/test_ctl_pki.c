/*
 * test_ctl_pki.c - the panel CA (gateway/ctl/pki.h) in a scratch directory:
 * CA init/load, client and server certificates checked by parsing them and
 * verifying them against the CA with mbedTLS, serial state, CSRs (good,
 * tampered, weak keys), SPKI pins, key files and error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "pki.h"
#include "tls.h" /* gw_tls_spki_sha256: the pin the gateway computes */

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define T_PRIV(f) MBEDTLS_PRIVATE(f)
#else
#define T_PRIV(f) f
#endif

struct fx {
    char base[64];  /* scratch directory */
    char pki[128];  /* base/pki, a CA made by the setup */
    struct pki_rng rng;
    struct pki_ca ca;
    char err[1024];
};

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->base, sizeof f->base, "ctlpki.XXXXXX");
    if (mkdtemp(f->base) == NULL)
        return -1;
    snprintf(f->pki, sizeof f->pki, "%s/pki", f->base);
    if (pki_rng_init(&f->rng, f->err, sizeof f->err) != 0 ||
        pki_ca_init(f->pki, NULL, PKI_KEY_EC_P256, 3650, &f->rng, f->err, sizeof f->err) != 0 ||
        pki_ca_load(&f->ca, f->pki, &f->rng, f->err, sizeof f->err) != 0) {
        fprintf(stderr, "setup: %s\n", f->err);
        return -1;
    }
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    pki_ca_free(&f->ca);
    pki_rng_free(&f->rng);
    rm_rf(f->base);
    free(f);
    return 0;
}

#define ASSERT_ERR_HAS(f, s)                                                                 \
    do {                                                                                     \
        if (strstr((f)->err, (s)) == NULL)                                                   \
            fail_msg("error '%s' does not contain '%s'", (f)->err, (s));                     \
    } while (0)

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void read_text(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

static void write_bytes(const char *path, const unsigned char *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* The serial file as an MPI. */
static void serial_file(struct fx *f, mbedtls_mpi *out)
{
    char path[192], hex[128];
    snprintf(path, sizeof path, "%s/serial", f->pki);
    read_text(path, hex, sizeof hex);
    hex[strcspn(hex, "\n")] = '\0';
    assert_int_equal(mbedtls_mpi_read_string(out, 16, hex), 0);
}

static void crt_serial(const mbedtls_x509_crt *c, mbedtls_mpi *out)
{
    assert_int_equal(mbedtls_mpi_read_binary(out, c->serial.p, c->serial.len), 0);
}

/* Independent SPKI hash: DER of the parsed certificate's key. */
static void spki_of_crt(const mbedtls_x509_crt *c, uint8_t out[32])
{
    unsigned char der[2048];
    int n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&c->pk, der, sizeof der);
    assert_true(n > 0);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    assert_int_equal(mbedtls_sha256(der + sizeof der - n, (size_t)n, out, 0), 0);
#else
    assert_int_equal(mbedtls_sha256_ret(der + sizeof der - n, (size_t)n, out, 0), 0);
#endif
}

static time_t x509_epoch(const mbedtls_x509_time *t)
{
    struct tm tm = {0};
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return timegm(&tm);
}

/* Issues into leaf (parsed) and checks what every issued cert must have. */
static void issue_ok(struct fx *f, const struct pki_issue *req, mbedtls_pk_context *key,
                     mbedtls_x509_crt *leaf)
{
    unsigned char pem[8192];
    time_t now = time(NULL);
    uint32_t flags = 0;

    if (pki_issue(&f->ca, req, key, &f->rng, pem, sizeof pem, f->err, sizeof f->err) != 0)
        fail_msg("pki_issue: %s", f->err);
    assert_int_equal(mbedtls_x509_crt_parse(leaf, pem, strlen((char *)pem) + 1), 0);
    assert_int_equal(mbedtls_x509_crt_verify(leaf, &f->ca.crt, NULL, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(leaf->version, 3);
    assert_int_equal(leaf->T_PRIV(sig_md), MBEDTLS_MD_SHA256);

    char dn[256], want[128];
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &leaf->subject) > 0);
    snprintf(want, sizeof want, "CN=%s", req->common_name);
    assert_string_equal(dn, want);
    assert_int_equal(leaf->issuer_raw.len, f->ca.crt.subject_raw.len);
    assert_memory_equal(leaf->issuer_raw.p, f->ca.crt.subject_raw.p, leaf->issuer_raw.len);

    /* basicConstraints present, CA:FALSE; keyUsage present. */
    assert_true(leaf->T_PRIV(ext_types) & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS);
    assert_int_equal(leaf->T_PRIV(ca_istrue), 0);
    assert_true(leaf->T_PRIV(ext_types) & MBEDTLS_X509_EXT_KEY_USAGE);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);

    /* Exactly one EKU, the profile's. */
    assert_true(leaf->T_PRIV(ext_types) & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE);
    assert_null(leaf->ext_key_usage.next);
    int server = req->profile == PKI_PROFILE_SERVER;
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         leaf, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0,
                     server);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         leaf, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) == 0,
                     !server);

    /* not-before = now - 5 min, not-after = now + days (a few seconds' slack). */
    time_t nb = x509_epoch(&leaf->valid_from), na = x509_epoch(&leaf->valid_to);
    assert_true(nb >= now - 300 - 5 && nb <= now - 300 + 5);
    assert_true(na >= now + (time_t)req->days * 86400 - 5 &&
                na <= now + (time_t)req->days * 86400 + 5);

    /* The registry pin of the subject key equals the certificate's. */
    uint8_t a[32], b[32], c[32];
    assert_int_equal(pki_spki_sha256(key, a), 0);
    spki_of_crt(leaf, b);
    assert_memory_equal(a, b, 32);
    assert_int_equal(gw_tls_spki_sha256(leaf, c), 0);
    assert_memory_equal(a, c, 32);
}

/* ------------------------------------------------------------ CA */

static void test_ca_init_files(void **state)
{
    struct fx *f = *state;
    char path[192], text[128];

    assert_int_equal(mode_of(f->pki), 0700);
    snprintf(path, sizeof path, "%s/ca.key", f->pki);
    assert_int_equal(mode_of(path), 0600);
    snprintf(path, sizeof path, "%s/serial", f->pki);
    read_text(path, text, sizeof text);
    assert_int_equal(strlen(text), 17); /* 16 hex digits + newline */
    assert_int_equal(strspn(text, "0123456789ABCDEF"), 16);

    /* The CA certificate: self-signed, CA:TRUE pathlen 0, keyCertSign|cRLSign. */
    mbedtls_x509_crt *ca = &f->ca.crt;
    char dn[256];
    uint32_t flags = 0;
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &ca->subject) > 0);
    assert_string_equal(dn, "CN=panelgate panel CA");
    assert_int_equal(ca->version, 3);
    assert_int_equal(ca->T_PRIV(ca_istrue), 1);
    assert_int_equal(ca->T_PRIV(max_pathlen), 1); /* mbedTLS stores pathlen + 1 */
    assert_int_equal(mbedtls_x509_crt_check_key_usage(
                         ca, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN), 0);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(ca, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    assert_int_equal(mbedtls_x509_crt_verify(ca, ca, NULL, NULL, &flags, NULL, NULL), 0);
    time_t na = x509_epoch(&ca->valid_to);
    assert_true(na > time(NULL) + 3649L * 86400 && na < time(NULL) + 3651L * 86400);

    /* The serial file holds the CA's own serial + 1. */
    mbedtls_mpi s, c;
    mbedtls_mpi_init(&s);
    mbedtls_mpi_init(&c);
    serial_file(f, &s);
    crt_serial(ca, &c);
    assert_int_equal(mbedtls_mpi_add_int(&c, &c, 1), 0);
    assert_int_equal(mbedtls_mpi_cmp_mpi(&s, &c), 0);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&c);

    /* A second init is refused and names the file; nothing is touched. */
    char before[128];
    read_text(path, before, sizeof before);
    assert_int_equal(pki_ca_init(f->pki, "again", PKI_KEY_EC_P256, 10, &f->rng, f->err,
                                 sizeof f->err), GW_EEXIST);
    ASSERT_ERR_HAS(f, "ca.key");
    ASSERT_ERR_HAS(f, "already exists");
    read_text(path, text, sizeof text);
    assert_string_equal(text, before);

    /* Bad arguments. */
    snprintf(path, sizeof path, "%s/other", f->base);
    assert_int_equal(pki_ca_init(path, "a,b", PKI_KEY_EC_P256, 10, &f->rng, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, "common name 'a,b'");
    assert_int_equal(pki_ca_init(path, NULL, PKI_KEY_EC_P256, 0, &f->rng, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, "days 0");
}

static void test_ca_load_mismatch(void **state)
{
    struct fx *f = *state;
    char other[192], a[256], b[256];
    struct pki_ca ca;

    snprintf(other, sizeof other, "%s/other", f->base);
    assert_int_equal(pki_ca_init(other, "other CA", PKI_KEY_EC_P256, 30, &f->rng, f->err,
                                 sizeof f->err), 0);
    assert_int_equal(pki_ca_load(&ca, other, &f->rng, f->err, sizeof f->err), 0);
    pki_ca_free(&ca);

    /* Put the other CA's key next to our certificate. */
    snprintf(a, sizeof a, "%s/ca.key", f->pki);
    snprintf(b, sizeof b, "%s/ca.key", other);
    assert_int_equal(rename(b, a), 0);
    assert_int_equal(pki_ca_load(&ca, f->pki, &f->rng, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, "does not match");
    ASSERT_ERR_HAS(f, a);
    pki_ca_free(&ca); /* safe after a failed load */

    /* No CA at all; a missing key. */
    snprintf(a, sizeof a, "%s/nothing", f->base);
    assert_int_equal(pki_ca_load(&ca, a, &f->rng, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, "no CA here");
    assert_int_equal(pki_ca_load(&ca, other, &f->rng, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, b);
}

/* ------------------------------------------------------------ issuing */

static void test_issue_client(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key;
    mbedtls_x509_crt leaf;
    struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .common_name = "nimble-01", .days = 30};

    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    issue_ok(f, &req, &key, &leaf);
    assert_false(leaf.T_PRIV(ext_types) & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(&leaf, MBEDTLS_X509_KU_KEY_ENCIPHERMENT), 0);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
}

static void test_issue_server_sans(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key;
    mbedtls_x509_crt leaf;
    struct pki_issue req = {
        .profile = PKI_PROFILE_SERVER,
        .common_name = "panelgate gateway",
        .dns = {"gw.example.net", "*.edge.example.net", "localhost"},
        .n_dns = 3,
        .ip = {"127.0.0.1", "2001:db8::1"},
        .n_ip = 2,
        .days = 398,
    };

    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    issue_ok(f, &req, &key, &leaf);

    /* SANs, in order, with their tags. */
    static const unsigned char v4[] = {127, 0, 0, 1};
    static const unsigned char v6[] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    struct {
        unsigned char tag;
        const void *v;
        size_t n;
    } want[] = {
        {0x82, "gw.example.net", 14}, {0x82, "*.edge.example.net", 18}, {0x82, "localhost", 9},
        {0x87, v4, 4}, {0x87, v6, 16},
    };
    const mbedtls_x509_sequence *san = &leaf.subject_alt_names;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++, san = san->next) {
        assert_non_null(san);
        assert_int_equal(san->buf.tag, want[i].tag);
        assert_int_equal(san->buf.len, want[i].n);
        assert_memory_equal(san->buf.p, want[i].v, want[i].n);
    }
    assert_null(san);

    /* mbedTLS's own name check uses the DNS SANs. */
    uint32_t flags = 0;
    assert_int_equal(mbedtls_x509_crt_verify(&leaf, &f->ca.crt, NULL, "gw.example.net", &flags,
                                             NULL, NULL), 0);
    assert_int_equal(mbedtls_x509_crt_verify(&leaf, &f->ca.crt, NULL, "a.edge.example.net",
                                             &flags, NULL, NULL), 0);
    assert_int_not_equal(mbedtls_x509_crt_verify(&leaf, &f->ca.crt, NULL, "evil.example.net",
                                                 &flags, NULL, NULL), 0);
    assert_true(flags & MBEDTLS_X509_BADCERT_CN_MISMATCH);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
}

/* Nothing outlives its CA: not-after is clamped to the CA's. */
static void test_issue_clamped_to_ca(void **state)
{
    struct fx *f = *state;
    unsigned char pem[8192];
    mbedtls_pk_context key;
    mbedtls_x509_crt leaf;
    struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .common_name = "long", .days = 20000};

    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    /* A context that already holds a key is refused, not freed. */
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), GW_EINVAL);
    assert_int_equal(mbedtls_pk_get_type(&key), MBEDTLS_PK_ECKEY);
    assert_int_equal(pki_issue(&f->ca, &req, &key, &f->rng, pem, sizeof pem, f->err,
                               sizeof f->err), 0);
    assert_int_equal(mbedtls_x509_crt_parse(&leaf, pem, strlen((char *)pem) + 1), 0);
    assert_int_equal(x509_epoch(&leaf.valid_to), x509_epoch(&f->ca.crt.valid_to));
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
}

static void test_issue_rejects(void **state)
{
    struct fx *f = *state;
    unsigned char pem[8192];
    mbedtls_pk_context key;
    mbedtls_mpi before, after;

    mbedtls_pk_init(&key);
    mbedtls_mpi_init(&before);
    mbedtls_mpi_init(&after);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    serial_file(f, &before);

#define REJECT_AS(r, frag, code)                                                             \
    do {                                                                                     \
        assert_int_equal(pki_issue(&f->ca, (r), &key, &f->rng, pem, sizeof pem, f->err,      \
                                   sizeof f->err), (code));                                  \
        ASSERT_ERR_HAS(f, frag);                                                             \
    } while (0)
#define REJECT(r, frag) REJECT_AS(r, frag, GW_EINVAL)

    struct pki_issue r = {.profile = PKI_PROFILE_CLIENT, .common_name = "x", .days = 1,
                          .dns = {"a.example"}, .n_dns = 1};
    REJECT(&r, "server certificates only");
    r = (struct pki_issue){.profile = PKI_PROFILE_SERVER, .common_name = "x", .days = 1};
    REJECT(&r, "needs a DNS name or an IP");

    static const char *const bad_dns[] = {"bad..name", "-x.example", "x-.example", "a_b.example",
                                          "1.2.3.4", "", "a.example.", "*", "a.*.example",
                                          "sp ace.example"};
    for (size_t i = 0; i < sizeof bad_dns / sizeof bad_dns[0]; i++) {
        char frag[64];
        r = (struct pki_issue){.profile = PKI_PROFILE_SERVER, .common_name = "x", .days = 1,
                               .dns = {bad_dns[i]}, .n_dns = 1};
        snprintf(frag, sizeof frag, "DNS name '%s'", bad_dns[i]);
        REJECT(&r, frag);
    }
    static const char *const bad_ip[] = {"300.1.1.1", "::g", "localhost", "1.2.3", ""};
    for (size_t i = 0; i < sizeof bad_ip / sizeof bad_ip[0]; i++) {
        char frag[64];
        r = (struct pki_issue){.profile = PKI_PROFILE_SERVER, .common_name = "x", .days = 1,
                               .ip = {bad_ip[i]}, .n_ip = 1};
        snprintf(frag, sizeof frag, "IP address '%s'", bad_ip[i]);
        REJECT(&r, frag);
    }
    static const char *const bad_cn[] = {"a,b", "CN=x", "", " lead", "trail ", "a+b", "x\\y",
                                         "caf\xc3\xa9", "a\"b",
                                         "0123456789012345678901234567890123456789012345678901234567890123X"};
    for (size_t i = 0; i < sizeof bad_cn / sizeof bad_cn[0]; i++) {
        r = (struct pki_issue){.profile = PKI_PROFILE_CLIENT, .common_name = bad_cn[i], .days = 1};
        REJECT(&r, "common name");
    }
    r = (struct pki_issue){.profile = PKI_PROFILE_CLIENT, .common_name = "x", .days = 0};
    REJECT(&r, "days 0");
    r = (struct pki_issue){.profile = 7, .common_name = "x", .days = 1};
    REJECT(&r, "profile 7");
    r = (struct pki_issue){.profile = PKI_PROFILE_CLIENT, .common_name = NULL, .days = 1};
    REJECT(&r, "common name");

    /* None of that consumed a serial. */
    serial_file(f, &after);
    assert_int_equal(mbedtls_mpi_cmp_mpi(&before, &after), 0);

    /* A corrupt serial file stops issuing and is named. */
    char path[192];
    snprintf(path, sizeof path, "%s/serial", f->pki);
    write_bytes(path, (const unsigned char *)"zz\n", 3);
    r = (struct pki_issue){.profile = PKI_PROFILE_CLIENT, .common_name = "x", .days = 1};
    REJECT(&r, path);
    unlink(path);
    REJECT_AS(&r, path, GW_EIO);
#undef REJECT
#undef REJECT_AS
    mbedtls_mpi_free(&before);
    mbedtls_mpi_free(&after);
    mbedtls_pk_free(&key);
}

static void test_serial_persisted(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key;
    mbedtls_mpi s0, s, c;
    struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .common_name = "wowza-01", .days = 7};

    mbedtls_pk_init(&key);
    mbedtls_mpi_init(&s0);
    mbedtls_mpi_init(&s);
    mbedtls_mpi_init(&c);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    serial_file(f, &s0);
    for (int i = 0; i < 3; i++) {
        mbedtls_x509_crt leaf;
        mbedtls_x509_crt_init(&leaf);
        issue_ok(f, &req, &key, &leaf);
        crt_serial(&leaf, &c);
        assert_int_equal(mbedtls_mpi_sub_int(&c, &c, i), 0);
        assert_int_equal(mbedtls_mpi_cmp_mpi(&c, &s0), 0); /* serial i = s0 + i */
        serial_file(f, &s);
        assert_int_equal(mbedtls_mpi_sub_int(&s, &s, i + 1), 0);
        assert_int_equal(mbedtls_mpi_cmp_mpi(&s, &s0), 0); /* file = s0 + i + 1 */
        mbedtls_x509_crt_free(&leaf);
    }
    /* No temporary files are left next to the state. */
    DIR *d = opendir(f->pki);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 3); /* ca.key ca.crt serial */
    mbedtls_mpi_free(&s0);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&c);
    mbedtls_pk_free(&key);
}

static void test_issue_rsa_subject(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key, back;
    mbedtls_x509_crt leaf;
    char path[192];
    struct pki_issue req = {.profile = PKI_PROFILE_SERVER, .common_name = "gw",
                            .dns = {"gw.example.net"}, .n_dns = 1, .days = 90};

    mbedtls_pk_init(&key);
    mbedtls_pk_init(&back);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_RSA_3072, &f->rng, f->err, sizeof f->err), 0);
    assert_int_equal(mbedtls_pk_get_bitlen(&key), 3072);
    issue_ok(f, &req, &key, &leaf);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(
                         &leaf, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT), 0);

    /* RSA key file round trip. */
    snprintf(path, sizeof path, "%s/gateway.key", f->pki);
    assert_int_equal(pki_key_write(&key, path, f->err, sizeof f->err), 0);
    assert_int_equal(pki_key_load(&back, path, &f->rng, f->err, sizeof f->err), 0);
    uint8_t a[32], b[32];
    assert_int_equal(pki_spki_sha256(&back, a), 0);
    spki_of_crt(&leaf, b);
    assert_memory_equal(a, b, 32);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&back);
    mbedtls_pk_free(&key);
}

/* ------------------------------------------------------------ CSRs */

/* Writes a CSR for a fresh P-256 key to path; returns its DER in der. */
static size_t make_csr(struct fx *f, const char *cn, mbedtls_pk_context *key, const char *path,
                       unsigned char *der, size_t derlen)
{
    unsigned char pem[4096];
    mbedtls_x509_csr csr;

    assert_int_equal(pki_key_generate(key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    if (pki_csr_write(key, cn, &f->rng, pem, sizeof pem, f->err, sizeof f->err) != 0)
        fail_msg("pki_csr_write: %s", f->err);
    assert_non_null(strstr((char *)pem, "-----BEGIN CERTIFICATE REQUEST-----"));
    assert_int_equal(pki_write_file(path, pem, f->err, sizeof f->err), 0);
    mbedtls_x509_csr_init(&csr);
    assert_int_equal(mbedtls_x509_csr_parse(&csr, pem, strlen((char *)pem) + 1), 0);
    assert_true(csr.raw.len <= derlen);
    size_t n = csr.raw.len;
    memcpy(der, csr.raw.p, n);
    mbedtls_x509_csr_free(&csr);
    return n;
}

static void test_csr_round_trip(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key;
    mbedtls_x509_csr csr;
    mbedtls_x509_crt leaf;
    unsigned char der[2048];
    char path[192], dn[128];
    struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .common_name = "wowza-01", .days = 30};

    mbedtls_pk_init(&key);
    mbedtls_x509_csr_init(&csr);
    mbedtls_x509_crt_init(&leaf);
    snprintf(path, sizeof path, "%s/wowza-01.csr", f->base);
    size_t n = make_csr(f, "wowza-01", &key, path, der, sizeof der);
    if (pki_csr_load(&csr, path, f->err, sizeof f->err) != 0)
        fail_msg("pki_csr_load: %s", f->err);
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &csr.subject) > 0);
    assert_string_equal(dn, "CN=wowza-01");

    /* The certificate carries the CSR's key: same pin as the agent's key. */
    issue_ok(f, &req, &csr.pk, &leaf);
    uint8_t a[32], b[32];
    assert_int_equal(pki_spki_sha256(&key, a), 0);
    spki_of_crt(&leaf, b);
    assert_memory_equal(a, b, 32);
    mbedtls_x509_csr_free(&csr);

    /* DER input loads too. */
    snprintf(path, sizeof path, "%s/wowza-01.der", f->base);
    write_bytes(path, der, n);
    assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), 0);
    mbedtls_x509_csr_free(&csr);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
}

static void test_csr_tampered(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key;
    mbedtls_x509_csr csr;
    unsigned char der[2048], bad[2048];
    char path[192];

    mbedtls_pk_init(&key);
    mbedtls_x509_csr_init(&csr);
    snprintf(path, sizeof path, "%s/agent.csr", f->base);
    size_t n = make_csr(f, "wowza-01", &key, path, der, sizeof der);

    /* A flipped bit in the signature (its last byte). */
    memcpy(bad, der, n);
    bad[n - 1] ^= 0x01;
    write_bytes(path, bad, n);
    assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, "CSR signature does not verify");
    ASSERT_ERR_HAS(f, path);

    /* A changed letter in the subject ("wowza-01" -> "xowza-01"). */
    memcpy(bad, der, n);
    unsigned char *at = NULL;
    for (size_t i = 0; i + 8 <= n; i++)
        if (memcmp(bad + i, "wowza-01", 8) == 0)
            at = bad + i;
    assert_non_null(at);
    *at = 'x';
    write_bytes(path, bad, n);
    assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, "CSR signature does not verify");

    /* Not a CSR at all; no file. */
    write_bytes(path, (const unsigned char *)"hello\n", 6);
    assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, "cannot parse the CSR");
    snprintf(path, sizeof path, "%s/missing.csr", f->base);
    assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, path);
    mbedtls_x509_csr_free(&csr);
    mbedtls_pk_free(&key);
}

/* CSRs for keys we do not accept: RSA-1024 and an EC key on secp256k1. */
static void test_csr_weak_keys(void **state)
{
    struct fx *f = *state;
    unsigned char pem[4096];
    char path[192];
    mbedtls_x509_csr csr;

    snprintf(path, sizeof path, "%s/weak.csr", f->base);
    for (int k = 0; k < 2; k++) {
        mbedtls_pk_context key;
        mbedtls_pk_init(&key);
        if (k == 0) {
            assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
            assert_int_equal(mbedtls_rsa_gen_key(mbedtls_pk_rsa(key), mbedtls_ctr_drbg_random,
                                                 &f->rng.drbg, 1024, 65537), 0);
        } else {
            assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
            assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256K1, mbedtls_pk_ec(key),
                                                 mbedtls_ctr_drbg_random, &f->rng.drbg), 0);
        }
        assert_int_equal(pki_csr_write(&key, "weak", &f->rng, pem, sizeof pem, f->err,
                                       sizeof f->err), 0);
        unlink(path);
        assert_int_equal(pki_write_file(path, pem, f->err, sizeof f->err), 0);
        mbedtls_x509_csr_init(&csr);
        assert_int_equal(pki_csr_load(&csr, path, f->err, sizeof f->err), GW_EINVAL);
        ASSERT_ERR_HAS(f, k == 0 ? "RSA key of 1024 bits is too short" : "unsupported curve");

        /* Nor is such a key issued a certificate directly. */
        unsigned char out[4096];
        struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .common_name = "weak", .days = 1};
        assert_int_equal(pki_issue(&f->ca, &req, &key, &f->rng, out, sizeof out, f->err,
                                   sizeof f->err), GW_EINVAL);
        mbedtls_pk_free(&key);
    }
}

/* ------------------------------------------------------------ keys, files */

static void test_spki_pin(void **state)
{
    struct fx *f = *state;
    /* The CA's private key and its certificate give the same pin by all
     * three routes (ours, by hand, the gateway's). */
    uint8_t a[32], b[32], c[32];
    assert_int_equal(pki_spki_sha256(&f->ca.key, a), 0);
    spki_of_crt(&f->ca.crt, b);
    assert_memory_equal(a, b, 32);
    assert_int_equal(gw_tls_spki_sha256(&f->ca.crt, c), 0);
    assert_memory_equal(a, c, 32);

    /* A P-256 public key made with openssl, and the pin that
     * `openssl pkey -pubin -outform DER | sha256sum` printed for it. */
    static const char pem[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAED6UJa6q2yD9sxgpTWMWeAZy2JlSh\n"
        "Fz9BMeYWdFdCAACC1GvaVOec60FNI3ivpt4heWwDNqajkjqYpLFyHL8Lmw==\n"
        "-----END PUBLIC KEY-----\n";
    static const uint8_t want[32] = {
        0xf8, 0x15, 0xc1, 0x63, 0x79, 0x16, 0x66, 0x02, 0xb7, 0xab, 0xd1, 0xcb, 0x7d, 0x1c, 0xca, 0x21,
        0xdd, 0xcc, 0xee, 0x14, 0xe7, 0x8f, 0x3b, 0x7a, 0xe6, 0xe9, 0xa8, 0x80, 0x43, 0xe3, 0x63, 0xf0};
    mbedtls_pk_context k;
    mbedtls_pk_init(&k);
    assert_int_equal(mbedtls_pk_parse_public_key(&k, (const unsigned char *)pem, sizeof pem), 0);
    assert_int_equal(pki_spki_sha256(&k, a), 0);
    assert_memory_equal(a, want, 32);
    mbedtls_pk_free(&k);
}

static void test_key_write_no_overwrite(void **state)
{
    struct fx *f = *state;
    mbedtls_pk_context key, other;
    char path[192], before[1024], after[1024];

    mbedtls_pk_init(&key);
    mbedtls_pk_init(&other);
    snprintf(path, sizeof path, "%s/agent.key", f->base);
    assert_int_equal(pki_key_generate(&key, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    assert_int_equal(pki_key_generate(&other, PKI_KEY_EC_P256, &f->rng, f->err, sizeof f->err), 0);
    assert_int_equal(pki_key_write(&key, path, f->err, sizeof f->err), 0);
    assert_int_equal(mode_of(path), 0600);
    read_text(path, before, sizeof before);
    assert_non_null(strstr(before, "PRIVATE KEY-----"));

    assert_int_equal(pki_key_write(&other, path, f->err, sizeof f->err), GW_EEXIST);
    ASSERT_ERR_HAS(f, path);
    ASSERT_ERR_HAS(f, "already exists");
    read_text(path, after, sizeof after);
    assert_string_equal(before, after);

    /* A dangling symlink is not followed either. */
    char link[192];
    snprintf(link, sizeof link, "%s/link.key", f->base);
    assert_int_equal(symlink("target-does-not-exist", link), 0);
    assert_int_equal(pki_key_write(&other, link, f->err, sizeof f->err), GW_EEXIST);
    ASSERT_ERR_HAS(f, link);

    mbedtls_pk_context back;
    mbedtls_pk_init(&back);
    assert_int_equal(pki_key_load(&back, path, &f->rng, f->err, sizeof f->err), 0);
    uint8_t a[32], b[32];
    assert_int_equal(pki_spki_sha256(&key, a), 0);
    assert_int_equal(pki_spki_sha256(&back, b), 0);
    assert_memory_equal(a, b, 32);
    snprintf(path, sizeof path, "%s/none.key", f->base);
    assert_int_equal(pki_key_load(&back, path, &f->rng, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, path);
    mbedtls_pk_free(&back);
    mbedtls_pk_free(&other);
    mbedtls_pk_free(&key);
}

/* Tests run as root, so permissions prove nothing: go through a file. */
static void test_unwritable_paths(void **state)
{
    struct fx *f = *state;
    char file[192], path[256];

    snprintf(file, sizeof file, "%s/file.txt", f->base);
    write_bytes(file, (const unsigned char *)"x", 1);

    snprintf(path, sizeof path, "%s/sub", file);
    assert_int_equal(pki_ca_init(path, NULL, PKI_KEY_EC_P256, 1, &f->rng, f->err, sizeof f->err), GW_EIO);
    ASSERT_ERR_HAS(f, path);
    ASSERT_ERR_HAS(f, "Not a directory");

    snprintf(path, sizeof path, "%s/k.key", file);
    assert_int_equal(pki_key_write(&f->ca.key, path, f->err, sizeof f->err), GW_EIO);
    ASSERT_ERR_HAS(f, path);

    snprintf(path, sizeof path, "%s/x.crt", file);
    assert_int_equal(pki_write_file(path, (const unsigned char *)"pem", f->err, sizeof f->err), GW_EIO);
    ASSERT_ERR_HAS(f, path);

    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(pki_crt_load(&crt, file, f->err, sizeof f->err), GW_ETLS);
    ASSERT_ERR_HAS(f, file);
    mbedtls_x509_crt_free(&crt);

    /* pki_write_file replaces atomically and leaves mode 0644. */
    snprintf(path, sizeof path, "%s/a.crt", f->base);
    assert_int_equal(pki_write_file(path, (const unsigned char *)"one\n", f->err, sizeof f->err), 0);
    assert_int_equal(pki_write_file(path, (const unsigned char *)"two\n", f->err, sizeof f->err), 0);
    char text[16];
    read_text(path, text, sizeof text);
    assert_string_equal(text, "two\n");
    assert_int_equal(mode_of(path), 0644);
}

/* Issue 11: a directory where a certificate, CSR or key file belongs is
 * refused by name, before mbedTLS tries to read it (it took it for a file
 * of enormous size: "Memory allocation failed", an abort under ASan). */
static void test_load_directory_issue11(void **state)
{
    struct fx *f = *state;
    mbedtls_x509_crt crt;
    mbedtls_x509_csr csr;
    mbedtls_pk_context key;
    char want[192];

    snprintf(want, sizeof want, "%s: not a regular file", f->base);
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(pki_crt_load(&crt, f->base, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, want);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_csr_init(&csr);
    assert_int_equal(pki_csr_load(&csr, f->base, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, want);
    mbedtls_x509_csr_free(&csr);
    mbedtls_pk_init(&key);
    assert_int_equal(pki_key_load(&key, f->base, &f->rng, f->err, sizeof f->err), GW_EINVAL);
    ASSERT_ERR_HAS(f, want);
    mbedtls_pk_free(&key);
    /* a symbolic link to a regular file is still a file */
    char link[192];
    snprintf(link, sizeof link, "%s/ca-link.crt", f->base);
    assert_int_equal(symlink("pki/ca.crt", link), 0);
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(pki_crt_load(&crt, link, f->err, sizeof f->err), 0);
    mbedtls_x509_crt_free(&crt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_init_files, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ca_load_mismatch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issue_client, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issue_server_sans, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issue_clamped_to_ca, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issue_rejects, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_serial_persisted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issue_rsa_subject, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_csr_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_csr_tampered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_csr_weak_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_spki_pin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_key_write_no_overwrite, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_paths, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_load_directory_issue11, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
