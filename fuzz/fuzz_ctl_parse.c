/*
 * fuzz_ctl_parse.c - panelgatectl's parsers of operator input (ctl.h,
 * pki.h, regdb.h): option values, server names, and the certificates,
 * CSRs and keys it reads from files.  The first input byte picks the
 * parser (low nibble) and a variant (high nibble); the rest is the value,
 * as the command line gives it (NUL-terminated, so it ends at the first
 * NUL) or as a file's bytes.
 *
 *   0 ctl_parse_uint      --days, --limit (the variant picks the maximum)
 *   1 ctl_parse_duration  --older-than, --overlap
 *   2 ctl_parse_time      --since (variant bit 0: as --until, an upper bound)
 *   3 gw_regdb_name_ok    a server name
 *   4 ctl_pem_describe    a PEM certificate just issued (register, rotate)
 *   5 ctl_file_describe   a certificate file, PEM or DER (cert show, show)
 *   6 pki_csr_load        --csr FILE, PEM or DER, its signature verified
 *   7 pki_key_load        ca.key, PEM or DER
 *
 * Each accepted value is checked against what the parser documents.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define NOW 1800000000LL
#define MAX_DURATION_S (3650LL * 86400)

static char *cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static int all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static void check_uint(const char *s, unsigned variant)
{
    static const unsigned long long maxes[] = {
        0, 1, 9, 10, 36500, UINT_MAX, (unsigned long long)INT64_MAX, ULLONG_MAX,
    };
    unsigned long long max = maxes[variant % 8], v = 12345;
    if (ctl_parse_uint(s, max, &v) != 0) {
        if (v != 12345) /* *out is set only on success */
            abort();
        return;
    }
    if (!all_digits(s) || v > max || strtoull(s, NULL, 10) != v)
        abort();
}

static void check_duration(const char *s)
{
    int64_t d;
    if (ctl_parse_duration(s, &d) != 0)
        return;
    if (d < 0 || d > MAX_DURATION_S)
        abort();
    if (strcmp(s, "0") != 0 && !strchr("smhd", s[strlen(s) - 1]))
        abort();
}

static void check_time(const char *s, unsigned variant)
{
    bool upper = variant & 1;
    int64_t t, other;
    char iso[32];
    if (ctl_parse_time(s, upper, NOW, &t) != 0)
        return;
    if (t <= 0)
        abort();
    size_t len = strlen(s);
    if (len == 20 && s[10] == 'T') { /* the exact form ctl_iso writes */
        if (strcmp(ctl_iso(t, iso), s) != 0)
            abort();
    } else if (len == 10 && s[4] == '-') { /* a day: its bounds are one day apart */
        if (ctl_parse_time(s, !upper, NOW, &other) != 0) {
            if (!upper || t > 86399) /* only 1970-01-01 starts at 0 */
                abort();
        } else if ((upper ? t - other : other - t) != 86399) {
            abort();
        }
    }
}

static void check_name(const char *s)
{
    size_t n = strlen(s);
    if (!gw_regdb_name_ok(s))
        return;
    if (n == 0 || n > 255 || s[0] == '.' || s[0] == '-' ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
        abort();
}

/* The facts describe gives are printable and bounded. */
static void check_crtinfo(const struct crtinfo *ci)
{
    if (memchr(ci->serial, '\0', sizeof ci->serial) == NULL ||
        memchr(ci->subject, '\0', sizeof ci->subject) == NULL ||
        strspn(ci->serial, "0123456789abcdef") != strlen(ci->serial))
        abort();
    cJSON *j = ctl_crt_json(ci, "fuzz.crt");
    char *details = ctl_issued_details(ci, "client", NULL);
    cJSON_Delete(j);
    cJSON_free(details);
}

static const char *write_tmp(const uint8_t *data, size_t size)
{
    static char path[256];
    FILE *f;
    if (!path[0]) {
        const char *dir = getenv("TMPDIR"); /* /dev/shm makes it faster */
        snprintf(path, sizeof path, "%s/fuzz_ctl_parse.%ld", dir && *dir ? dir : "/tmp",
                 (long)getpid());
    }
    f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pki_rng rng;
    static int rng_ok;
    char err[1024];
    struct crtinfo ci;

    if (size == 0)
        return 0;
    unsigned which = data[0] & 0x0f, variant = data[0] >> 4;
    data++;
    size--;

    if (which <= 4) {
        char *s = cstr(data, size);
        switch (which) {
        case 0: check_uint(s, variant); break;
        case 1: check_duration(s); break;
        case 2: check_time(s, variant); break;
        case 3: check_name(s); break;
        case 4:
            memset(&ci, 0, sizeof ci);
            if (ctl_pem_describe((const unsigned char *)s, &ci) == 0)
                check_crtinfo(&ci);
            break;
        }
        free(s);
        return 0;
    }

    const char *path = write_tmp(data, size);
    if (which == 5) {
        memset(&ci, 0, sizeof ci);
        if (ctl_file_describe(path, &ci) == 0)
            check_crtinfo(&ci);
    } else if (which == 6) {
        mbedtls_x509_csr csr;
        uint8_t spki[GW_SPKI_LEN];
        mbedtls_x509_csr_init(&csr);
        err[0] = '\0';
        if (pki_csr_load(&csr, path, err, sizeof err) == 0) {
            if (pki_spki_sha256(&csr.pk, spki) != 0) /* what register pins */
                abort();
        } else if (err[0] == '\0') {
            abort();
        }
        mbedtls_x509_csr_free(&csr);
    } else if (which == 7) {
        mbedtls_pk_context key;
        if (!rng_ok) {
            if (pki_rng_init(&rng, err, sizeof err) != 0)
                abort();
            rng_ok = 1;
        }
        mbedtls_pk_init(&key);
        err[0] = '\0';
        if (pki_key_load(&key, path, &rng, err, sizeof err) != 0 && err[0] == '\0')
            abort();
        mbedtls_pk_free(&key);
    }
    unlink(path);
    return 0;
}
