/*
 * pki.c - the panel's certificate authority on mbedTLS's x509 writer.
 *
 * Built against mbedTLS 2.28 (Debian 12); the few calls whose shape changed
 * in 3.x sit behind MBEDTLS_VERSION_NUMBER checks.  Every failure returns -1
 * with a reason in err that names the file or argument and, where mbedTLS
 * failed, its own error text.
 */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/version.h>
#include <mbedtls/x509.h>

#include <panelproto/tlsutil.h>

#include "err.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define PKI_MBEDTLS3 1
#define PKI_PRIV(f) MBEDTLS_PRIVATE(f)
#if defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif
#else
#define PKI_PRIV(f) f
#endif

#define CA_DEFAULT_CN "panelgate panel CA"
#define MAX_DAYS 36500u        /* 100 years */
#define SKEW_SECONDS (5 * 60)  /* not-before is backdated this much */
#define SERIAL_MAX_BITS 159    /* positive and at most 20 octets (RFC 5280) */
#define PEM_MAX 16384

/* ------------------------------------------------------------ errors */

__attribute__((format(printf, 5, 6)))
static int failx(char *err, size_t errlen, int code, int mret, const char *fmt, ...)
{
    char what[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err == NULL || errlen == 0)
        return code;
    if (mret != 0) {
        char m[200];
        mbedtls_strerror(mret, m, sizeof m);
        snprintf(err, errlen, "%s: %s (-0x%04x)", what, m, (unsigned)-mret);
    } else {
        snprintf(err, errlen, "%s", what);
    }
    return code;
}

static int join(char *out, size_t outlen, const char *dir, const char *name, char *err,
                size_t errlen)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= outlen)
        return failx(err, errlen, GW_EINVAL, 0, "%s: path too long", dir);
    return 0;
}

/* ------------------------------------------------------------ files */

/* Best-effort fsync of path's directory, so a rename survives a crash. */
static void sync_parent(const char *path)
{
    char d[4096];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (slash == NULL)
        snprintf(d, sizeof d, ".");
    else
        slash[slash == d] = '\0'; /* "/x" -> "/", "a/b" -> "a" */
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Writes data to path with mode.  excl: create path itself (O_EXCL), never
 * replacing anything.  Otherwise write a temporary file in the same
 * directory and rename(2) it over path, so readers see the old or the new
 * content, never a mix.  On failure nothing is left behind. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, int excl,
                      char *err, size_t errlen)
{
    char tmp[4096 + 16];
    const char *made = path;
    const unsigned char *p = data;
    int fd;

    if (excl) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno == EEXIST)
            return failx(err, errlen, GW_EEXIST, 0,
                         "%s: already exists; refusing to overwrite it", path);
    } else {
        int n = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return failx(err, errlen, GW_EINVAL, 0, "%s: path too long", path);
        fd = mkstemp(tmp);
        made = tmp;
    }
    if (fd < 0)
        return failx(err, errlen, GW_EIO, 0, "%s: cannot create: %s", path, strerror(errno));
    int ok = fchmod(fd, mode) == 0;
    while (ok && len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;
        if ((ok = n > 0)) {
            p += n;
            len -= (size_t)n;
        }
    }
    ok = ok && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && !excl && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(made);
        return failx(err, errlen, GW_EIO, 0, "%s: cannot write: %s", path, strerror(e));
    }
    sync_parent(path);
    return 0;
}

int pki_write_file(const char *path, const unsigned char *pem, char *err, size_t errlen)
{
    if (path == NULL || *path == '\0' || pem == NULL)
        return failx(err, errlen, GW_EINVAL, 0, "pki_write_file: missing path or content");
    return write_file(path, pem, strlen((const char *)pem), 0644, 0, err, errlen);
}

/* mkdir -p, new components 0700. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return failx(err, errlen, GW_EINVAL, 0, "%s: bad directory name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return failx(err, errlen, GW_EIO, 0, "%s: cannot create directory: %s", buf,
                         strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return failx(err, errlen, GW_EIO, 0, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return failx(err, errlen, GW_EINVAL, 0, "%s: not a directory", dir);
    return 0;
}

static int refuse_existing(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return failx(err, errlen, GW_EEXIST, 0,
                     "%s: already exists; refusing to overwrite it", path);
    if (errno != ENOENT)
        return failx(err, errlen, GW_EIO, 0, "%s: %s", path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------ checks */

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* A CN we can put in a DN string without escaping. */
static int check_cn(const char *cn, char *err, size_t errlen)
{
    size_t n = cn ? strlen(cn) : 0;
    if (n == 0 || n > 64)
        return failx(err, errlen, GW_EINVAL, 0, "common name '%s': must be 1 to 64 characters",
                     cn ? cn : "");
    if (strspn(cn, ALNUM "._ -") != n || cn[0] == ' ' || cn[n - 1] == ' ')
        return failx(err, errlen, GW_EINVAL, 0,
                     "common name '%s': only letters, digits, '.', '_', '-' and inner "
                     "spaces are allowed",
                     cn);
    return 0;
}

/* RFC 1123 host name; a leading "*." wildcard label is allowed. */
static int dns_ok(const char *s)
{
    unsigned char v4[4];
    size_t n = strlen(s);
    if (n == 0 || n > 253 || inet_pton(AF_INET, s, v4) == 1)
        return 0;
    if (s[0] == '*' && s[1] == '.')
        s += 2;
    for (;;) {
        size_t len = strspn(s, ALNUM "-");
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
            return 0;
        if (s[len] == '\0')
            return 1;
        if (s[len] != '.')
            return 0;
        s += len + 1;
    }
}

static int ip_parse(const char *s, unsigned char out[16], size_t *len)
{
    *len = inet_pton(AF_INET, s, out) == 1 ? 4 : inet_pton(AF_INET6, s, out) == 1 ? 16 : 0;
    return *len != 0 ? 0 : -1;
}

static mbedtls_ecp_group_id ec_group(const mbedtls_pk_context *pk)
{
    const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
    if (ec == NULL)
        return MBEDTLS_ECP_DP_NONE;
#if MBEDTLS_VERSION_NUMBER >= 0x03060000
    return mbedtls_ecp_keypair_get_group_id(ec);
#else
    return ec->PKI_PRIV(grp).id;
#endif
}

/* EC P-256/P-384 or RSA >= 2048 bits. */
static int check_key_type(const mbedtls_pk_context *pk, const char *what, char *err,
                          size_t errlen)
{
    switch (mbedtls_pk_get_type(pk)) {
    case MBEDTLS_PK_ECKEY:
    case MBEDTLS_PK_ECDSA: {
        mbedtls_ecp_group_id g = ec_group(pk);
        if (g == MBEDTLS_ECP_DP_SECP256R1 || g == MBEDTLS_ECP_DP_SECP384R1)
            return 0;
        return failx(err, errlen, GW_EINVAL, 0,
                     "%s: EC key on an unsupported curve (want P-256 or P-384)",
                     what);
    }
    case MBEDTLS_PK_RSA:
        if (mbedtls_pk_get_bitlen(pk) >= 2048)
            return 0;
        return failx(err, errlen, GW_EINVAL, 0,
                     "%s: RSA key of %u bits is too short (want >= 2048)",
                     what, (unsigned)mbedtls_pk_get_bitlen(pk));
    default:
        return failx(err, errlen, GW_EINVAL, 0, "%s: unsupported key type %s", what,
                     mbedtls_pk_get_name(pk));
    }
}

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity wants. */
static int fmt_time(time_t t, char out[16])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
        return GW_EINVAL;
    return strftime(out, 16, "%Y%m%d%H%M%S", &tm) == 14 ? 0 : GW_EINVAL;
}

static int validity(unsigned days, char nb[16], char na[16], char *err, size_t errlen)
{
    if (days == 0 || days > MAX_DAYS)
        return failx(err, errlen, GW_EINVAL, 0, "days %u: must be 1 to %u", days, MAX_DAYS);
    time_t now = time(NULL);
    if (fmt_time(now - SKEW_SECONDS, nb) != 0 ||
        fmt_time(now + (time_t)days * 86400, na) != 0)
        return failx(err, errlen, GW_EINVAL, 0, "days %u: validity out of range", days);
    return 0;
}

/* ------------------------------------------------------------ rng, keys */

int pki_rng_init(struct pki_rng *r, char *err, size_t errlen)
{
    static const unsigned char pers[] = "panelgate-pki";

    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
#if defined(PKI_MBEDTLS3) && defined(MBEDTLS_PSA_CRYPTO_C)
    if (psa_crypto_init() != PSA_SUCCESS) {
        pki_rng_free(r);
        return failx(err, errlen, GW_EINVAL, 0, "random generator: psa_crypto_init failed");
    }
#endif
    int ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers,
                                    sizeof pers - 1);
    if (ret != 0) {
        pki_rng_free(r);
        return failx(err, errlen, GW_ETLS, ret, "random generator: cannot seed");
    }
    return 0;
}

void pki_rng_free(struct pki_rng *r)
{
    if (r == NULL)
        return;
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->entropy);
}

int pki_key_generate(mbedtls_pk_context *key, enum pki_key_type kt, struct pki_rng *rng,
                     char *err, size_t errlen)
{
    int ret;
    const char *what;

    if (mbedtls_pk_get_type(key) != MBEDTLS_PK_NONE)
        return failx(err, errlen, GW_EINVAL, 0,
                     "pki_key_generate: the key context is already in use");
    if (kt == PKI_KEY_EC_P256) {
        what = "P-256 key";
        ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (ret == 0)
            ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                      mbedtls_ctr_drbg_random, &rng->drbg);
    } else if (kt == PKI_KEY_RSA_3072) {
        what = "RSA-3072 key";
        ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (ret == 0)
            ret = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*key), mbedtls_ctr_drbg_random,
                                      &rng->drbg, 3072, 65537);
    } else {
        return failx(err, errlen, GW_EINVAL, 0, "key type %d: unknown", (int)kt);
    }
    if (ret != 0) {
        mbedtls_pk_free(key);
        mbedtls_pk_init(key);
        return failx(err, errlen, GW_ETLS, ret, "cannot generate a %s", what);
    }
    return 0;
}

int pki_key_write(const mbedtls_pk_context *key, const char *path, char *err, size_t errlen)
{
    unsigned char pem[PEM_MAX];

    if (path == NULL || *path == '\0')
        return failx(err, errlen, GW_EINVAL, 0, "key file: no path given");
    /* 2.28 takes a non-const context; it does not modify it. */
    int ret = mbedtls_pk_write_key_pem((mbedtls_pk_context *)key, pem, sizeof pem);
    int rv = ret != 0 ? failx(err, errlen, GW_ETLS, ret, "%s: cannot encode the private key", path)
                      : write_file(path, pem, strlen((char *)pem), 0600, 1, err, errlen);
    mbedtls_platform_zeroize(pem, sizeof pem);
    return rv;
}

/* Refuses what mbedTLS cannot read as a file: a directory, say, which it
 * takes for a file of enormous size ("Memory allocation failed").  What
 * does not exist is left to mbedTLS's own error. */
static int check_regular(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (path != NULL && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return failx(err, errlen, GW_EINVAL, 0, "%s: not a regular file", path);
    return 0;
}

int pki_key_load(mbedtls_pk_context *key, const char *path, struct pki_rng *rng, char *err,
                 size_t errlen)
{
    int rv = check_regular(path, err, errlen);
    if (rv != 0)
        return rv;
#if defined(PKI_MBEDTLS3)
    int ret = mbedtls_pk_parse_keyfile(key, path, NULL, mbedtls_ctr_drbg_random, &rng->drbg);
#else
    (void)rng;
    int ret = mbedtls_pk_parse_keyfile(key, path, NULL);
#endif
    if (ret != 0) {
        mbedtls_pk_free(key);
        mbedtls_pk_init(key);
        return failx(err, errlen, GW_ETLS, ret, "%s: cannot load the private key", path);
    }
    return 0;
}

int pki_crt_load(mbedtls_x509_crt *crt, const char *path, char *err, size_t errlen)
{
    int rv = check_regular(path, err, errlen);
    if (rv != 0)
        return rv;
    int ret = mbedtls_x509_crt_parse_file(crt, path);
    if (ret != 0) {
        mbedtls_x509_crt_free(crt);
        mbedtls_x509_crt_init(crt);
        if (ret > 0)
            return failx(err, errlen, GW_EINVAL, 0,
                         "%s: %d certificate(s) could not be parsed", path, ret);
        return failx(err, errlen, GW_ETLS, ret, "%s: cannot load the certificate", path);
    }
    return 0;
}

int pki_spki_sha256(const mbedtls_pk_context *key, uint8_t out[32])
{
    return pa_spki_sha256(key, out);
}

/* ------------------------------------------------------------ CSR */

int pki_csr_load(mbedtls_x509_csr *csr, const char *path, char *err, size_t errlen)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    int rv = check_regular(path, err, errlen);
    if (rv != 0)
        return rv;
    int ret = mbedtls_x509_csr_parse_file(csr, path);
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: cannot parse the CSR", path);
        goto fail;
    }
    mbedtls_md_type_t md = csr->PKI_PRIV(sig_md);
    if (md != MBEDTLS_MD_SHA256 && md != MBEDTLS_MD_SHA384 && md != MBEDTLS_MD_SHA512) {
        rv = failx(err, errlen, GW_EINVAL, 0,
                   "%s: CSR is signed with a hash we do not accept (want SHA-2)", path);
        goto fail;
    }
    const mbedtls_md_info_t *mi = mbedtls_md_info_from_type(md);
    if (mi == NULL || (ret = mbedtls_md(mi, csr->cri.p, csr->cri.len, hash)) != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: cannot hash the CSR", path);
        goto fail;
    }
    ret = mbedtls_pk_verify_ext(csr->PKI_PRIV(sig_pk), csr->PKI_PRIV(sig_opts), &csr->pk, md,
                                hash, mbedtls_md_get_size(mi), csr->PKI_PRIV(sig).p,
                                csr->PKI_PRIV(sig).len);
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: CSR signature does not verify", path);
        goto fail;
    }
    if ((rv = check_key_type(&csr->pk, path, err, errlen)) != 0)
        goto fail;
    return 0;
fail:
    mbedtls_x509_csr_free(csr);
    mbedtls_x509_csr_init(csr);
    return rv;
}

int pki_csr_write(const mbedtls_pk_context *key, const char *cn, struct pki_rng *rng,
                  unsigned char *buf, size_t buflen, char *err, size_t errlen)
{
    char subject[80];
    mbedtls_x509write_csr w;

    int rv;
    if ((rv = check_cn(cn, err, errlen)) != 0)
        return rv;
    snprintf(subject, sizeof subject, "CN=%s", cn);
    mbedtls_x509write_csr_init(&w);
    mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&w, (mbedtls_pk_context *)key);
    int ret = mbedtls_x509write_csr_set_subject_name(&w, subject);
    if (ret == 0)
        ret = mbedtls_x509write_csr_pem(&w, buf, buflen, mbedtls_ctr_drbg_random, &rng->drbg);
    mbedtls_x509write_csr_free(&w);
    if (ret != 0)
        return failx(err, errlen, GW_ETLS, ret, "CSR for '%s': cannot write", cn);
    return 0;
}

/* ------------------------------------------------------------ certificates */

/* Prepends ASN.1 to *p (mbedtls_asn1_write_* work back to front). */
#define PUT(expr)                                                                       \
    do {                                                                                \
        int r_ = (expr);                                                                \
        if (r_ < 0)                                                                     \
            return r_;                                                                  \
        len += (size_t)r_;                                                              \
    } while (0)

/* extKeyUsage ::= SEQUENCE OF KeyPurposeId (one purpose here). */
static int add_eku(mbedtls_x509write_cert *w, enum pki_profile prof)
{
    unsigned char buf[32];
    unsigned char *p = buf + sizeof buf;
    size_t len = 0;

    if (prof == PKI_PROFILE_SERVER)
        PUT(mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
    else
        PUT(mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
    PUT(mbedtls_asn1_write_len(&p, buf, len));
    PUT(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return mbedtls_x509write_crt_set_extension(
        w, MBEDTLS_OID_EXTENDED_KEY_USAGE, MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
        p, len);
}

/* One GeneralName: [tag] IMPLICIT, primitive. */
static int put_general_name(unsigned char **p, unsigned char *start, int tag,
                            const unsigned char *v, size_t n)
{
    size_t len = 0;
    PUT(mbedtls_asn1_write_raw_buffer(p, start, v, n));
    PUT(mbedtls_asn1_write_len(p, start, n));
    PUT(mbedtls_asn1_write_tag(p, start, (unsigned char)(MBEDTLS_ASN1_CONTEXT_SPECIFIC | tag)));
    return (int)len;
}

/* subjectAltName ::= GeneralNames: dNSName [2] IA5String, iPAddress [7]
 * OCTET STRING (4 or 16 bytes).  Lists are walked in reverse so the
 * extension keeps the caller's order.  Values were checked by pki_issue. */
static int add_san(mbedtls_x509write_cert *w, const struct pki_issue *req)
{
    unsigned char buf[PKI_MAX_SANS * 2 * 260 + 16];
    unsigned char *p = buf + sizeof buf;
    unsigned char ip[16];
    size_t iplen, len = 0;

    for (unsigned i = req->n_ip; i-- > 0;) {
        if (ip_parse(req->ip[i], ip, &iplen) != 0)
            return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
        PUT(put_general_name(&p, buf, 7, ip, iplen));
    }
    for (unsigned i = req->n_dns; i-- > 0;)
        PUT(put_general_name(&p, buf, 2, (const unsigned char *)req->dns[i],
                             strlen(req->dns[i])));
    PUT(mbedtls_asn1_write_len(&p, buf, len));
    PUT(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return mbedtls_x509write_crt_set_extension(
        w, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p,
        len);
}

static int set_serial(mbedtls_x509write_cert *w, const mbedtls_mpi *serial)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
    unsigned char raw[20];
    size_t n = mbedtls_mpi_size(serial);
    if (n == 0 || n > sizeof raw)
        return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
    int ret = mbedtls_mpi_write_binary(serial, raw, n);
    return ret != 0 ? ret : mbedtls_x509write_crt_set_serial_raw(w, raw, n);
#else
    return mbedtls_x509write_crt_set_serial(w, serial);
#endif
}

struct crt_args {
    const char *subject, *issuer;   /* "CN=..." / a DN string */
    mbedtls_pk_context *subject_key, *issuer_key;
    const mbedtls_mpi *serial;
    const char *not_before, *not_after;
    unsigned key_usage;
    const struct pki_issue *req;    /* NULL: the CA itself */
};

static int write_crt(const struct crt_args *a, struct pki_rng *rng, unsigned char *buf,
                     size_t buflen, char *err, size_t errlen)
{
    mbedtls_x509write_cert w;
    const char *step = "serial";
    int ret;

    mbedtls_x509write_crt_init(&w);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, a->subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, a->issuer_key);
    if ((ret = set_serial(&w, a->serial)) != 0)
        goto out;
    step = "subject";
    if ((ret = mbedtls_x509write_crt_set_subject_name(&w, a->subject)) != 0)
        goto out;
    step = "issuer";
    if ((ret = mbedtls_x509write_crt_set_issuer_name(&w, a->issuer)) != 0)
        goto out;
    step = "validity";
    if ((ret = mbedtls_x509write_crt_set_validity(&w, a->not_before, a->not_after)) != 0)
        goto out;
    step = "basicConstraints";
    if ((ret = mbedtls_x509write_crt_set_basic_constraints(&w, a->req == NULL, 0)) != 0)
        goto out;
    step = "key identifiers";
    if ((ret = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0 ||
        (ret = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0)
        goto out;
    step = "keyUsage";
    if ((ret = mbedtls_x509write_crt_set_key_usage(&w, a->key_usage)) != 0)
        goto out;
    if (a->req != NULL) {
        step = "extKeyUsage";
        if ((ret = add_eku(&w, a->req->profile)) != 0)
            goto out;
        step = "subjectAltName";
        if (a->req->n_dns + a->req->n_ip > 0 && (ret = add_san(&w, a->req)) != 0)
            goto out;
    }
    step = "signature";
    ret = mbedtls_x509write_crt_pem(&w, buf, buflen, mbedtls_ctr_drbg_random, &rng->drbg);
out:
    mbedtls_x509write_crt_free(&w);
    if (ret != 0)
        return failx(err, errlen, GW_ETLS, ret, "certificate for '%s': %s", a->subject, step);
    return 0;
}

/* ------------------------------------------------------------ serial state */

static int serial_write(const char *path, const mbedtls_mpi *s, char *err, size_t errlen)
{
    char hex[64];
    size_t olen = 0;
    int ret = mbedtls_mpi_write_string(s, 16, hex, sizeof hex - 1, &olen);
    if (ret != 0)
        return failx(err, errlen, GW_ETLS, ret, "%s: cannot encode the serial", path);
    strcat(hex, "\n");
    return write_file(path, hex, strlen(hex), 0600, 0, err, errlen);
}

static int serial_read(const char *path, mbedtls_mpi *s, char *err, size_t errlen)
{
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return failx(err, errlen, GW_EIO, 0, "%s: cannot open: %s", path, strerror(errno));
    int got = fgets(buf, sizeof buf, f) != NULL && !ferror(f);
    fclose(f);
    size_t n = strcspn(buf, "\r\n ");
    buf[n] = '\0';
    if (!got || n == 0 || n > 40 || strspn(buf, "0123456789abcdefABCDEF") != n ||
        mbedtls_mpi_read_string(s, 16, buf) != 0 || mbedtls_mpi_cmp_int(s, 0) <= 0 ||
        mbedtls_mpi_bitlen(s) > SERIAL_MAX_BITS)
        return failx(err, errlen, GW_EINVAL, 0,
                     "%s: not a serial number (want 1 to 40 hex digits, > 0)",
                     path);
    return 0;
}

/* Takes the next serial from dir/serial into *s and stores *s + 1, under an
 * flock on the directory so two panelgatectl runs never share a serial. */
static int serial_take(const char *dir, mbedtls_mpi *s, char *err, size_t errlen)
{
    char path[4096];
    mbedtls_mpi next;
    int rv;

    if ((rv = join(path, sizeof path, dir, "serial", err, errlen)) != 0)
        return rv;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return failx(err, errlen, GW_EIO, 0, "%s: cannot open: %s", dir, strerror(errno));
    if (flock(dfd, LOCK_EX) != 0) {
        rv = failx(err, errlen, GW_EIO, 0, "%s: cannot lock: %s", dir, strerror(errno));
        close(dfd);
        return rv;
    }
    mbedtls_mpi_init(&next);
    if ((rv = serial_read(path, s, err, errlen)) != 0)
        goto out;
    int ret = mbedtls_mpi_add_int(&next, s, 1);
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: cannot advance the serial", path);
        goto out;
    }
    if (mbedtls_mpi_bitlen(&next) > SERIAL_MAX_BITS) {
        rv = failx(err, errlen, GW_EINVAL, 0, "%s: serial numbers exhausted", path);
        goto out;
    }
    rv = serial_write(path, &next, err, errlen);
out:
    mbedtls_mpi_free(&next);
    close(dfd); /* releases the lock */
    return rv;
}

/* ------------------------------------------------------------ the CA */

int pki_ca_init(const char *dir, const char *cn, enum pki_key_type kt, unsigned days,
                struct pki_rng *rng, char *err, size_t errlen)
{
    char kpath[4096], cpath[4096], spath[4096], subject[80], nb[16], na[16];
    unsigned char pem[PEM_MAX], rnd[8];
    mbedtls_pk_context key;
    mbedtls_mpi serial;
    int rv = GW_EINTERNAL, key_written = 0;

    if (dir == NULL || *dir == '\0')
        return failx(err, errlen, GW_EINVAL, 0, "CA directory: no path given");
    if (cn == NULL)
        cn = CA_DEFAULT_CN;
    if ((rv = check_cn(cn, err, errlen)) != 0 || (rv = validity(days, nb, na, err, errlen)) != 0)
        return rv;
    if ((rv = join(kpath, sizeof kpath, dir, "ca.key", err, errlen)) != 0 ||
        (rv = join(cpath, sizeof cpath, dir, "ca.crt", err, errlen)) != 0 ||
        (rv = join(spath, sizeof spath, dir, "serial", err, errlen)) != 0)
        return rv;
    if ((rv = make_dir(dir, err, errlen)) != 0 || (rv = refuse_existing(kpath, err, errlen)) != 0 ||
        (rv = refuse_existing(cpath, err, errlen)) != 0)
        return rv;
    snprintf(subject, sizeof subject, "CN=%s", cn);

    mbedtls_pk_init(&key);
    mbedtls_mpi_init(&serial);
    if ((rv = pki_key_generate(&key, kt, rng, err, errlen)) != 0)
        goto out;
    /* A random 63-bit start (top bit clear, next bit set: always 16 hex
     * digits) keeps serials of different CAs apart. */
    int ret = mbedtls_ctr_drbg_random(&rng->drbg, rnd, sizeof rnd);
    if (ret == 0) {
        rnd[0] = (unsigned char)((rnd[0] & 0x7f) | 0x40);
        ret = mbedtls_mpi_read_binary(&serial, rnd, sizeof rnd);
    }
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: cannot draw a serial number", spath);
        goto out;
    }
    struct crt_args a = {
        .subject = subject, .issuer = subject, .subject_key = &key, .issuer_key = &key,
        .serial = &serial, .not_before = nb, .not_after = na,
        .key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN, .req = NULL,
    };
    if ((rv = write_crt(&a, rng, pem, sizeof pem, err, errlen)) != 0)
        goto out;
    if ((rv = pki_key_write(&key, kpath, err, errlen)) != 0)
        goto out;
    key_written = 1;
    if ((ret = mbedtls_mpi_add_int(&serial, &serial, 1)) != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s: cannot advance the serial", spath);
        goto out;
    }
    if ((rv = serial_write(spath, &serial, err, errlen)) != 0 ||
        (rv = pki_write_file(cpath, pem, err, errlen)) != 0)
        goto out;
    rv = 0;
out:
    if (rv != 0 && key_written) {
        unlink(kpath);
        unlink(spath);
    }
    mbedtls_platform_zeroize(rnd, sizeof rnd);
    mbedtls_mpi_free(&serial);
    mbedtls_pk_free(&key);
    return rv;
}

static void ca_reset(struct pki_ca *ca)
{
    ca->dir[0] = '\0';
    mbedtls_x509_crt_init(&ca->crt);
    mbedtls_pk_init(&ca->key);
}

int pki_ca_load(struct pki_ca *ca, const char *dir, struct pki_rng *rng, char *err,
                size_t errlen)
{
    char kpath[4096], cpath[4096];
    int ret, rv;

    ca_reset(ca);
    if (dir == NULL || *dir == '\0')
        return failx(err, errlen, GW_EINVAL, 0, "CA directory: no path given");
    if ((rv = join(kpath, sizeof kpath, dir, "ca.key", err, errlen)) != 0 ||
        (rv = join(cpath, sizeof cpath, dir, "ca.crt", err, errlen)) != 0)
        return rv;
    if (access(cpath, F_OK) != 0 && access(kpath, F_OK) != 0)
        return failx(err, errlen, GW_EINVAL, 0, "%s: no CA here (run 'ca init' first)", dir);
    if ((rv = pki_crt_load(&ca->crt, cpath, err, errlen)) != 0 ||
        (rv = pki_key_load(&ca->key, kpath, rng, err, errlen)) != 0)
        goto fail;
    if (!ca->crt.PKI_PRIV(ca_istrue) ||
        mbedtls_x509_crt_check_key_usage(&ca->crt, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
        rv = failx(err, errlen, GW_EINVAL, 0,
                   "%s: not a CA certificate (basicConstraints/keyUsage)", cpath);
        goto fail;
    }
#if defined(PKI_MBEDTLS3)
    ret = mbedtls_pk_check_pair(&ca->crt.pk, &ca->key, mbedtls_ctr_drbg_random, &rng->drbg);
#else
    ret = mbedtls_pk_check_pair(&ca->crt.pk, &ca->key);
#endif
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "%s does not match %s", kpath, cpath);
        goto fail;
    }
    snprintf(ca->dir, sizeof ca->dir, "%s", dir);
    return 0;
fail:
    pki_ca_free(ca);
    return rv;
}

void pki_ca_free(struct pki_ca *ca)
{
    if (ca == NULL)
        return;
    mbedtls_x509_crt_free(&ca->crt);
    mbedtls_pk_free(&ca->key);
    ca_reset(ca);
}

static int check_request(const struct pki_issue *req, char *err, size_t errlen)
{
    unsigned char ip[16];
    size_t iplen;
    int rv;

    if (req->profile != PKI_PROFILE_SERVER && req->profile != PKI_PROFILE_CLIENT)
        return failx(err, errlen, GW_EINVAL, 0, "profile %d: unknown", (int)req->profile);
    if ((rv = check_cn(req->common_name, err, errlen)) != 0)
        return rv;
    if (req->n_dns > PKI_MAX_SANS || req->n_ip > PKI_MAX_SANS)
        return failx(err, errlen, GW_EINVAL, 0,
                     "at most %d DNS names and %d IP addresses", PKI_MAX_SANS,
                     PKI_MAX_SANS);
    if (req->profile == PKI_PROFILE_CLIENT && req->n_dns + req->n_ip > 0)
        return failx(err, errlen, GW_EINVAL, 0,
                     "'%s': DNS/IP names are for server certificates only",
                     req->common_name);
    if (req->profile == PKI_PROFILE_SERVER && req->n_dns + req->n_ip == 0)
        return failx(err, errlen, GW_EINVAL, 0,
                     "'%s': a server certificate needs a DNS name or an IP",
                     req->common_name);
    for (unsigned i = 0; i < req->n_dns; i++)
        if (req->dns[i] == NULL || !dns_ok(req->dns[i]))
            return failx(err, errlen, GW_EINVAL, 0, "DNS name '%s': not a valid host name",
                         req->dns[i] ? req->dns[i] : "");
    for (unsigned i = 0; i < req->n_ip; i++)
        if (req->ip[i] == NULL || ip_parse(req->ip[i], ip, &iplen) != 0)
            return failx(err, errlen, GW_EINVAL, 0,
                         "IP address '%s': not a numeric IPv4/IPv6 address",
                         req->ip[i] ? req->ip[i] : "");
    return 0;
}

/* mbedtls_x509_time as "YYYYMMDDhhmmss", comparable with fmt_time's. */
static void x509_time_str(const mbedtls_x509_time *t, char out[16])
{
    snprintf(out, 16, "%04u%02u%02u%02u%02u%02u", (unsigned)t->year % 10000u,
             (unsigned)t->mon % 100u, (unsigned)t->day % 100u, (unsigned)t->hour % 100u,
             (unsigned)t->min % 100u, (unsigned)t->sec % 100u);
}

int pki_issue(struct pki_ca *ca, const struct pki_issue *req,
              mbedtls_pk_context *subject_key, struct pki_rng *rng, unsigned char *buf,
              size_t buflen, char *err, size_t errlen)
{
    char subject[80], issuer[1024], nb[16], na[16], ca_na[16];
    mbedtls_x509_crt check;
    mbedtls_mpi serial;
    int rv;

    if (ca == NULL || ca->dir[0] == '\0' || ca->crt.raw.len == 0)
        return failx(err, errlen, GW_EINVAL, 0, "no CA loaded");
    if (req == NULL || subject_key == NULL || buf == NULL || buflen == 0)
        return failx(err, errlen, GW_EINVAL, 0, "pki_issue: missing argument");
    if ((rv = check_request(req, err, errlen)) != 0 ||
        (rv = check_key_type(subject_key, req->common_name, err, errlen)) != 0 ||
        (rv = validity(req->days, nb, na, err, errlen)) != 0)
        return rv;
    if (mbedtls_x509_time_is_past(&ca->crt.valid_to))
        return failx(err, errlen, GW_EINVAL, 0,
                     "%s/ca.crt: the CA certificate has expired", ca->dir);
    /* Nothing outlives its CA: clamp not-after to the CA's. */
    x509_time_str(&ca->crt.valid_to, ca_na);
    if (strcmp(na, ca_na) > 0)
        memcpy(na, ca_na, sizeof na);
    int n = mbedtls_x509_dn_gets(issuer, sizeof issuer, &ca->crt.subject);
    if (n < 0)
        return failx(err, errlen, GW_ETLS, n, "%s/ca.crt: cannot read the subject", ca->dir);
    snprintf(subject, sizeof subject, "CN=%s", req->common_name);

    mbedtls_mpi_init(&serial);
    mbedtls_x509_crt_init(&check);
    /* The serial is consumed (and persisted) before signing: a failure
     * later only skips a number, it never reuses one. */
    if ((rv = serial_take(ca->dir, &serial, err, errlen)) != 0)
        goto out;
    unsigned ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if (mbedtls_pk_get_type(subject_key) == MBEDTLS_PK_RSA)
        ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
    struct crt_args a = {
        .subject = subject, .issuer = issuer, .subject_key = subject_key,
        .issuer_key = &ca->key, .serial = &serial, .not_before = nb, .not_after = na,
        .key_usage = ku, .req = req,
    };
    if ((rv = write_crt(&a, rng, buf, buflen, err, errlen)) != 0)
        goto out;
    /* Self-check: it parses, and its issuer is byte-for-byte the CA's
     * subject (chain building depends on it). */
    int ret = mbedtls_x509_crt_parse(&check, buf, strlen((char *)buf) + 1);
    if (ret != 0) {
        rv = failx(err, errlen, GW_ETLS, ret, "certificate for '%s': does not parse back", subject);
        goto out;
    }
    if (check.issuer_raw.len != ca->crt.subject_raw.len ||
        memcmp(check.issuer_raw.p, ca->crt.subject_raw.p, check.issuer_raw.len) != 0) {
        rv = failx(err, errlen, GW_EINVAL, 0,
                   "%s/ca.crt: its subject cannot be reproduced as an issuer name",
                   ca->dir);
        goto out;
    }
    rv = 0;
out:
    if (rv != 0)
        buf[0] = '\0';
    mbedtls_x509_crt_free(&check);
    mbedtls_mpi_free(&serial);
    return rv;
}
