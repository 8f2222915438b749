/*
 * keygen.c - panelagent_keygen: a P-256 key that never leaves the agent host,
 * and a CSR for `panelgatectl register NAME --csr FILE`.
 *
 * Own entropy and CTR-DRBG contexts (no global state).  The key file is
 * created with O_CREAT|O_EXCL, mode 0600, before anything is generated; the
 * CSR goes to a temporary file next to |csr_path| that is renamed into
 * place last, so a failure at any step leaves neither file behind (and an
 * existing CSR is only replaced on success).  Key material is zeroized.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_csr.h>

#include "internal.h"

/* What panelgatectl accepts as a common name. */
#define CN_MAX 64
#define CN_CHARS                                                                       \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._ -"

static int check_cn(const char *cn, char *err, size_t errlen)
{
    size_t n = cn ? strlen(cn) : 0;
    if (n == 0 || n > CN_MAX) {
        pa_seterr(err, errlen, "common name: must be 1 to %d characters", CN_MAX);
        return PANELAGENT_EINVAL;
    }
    if (strspn(cn, CN_CHARS) != n || cn[0] == ' ' || cn[n - 1] == ' ') {
        pa_seterr(err, errlen,
                  "common name: only letters, digits, '.', '_', '-' and inner spaces");
        return PANELAGENT_EINVAL;
    }
    return PANELAGENT_OK;
}

/* A failed mbedTLS call: ENOMEM for its allocation errors, else internal. */
static int tls_fail(int ret, const char *what, char *err, size_t errlen)
{
    char buf[128];
    mbedtls_strerror(ret, buf, sizeof buf);
    pa_seterr(err, errlen, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
    if (ret == MBEDTLS_ERR_PK_ALLOC_FAILED || ret == MBEDTLS_ERR_ECP_ALLOC_FAILED ||
        ret == MBEDTLS_ERR_X509_ALLOC_FAILED || ret == MBEDTLS_ERR_MPI_ALLOC_FAILED ||
        ret == MBEDTLS_ERR_ASN1_ALLOC_FAILED)
        return PANELAGENT_ENOMEM;
    return PANELAGENT_EINTERNAL;
}

static int io_fail(const char *path, const char *what, char *err, size_t errlen)
{
    pa_seterr(err, errlen, "%s: %s: %s", path, what, strerror(errno));
    return PANELAGENT_EIO;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes and syncs |p| and closes |fd| (in every case). */
static int finish_file(int fd, const unsigned char *p, size_t n)
{
    int rv = write_all(fd, p, n);
    if (rv == 0)
        rv = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rv == 0)
        return -1;
    errno = saved;
    return rv;
}

int panelagent_keygen(const char *key_path, const char *csr_path, const char *common_name,
                      char *err, size_t errlen)
{
    static const char pers[] = "panelagent keygen";
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context pk;
    mbedtls_x509write_csr w;
    unsigned char keypem[1024], csrpem[2048];
    char subject[8 + CN_MAX];
    char *tmp = NULL;
    int key_fd = -1, tmp_fd = -1, ret, rv = PANELAGENT_EINTERNAL;
    bool key_made = false;
    struct stat ks, cs;

    if (key_path == NULL || csr_path == NULL || key_path[0] == '\0' || csr_path[0] == '\0') {
        pa_seterr(err, errlen, "key and CSR paths are required");
        return PANELAGENT_EINVAL;
    }
    if (strcmp(key_path, csr_path) == 0) {
        pa_seterr(err, errlen, "key and CSR must be different files");
        return PANELAGENT_EINVAL;
    }
    if ((rv = check_cn(common_name, err, errlen)) != 0)
        return rv;

    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_pk_init(&pk);
    mbedtls_x509write_csr_init(&w);

    /* claim the key file first: an existing one is never touched */
    key_fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (key_fd < 0) {
        rv = io_fail(key_path, "cannot create the key file", err, errlen);
        goto out;
    }
    key_made = true;
    /* 0600 whatever the umask */
    if (fchmod(key_fd, 0600) != 0) {
        rv = io_fail(key_path, "cannot set mode 0600", err, errlen);
        goto out;
    }
    /* the CSR must not be the key under another name */
    if (fstat(key_fd, &ks) == 0 && stat(csr_path, &cs) == 0 && ks.st_dev == cs.st_dev &&
        ks.st_ino == cs.st_ino) {
        pa_seterr(err, errlen, "key and CSR must be different files");
        rv = PANELAGENT_EINVAL;
        goto out;
    }

    if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                     (const unsigned char *)pers, sizeof pers - 1)) != 0) {
        rv = tls_fail(ret, "seeding the random generator", err, errlen);
        goto out;
    }
    if ((ret = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
        (ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk),
                                   mbedtls_ctr_drbg_random, &drbg)) != 0) {
        rv = tls_fail(ret, "generating a P-256 key", err, errlen);
        goto out;
    }
    if ((ret = mbedtls_pk_write_key_pem(&pk, keypem, sizeof keypem)) != 0) {
        rv = tls_fail(ret, "writing the key", err, errlen);
        goto out;
    }
    snprintf(subject, sizeof subject, "CN=%s", common_name);
    mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&w, &pk);
    if ((ret = mbedtls_x509write_csr_set_subject_name(&w, subject)) != 0 ||
        (ret = mbedtls_x509write_csr_pem(&w, csrpem, sizeof csrpem, mbedtls_ctr_drbg_random,
                                         &drbg)) != 0) {
        rv = tls_fail(ret, "writing the CSR", err, errlen);
        goto out;
    }

    /* the key, then the CSR under a temporary name, renamed last */
    ret = finish_file(key_fd, keypem, strlen((const char *)keypem));
    key_fd = -1;
    if (ret != 0) {
        rv = io_fail(key_path, "cannot write the key", err, errlen);
        goto out;
    }
    size_t n = strlen(csr_path);
    if ((tmp = malloc(n + 8)) == NULL) {
        pa_seterr(err, errlen, "out of memory");
        rv = PANELAGENT_ENOMEM;
        goto out;
    }
    memcpy(tmp, csr_path, n);
    memcpy(tmp + n, ".XXXXXX", 8);
    if ((tmp_fd = mkstemp(tmp)) < 0) {
        free(tmp);
        tmp = NULL;
        rv = io_fail(csr_path, "cannot create the CSR file", err, errlen);
        goto out;
    }
    if (fchmod(tmp_fd, 0644) != 0) {
        rv = io_fail(csr_path, "cannot set the CSR's mode", err, errlen);
        goto out;
    }
    ret = finish_file(tmp_fd, csrpem, strlen((const char *)csrpem));
    tmp_fd = -1;
    if (ret != 0) {
        rv = io_fail(csr_path, "cannot write the CSR", err, errlen);
        goto out;
    }
    if (rename(tmp, csr_path) != 0) {
        rv = io_fail(csr_path, "cannot move the CSR into place", err, errlen);
        goto out;
    }
    free(tmp);
    tmp = NULL;
    rv = PANELAGENT_OK;

out:
    if (key_fd >= 0)
        close(key_fd);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    if (rv != PANELAGENT_OK && key_made)
        unlink(key_path);
    mbedtls_platform_zeroize(keypem, sizeof keypem);
    mbedtls_x509write_csr_free(&w);
    mbedtls_pk_free(&pk);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return rv;
}
