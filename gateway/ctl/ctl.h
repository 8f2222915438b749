/*
 * ctl.h - what panelgatectl's commands share: the parsed command line and
 * its context (struct ctl), the command table entry, exit statuses, and
 * the helpers of ctl_common.c (output, argument parsing, opening the
 * database and the PKI) and ctl_cert.c (certificates: describe, issue,
 * write and take back files).
 *
 * The commands live by group: ctl_pki_cmd.c (ca init, cert gateway, cert
 * agent), ctl_registry_cmd.c (register, rotate, revoke, list, show),
 * ctl_activity_cmd.c (activity), ctl_rights_cmd.c (purge, export, erase),
 * ctl_tail_cmd.c (tail: the JetStream engine's stream, as JSON lines);
 * panelgatectl.c holds main, the global options, the command table and
 * dispatch.
 *
 * A command returns an exit status: EX_OK, EX_FAIL (the reason already on
 * stderr, through ctl_fail) or EX_USAGE (through ctl_usage_err).
 */
#ifndef GW_CTL_H
#define GW_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "pki.h"
#include "regdb.h"
#include "registry.h"

#define EX_OK 0
#define EX_FAIL 1
#define EX_USAGE 64

#define LEAF_DAYS 825u
#define PEM_BUF 16384
#define PATH_BUF 4096

/* ------------------------------------------------------------ options */

enum opt {
    O_DB, O_CONFIG, O_PKI, O_ACTOR, O_JSON, O_HELP, O_VERSION, /* global */
    O_CN, O_DAYS, O_RSA, O_DNS, O_IP, O_KIND, O_CSR, O_CERT, O_OVERLAP,
    O_SERVER, O_ACTION, O_SINCE, O_UNTIL, O_LIMIT,
    O_OLDER_THAN, O_FORMAT, O_OUT, O_FORCE, O_YES,
    O_FROM_START, O_LAST, O_NUM, /* tail: --from-start, --last N, --count N */
    O_COUNT
};
#define GLOBAL_OPTS ((1u << O_CN) - 1)
#define BIT(o) (1u << (o))

struct ctl_kv;

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

    /* the registry and activity log the commands work on (ctl_reg_ops):
     * the SQLite file (ctl_sqlite_reg) or, with a --config whose
     * storage_engine is jetstream, the registry bucket and activity stream
     * (ctl_kv.c); |kv| is the latter's state */
    const struct ctl_reg_ops *reg;
    struct ctl_kv *kv;
};

/* The seam between the commands and a registry backend.  Each function
 * returns 0 or a GW_E* code with the reason in err (as regdb.h), except
 * open, begin and commit, which return exit statuses (the reason already
 * printed). */
struct ctl_reg_ops {
    const char *name; /* "sqlite", "jetstream" */
    /* true when begin..commit makes the changes between them one (SQLite);
     * on the bucket each change stands alone as soon as it is made */
    bool atomic;
    /* opens the registry: |write| for the commands that change it
     * (creating what is missing when |create|), else read-only */
    int (*open)(struct ctl *c, bool write, bool create);
    bool (*is_open)(const struct ctl *c);
    int (*begin)(struct ctl *c);
    int (*commit)(struct ctl *c);
    void (*abort)(struct ctl *c);
    int (*reg)(struct ctl *c, const char *name, const char *kind,
               const uint8_t spki[GW_SPKI_LEN], const char *details, int64_t now, int64_t *id,
               char *err, size_t errlen);
    int (*rotate)(struct ctl *c, const char *name, const uint8_t spki[GW_SPKI_LEN],
                  int64_t overlap_s, int64_t now, char *err, size_t errlen);
    int (*revoke)(struct ctl *c, const char *name, int64_t now, char *err, size_t errlen);
    int (*list)(struct ctl *c, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen);
    int (*show)(struct ctl *c, const char *name, struct gw_regdb_server *out, char *err,
                size_t errlen);
    /* |server| the server's name (NULL: none), for the stream's rows */
    int (*activity_add)(struct ctl *c, int64_t at, const char *action, int64_t server_id,
                        const char *server, const char *details, char *err, size_t errlen);
    int (*activity_query)(struct ctl *c, const struct gw_activity_filter *f, gw_activity_fn fn,
                          void *ud, char *err, size_t errlen);
    int (*erase)(struct ctl *c, const char *name, int64_t now, int64_t *n_frames,
                 int64_t *n_activity, char *err, size_t errlen);
    int (*purge)(struct ctl *c, int64_t cutoff_ms, int64_t now, int64_t *n, char *err,
                 size_t errlen);
    /* As gw_regdb_export without its "export" row (record_export writes
     * it): server, pins, frames (on the bucket: from the store's database
     * --db, when given), activity. */
    int (*export)(struct ctl *c, const char *name, const struct gw_regdb_export_ops *ops,
                  void *ud, char *err, size_t errlen);
};

/* The SQLite backend (ctl_common.c) over c->db_path. */
extern const struct ctl_reg_ops ctl_sqlite_reg;

struct cmd {
    const char *w1, *w2;
    int (*run)(struct ctl *c);
    unsigned opts; /* BIT()s allowed besides the global ones */
    unsigned min_pos, max_pos;
    const char *synopsis;
    const char *help;
};

/* The commands (panelgatectl.c's table). */
int cmd_ca_init(struct ctl *c);
int cmd_cert_gateway(struct ctl *c);
int cmd_cert_agent(struct ctl *c);
int cmd_register(struct ctl *c);
int cmd_rotate(struct ctl *c);
int cmd_revoke(struct ctl *c);
int cmd_list(struct ctl *c);
int cmd_show(struct ctl *c);
int cmd_activity(struct ctl *c);
int cmd_purge(struct ctl *c);
int cmd_export(struct ctl *c);
int cmd_erase(struct ctl *c);
int cmd_tail(struct ctl *c);
int cmd_import_registry(struct ctl *c); /* ctl_kv.c */

/* ------------------------------------------------------------ ctl_common.c */

/* "panelgatectl: " and the message on stderr; returns EX_FAIL. */
__attribute__((format(printf, 1, 2)))
int ctl_fail(const char *fmt, ...);

/* "panelgatectl: warning: " and the message on stderr. */
__attribute__((format(printf, 1, 2)))
void ctl_warn(const char *fmt, ...);

/* The message and |cmd|'s synopsis (or a pointer to --help when NULL) on
 * stderr; returns EX_USAGE. */
__attribute__((format(printf, 2, 3)))
int ctl_usage_err(const struct cmd *cmd, const char *fmt, ...);

/* UTC ISO-8601, "2026-11-29T02:20:54Z". */
const char *ctl_iso(int64_t t, char buf[32]);
void ctl_json_print(cJSON *j);
/* An ISO-8601 string, or null when |t| is 0. */
void ctl_json_add_time(cJSON *o, const char *k, int64_t t);
void ctl_hex_of(const uint8_t spki[GW_SPKI_LEN], char out[2 * GW_SPKI_LEN + 1]);

/* Registry records as JSON: a server's own fields (id, name, kind,
 * status, created_at); a pin (spki_sha256, created_at, not_after); an
 * activity row (id, at, actor, action, [server,] details as parsed JSON
 * when it parses). */
cJSON *ctl_server_json(const struct gw_regdb_server *s);
cJSON *ctl_pin_json(const struct gw_regdb_pin *p);
cJSON *ctl_activity_json(const struct gw_activity_row *r, bool with_server);

/* A text table: rows of cells, columns padded to the widest cell (in
 * characters: UTF-8 continuation bytes do not count).  The last column
 * is not padded.  A NULL cell prints as "-". */
struct table {
    size_t ncol, nrow, cap;
    char **cell;
};
int ctl_table_row(struct table *t, const char *const *cells);
void ctl_table_print(const struct table *t, const char *indent);
void ctl_table_free(struct table *t);

/* The parsers and ctl_table_row return 0, or GW_EINVAL (not a valid
 * value) / GW_ENOMEM (err.h); the commands above return exit statuses. */

/* A decimal number no larger than |max|. */
int ctl_parse_uint(const char *s, unsigned long long max, unsigned long long *out);
/* "30s", "15m", "12h", "7d" (or "0") -> seconds, at most 3650 days. */
int ctl_parse_duration(const char *s, int64_t *out);
/* Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a duration ago, after
 * 1970-01-01T00:00:00Z (0 means "no bound" in a filter).  A bare date as
 * an upper bound means the end of that day. */
int ctl_parse_time(const char *s, bool upper, int64_t now, int64_t *out);

int ctl_join(char *out, size_t outlen, const char *a, const char *b);
bool ctl_exists(const char *path);

/* Opens c->db_path (a usage error when none was given): for the commands
 * that write (the registry schema is made or checked under the write
 * lock); ctl_need_db_ro read-only, for those that only read (list, show,
 * activity, the reading part of export): they never wait for the
 * gateway's writer, work on a read-only file and upgrade nothing. */
int ctl_need_db(struct ctl *c, bool create);
int ctl_need_db_ro(struct ctl *c);
/* The same through the backend (c->reg): the registry, for writing
 * (ctl_need_reg) or reading (ctl_need_reg_ro). */
int ctl_need_reg(struct ctl *c, bool create);
int ctl_need_reg_ro(struct ctl *c);
/* A registry was named (--db, or --config: a file, or the bucket). */
bool ctl_have_reg(const struct ctl *c);
int ctl_need_rng(struct ctl *c);
/* PKI/ca.key and PKI/ca.crt. */
int ctl_ca_paths(const struct ctl *c, char kp[PATH_BUF], char cp[PATH_BUF]);
/* Loads the CA; "no CA in DIR" when it is not there. */
int ctl_need_ca(struct ctl *c, struct pki_ca *ca);
/* A usage error unless |name| is a valid server name. */
int ctl_check_name(struct ctl *c, const char *name);

/* Runs |sql| (BEGIN IMMEDIATE, COMMIT) on c->db; ctl_tx_abort rolls back
 * an open transaction. */
int ctl_tx(struct ctl *c, const char *sql);
void ctl_tx_abort(struct ctl *c);

/* ------------------------------------------------------------ ctl_activity_cmd.c */

/* The activity rows |f| selects, oldest first: appended to the JSON array
 * |into|, or printed as a table (with a SERVER column when |with_server|)
 * with |indent| before each line when into is NULL. */
int ctl_run_activity(struct ctl *c, const struct gw_activity_filter *f, bool with_server,
                     cJSON *into, const char *indent);

/* ------------------------------------------------------------ ctl_rights_cmd.c */

/* A stored body (the msgpack of frames.body, or of a stream message) as
 * the JSON export writes it: maps, arrays, strings, exact integers (raw,
 * even above 2^53), bin as hex; NULL when it is not exactly one valid
 * msgpack value (or memory ran out).  Also what tail prints. */
cJSON *ctl_body_json(const uint8_t *p, size_t n);
/* An exact integer as raw JSON: -|i| when |neg|, else |u|. */
cJSON *ctl_json_int(int neg, uint64_t u, int64_t i);

/* ------------------------------------------------------------ ctl_cert.c */

/* Facts about a certificate, for output and activity details. */
struct crtinfo {
    char serial[48];  /* lower-case hex */
    char subject[256];
    int64_t not_before, not_after;
    uint8_t spki[GW_SPKI_LEN];
};

void ctl_crt_describe(const mbedtls_x509_crt *crt, struct crtinfo *ci);
int ctl_pem_describe(const unsigned char *pem, struct crtinfo *ci);
int ctl_file_describe(const char *path, struct crtinfo *ci);
/* cert_issued details, as JSON text (caller frees with cJSON_free). */
char *ctl_issued_details(const struct crtinfo *ci, const char *profile, const char *file);
cJSON *ctl_crt_json(const struct crtinfo *ci, const char *file);
void ctl_crt_text(const char *label, const struct crtinfo *ci, const char *file);

/* A subject key: generated here, or the public key of a CSR. */
struct subject {
    bool generated;
    mbedtls_pk_context key;
    mbedtls_x509_csr csr;
    mbedtls_pk_context *pk; /* points at key or csr.pk */
    uint8_t spki[GW_SPKI_LEN];
};

void ctl_subject_init(struct subject *s);
void ctl_subject_free(struct subject *s);
/* A new P-256 key, or the public key of the CSR at |csr_path| (not NULL). */
int ctl_subject_make(struct ctl *c, struct subject *s, const char *csr_path);

/* Makes the subject key of agent |name| (a new one, or the CSR's at
 * |csr|) and issues it a client certificate into *pem (PEM_BUF bytes,
 * caller frees; set even on a failure after it was allocated). */
int ctl_issue_agent(struct ctl *c, struct pki_ca *ca, const char *name, struct subject *s,
                    const char *csr, unsigned char **pem);

/* The files written for one identity, so a failure can take them back. */
struct written {
    char key[PATH_BUF], crt[PATH_BUF];
    bool key_done, crt_done;
};

/* PKI/agents/NAME.key and NAME.crt (PKI/agents made 0700 when missing). */
int ctl_agent_paths(struct ctl *c, const char *name, struct written *w);
/* Refuses to overwrite NAME's files: the key always, the certificate too. */
int ctl_refuse_existing(const struct written *w, bool with_key, const char *name);
/* Writes the key (when generated here) and the certificate. */
int ctl_write_identity(struct written *w, const struct subject *s, const unsigned char *pem);
void ctl_unwrite(struct written *w);
/* Records cert_issued for the certificate |ci| written to |file| (server
 * |server_id| named |server|, 0 and NULL = none) when a registry is open. */
int ctl_record_issued(struct ctl *c, int64_t server_id, const char *server, int64_t at,
                      const struct crtinfo *ci, const char *profile, const char *file);
/* ctl_write_identity, then describes the certificate into *ci and records
 * cert_issued with |profile| now; a failure takes the files back. */
int ctl_write_recorded(struct ctl *c, struct written *w, const struct subject *s,
                       const unsigned char *pem, const char *profile, struct crtinfo *ci);
/* "key": the key file written, or null when the key stays elsewhere. */
void ctl_json_add_key(cJSON *o, const struct subject *s, const struct written *w);

#endif /* GW_CTL_H */
