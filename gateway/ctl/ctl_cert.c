/*
 * ctl_cert.c - certificates for panelgatectl's commands (ctl.h): facts
 * about a certificate for output and activity details, the subject key of
 * an agent and its client certificate, and the key and certificate files
 * written under PKI/agents, taken back when the command fails.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/x509.h>

#include "ctl.h"

/* PKI/agents, made 0700 when missing. */
static int agents_dir(struct ctl *c, char *out, size_t outlen)
{
    if (ctl_join(out, outlen, c->pki, "agents") != 0)
        return ctl_fail("%s: path too long", c->pki);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return ctl_fail("cannot create %s: %s", out, strerror(errno));
    struct stat st;
    if (stat(out, &st) != 0)
        return ctl_fail("cannot use %s: %s", out, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ctl_fail("cannot use %s: not a directory", out);
    return EX_OK;
}

static int64_t x509_time(const mbedtls_x509_time *t)
{
    struct tm tm = {0};
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return (int64_t)timegm(&tm);
}

void ctl_crt_describe(const mbedtls_x509_crt *crt, struct crtinfo *ci)
{
    memset(ci, 0, sizeof ci->serial);
    size_t o = 0, i = 0;
    while (i + 1 < crt->serial.len && crt->serial.p[i] == 0)
        i++; /* the DER sign byte */
    for (; i < crt->serial.len && o + 3 < sizeof ci->serial; i++)
        o += (size_t)snprintf(ci->serial + o, sizeof ci->serial - o, "%02x", crt->serial.p[i]);
    if (mbedtls_x509_dn_gets(ci->subject, sizeof ci->subject, &crt->subject) < 0)
        snprintf(ci->subject, sizeof ci->subject, "?");
    ci->not_before = x509_time(&crt->valid_from);
    ci->not_after = x509_time(&crt->valid_to);
    if (pki_spki_sha256(&crt->pk, ci->spki) != 0)
        memset(ci->spki, 0, sizeof ci->spki);
}

int ctl_pem_describe(const unsigned char *pem, struct crtinfo *ci)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = mbedtls_x509_crt_parse(&crt, pem, strlen((const char *)pem) + 1);
    if (ret == 0)
        ctl_crt_describe(&crt, ci);
    mbedtls_x509_crt_free(&crt);
    return ret == 0 ? 0 : -1;
}

int ctl_file_describe(const char *path, struct crtinfo *ci)
{
    mbedtls_x509_crt crt;
    char err[512];
    mbedtls_x509_crt_init(&crt);
    int rv = pki_crt_load(&crt, path, err, sizeof err);
    if (rv == 0)
        ctl_crt_describe(&crt, ci);
    mbedtls_x509_crt_free(&crt);
    return rv;
}

char *ctl_issued_details(const struct crtinfo *ci, const char *profile, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1], t[32];
    cJSON *o = cJSON_CreateObject();
    ctl_hex_of(ci->spki, hex);
    cJSON_AddStringToObject(o, "serial", ci->serial);
    cJSON_AddStringToObject(o, "profile", profile);
    cJSON_AddStringToObject(o, "subject", ci->subject);
    cJSON_AddStringToObject(o, "not_after", ctl_iso(ci->not_after, t));
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    if (file != NULL)
        cJSON_AddStringToObject(o, "file", file);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

cJSON *ctl_crt_json(const struct crtinfo *ci, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    if (file != NULL)
        cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "serial", ci->serial);
    cJSON_AddStringToObject(o, "subject", ci->subject);
    ctl_json_add_time(o, "not_before", ci->not_before);
    ctl_json_add_time(o, "not_after", ci->not_after);
    ctl_hex_of(ci->spki, hex);
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    return o;
}

void ctl_crt_text(const char *label, const struct crtinfo *ci, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1], t[32];
    ctl_hex_of(ci->spki, hex);
    printf("  %-12s %s\n", label, file);
    printf("  %-12s %s\n", "serial", ci->serial);
    printf("  %-12s %s\n", "subject", ci->subject);
    printf("  %-12s %s\n", "not after", ctl_iso(ci->not_after, t));
    printf("  %-12s %s\n", "spki_sha256", hex);
}

/* ------------------------------------------------------------ issuing */

void ctl_subject_init(struct subject *s)
{
    memset(s, 0, sizeof *s);
    mbedtls_pk_init(&s->key);
    mbedtls_x509_csr_init(&s->csr);
}

void ctl_subject_free(struct subject *s)
{
    mbedtls_pk_free(&s->key); /* zeroizes */
    mbedtls_x509_csr_free(&s->csr);
}

int ctl_subject_make(struct ctl *c, struct subject *s, const char *csr_path)
{
    char err[1024];
    int rv = ctl_need_rng(c);
    if (rv != EX_OK)
        return rv;
    if (csr_path != NULL) {
        if (pki_csr_load(&s->csr, csr_path, err, sizeof err) != 0)
            return ctl_fail("%s", err);
        s->pk = &s->csr.pk;
    } else {
        if (pki_key_generate(&s->key, PKI_KEY_EC_P256, &c->rng, err, sizeof err) != 0)
            return ctl_fail("%s", err);
        s->pk = &s->key;
        s->generated = true;
    }
    if (pki_spki_sha256(s->pk, s->spki) != 0)
        return ctl_fail("cannot compute the public key's SHA-256");
    return EX_OK;
}

static int issue_client(struct ctl *c, struct pki_ca *ca, const char *name, struct subject *s,
                        unsigned char *pem, size_t pemlen)
{
    char err[1024];
    struct pki_issue req = {
        .profile = PKI_PROFILE_CLIENT, .common_name = name, .days = c->days ? c->days : LEAF_DAYS,
    };
    if (pki_issue(ca, &req, s->pk, &c->rng, pem, pemlen, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    return EX_OK;
}

int ctl_issue_agent(struct ctl *c, struct pki_ca *ca, const char *name, struct subject *s,
                    const char *csr, unsigned char **pem)
{
    int rv = ctl_subject_make(c, s, csr);
    if (rv != EX_OK)
        return rv;
    *pem = calloc(1, PEM_BUF);
    if (*pem == NULL)
        return ctl_fail("out of memory");
    return issue_client(c, ca, name, s, *pem, PEM_BUF);
}

int ctl_write_identity(struct written *w, const struct subject *s, const unsigned char *pem)
{
    char err[1024];
    if (s->generated) {
        if (pki_key_write(&s->key, w->key, err, sizeof err) != 0)
            return ctl_fail("%s", err);
        w->key_done = true;
    }
    if (pki_write_file(w->crt, pem, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    w->crt_done = true;
    return EX_OK;
}

void ctl_unwrite(struct written *w)
{
    if (w->crt_done)
        unlink(w->crt);
    if (w->key_done)
        unlink(w->key);
    w->crt_done = w->key_done = false;
}

int ctl_refuse_existing(const struct written *w, bool with_key, const char *name)
{
    if (with_key && ctl_exists(w->key))
        return ctl_fail("%s already exists: refusing to overwrite a private key "
                        "(move it away, or pin its certificate with --cert)",
                        w->key);
    if (ctl_exists(w->crt))
        return ctl_fail("%s already exists: refusing to overwrite it (an identity for %s was "
                        "made before; pin it with 'register %s --cert %s')",
                        w->crt, name, name, w->crt);
    return EX_OK;
}

int ctl_agent_paths(struct ctl *c, const char *name, struct written *w)
{
    char dir[PATH_BUF], leaf[PATH_BUF];
    int rv = agents_dir(c, dir, sizeof dir);
    if (rv != EX_OK)
        return rv;
    memset(w, 0, sizeof *w);
    snprintf(leaf, sizeof leaf, "%s.key", name);
    if (ctl_join(w->key, sizeof w->key, dir, leaf) != 0)
        return ctl_fail("%s: path too long", dir);
    snprintf(leaf, sizeof leaf, "%s.crt", name);
    if (ctl_join(w->crt, sizeof w->crt, dir, leaf) != 0)
        return ctl_fail("%s: path too long", dir);
    return EX_OK;
}

/* ------------------------------------------------------------ the activity row */

int ctl_record_issued(struct ctl *c, int64_t server_id, const char *server, int64_t at,
                      const struct crtinfo *ci, const char *profile, const char *file)
{
    char err[1024];
    if (c->reg == NULL || !c->reg->is_open(c))
        return EX_OK;
    char *d = ctl_issued_details(ci, profile, file);
    int rv = c->reg->activity_add(c, at, "cert_issued", server_id, server, d, err, sizeof err);
    cJSON_free(d);
    return rv == 0 ? EX_OK : ctl_fail("%s", err);
}

int ctl_write_recorded(struct ctl *c, struct written *w, const struct subject *s,
                       const unsigned char *pem, const char *profile, struct crtinfo *ci)
{
    int rv = ctl_write_identity(w, s, pem);
    if (rv == EX_OK) {
        ctl_pem_describe(pem, ci);
        rv = ctl_record_issued(c, 0, NULL, (int64_t)time(NULL), ci, profile, w->crt);
    }
    if (rv != EX_OK)
        ctl_unwrite(w);
    return rv;
}

void ctl_json_add_key(cJSON *o, const struct subject *s, const struct written *w)
{
    if (s->generated)
        cJSON_AddStringToObject(o, "key", w->key);
    else
        cJSON_AddNullToObject(o, "key");
}
