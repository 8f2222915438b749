/*
 * panelgatectl - the gateway's admin tool: the panel CA and certificates
 * (pki.h), the registry of servers and the activity log (regdb.h), on the
 * SQLite file the gateway uses.
 *
 *   panelgatectl [--db FILE | --config FILE] [--pki DIR] [--actor NAME] [--json]
 *                COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 failure (the reason on stderr), 64 bad usage.
 * Every change to the registry is one transaction with its activity rows;
 * the gateway picks it up by polling meta.registry_generation (or SIGHUP).
 * Private keys are written to files (0600) and never printed.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include <cjson/cJSON.h>
#include <mbedtls/version.h>
#include <msgpack.h>
#include <mbedtls/x509.h>
#include <sqlite3.h>

#include "config.h"
#include "mpread.h"
#include "pki.h"
#include "regdb.h"
#include "registry.h"

#ifndef PANELGATE_VERSION
#define PANELGATE_VERSION "0.1.0"
#endif

#define EX_OK 0
#define EX_FAIL 1
#define EX_USAGE 64

#define CA_DAYS 3650u
#define LEAF_DAYS 825u
#define OVERLAP_DEFAULT_S (7 * 86400)
#define MAX_DURATION_S (3650LL * 86400)
#define SHOW_ACTIVITY 10
#define PEM_BUF 16384
#define PATH_BUF 4096

/* ------------------------------------------------------------ output */

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("panelgatectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EX_FAIL;
}

__attribute__((format(printf, 1, 2)))
static void warn(const char *fmt, ...)
{
    va_list ap;
    fputs("panelgatectl: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* UTC ISO-8601, "2026-11-29T02:20:54Z". */
static const char *iso(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, 32, "%lld", (long long)t);
    return buf;
}

static void json_print(cJSON *j)
{
    char *s = cJSON_Print(j);
    if (s != NULL) {
        puts(s);
        cJSON_free(s);
    }
}

static void json_add_time(cJSON *o, const char *k, int64_t t)
{
    char b[32];
    if (t == 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddStringToObject(o, k, iso(t, b));
}

/* ------------------------------------------------------------ options */

enum opt {
    O_DB, O_CONFIG, O_PKI, O_ACTOR, O_JSON, O_HELP, O_VERSION, /* global */
    O_CN, O_DAYS, O_RSA, O_DNS, O_IP, O_KIND, O_CSR, O_CERT, O_OVERLAP,
    O_SERVER, O_ACTION, O_SINCE, O_UNTIL, O_LIMIT,
    O_OLDER_THAN, O_FORMAT, O_OUT, O_YES,
    O_COUNT
};
#define GLOBAL_OPTS ((1u << O_CN) - 1)
#define BIT(o) (1u << (o))

static const struct {
    const char *name;
    bool arg;
    bool multi;
} optdefs[O_COUNT] = {
    [O_DB] = {"db", true, false},         [O_CONFIG] = {"config", true, false},
    [O_PKI] = {"pki", true, false},       [O_ACTOR] = {"actor", true, false},
    [O_JSON] = {"json", false, false},    [O_HELP] = {"help", false, false},
    [O_VERSION] = {"version", false, false},
    [O_CN] = {"cn", true, false},         [O_DAYS] = {"days", true, false},
    [O_RSA] = {"rsa", false, false},      [O_DNS] = {"dns", true, true},
    [O_IP] = {"ip", true, true},          [O_KIND] = {"kind", true, false},
    [O_CSR] = {"csr", true, false},       [O_CERT] = {"cert", true, false},
    [O_OVERLAP] = {"overlap", true, false}, [O_SERVER] = {"server", true, false},
    [O_ACTION] = {"action", true, false}, [O_SINCE] = {"since", true, false},
    [O_UNTIL] = {"until", true, false},   [O_LIMIT] = {"limit", true, false},
    [O_OLDER_THAN] = {"older-than", true, false}, [O_FORMAT] = {"format", true, false},
    [O_OUT] = {"out", true, false},       [O_YES] = {"yes", false, false},
};

struct ctl {
    const struct cmd *cmd;
    unsigned given;               /* BIT(opt) for each option seen */
    const char *val[O_COUNT];
    const char *dns[PKI_MAX_SANS];
    unsigned n_dns;
    const char *ip[PKI_MAX_SANS];
    unsigned n_ip;
    const char *pos[8];           /* positionals after the command words */
    unsigned n_pos;

    bool json;
    const char *pki;              /* the PKI directory */
    char actor[128];
    char db_path[PATH_BUF];       /* resolved; "" when none */
    unsigned days;

    sqlite3 *db;
    struct pki_rng rng;
    bool rng_ok;
};

struct cmd {
    const char *w1, *w2;
    int (*run)(struct ctl *c);
    unsigned opts; /* BIT()s allowed besides the global ones */
    unsigned min_pos, max_pos;
    const char *synopsis;
    const char *help;
};

/* The command table is at the end of the file, after the commands. */
static const struct cmd *cmd_table(size_t *n);

static void print_cmd_usage(FILE *f, const struct cmd *cmd)
{
    fprintf(f, "usage: panelgatectl [global options] %s\n\n%s\n", cmd->synopsis, cmd->help);
}

static void print_usage(FILE *f)
{
    fputs("usage: panelgatectl [global options] COMMAND [ARGS]\n"
          "\n"
          "The panel's PKI, the registry of servers and the activity log.\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --db FILE       the gateway's SQLite file (its [storage] sqlite_path, or\n"
          "                  [registry] registry_path when that is set)\n"
          "  --config FILE   read that path from the gateway's configuration file\n"
          "  --pki DIR       the PKI directory (default $PANELGATE_PKI, else ./pki)\n"
          "  --actor NAME    who is acting, for the activity log (default $SUDO_USER,\n"
          "                  else the OS user)\n"
          "  --json          machine-readable output\n"
          "  --help, --version\n"
          "\n"
          "Commands:\n",
          f);
    size_t n;
    const struct cmd *cmds = cmd_table(&n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %s\n", cmds[i].synopsis);
    fputs("\n'panelgatectl COMMAND --help' describes one command.\n"
          "Exit status: 0 success, 1 failure, 64 bad usage.\n",
          f);
}

__attribute__((format(printf, 2, 3)))
static int usage_err(const struct cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("panelgatectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd != NULL)
        fprintf(stderr, "usage: panelgatectl [global options] %s\n", cmd->synopsis);
    else
        fputs("Try 'panelgatectl --help'.\n", stderr);
    return EX_USAGE;
}

/* ------------------------------------------------------------ parsing helpers */

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* "30s", "15m", "12h", "7d" (or "0") -> seconds. */
static int parse_duration(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    size_t n = strlen(s);
    int64_t unit;
    switch (s[n - 1]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -1;
    }
    char num[24];
    if (n - 1 == 0 || n - 1 >= sizeof num)
        return -1;
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    unsigned long long v;
    if (parse_uint(num, (unsigned long long)(MAX_DURATION_S / unit), &v) != 0)
        return -1;
    *out = (int64_t)v * unit;
    return 0;
}

/* Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a duration ago.  A
 * bare date as an upper bound means the end of that day. */
static int parse_time1(const char *s, bool upper, int64_t now, int64_t *out);

/* As parse_time1, and after 1970-01-01T00:00:00Z (0 means "no bound" in a
 * filter). */
static int parse_time(const char *s, bool upper, int64_t now, int64_t *out)
{
    return parse_time1(s, upper, now, out) == 0 && *out > 0 ? 0 : -1;
}

static int parse_time1(const char *s, bool upper, int64_t now, int64_t *out)
{
    unsigned long long u;
    if (parse_uint(s, (unsigned long long)INT64_MAX, &u) == 0) {
        *out = (int64_t)u;
        return 0;
    }
    int64_t d;
    if (parse_duration(s, &d) == 0) {
        *out = now - d;
        return 0;
    }
    struct tm tm = {0};
    int y, mo, da, h = 0, mi = 0, se = 0, n = 0;
    size_t len = strlen(s);
    if (len == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &da, &n) == 3 && n == 10) {
        if (upper) {
            h = 23;
            mi = 59;
            se = 59;
        }
    } else if (len == 20 &&
               sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &da, &h, &mi, &se, &n) == 6 &&
               n == 20) {
    } else {
        return -1;
    }
    for (size_t i = 0; i < len; i++) /* no signs or blanks inside the fields */
        if (s[i] == '+' || s[i] == ' ' || (s[i] == '-' && i != 4 && i != 7))
            return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_year != tm.tm_year ||
        back.tm_mon != mo - 1 || back.tm_mday != da || back.tm_hour != h || back.tm_min != mi ||
        back.tm_sec != se)
        return -1;
    *out = (int64_t)t;
    return 0;
}

static int join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void hex_of(const uint8_t spki[GW_SPKI_LEN], char out[2 * GW_SPKI_LEN + 1])
{
    gw_spki_hex(spki, out);
}

/* ------------------------------------------------------------ context */

static int need_db(struct ctl *c, bool create)
{
    char err[1024];
    if (c->db_path[0] == '\0')
        return usage_err(c->cmd, "no database: give --db FILE or --config FILE");
    int rv = gw_regdb_open(c->db_path, create, &c->db, err, sizeof err);
    if (rv != 0)
        return fail("%s", err);
    return EX_OK;
}

static int need_rng(struct ctl *c)
{
    char err[512];
    if (c->rng_ok)
        return EX_OK;
    if (pki_rng_init(&c->rng, err, sizeof err) != 0)
        return fail("%s", err);
    c->rng_ok = true;
    return EX_OK;
}

/* Loads the CA; "no CA in DIR" when it is not there. */
static int need_ca(struct ctl *c, struct pki_ca *ca)
{
    char kp[PATH_BUF], cp[PATH_BUF], err[1024];
    if (join(kp, sizeof kp, c->pki, "ca.key") != 0 || join(cp, sizeof cp, c->pki, "ca.crt") != 0)
        return fail("%s: path too long", c->pki);
    if (!exists(kp) || !exists(cp))
        return fail("no CA in %s: run 'panelgatectl ca init'", c->pki);
    int rv = need_rng(c);
    if (rv != EX_OK)
        return rv;
    if (pki_ca_load(ca, c->pki, &c->rng, err, sizeof err) != 0)
        return fail("%s", err);
    return EX_OK;
}

/* PKI/agents, made 0700 when missing. */
static int agents_dir(struct ctl *c, char *out, size_t outlen)
{
    if (join(out, outlen, c->pki, "agents") != 0)
        return fail("%s: path too long", c->pki);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return fail("cannot create %s: %s", out, strerror(errno));
    struct stat st;
    if (stat(out, &st) != 0)
        return fail("cannot use %s: %s", out, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail("cannot use %s: not a directory", out);
    return EX_OK;
}

/* Facts about a certificate, for output and activity details. */
struct crtinfo {
    char serial[48];  /* lower-case hex */
    char subject[256];
    int64_t not_before, not_after;
    uint8_t spki[GW_SPKI_LEN];
};

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

static void crt_describe(const mbedtls_x509_crt *crt, struct crtinfo *ci)
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

static int pem_describe(const unsigned char *pem, struct crtinfo *ci)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = mbedtls_x509_crt_parse(&crt, pem, strlen((const char *)pem) + 1);
    if (ret == 0)
        crt_describe(&crt, ci);
    mbedtls_x509_crt_free(&crt);
    return ret == 0 ? 0 : -1;
}

static int file_describe(const char *path, struct crtinfo *ci)
{
    mbedtls_x509_crt crt;
    char err[512];
    mbedtls_x509_crt_init(&crt);
    int rv = pki_crt_load(&crt, path, err, sizeof err);
    if (rv == 0)
        crt_describe(&crt, ci);
    mbedtls_x509_crt_free(&crt);
    return rv;
}

/* cert_issued details, as JSON text (caller frees with cJSON_free). */
static char *issued_details(const struct crtinfo *ci, const char *profile, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1], t[32];
    cJSON *o = cJSON_CreateObject();
    hex_of(ci->spki, hex);
    cJSON_AddStringToObject(o, "serial", ci->serial);
    cJSON_AddStringToObject(o, "profile", profile);
    cJSON_AddStringToObject(o, "subject", ci->subject);
    cJSON_AddStringToObject(o, "not_after", iso(ci->not_after, t));
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    if (file != NULL)
        cJSON_AddStringToObject(o, "file", file);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static cJSON *crt_json(const struct crtinfo *ci, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    if (file != NULL)
        cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "serial", ci->serial);
    cJSON_AddStringToObject(o, "subject", ci->subject);
    json_add_time(o, "not_before", ci->not_before);
    json_add_time(o, "not_after", ci->not_after);
    hex_of(ci->spki, hex);
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    return o;
}

static void crt_text(const char *label, const struct crtinfo *ci, const char *file)
{
    char hex[2 * GW_SPKI_LEN + 1], t[32];
    hex_of(ci->spki, hex);
    printf("  %-12s %s\n", label, file);
    printf("  %-12s %s\n", "serial", ci->serial);
    printf("  %-12s %s\n", "subject", ci->subject);
    printf("  %-12s %s\n", "not after", iso(ci->not_after, t));
    printf("  %-12s %s\n", "spki_sha256", hex);
}

/* ------------------------------------------------------------ issuing */

/* A subject key: generated here, or the public key of a CSR. */
struct subject {
    bool generated;
    mbedtls_pk_context key;
    mbedtls_x509_csr csr;
    mbedtls_pk_context *pk; /* points at key or csr.pk */
    uint8_t spki[GW_SPKI_LEN];
};

static void subject_init(struct subject *s)
{
    memset(s, 0, sizeof *s);
    mbedtls_pk_init(&s->key);
    mbedtls_x509_csr_init(&s->csr);
}

static void subject_free(struct subject *s)
{
    mbedtls_pk_free(&s->key); /* zeroizes */
    mbedtls_x509_csr_free(&s->csr);
}

static int subject_make(struct ctl *c, struct subject *s, const char *csr_path)
{
    char err[1024];
    int rv = need_rng(c);
    if (rv != EX_OK)
        return rv;
    if (csr_path != NULL) {
        if (pki_csr_load(&s->csr, csr_path, err, sizeof err) != 0)
            return fail("%s", err);
        s->pk = &s->csr.pk;
    } else {
        if (pki_key_generate(&s->key, PKI_KEY_EC_P256, &c->rng, err, sizeof err) != 0)
            return fail("%s", err);
        s->pk = &s->key;
        s->generated = true;
    }
    if (pki_spki_sha256(s->pk, s->spki) != 0)
        return fail("cannot compute the public key's SHA-256");
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
        return fail("%s", err);
    return EX_OK;
}

/* The files written for one identity, so a failure can take them back. */
struct written {
    char key[PATH_BUF], crt[PATH_BUF];
    bool key_done, crt_done;
};

static int write_identity(struct written *w, const struct subject *s, const unsigned char *pem)
{
    char err[1024];
    if (s->generated) {
        if (pki_key_write(&s->key, w->key, err, sizeof err) != 0)
            return fail("%s", err);
        w->key_done = true;
    }
    if (pki_write_file(w->crt, pem, err, sizeof err) != 0)
        return fail("%s", err);
    w->crt_done = true;
    return EX_OK;
}

static void unwrite(struct written *w)
{
    if (w->crt_done)
        unlink(w->crt);
    if (w->key_done)
        unlink(w->key);
    w->crt_done = w->key_done = false;
}

/* Refuses to overwrite NAME's files: the key always, the certificate too. */
static int refuse_existing(const struct written *w, bool with_key, const char *name)
{
    if (with_key && exists(w->key))
        return fail("%s already exists: refusing to overwrite a private key "
                    "(move it away, or pin its certificate with --cert)",
                    w->key);
    if (exists(w->crt))
        return fail("%s already exists: refusing to overwrite it (an identity for %s was "
                    "made before; pin it with 'register %s --cert %s')",
                    w->crt, name, name, w->crt);
    return EX_OK;
}

static int agent_paths(struct ctl *c, const char *name, struct written *w)
{
    char dir[PATH_BUF], leaf[PATH_BUF];
    int rv = agents_dir(c, dir, sizeof dir);
    if (rv != EX_OK)
        return rv;
    memset(w, 0, sizeof *w);
    snprintf(leaf, sizeof leaf, "%s.key", name);
    if (join(w->key, sizeof w->key, dir, leaf) != 0)
        return fail("%s: path too long", dir);
    snprintf(leaf, sizeof leaf, "%s.crt", name);
    if (join(w->crt, sizeof w->crt, dir, leaf) != 0)
        return fail("%s: path too long", dir);
    return EX_OK;
}

static int tx(struct ctl *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rv = fail("database %s: %s: %s", c->db_path, sql, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return rv;
    }
    return EX_OK;
}

static void tx_abort(struct ctl *c)
{
    if (c->db != NULL && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------ ca init */

static int cmd_ca_init(struct ctl *c)
{
    char err[1024], kp[PATH_BUF], cp[PATH_BUF];
    if (join(kp, sizeof kp, c->pki, "ca.key") != 0 || join(cp, sizeof cp, c->pki, "ca.crt") != 0)
        return fail("%s: path too long", c->pki);
    if (exists(kp) || exists(cp))
        return fail("a CA already exists in %s (%s): refusing to replace it", c->pki,
                    exists(kp) ? kp : cp);
    int rv = need_rng(c);
    if (rv != EX_OK)
        return rv;
    enum pki_key_type kt = (c->given & BIT(O_RSA)) ? PKI_KEY_RSA_3072 : PKI_KEY_EC_P256;
    if (pki_ca_init(c->pki, c->val[O_CN], kt, c->days ? c->days : CA_DAYS, &c->rng, err,
                    sizeof err) != 0)
        return fail("%s", err);
    struct crtinfo ci;
    if (file_describe(cp, &ci) != 0)
        return fail("%s: written but cannot be read back", cp);
    if (c->json) {
        cJSON *o = crt_json(&ci, cp);
        cJSON_AddStringToObject(o, "dir", c->pki);
        cJSON_AddStringToObject(o, "key", kp);
        cJSON_AddStringToObject(o, "key_type", kt == PKI_KEY_RSA_3072 ? "rsa3072" : "p256");
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("CA created in %s\n", c->pki);
        crt_text("certificate", &ci, cp);
        printf("  %-12s %s (0600; keep it offline or at least private)\n", "key", kp);
    }
    return EX_OK;
}

/* ------------------------------------------------------------ cert gateway / agent */

/* Records a cert_issued row when a database was named (optional here). */
static int record_issued(struct ctl *c, int64_t server_id, const struct crtinfo *ci,
                         const char *profile, const char *file)
{
    char err[1024];
    if (c->db == NULL)
        return EX_OK;
    char *d = issued_details(ci, profile, file);
    int rv = gw_activity_add(c->db, (int64_t)time(NULL), c->actor, "cert_issued", server_id, d,
                             err, sizeof err);
    cJSON_free(d);
    return rv == 0 ? EX_OK : fail("%s", err);
}

static int cmd_cert_gateway(struct ctl *c)
{
    char kp[PATH_BUF], cp[PATH_BUF], err[1024];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    int rv;

    if (c->n_dns + c->n_ip == 0)
        return usage_err(c->cmd, "cert gateway: give at least one --dns NAME or --ip ADDR");
    if (join(kp, sizeof kp, c->pki, "gateway.key") != 0 ||
        join(cp, sizeof cp, c->pki, "gateway.crt") != 0)
        return fail("%s: path too long", c->pki);
    memset(&ca, 0, sizeof ca);
    subject_init(&s);
    if ((rv = need_ca(c, &ca)) != EX_OK)
        goto out;
    if (exists(kp)) {
        rv = fail("%s already exists: refusing to overwrite a private key (move it away to "
                  "make a new gateway identity)",
                  kp);
        goto out;
    }
    if (c->db_path[0] != '\0' && (rv = need_db(c, true)) != EX_OK)
        goto out;
    if ((rv = subject_make(c, &s, NULL)) != EX_OK)
        goto out;
    pem = calloc(1, PEM_BUF);
    if (pem == NULL) {
        rv = fail("out of memory");
        goto out;
    }
    struct pki_issue req = {
        .profile = PKI_PROFILE_SERVER,
        .common_name = c->val[O_CN] ? c->val[O_CN] : (c->n_dns ? c->dns[0] : c->ip[0]),
        .n_dns = c->n_dns,
        .n_ip = c->n_ip,
        .days = c->days ? c->days : LEAF_DAYS,
    };
    memcpy(req.dns, c->dns, sizeof req.dns);
    memcpy(req.ip, c->ip, sizeof req.ip);
    if (pki_issue(&ca, &req, s.pk, &c->rng, pem, PEM_BUF, err, sizeof err) != 0) {
        rv = fail("%s", err);
        goto out;
    }
    struct written w = {0};
    snprintf(w.key, sizeof w.key, "%s", kp);
    snprintf(w.crt, sizeof w.crt, "%s", cp);
    if ((rv = write_identity(&w, &s, pem)) != EX_OK) {
        unwrite(&w);
        goto out;
    }
    struct crtinfo ci;
    pem_describe(pem, &ci);
    if ((rv = record_issued(c, 0, &ci, "server", cp)) != EX_OK) {
        unwrite(&w);
        goto out;
    }
    if (c->json) {
        cJSON *o = crt_json(&ci, cp);
        cJSON_AddStringToObject(o, "key", kp);
        cJSON *d = cJSON_AddArrayToObject(o, "dns");
        for (unsigned i = 0; i < c->n_dns; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->dns[i]));
        d = cJSON_AddArrayToObject(o, "ip");
        for (unsigned i = 0; i < c->n_ip; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->ip[i]));
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("gateway certificate issued\n");
        crt_text("certificate", &ci, cp);
        printf("  %-12s %s (0600)\n", "key", kp);
        printf("  %-12s", "names");
        for (unsigned i = 0; i < c->n_dns; i++)
            printf(" DNS:%s", c->dns[i]);
        for (unsigned i = 0; i < c->n_ip; i++)
            printf(" IP:%s", c->ip[i]);
        printf("\n");
    }
    rv = EX_OK;
out:
    free(pem);
    subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

static int check_name(struct ctl *c, const char *name)
{
    if (!gw_regdb_name_ok(name))
        return usage_err(c->cmd,
                         "bad server name '%s': 1 to 255 of A-Z a-z 0-9 . _ -, not starting "
                         "with '.' or '-'",
                         name);
    return EX_OK;
}

static int cmd_cert_agent(struct ctl *c)
{
    const char *name = c->pos[0];
    const char *csr = c->val[O_CSR];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    struct written w;
    int rv;

    if ((rv = check_name(c, name)) != EX_OK)
        return rv;
    memset(&ca, 0, sizeof ca);
    subject_init(&s);
    if ((rv = need_ca(c, &ca)) != EX_OK || (rv = agent_paths(c, name, &w)) != EX_OK ||
        (rv = refuse_existing(&w, csr == NULL, name)) != EX_OK)
        goto out;
    if (c->db_path[0] != '\0' && (rv = need_db(c, true)) != EX_OK)
        goto out;
    pem = calloc(1, PEM_BUF);
    if (pem == NULL) {
        rv = fail("out of memory");
        goto out;
    }
    if ((rv = subject_make(c, &s, csr)) != EX_OK ||
        (rv = issue_client(c, &ca, name, &s, pem, PEM_BUF)) != EX_OK)
        goto out;
    if ((rv = write_identity(&w, &s, pem)) != EX_OK) {
        unwrite(&w);
        goto out;
    }
    struct crtinfo ci;
    pem_describe(pem, &ci);
    if ((rv = record_issued(c, 0, &ci, "client", w.crt)) != EX_OK) {
        unwrite(&w);
        goto out;
    }
    if (c->json) {
        cJSON *o = crt_json(&ci, w.crt);
        if (s.generated)
            cJSON_AddStringToObject(o, "key", w.key);
        else
            cJSON_AddNullToObject(o, "key");
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddBoolToObject(o, "registered", false);
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("agent certificate issued for %s (not registered)\n", name);
        crt_text("certificate", &ci, w.crt);
        if (s.generated)
            printf("  %-12s %s (0600)\n", "key", w.key);
        else
            printf("  %-12s stays on the agent host (signed from %s)\n", "key", csr);
    }
    rv = EX_OK;
out:
    free(pem);
    subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

/* ------------------------------------------------------------ register */

static int cmd_register(struct ctl *c)
{
    const char *name = c->pos[0];
    const char *kind = c->val[O_KIND];
    const char *csr = c->val[O_CSR], *cert = c->val[O_CERT];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    struct written w;
    mbedtls_x509_crt pinned;
    char err[1024], hex[2 * GW_SPKI_LEN + 1];
    char *details = NULL, *issued = NULL;
    struct crtinfo ci;
    const char *source = csr ? "csr" : cert ? "cert" : "generated";
    int rv;

    memset(&ca, 0, sizeof ca);
    memset(&w, 0, sizeof w);
    memset(&ci, 0, sizeof ci);
    subject_init(&s);
    mbedtls_x509_crt_init(&pinned);

    if ((rv = check_name(c, name)) != EX_OK)
        goto out;
    if (kind == NULL) {
        rv = usage_err(c->cmd, "register: --kind nimble|wowza is required");
        goto out;
    }
    if (strcmp(kind, "nimble") != 0 && strcmp(kind, "wowza") != 0) {
        rv = usage_err(c->cmd, "bad kind '%s': nimble or wowza", kind);
        goto out;
    }
    if (csr && cert) {
        rv = usage_err(c->cmd, "register: --csr and --cert exclude each other");
        goto out;
    }
    if (cert && c->days) {
        rv = usage_err(c->cmd, "register: --days has no effect with --cert (nothing is issued)");
        goto out;
    }
    if ((rv = need_db(c, true)) != EX_OK)
        goto out;
    struct gw_regdb_server existing;
    int q = gw_regdb_show(c->db, name, &existing, err, sizeof err);
    if (q == 0) {
        rv = fail("server %s is already registered", name);
        goto out;
    }
    if (q != GW_REG_ENOTFOUND) {
        rv = fail("%s", err);
        goto out;
    }

    if (cert != NULL) {
        /* pin a certificate made elsewhere: nothing is issued or written */
        if (pki_crt_load(&pinned, cert, err, sizeof err) != 0) {
            rv = fail("%s", err);
            goto out;
        }
        crt_describe(&pinned, &ci);
        memcpy(s.spki, ci.spki, sizeof s.spki);
        char cap[PATH_BUF];
        mbedtls_x509_crt cacrt;
        mbedtls_x509_crt_init(&cacrt);
        if (join(cap, sizeof cap, c->pki, "ca.crt") == 0 && exists(cap) &&
            pki_crt_load(&cacrt, cap, err, sizeof err) == 0) {
            uint32_t flags = 0;
            if (mbedtls_x509_crt_verify(&pinned, &cacrt, NULL, NULL, &flags, NULL, NULL) != 0)
                warn("%s does not verify against %s (flags 0x%x): the gateway accepts it only "
                     "if its client_ca_file trusts the issuer",
                     cert, cap, (unsigned)flags);
        }
        mbedtls_x509_crt_free(&cacrt);
    } else {
        if ((rv = need_ca(c, &ca)) != EX_OK || (rv = agent_paths(c, name, &w)) != EX_OK ||
            (rv = refuse_existing(&w, csr == NULL, name)) != EX_OK ||
            (rv = subject_make(c, &s, csr)) != EX_OK)
            goto out;
        pem = calloc(1, PEM_BUF);
        if (pem == NULL) {
            rv = fail("out of memory");
            goto out;
        }
        if ((rv = issue_client(c, &ca, name, &s, pem, PEM_BUF)) != EX_OK)
            goto out;
        pem_describe(pem, &ci);
    }

    hex_of(s.spki, hex);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "kind", kind);
    cJSON_AddStringToObject(d, "spki_sha256", hex);
    cJSON_AddStringToObject(d, "source", source);
    if (ci.serial[0] != '\0')
        cJSON_AddStringToObject(d, "serial", ci.serial);
    details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);

    /* One transaction: the server, its pin, its activity rows.  The files
     * are written inside it, so a refused registration writes nothing and
     * a failed write registers nothing. */
    int64_t now = (int64_t)time(NULL), id = 0;
    if ((rv = tx(c, "BEGIN IMMEDIATE")) != EX_OK)
        goto out;
    if (gw_regdb_register(c->db, name, kind, s.spki, c->actor, details, now, &id, err,
                          sizeof err) != 0) {
        rv = fail("%s", err);
        goto out;
    }
    if (pem != NULL) {
        issued = issued_details(&ci, "client", w.crt);
        if (gw_activity_add(c->db, now, c->actor, "cert_issued", id, issued, err, sizeof err) !=
            0) {
            rv = fail("%s", err);
            goto out;
        }
        if ((rv = write_identity(&w, &s, pem)) != EX_OK)
            goto out;
    }
    if ((rv = tx(c, "COMMIT")) != EX_OK)
        goto out;

    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "id", (double)id);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "status", "active");
        cJSON_AddStringToObject(o, "spki_sha256", hex);
        cJSON_AddStringToObject(o, "source", source);
        cJSON_AddItemToObject(o, "certificate", crt_json(&ci, pem ? w.crt : cert));
        if (s.generated)
            cJSON_AddStringToObject(o, "key", w.key);
        else
            cJSON_AddNullToObject(o, "key");
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("registered %s (%s), id %lld\n", name, kind, (long long)id);
        printf("  %-12s %s\n", "pin", hex);
        crt_text(pem ? "certificate" : "pinned from", &ci, pem ? w.crt : cert);
        if (s.generated)
            printf("  %-12s %s (0600: copy it to the agent host, then delete it here)\n", "key",
                   w.key);
        else if (csr != NULL)
            printf("  %-12s stays on the agent host (signed from %s)\n", "key", csr);
    }
    rv = EX_OK;
out:
    if (rv != EX_OK) {
        tx_abort(c);
        unwrite(&w);
    }
    cJSON_free(details);
    cJSON_free(issued);
    free(pem);
    mbedtls_x509_crt_free(&pinned);
    subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

/* ------------------------------------------------------------ rotate */

/* Moves NAME.crt/.key aside as NAME.<serial>.crt/.key, undoable. */
struct archive {
    char from_crt[PATH_BUF], to_crt[PATH_BUF], from_key[PATH_BUF], to_key[PATH_BUF];
    bool crt_moved, key_moved;
    char serial[48];
};

static int archive_old(struct archive *a, const struct written *w, const char *name)
{
    struct crtinfo old;
    memset(a, 0, sizeof *a);
    snprintf(a->from_crt, sizeof a->from_crt, "%s", w->crt);
    snprintf(a->from_key, sizeof a->from_key, "%s", w->key);
    bool have_crt = exists(w->crt), have_key = exists(w->key);
    if (!have_crt && !have_key)
        return EX_OK;
    if (have_crt && file_describe(w->crt, &old) == 0)
        snprintf(a->serial, sizeof a->serial, "%s", old.serial);
    else
        snprintf(a->serial, sizeof a->serial, "old-%lld", (long long)time(NULL));
    /* w->crt ends in "NAME.crt": replace the leaf */
    size_t dl = strlen(w->crt) - strlen(name) - 4;
    int n1 = snprintf(a->to_crt, sizeof a->to_crt, "%.*s%s.%s.crt", (int)dl, w->crt, name,
                      a->serial);
    int n2 = snprintf(a->to_key, sizeof a->to_key, "%.*s%s.%s.key", (int)dl, w->crt, name,
                      a->serial);
    if (n1 < 0 || (size_t)n1 >= sizeof a->to_crt || n2 < 0 || (size_t)n2 >= sizeof a->to_key)
        return fail("%s: path too long", w->crt);
    if ((have_crt && exists(a->to_crt)) || (have_key && exists(a->to_key)))
        return fail("%s already exists: refusing to overwrite it",
                    exists(a->to_crt) ? a->to_crt : a->to_key);
    if (have_crt) {
        if (rename(a->from_crt, a->to_crt) != 0)
            return fail("cannot move %s to %s: %s", a->from_crt, a->to_crt, strerror(errno));
        a->crt_moved = true;
    }
    if (have_key) {
        if (rename(a->from_key, a->to_key) != 0)
            return fail("cannot move %s to %s: %s", a->from_key, a->to_key, strerror(errno));
        a->key_moved = true;
    }
    return EX_OK;
}

static void archive_undo(struct archive *a)
{
    if (a->crt_moved && rename(a->to_crt, a->from_crt) != 0)
        warn("could not move %s back to %s: %s", a->to_crt, a->from_crt, strerror(errno));
    if (a->key_moved && rename(a->to_key, a->from_key) != 0)
        warn("could not move %s back to %s: %s", a->to_key, a->from_key, strerror(errno));
    a->crt_moved = a->key_moved = false;
}

static int cmd_rotate(struct ctl *c)
{
    const char *name = c->pos[0];
    const char *csr = c->val[O_CSR];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    struct written w;
    struct archive a;
    struct crtinfo ci;
    char err[1024], hex[2 * GW_SPKI_LEN + 1];
    char *issued = NULL;
    int64_t overlap = OVERLAP_DEFAULT_S;
    int rv;

    memset(&ca, 0, sizeof ca);
    memset(&w, 0, sizeof w);
    memset(&a, 0, sizeof a);
    subject_init(&s);
    if ((rv = check_name(c, name)) != EX_OK)
        goto out;
    if (c->val[O_OVERLAP] != NULL && parse_duration(c->val[O_OVERLAP], &overlap) != 0) {
        rv = usage_err(c->cmd, "bad duration '%s' for --overlap: a number and s, m, h or d "
                               "(30s, 15m, 12h, 7d), at most 3650d",
                       c->val[O_OVERLAP]);
        goto out;
    }
    if ((rv = need_db(c, false)) != EX_OK)
        goto out;
    struct gw_regdb_server cur;
    if (gw_regdb_show(c->db, name, &cur, err, sizeof err) != 0) {
        rv = fail("%s", err);
        goto out;
    }
    if (strcmp(cur.status, "active") != 0) {
        rv = fail("server %s is %s: a new key would not let it in", name, cur.status);
        goto out;
    }
    if ((rv = need_ca(c, &ca)) != EX_OK || (rv = agent_paths(c, name, &w)) != EX_OK ||
        (rv = subject_make(c, &s, csr)) != EX_OK)
        goto out;
    pem = calloc(1, PEM_BUF);
    if (pem == NULL) {
        rv = fail("out of memory");
        goto out;
    }
    if ((rv = issue_client(c, &ca, name, &s, pem, PEM_BUF)) != EX_OK)
        goto out;
    pem_describe(pem, &ci);
    hex_of(s.spki, hex);

    int64_t now = (int64_t)time(NULL);
    if ((rv = tx(c, "BEGIN IMMEDIATE")) != EX_OK)
        goto out;
    if (gw_regdb_rotate(c->db, name, s.spki, overlap, c->actor, now, err, sizeof err) != 0) {
        rv = fail("%s", err);
        goto out;
    }
    issued = issued_details(&ci, "client", w.crt);
    if (gw_activity_add(c->db, now, c->actor, "cert_issued", cur.id, issued, err, sizeof err) !=
        0) {
        rv = fail("%s", err);
        goto out;
    }
    if ((rv = archive_old(&a, &w, name)) != EX_OK || (rv = write_identity(&w, &s, pem)) != EX_OK)
        goto out;
    if ((rv = tx(c, "COMMIT")) != EX_OK)
        goto out;

    char t[32];
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "spki_sha256", hex);
        cJSON_AddItemToObject(o, "certificate", crt_json(&ci, w.crt));
        if (s.generated)
            cJSON_AddStringToObject(o, "key", w.key);
        else
            cJSON_AddNullToObject(o, "key");
        cJSON_AddNumberToObject(o, "overlap_s", (double)overlap);
        cJSON_AddStringToObject(o, "old_pins_not_after", iso(now + overlap, t));
        if (a.crt_moved)
            cJSON_AddStringToObject(o, "previous_certificate", a.to_crt);
        if (a.key_moved)
            cJSON_AddStringToObject(o, "previous_key", a.to_key);
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("rotated %s\n", name);
        printf("  %-12s %s\n", "new pin", hex);
        crt_text("certificate", &ci, w.crt);
        if (s.generated)
            printf("  %-12s %s (0600)\n", "key", w.key);
        printf("  %-12s the previous pins are accepted until %s\n", "overlap",
               iso(now + overlap, t));
        if (a.crt_moved)
            printf("  %-12s %s\n", "previous", a.to_crt);
        if (a.key_moved)
            printf("  %-12s %s\n", "previous", a.to_key);
    }
    rv = EX_OK;
out:
    if (rv != EX_OK) {
        tx_abort(c);
        unwrite(&w);
        archive_undo(&a);
    }
    cJSON_free(issued);
    free(pem);
    subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

/* ------------------------------------------------------------ revoke */

static int cmd_revoke(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024];
    int rv;
    if ((rv = check_name(c, name)) != EX_OK || (rv = need_db(c, false)) != EX_OK)
        return rv;
    struct gw_regdb_server cur;
    if (gw_regdb_show(c->db, name, &cur, err, sizeof err) != 0)
        return fail("%s", err);
    bool was = strcmp(cur.status, "revoked") == 0;
    if (gw_regdb_revoke(c->db, name, c->actor, (int64_t)time(NULL), err, sizeof err) != 0)
        return fail("%s", err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "status", "revoked");
        cJSON_AddBoolToObject(o, "changed", !was);
        json_print(o);
        cJSON_Delete(o);
    } else if (was) {
        printf("%s was already revoked\n", name);
    } else {
        printf("revoked %s: its next handshake is refused, and its open connections are closed "
               "when the gateway picks the change up\n",
               name);
    }
    return EX_OK;
}

/* ------------------------------------------------------------ list, show */

/* The pin in use: the newest without an expiry in the past. */
static const struct gw_regdb_pin *current_pin(const struct gw_regdb_server *s, int64_t now)
{
    for (unsigned i = 0; i < s->n_pins; i++)
        if (s->pins[i].not_after == 0 || s->pins[i].not_after >= now)
            return &s->pins[i];
    return s->n_pins ? &s->pins[0] : NULL;
}

static cJSON *server_json(const struct gw_regdb_server *s, int64_t now)
{
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)s->id);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "kind", s->kind);
    cJSON_AddStringToObject(o, "status", s->status);
    json_add_time(o, "created_at", s->created_at);
    const struct gw_regdb_pin *cur = current_pin(s, now);
    if (cur != NULL) {
        hex_of(cur->spki, hex);
        cJSON_AddStringToObject(o, "spki_sha256", hex);
    } else {
        cJSON_AddNullToObject(o, "spki_sha256");
    }
    cJSON_AddNumberToObject(o, "pins_total", s->n_pins_total);
    cJSON *pins = cJSON_AddArrayToObject(o, "pins");
    for (unsigned i = 0; i < s->n_pins; i++) {
        const struct gw_regdb_pin *p = &s->pins[i];
        cJSON *po = cJSON_CreateObject();
        hex_of(p->spki, hex);
        cJSON_AddStringToObject(po, "spki_sha256", hex);
        json_add_time(po, "created_at", p->created_at);
        json_add_time(po, "not_after", p->not_after);
        cJSON_AddBoolToObject(po, "expired", p->not_after != 0 && p->not_after < now);
        cJSON_AddItemToArray(pins, po);
    }
    return o;
}

/* A text table: rows of cells, columns padded to the widest cell (in
 * characters: UTF-8 continuation bytes do not count).  The last column
 * is not padded. */
struct table {
    size_t ncol, nrow, cap;
    char **cell;
};

static size_t display_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static int table_row(struct table *t, const char *const *cells)
{
    if (t->nrow == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cell, cap * t->ncol * sizeof *nc);
        if (nc == NULL)
            return -1;
        t->cell = nc;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncol; i++) {
        t->cell[t->nrow * t->ncol + i] = strdup(cells[i] ? cells[i] : "-");
        if (t->cell[t->nrow * t->ncol + i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(t->cell[t->nrow * t->ncol + j]);
            return -1;
        }
    }
    t->nrow++;
    return 0;
}

static void table_print(const struct table *t, const char *indent)
{
    size_t w[16] = {0};
    for (size_t r = 0; r < t->nrow; r++)
        for (size_t i = 0; i < t->ncol && i < 16; i++) {
            size_t dw = display_width(t->cell[r * t->ncol + i]);
            if (dw > w[i])
                w[i] = dw;
        }
    for (size_t r = 0; r < t->nrow; r++) {
        fputs(indent, stdout);
        for (size_t i = 0; i < t->ncol; i++) {
            const char *s = t->cell[r * t->ncol + i];
            fputs(s, stdout);
            if (i + 1 < t->ncol)
                printf("%*s", (int)(w[i] - display_width(s) + 2), "");
        }
        putchar('\n');
    }
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrow * t->ncol; i++)
        free(t->cell[i]);
    free(t->cell);
}

struct list_ctx {
    bool json;
    int64_t now;
    cJSON *arr;
    struct table tab;
    int oom;
};

static int list_one(const struct gw_regdb_server *s, void *ud)
{
    struct list_ctx *l = ud;
    if (l->json) {
        cJSON_AddItemToArray(l->arr, server_json(s, l->now));
        return 0;
    }
    char created[32], pins[16], spki[2 * GW_SPKI_LEN + 8];
    const struct gw_regdb_pin *cur = current_pin(s, l->now);
    snprintf(pins, sizeof pins, "%u", s->n_pins_total);
    if (cur != NULL) {
        char hex[2 * GW_SPKI_LEN + 1];
        hex_of(cur->spki, hex);
        snprintf(spki, sizeof spki, "%.16s\xe2\x80\xa6", hex); /* U+2026 */
    } else {
        snprintf(spki, sizeof spki, "-");
    }
    const char *row[] = {s->name, s->kind, s->status, iso(s->created_at, created), pins, spki};
    if (table_row(&l->tab, row) != 0) {
        l->oom = 1;
        return 1;
    }
    return 0;
}

static int cmd_list(struct ctl *c)
{
    char err[1024];
    int rv = need_db(c, false);
    if (rv != EX_OK)
        return rv;
    struct list_ctx l = {.json = c->json, .now = (int64_t)time(NULL), .tab = {.ncol = 6}};
    static const char *const head[] = {"NAME", "KIND", "STATUS", "CREATED", "PINS", "SPKI"};
    if (l.json)
        l.arr = cJSON_CreateArray();
    else if (table_row(&l.tab, head) != 0)
        return fail("out of memory");
    if (gw_regdb_list(c->db, list_one, &l, err, sizeof err) != 0) {
        rv = fail("%s", err);
    } else if (l.oom) {
        rv = fail("out of memory");
    } else if (l.json) {
        json_print(l.arr);
    } else {
        table_print(&l.tab, "");
    }
    cJSON_Delete(l.arr);
    table_free(&l.tab);
    return rv;
}

/* Activity rows into a table or a JSON array. */
struct act_ctx {
    bool json;
    bool with_server;
    cJSON *arr;
    struct table tab;
    int oom;
    unsigned n;
};

static int act_one(const struct gw_activity_row *r, void *ud)
{
    struct act_ctx *a = ud;
    char t[32];
    a->n++;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)r->id);
        cJSON_AddStringToObject(o, "at", iso(r->at, t));
        cJSON_AddStringToObject(o, "actor", r->actor);
        cJSON_AddStringToObject(o, "action", r->action);
        if (r->server != NULL)
            cJSON_AddStringToObject(o, "server", r->server);
        else
            cJSON_AddNullToObject(o, "server");
        cJSON *d = r->details ? cJSON_Parse(r->details) : NULL;
        if (d != NULL)
            cJSON_AddItemToObject(o, "details", d);
        else if (r->details != NULL)
            cJSON_AddStringToObject(o, "details", r->details);
        else
            cJSON_AddNullToObject(o, "details");
        cJSON_AddItemToArray(a->arr, o);
        return 0;
    }
    const char *row[5];
    size_t i = 0;
    row[i++] = iso(r->at, t);
    row[i++] = r->actor;
    row[i++] = r->action;
    if (a->with_server)
        row[i++] = r->server;
    row[i++] = r->details ? r->details : "";
    if (table_row(&a->tab, row) != 0) {
        a->oom = 1;
        return 1;
    }
    return 0;
}

static int run_activity(struct ctl *c, const struct gw_activity_filter *f, bool with_server,
                        cJSON *into, const char *indent)
{
    char err[1024];
    struct act_ctx a = {.json = into != NULL, .with_server = with_server, .arr = into,
                        .tab = {.ncol = with_server ? 5 : 4}};
    static const char *const head5[] = {"TIME", "ACTOR", "ACTION", "SERVER", "DETAILS"};
    static const char *const head4[] = {"TIME", "ACTOR", "ACTION", "DETAILS"};
    if (!a.json && table_row(&a.tab, with_server ? head5 : head4) != 0)
        return fail("out of memory");
    int rv = EX_OK;
    if (gw_activity_query(c->db, f, act_one, &a, err, sizeof err) != 0)
        rv = fail("%s", err);
    else if (a.oom)
        rv = fail("out of memory");
    else if (!a.json && a.n > 0)
        table_print(&a.tab, indent);
    else if (!a.json)
        printf("%s(no activity)\n", indent);
    table_free(&a.tab);
    return rv;
}

static int cmd_show(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024], t1[32], t2[32], hex[2 * GW_SPKI_LEN + 1];
    int rv;
    if ((rv = check_name(c, name)) != EX_OK || (rv = need_db(c, false)) != EX_OK)
        return rv;
    struct gw_regdb_server s;
    if (gw_regdb_show(c->db, name, &s, err, sizeof err) != 0)
        return fail("%s", err);
    int64_t now = (int64_t)time(NULL);
    struct gw_activity_filter f = {.server = name, .limit = SHOW_ACTIVITY};

    /* the certificate made here, when there is one */
    char crt[PATH_BUF], leaf[300];
    struct crtinfo ci;
    bool have_crt = false;
    snprintf(leaf, sizeof leaf, "agents/%s.crt", name);
    if (join(crt, sizeof crt, c->pki, leaf) == 0 && exists(crt) && file_describe(crt, &ci) == 0)
        have_crt = true;

    if (c->json) {
        cJSON *o = server_json(&s, now);
        if (have_crt)
            cJSON_AddItemToObject(o, "certificate", crt_json(&ci, crt));
        cJSON *acts = cJSON_AddArrayToObject(o, "activity");
        rv = run_activity(c, &f, false, acts, "");
        if (rv == EX_OK)
            json_print(o);
        cJSON_Delete(o);
        return rv;
    }
    printf("%-12s %s\n", "name", s.name);
    printf("%-12s %lld\n", "id", (long long)s.id);
    printf("%-12s %s\n", "kind", s.kind);
    printf("%-12s %s\n", "status", s.status);
    printf("%-12s %s\n", "created", iso(s.created_at, t1));
    const struct gw_regdb_pin *cur = current_pin(&s, now);
    printf("%-12s %u%s\n", "pins", s.n_pins_total,
           s.n_pins < s.n_pins_total ? " (the newest shown)" : "");
    for (unsigned i = 0; i < s.n_pins; i++) {
        const struct gw_regdb_pin *p = &s.pins[i];
        hex_of(p->spki, hex);
        const char *state = p->not_after == 0        ? "no expiry"
                            : p->not_after < now     ? "expired"
                                                     : "expires";
        printf("  %s  created %s  not_after %s (%s)%s\n", hex, iso(p->created_at, t1),
               p->not_after ? iso(p->not_after, t2) : "-", state,
               p == cur ? "  current" : "");
    }
    if (have_crt) {
        printf("certificate\n");
        crt_text("file", &ci, crt);
    }
    printf("activity (the last %d)\n", SHOW_ACTIVITY);
    return run_activity(c, &f, false, NULL, "  ");
}

static int cmd_activity(struct ctl *c)
{
    char err[1024];
    struct gw_activity_filter f = {0};
    int64_t now = (int64_t)time(NULL);
    static const char *const tfmt =
        "Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a duration ago like 1h";

    if (c->val[O_SINCE] && parse_time(c->val[O_SINCE], false, now, &f.since) != 0)
        return usage_err(c->cmd, "bad --since '%s': %s", c->val[O_SINCE], tfmt);
    if (c->val[O_UNTIL] && parse_time(c->val[O_UNTIL], true, now, &f.until) != 0)
        return usage_err(c->cmd, "bad --until '%s': %s", c->val[O_UNTIL], tfmt);
    if (f.since && f.until && f.since > f.until)
        return usage_err(c->cmd, "--since is after --until");
    if (c->val[O_LIMIT]) {
        unsigned long long v;
        if (parse_uint(c->val[O_LIMIT], UINT_MAX, &v) != 0 || v == 0)
            return usage_err(c->cmd, "bad --limit '%s': a number from 1", c->val[O_LIMIT]);
        f.limit = (unsigned)v;
    }
    f.action = c->val[O_ACTION];
    f.server = c->val[O_SERVER];
    int rv = need_db(c, false);
    if (rv != EX_OK)
        return rv;
    if (f.server != NULL) {
        struct gw_regdb_server s;
        if (gw_regdb_show(c->db, f.server, &s, err, sizeof err) != 0)
            return fail("%s", err);
    }
    if (c->json) {
        cJSON *arr = cJSON_CreateArray();
        rv = run_activity(c, &f, true, arr, "");
        if (rv == EX_OK)
            json_print(arr);
        cJSON_Delete(arr);
        return rv;
    }
    return run_activity(c, &f, true, NULL, "");
}

/* ------------------------------------------------------------ data rights */

static int cmd_purge(struct ctl *c)
{
    char err[1024];
    int64_t secs, n = 0;
    if (c->val[O_OLDER_THAN] == NULL)
        return usage_err(c->cmd, "purge: --older-than is required");
    if (parse_duration(c->val[O_OLDER_THAN], &secs) != 0 || secs <= 0)
        return usage_err(c->cmd, "bad --older-than '%s': a duration like 30d, 12h, 15m, 30s",
                         c->val[O_OLDER_THAN]);
    int rv = need_db(c, false);
    if (rv != EX_OK)
        return rv;
    int64_t now = (int64_t)time(NULL);
    int64_t cutoff_ms = (now - secs) * 1000;
    rv = gw_regdb_purge(c->db, cutoff_ms, 0, c->actor, now, &n, err, sizeof err);
    if (rv != 0) {
        if (n > 0)
            fprintf(stderr, "panelgatectl: purge: %lld frames were deleted before the error\n",
                    (long long)n);
        return fail("%s", err);
    }
    if (c->json) {
        char t[32];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "frames", (double)n);
        cJSON_AddStringToObject(o, "received_before", iso(cutoff_ms / 1000, t));
        json_print(o);
        cJSON_Delete(o);
    } else {
        char t[32];
        printf("purged %lld frames received before %s\n", (long long)n, iso(cutoff_ms / 1000, t));
    }
    return EX_OK;
}

static int cmd_erase(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024];
    int64_t frames = 0, acts = 0;
    int rv;
    if ((rv = check_name(c, name)) != EX_OK)
        return rv;
    if (!(c->given & BIT(O_YES)))
        return usage_err(c->cmd,
                         "erase deletes every frame, pin and activity row of %s for good; "
                         "add --yes to confirm",
                         name);
    if ((rv = need_db(c, false)) != EX_OK)
        return rv;
    if (gw_regdb_erase(c->db, name, c->actor, (int64_t)time(NULL), &frames, &acts, err,
                       sizeof err) != 0)
        return fail("%s", err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "server", name);
        cJSON_AddNumberToObject(o, "frames", (double)frames);
        cJSON_AddNumberToObject(o, "activity_rows", (double)acts);
        json_print(o);
        cJSON_Delete(o);
    } else {
        printf("erased %s: %lld frames and %lld activity rows deleted, the server and its pins "
               "removed; its next handshake is refused\n",
               name, (long long)frames, (long long)acts);
    }
    return EX_OK;
}

/* -- the stored msgpack body as JSON: a generic, strict, bounded converter
 *    (the stored form is not a wire frame, so not the frame decoder) */

#define MP_JSON_MAX_DEPTH 64

static cJSON *json_int_raw(int neg, uint64_t u, int64_t i)
{
    char num[32];
    if (neg)
        snprintf(num, sizeof num, "%lld", (long long)i);
    else
        snprintf(num, sizeof num, "%llu", (unsigned long long)u);
    return cJSON_CreateRaw(num); /* exact, even above 2^53 */
}

static char *mp_text(const struct mp_tok *t)
{
    if (mp_check_text(t->v.s.p, t->v.s.len) != 0)
        return NULL;
    char *s = malloc((size_t)t->v.s.len + 1);
    if (s != NULL) {
        memcpy(s, t->v.s.p, t->v.s.len);
        s[t->v.s.len] = '\0';
    }
    return s;
}

static cJSON *mp_to_json(struct mp_reader *r, unsigned depth)
{
    struct mp_tok t;
    if (depth > MP_JSON_MAX_DEPTH || mp_next(r, &t) != 0)
        return NULL;
    switch (t.kind) {
    case MP_NIL: return cJSON_CreateNull();
    case MP_BOOL: return cJSON_CreateBool(t.v.b);
    case MP_UINT: return json_int_raw(0, t.v.u, 0);
    case MP_INT: return json_int_raw(1, 0, t.v.i);
    case MP_FLOAT:
        if (t.v.f != t.v.f || t.v.f - t.v.f != 0)
            return NULL; /* NaN, infinity: not JSON */
        return cJSON_CreateNumber(t.v.f);
    case MP_STR: {
        char *s = mp_text(&t);
        cJSON *j = s ? cJSON_CreateString(s) : NULL;
        free(s);
        return j;
    }
    case MP_BIN: {
        /* hex text; a stored body has no bin fields (viewer IPs are gone) */
        char *h = malloc((size_t)t.v.s.len * 2 + 1);
        if (h == NULL)
            return NULL;
        for (uint32_t i = 0; i < t.v.s.len; i++)
            snprintf(h + 2 * i, 3, "%02x", t.v.s.p[i]);
        h[2 * (size_t)t.v.s.len] = '\0';
        cJSON *j = cJSON_CreateString(h);
        free(h);
        return j;
    }
    case MP_ARRAY: {
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; a != NULL && i < t.v.n; i++) {
            cJSON *e = mp_to_json(r, depth + 1);
            if (e == NULL) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, e);
        }
        return a;
    }
    case MP_MAP: {
        cJSON *o = cJSON_CreateObject();
        for (uint32_t i = 0; o != NULL && i < t.v.n; i++) {
            struct mp_tok k;
            char *key = NULL, num[32];
            if (mp_next(r, &k) != 0)
                goto bad;
            if (k.kind == MP_STR) {
                if ((key = mp_text(&k)) == NULL)
                    goto bad;
            } else if (k.kind == MP_UINT || k.kind == MP_INT) {
                if (k.kind == MP_UINT)
                    snprintf(num, sizeof num, "%llu", (unsigned long long)k.v.u);
                else
                    snprintf(num, sizeof num, "%lld", (long long)k.v.i);
                key = strdup(num);
            } else {
                goto bad; /* keys are strings or integers */
            }
            cJSON *v = key ? mp_to_json(r, depth + 1) : NULL;
            if (v == NULL) {
                free(key);
                goto bad;
            }
            cJSON_AddItemToObject(o, key, v);
            free(key);
            continue;
        bad:
            cJSON_Delete(o);
            return NULL;
        }
        return o;
    }
    }
    return NULL;
}

/* The whole body as one JSON value; NULL when it is not exactly one valid
 * msgpack value. */
static cJSON *body_json(const uint8_t *p, size_t n)
{
    struct mp_reader r;
    mp_reader_init(&r, p, n);
    cJSON *j = mp_to_json(&r, 0);
    if (j != NULL && r.p != r.end) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

static int body_valid(const uint8_t *p, size_t n)
{
    struct mp_reader r;
    mp_reader_init(&r, p, n);
    return n > 0 && mp_skip(&r, 0, MP_JSON_MAX_DEPTH) == 0 && r.p == r.end;
}

struct exp {
    FILE *out;
    bool msgpack;
    int err;
    unsigned n_pins, n_frames, n_acts;
    /* json: the separators; msgpack: one buffer per section */
    msgpack_sbuffer head, pins, frames, acts;
    msgpack_packer ph, pp, pf, pa;
};

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    if (v == NULL)
        msgpack_pack_nil(pk);
    else
        pk_str(pk, v);
}

static void pk_kint(msgpack_packer *pk, const char *k, int64_t v)
{
    pk_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pk_kuint(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pk_ktime(msgpack_packer *pk, const char *k, int64_t t)
{
    char b[32];
    pk_kstr(pk, k, t ? iso(t, b) : NULL);
}

static void json_item(struct exp *e, cJSON *j, unsigned *count)
{
    if (j == NULL) {
        e->err = 1;
        return;
    }
    char *s = cJSON_PrintUnformatted(j);
    if (s == NULL) {
        e->err = 1;
        return;
    }
    fprintf(e->out, "%s%s", *count ? ",\n" : "\n", s);
    (*count)++;
    cJSON_free(s);
}

static int exp_server(const struct gw_regdb_server *s, void *ud)
{
    struct exp *e = ud;
    if (e->msgpack) {
        msgpack_packer *pk = &e->ph;
        msgpack_pack_map(pk, 5);
        pk_kint(pk, "id", s->id);
        pk_kstr(pk, "name", s->name);
        pk_kstr(pk, "kind", s->kind);
        pk_kstr(pk, "status", s->status);
        pk_ktime(pk, "created_at", s->created_at);
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)s->id);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "kind", s->kind);
    cJSON_AddStringToObject(o, "status", s->status);
    json_add_time(o, "created_at", s->created_at);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (txt == NULL)
        return e->err = 1;
    fprintf(e->out, "{\"server\":%s,\n\"pins\":[", txt);
    cJSON_free(txt);
    return 0;
}

static int exp_pin(const struct gw_regdb_pin *p, void *ud)
{
    struct exp *e = ud;
    char hex[2 * GW_SPKI_LEN + 1];
    hex_of(p->spki, hex);
    if (e->msgpack) {
        msgpack_packer *pk = &e->pp;
        msgpack_pack_map(pk, 3);
        pk_kstr(pk, "spki_sha256", hex);
        pk_ktime(pk, "created_at", p->created_at);
        pk_ktime(pk, "not_after", p->not_after);
        e->n_pins++;
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    json_add_time(o, "created_at", p->created_at);
    json_add_time(o, "not_after", p->not_after);
    json_item(e, o, &e->n_pins);
    cJSON_Delete(o);
    return e->err;
}

static int exp_frame(const struct gw_regdb_frame *f, void *ud)
{
    struct exp *e = ud;
    if (e->n_frames == 0 && !e->msgpack)
        fputs("],\n\"frames\":[", e->out);
    if (e->msgpack) {
        if (!body_valid(f->body, f->body_len)) {
            fprintf(stderr, "panelgatectl: frame seq %llu: the stored body is not valid msgpack\n",
                    (unsigned long long)f->seq);
            return e->err = 1;
        }
        msgpack_packer *pk = &e->pf;
        msgpack_pack_map(pk, 5);
        pk_kuint(pk, "seq", f->seq);
        pk_kuint(pk, "ts_ms", f->ts_ms);
        pk_kint(pk, "received_ms", f->received_ms);
        pk_kstr(pk, "reported_name", f->reported_name);
        pk_str(pk, "frame");
        msgpack_sbuffer_write(&e->frames, (const char *)f->body, f->body_len); /* as stored */
        e->n_frames++;
        return 0;
    }
    cJSON *body = body_json(f->body, f->body_len);
    if (body == NULL) {
        fprintf(stderr, "panelgatectl: frame seq %llu: the stored body is not valid msgpack\n",
                (unsigned long long)f->seq);
        return e->err = 1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "seq", json_int_raw(0, f->seq, 0));
    cJSON_AddItemToObject(o, "ts_ms", json_int_raw(0, f->ts_ms, 0));
    cJSON_AddItemToObject(o, "received_ms",
                          json_int_raw(f->received_ms < 0, (uint64_t)f->received_ms,
                                       f->received_ms));
    if (f->reported_name != NULL)
        cJSON_AddStringToObject(o, "reported_name", f->reported_name);
    else
        cJSON_AddNullToObject(o, "reported_name");
    cJSON_AddItemToObject(o, "frame", body);
    json_item(e, o, &e->n_frames);
    cJSON_Delete(o);
    return e->err;
}

static int exp_activity(const struct gw_activity_row *r, void *ud)
{
    struct exp *e = ud;
    char t[32];
    if (!e->msgpack && e->n_acts == 0) {
        if (e->n_frames == 0)
            fputs("],\n\"frames\":[", e->out);
        fputs("],\n\"activity\":[", e->out);
    }
    if (e->msgpack) {
        msgpack_packer *pk = &e->pa;
        msgpack_pack_map(pk, 5);
        pk_kint(pk, "id", r->id);
        pk_kstr(pk, "at", iso(r->at, t));
        pk_kstr(pk, "actor", r->actor);
        pk_kstr(pk, "action", r->action);
        pk_kstr(pk, "details", r->details); /* JSON text */
        e->n_acts++;
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "at", iso(r->at, t));
    cJSON_AddStringToObject(o, "actor", r->actor);
    cJSON_AddStringToObject(o, "action", r->action);
    cJSON *d = r->details ? cJSON_Parse(r->details) : NULL;
    if (d != NULL)
        cJSON_AddItemToObject(o, "details", d);
    else if (r->details != NULL)
        cJSON_AddStringToObject(o, "details", r->details);
    else
        cJSON_AddNullToObject(o, "details");
    json_item(e, o, &e->n_acts);
    cJSON_Delete(o);
    return e->err;
}

static int cmd_export(struct ctl *c)
{
    const char *name = c->pos[0], *fmt = c->val[O_FORMAT], *outp = c->val[O_OUT];
    char err[1024];
    int rv, fd = -1;
    struct exp e;

    if ((rv = check_name(c, name)) != EX_OK)
        return rv;
    if (fmt == NULL)
        fmt = "json";
    if (strcmp(fmt, "json") != 0 && strcmp(fmt, "msgpack") != 0)
        return usage_err(c->cmd, "bad --format '%s': json or msgpack", fmt);
    if (strcmp(fmt, "msgpack") == 0 && outp == NULL && isatty(STDOUT_FILENO))
        return usage_err(c->cmd, "--format msgpack is binary: give --out FILE or redirect");
    if ((rv = need_db(c, false)) != EX_OK)
        return rv;
    memset(&e, 0, sizeof e);
    e.msgpack = strcmp(fmt, "msgpack") == 0;
    e.out = stdout;
    if (outp != NULL && strcmp(outp, "-") != 0) {
        /* the export is the server's data: owner-only */
        fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (e.out = fdopen(fd, "w")) == NULL) {
            rv = fail("%s: %s", outp, strerror(errno));
            if (fd >= 0)
                close(fd);
            return rv;
        }
    }
    msgpack_sbuffer *bufs[] = {&e.head, &e.pins, &e.frames, &e.acts};
    msgpack_packer *pks[] = {&e.ph, &e.pp, &e.pf, &e.pa};
    for (int i = 0; i < 4; i++) {
        msgpack_sbuffer_init(bufs[i]);
        msgpack_packer_init(pks[i], bufs[i], msgpack_sbuffer_write);
    }
    static const struct gw_regdb_export_ops ops = {
        .server = exp_server, .pin = exp_pin, .frame = exp_frame, .activity = exp_activity};
    rv = EX_OK;
    if (gw_regdb_export(c->db, name, &ops, &e, fmt, c->actor, (int64_t)time(NULL), err,
                        sizeof err) != 0) {
        rv = e.err ? fail("export failed") : fail("%s", err);
    } else if (e.msgpack) {
        msgpack_sbuffer top;
        msgpack_packer pk;
        msgpack_sbuffer_init(&top);
        msgpack_packer_init(&pk, &top, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        pk_str(&pk, "server");
        fwrite(top.data, 1, top.size, e.out);
        fwrite(e.head.data, 1, e.head.size, e.out);
        const char *keys[] = {"pins", "frames", "activity"};
        unsigned counts[] = {e.n_pins, e.n_frames, e.n_acts};
        for (int i = 0; i < 3; i++) {
            msgpack_sbuffer_clear(&top);
            pk_str(&pk, keys[i]);
            msgpack_pack_array(&pk, counts[i]);
            fwrite(top.data, 1, top.size, e.out);
            if (bufs[i + 1]->size)
                fwrite(bufs[i + 1]->data, 1, bufs[i + 1]->size, e.out);
        }
        msgpack_sbuffer_destroy(&top);
    } else {
        if (e.n_acts == 0) {
            if (e.n_frames == 0)
                fputs("],\n\"frames\":[", e.out);
            fputs("],\n\"activity\":[", e.out);
        }
        fputs("]}\n", e.out);
    }
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_destroy(bufs[i]);
    if (e.out != stdout) {
        if (fclose(e.out) != 0 && rv == EX_OK)
            rv = fail("%s: %s", outp, strerror(errno));
        if (rv != EX_OK)
            unlink(outp);
        else if (!c->json)
            fprintf(stderr, "exported %s: %u frames, %u pins, %u activity rows to %s\n", name,
                    e.n_frames, e.n_pins, e.n_acts, outp);
    }
    return rv;
}

/* ------------------------------------------------------------ the table */

static const struct cmd commands[] = {
    {"ca", "init", cmd_ca_init, BIT(O_CN) | BIT(O_DAYS) | BIT(O_RSA), 0, 0,
     "ca init [--cn CN] [--days N] [--rsa]",
     "Creates the panel CA in the PKI directory: ca.key (0600), ca.crt and serial (the\n"
     "next serial number). P-256 ECDSA, or RSA-3072 with --rsa; CN 'panelgate panel CA'\n"
     "and 3650 days unless given. Refuses to replace an existing CA."},
    {"cert", "gateway", cmd_cert_gateway, BIT(O_DNS) | BIT(O_IP) | BIT(O_DAYS) | BIT(O_CN), 0, 0,
     "cert gateway --dns NAME... --ip ADDR... [--cn CN] [--days N]",
     "Issues the gateway's server certificate: PKI/gateway.key (0600) and gateway.crt,\n"
     "serverAuth, with each --dns and --ip (repeat them) as subject alternative names;\n"
     "825 days unless given. Refuses to overwrite an existing gateway.key. With --db or\n"
     "--config, records cert_issued in the activity log."},
    {"cert", "agent", cmd_cert_agent, BIT(O_CSR) | BIT(O_DAYS), 1, 1,
     "cert agent NAME [--csr FILE] [--days N]",
     "Issues an agent (clientAuth) certificate PKI/agents/NAME.crt, with a new key\n"
     "PKI/agents/NAME.key (0600), or for the key of a CSR made on the agent host. Does\n"
     "not register anything (see register --cert)."},
    {"register", NULL, cmd_register, BIT(O_KIND) | BIT(O_CSR) | BIT(O_CERT) | BIT(O_DAYS), 1, 1,
     "register NAME --kind nimble|wowza [--csr FILE | --cert FILE] [--days N]",
     "Registers server NAME and pins its public key (SHA-256 of the SPKI). By default\n"
     "makes PKI/agents/NAME.key (0600) and NAME.crt; --csr signs a CSR made on the agent\n"
     "host (the private key never leaves it) and writes NAME.crt only; --cert pins the\n"
     "key of an existing certificate without issuing one."},
    {"rotate", NULL, cmd_rotate, BIT(O_CSR) | BIT(O_OVERLAP) | BIT(O_DAYS), 1, 1,
     "rotate NAME [--csr FILE] [--overlap DURATION] [--days N]",
     "Issues NAME a new certificate for a new key (generated, or from --csr) and pins it.\n"
     "The previous pins stay valid for the overlap (default 7d; 30s, 15m, 12h, 7d), then\n"
     "are refused. The previous files are kept as PKI/agents/NAME.<serial>.crt/.key."},
    {"revoke", NULL, cmd_revoke, 0, 1, 1, "revoke NAME",
     "Revokes server NAME: its next handshake is refused (access_denied) and its open\n"
     "connections are closed when the gateway picks the change up."},
    {"list", NULL, cmd_list, 0, 0, 0, "list",
     "Lists the registered servers: name, kind, status, creation time, number of pins and\n"
     "the current pin (--json: every field, full fingerprints)."},
    {"show", NULL, cmd_show, 0, 1, 1, "show NAME",
     "Shows one server: every field, its pins with their creation and expiry times, its\n"
     "certificate in the PKI directory when there is one, and its last 10 activity rows."},
    {"activity", NULL, cmd_activity,
     BIT(O_SERVER) | BIT(O_ACTION) | BIT(O_SINCE) | BIT(O_UNTIL) | BIT(O_LIMIT), 0, 0,
     "activity [--server NAME] [--action A] [--since T] [--until T] [--limit N]",
     "Prints the activity log, oldest first: time, actor, action, server, details (JSON).\n"
     "T is Unix seconds, YYYY-MM-DD (a whole day for --until), YYYY-MM-DDTHH:MM:SSZ, or a\n"
     "duration ago (30s, 15m, 12h, 7d). --limit N keeps the newest N rows. Actions:\n"
     "register, rotate, revoke, cert_issued, handshake_refused, reload, disconnected,\n"
     "purge, export, erase (and the gateway's rate-limit rows)."},
    {"purge", NULL, cmd_purge, BIT(O_OLDER_THAN), 0, 0, "purge --older-than DURATION",
     "Deletes every frame received longer ago than DURATION (30s, 15m, 12h, 30d), in\n"
     "chunks of 5000 rows per transaction; records purge with the count. The gateway\n"
     "does the same by itself with [storage] retention_days."},
    {"export", NULL, cmd_export, BIT(O_FORMAT) | BIT(O_OUT), 1, 1,
     "export NAME [--format json|msgpack] [--out FILE]",
     "Writes everything stored for server NAME as one document: {\"server\", \"pins\",\n"
     "\"frames\" (seq, ts_ms, received_ms, reported_name, frame), \"activity\"}. json (the\n"
     "default) decodes each stored frame; msgpack embeds it as stored. --out FILE is\n"
     "created 0600. Records export."},
    {"erase", NULL, cmd_erase, BIT(O_YES), 1, 1, "erase NAME --yes",
     "Deletes server NAME for good: its frames, pins, activity rows and registration,\n"
     "in one transaction; its next handshake is refused. Leaves one erase row (the\n"
     "name and counts). Without --yes it refuses (exit 64). Export first if needed."},
};

static const struct cmd *cmd_table(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

/* ------------------------------------------------------------ main */

static int set_actor(struct ctl *c)
{
    const char *a = c->val[O_ACTOR];
    char buf[64];
    if (a == NULL) {
        const char *su = getenv("SUDO_USER");
        if (su != NULL && *su != '\0') {
            a = su;
        } else {
            struct passwd *pw = getpwuid(geteuid());
            if (pw != NULL && pw->pw_name != NULL && *pw->pw_name != '\0') {
                a = pw->pw_name;
            } else {
                snprintf(buf, sizeof buf, "uid:%u", (unsigned)geteuid());
                a = buf;
            }
        }
    }
    size_t n = strlen(a);
    if (n == 0 || n >= sizeof c->actor)
        return usage_err(c->cmd, "bad --actor: 1 to %zu characters", sizeof c->actor - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
            return usage_err(c->cmd, "bad --actor: control characters");
    memcpy(c->actor, a, n + 1);
    return EX_OK;
}

static int set_db(struct ctl *c)
{
    char err[1024];
    if (c->val[O_DB] != NULL) {
        if (snprintf(c->db_path, sizeof c->db_path, "%s", c->val[O_DB]) >= (int)sizeof c->db_path)
            return usage_err(c->cmd, "--db: path too long");
        return EX_OK;
    }
    if (c->val[O_CONFIG] == NULL)
        return EX_OK;
    struct gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rv = EX_OK;
    if (gw_config_defaults(&cfg) != 0) {
        rv = fail("out of memory");
    } else if (gw_config_load(&cfg, c->val[O_CONFIG], err, sizeof err) != 0) {
        rv = fail("%s", err);
    } else {
        const char *p = cfg.registry_path ? cfg.registry_path : cfg.sqlite_path;
        if (p == NULL || *p == '\0')
            rv = fail("%s: no [storage] sqlite_path", c->val[O_CONFIG]);
        else
            snprintf(c->db_path, sizeof c->db_path, "%s", p);
    }
    gw_config_cleanup(&cfg);
    return rv;
}

static int find_opt(const char *name, size_t len)
{
    for (int i = 0; i < O_COUNT; i++)
        if (strlen(optdefs[i].name) == len && strncmp(optdefs[i].name, name, len) == 0)
            return i;
    return -1;
}

static void version(void)
{
    printf("panelgatectl %s (mbedTLS %s, SQLite %s, cJSON %s)\n", PANELGATE_VERSION,
           MBEDTLS_VERSION_STRING, sqlite3_libversion(), cJSON_Version());
}

static int run(int argc, char **argv)
{
    struct ctl c;
    const char *words[16];
    unsigned n_words = 0;
    bool only_pos = false;
    int rv;

    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (n_words == sizeof words / sizeof words[0])
                return usage_err(NULL, "too many arguments");
            words[n_words++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0)
            a = "--help";
        else if (strcmp(a, "-V") == 0)
            a = "--version";
        if (a[1] != '-')
            return usage_err(NULL, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        int o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        if (o < 0)
            return usage_err(NULL, "unknown option '%s'", a);
        const char *v = NULL;
        if (optdefs[o].arg) {
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return usage_err(NULL, "option --%s needs a value", optdefs[o].name);
        } else if (eq != NULL) {
            return usage_err(NULL, "option --%s takes no value", optdefs[o].name);
        }
        if (optdefs[o].multi) {
            /* repeated: --dns a --dns b */
            const char **arr = o == O_DNS ? c.dns : c.ip;
            unsigned *n = o == O_DNS ? &c.n_dns : &c.n_ip;
            if (*n == PKI_MAX_SANS)
                return usage_err(NULL, "at most %d --%s values", PKI_MAX_SANS, optdefs[o].name);
            arr[(*n)++] = v;
        } else if (c.given & BIT(o)) {
            return usage_err(NULL, "option --%s given twice", optdefs[o].name);
        }
        c.given |= BIT(o);
        c.val[o] = v;
    }

    if (c.given & BIT(O_VERSION)) {
        version();
        return EX_OK;
    }
    if (n_words == 0) {
        if (c.given & BIT(O_HELP)) {
            print_usage(stdout);
            return EX_OK;
        }
        print_usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(words[0], "help") == 0) {
        if (n_words == 1) {
            print_usage(stdout);
            return EX_OK;
        }
        words[0] = words[1];
        words[1] = n_words > 2 ? words[2] : NULL;
        n_words = n_words > 2 ? 2 : 1;
        c.given |= BIT(O_HELP);
    }
    bool family = false;
    size_t n_cmds;
    const struct cmd *cmds = cmd_table(&n_cmds);
    for (size_t i = 0; i < n_cmds && c.cmd == NULL; i++) {
        if (strcmp(cmds[i].w1, words[0]) != 0)
            continue;
        family = true;
        if (cmds[i].w2 == NULL || (n_words > 1 && strcmp(cmds[i].w2, words[1]) == 0))
            c.cmd = &cmds[i];
    }
    if (c.cmd == NULL) {
        if (!family)
            return usage_err(NULL, "unknown command '%s'", words[0]);
        fprintf(stderr, "panelgatectl: %s: %s%s\n", words[0],
                n_words > 1 ? "unknown subcommand " : "missing subcommand",
                n_words > 1 ? words[1] : "");
        for (size_t i = 0; i < n_cmds; i++)
            if (strcmp(cmds[i].w1, words[0]) == 0)
                fprintf(stderr, "usage: panelgatectl [global options] %s\n", cmds[i].synopsis);
        return EX_USAGE;
    }
    if (c.given & BIT(O_HELP)) {
        print_cmd_usage(stdout, c.cmd);
        return EX_OK;
    }
    unsigned skip = c.cmd->w2 ? 2 : 1;
    for (unsigned i = skip; i < n_words; i++)
        c.pos[c.n_pos++] = words[i];
    if (c.n_pos < c.cmd->min_pos)
        return usage_err(c.cmd, "%s: missing NAME", c.cmd->w1);
    if (c.n_pos > c.cmd->max_pos)
        return usage_err(c.cmd, "unexpected argument '%s'", c.pos[c.cmd->max_pos]);
    for (int o = O_CN; o < O_COUNT; o++)
        if ((c.given & BIT(o)) && !(c.cmd->opts & BIT(o)))
            return usage_err(c.cmd, "option --%s does not apply to '%s%s%s'", optdefs[o].name,
                             c.cmd->w1, c.cmd->w2 ? " " : "", c.cmd->w2 ? c.cmd->w2 : "");
    if (c.val[O_DAYS] != NULL) {
        unsigned long long d;
        if (parse_uint(c.val[O_DAYS], 36500, &d) != 0 || d == 0)
            return usage_err(c.cmd, "bad --days '%s': 1 to 36500", c.val[O_DAYS]);
        c.days = (unsigned)d;
    }
    c.json = (c.given & BIT(O_JSON)) != 0;
    c.pki = c.val[O_PKI];
    if (c.pki == NULL)
        c.pki = getenv("PANELGATE_PKI");
    if (c.pki == NULL || *c.pki == '\0')
        c.pki = "pki";
    if ((rv = set_actor(&c)) != EX_OK || (rv = set_db(&c)) != EX_OK)
        return rv;

    rv = c.cmd->run(&c);

    if (c.db != NULL)
        sqlite3_close(c.db);
    if (c.rng_ok)
        pki_rng_free(&c.rng);
    return rv;
}

int main(int argc, char **argv)
{
    int rv = run(argc, argv);
    if (fflush(stdout) != 0 && rv == EX_OK)
        rv = fail("cannot write the output: %s", strerror(errno));
    return rv;
}
