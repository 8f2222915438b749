/*
 * ctl_registry_cmd.c - panelgatectl's registry commands: register, rotate,
 * revoke (each one transaction with its activity rows, the files written
 * inside it and taken back when it fails), list and show.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mbedtls/x509_crt.h>

#include "ctl.h"

#define OVERLAP_DEFAULT_S (7 * 86400)
#define SHOW_ACTIVITY 10

/* ------------------------------------------------------------ register */

int cmd_register(struct ctl *c)
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
    char *details = NULL;
    struct crtinfo ci;
    const char *source = csr ? "csr" : cert ? "cert" : "generated";
    bool registered = false;
    int64_t id = 0;
    int rv;

    memset(&ca, 0, sizeof ca);
    memset(&w, 0, sizeof w);
    memset(&ci, 0, sizeof ci);
    ctl_subject_init(&s);
    mbedtls_x509_crt_init(&pinned);

    if ((rv = ctl_check_name(c, name)) != EX_OK)
        goto out;
    if (kind == NULL) {
        rv = ctl_usage_err(c->cmd, "register: --kind nimble|wowza is required");
        goto out;
    }
    if (strcmp(kind, "nimble") != 0 && strcmp(kind, "wowza") != 0) {
        rv = ctl_usage_err(c->cmd, "bad kind '%s': nimble or wowza", kind);
        goto out;
    }
    if (csr && cert) {
        rv = ctl_usage_err(c->cmd, "register: --csr and --cert exclude each other");
        goto out;
    }
    if (cert && c->days) {
        rv = ctl_usage_err(c->cmd,
                           "register: --days has no effect with --cert (nothing is issued)");
        goto out;
    }
    if ((rv = ctl_need_reg(c, true)) != EX_OK)
        goto out;
    struct gw_regdb_server existing;
    int q = c->reg->show(c, name, &existing, err, sizeof err);
    if (q == 0) {
        rv = ctl_fail("server %s is already registered", name);
        goto out;
    }
    if (q != GW_ENOTFOUND) {
        rv = ctl_fail("%s", err);
        goto out;
    }

    if (cert != NULL) {
        /* pin a certificate made elsewhere: nothing is issued or written */
        if (pki_crt_load(&pinned, cert, err, sizeof err) != 0) {
            rv = ctl_fail("%s", err);
            goto out;
        }
        ctl_crt_describe(&pinned, &ci);
        memcpy(s.spki, ci.spki, sizeof s.spki);
        char cap[PATH_BUF];
        mbedtls_x509_crt cacrt;
        mbedtls_x509_crt_init(&cacrt);
        if (ctl_join(cap, sizeof cap, c->pki, "ca.crt") == 0 && ctl_exists(cap) &&
            pki_crt_load(&cacrt, cap, err, sizeof err) == 0) {
            uint32_t flags = 0;
            if (mbedtls_x509_crt_verify(&pinned, &cacrt, NULL, NULL, &flags, NULL, NULL) != 0)
                ctl_warn("%s does not verify against %s (flags 0x%x): the gateway accepts it "
                         "only if its client_ca_file trusts the issuer",
                         cert, cap, (unsigned)flags);
        }
        mbedtls_x509_crt_free(&cacrt);
    } else {
        if ((rv = ctl_need_ca(c, &ca)) != EX_OK || (rv = ctl_agent_paths(c, name, &w)) != EX_OK ||
            (rv = ctl_refuse_existing(&w, csr == NULL, name)) != EX_OK ||
            (rv = ctl_issue_agent(c, &ca, name, &s, csr, &pem)) != EX_OK)
            goto out;
        ctl_pem_describe(pem, &ci);
    }

    ctl_hex_of(s.spki, hex);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "kind", kind);
    cJSON_AddStringToObject(d, "spki_sha256", hex);
    cJSON_AddStringToObject(d, "source", source);
    if (ci.serial[0] != '\0')
        cJSON_AddStringToObject(d, "serial", ci.serial);
    details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);

    /* One transaction on SQLite: the server, its pin, its activity rows.
     * The files are written inside it, so a refused registration writes
     * nothing and a failed write registers nothing.  On the bucket the
     * registration stands once made: what fails after it is reported, and
     * the files written stay (they hold the pinned key). */
    int64_t now = (int64_t)time(NULL);
    if ((rv = c->reg->begin(c)) != EX_OK)
        goto out;
    if (c->reg->reg(c, name, kind, s.spki, details, now, &id, err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
        goto out;
    }
    registered = true;
    if (pem != NULL && ((rv = ctl_write_identity(&w, &s, pem)) != EX_OK ||
                        (rv = ctl_record_issued(c, id, name, now, &ci, "client", w.crt)) !=
                            EX_OK))
        goto out;
    if ((rv = c->reg->commit(c)) != EX_OK)
        goto out;

    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "id", (double)id);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "status", "active");
        cJSON_AddStringToObject(o, "spki_sha256", hex);
        cJSON_AddStringToObject(o, "source", source);
        cJSON_AddItemToObject(o, "certificate", ctl_crt_json(&ci, pem ? w.crt : cert));
        ctl_json_add_key(o, &s, &w);
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("registered %s (%s), id %lld\n", name, kind, (long long)id);
        printf("  %-12s %s\n", "pin", hex);
        ctl_crt_text(pem ? "certificate" : "pinned from", &ci, pem ? w.crt : cert);
        if (s.generated)
            printf("  %-12s %s (0600: copy it to the agent host, then delete it here)\n", "key",
                   w.key);
        else if (csr != NULL)
            printf("  %-12s stays on the agent host (signed from %s)\n", "key", csr);
    }
    rv = EX_OK;
out:
    if (rv != EX_OK && registered && !c->reg->atomic) {
        ctl_warn("%s stays registered (id %lld) on the %s registry: each step there stands "
                 "alone",
                 name, (long long)id, c->reg->name);
    } else if (rv != EX_OK) {
        c->reg->abort(c);
        ctl_unwrite(&w);
    }
    cJSON_free(details);
    free(pem);
    mbedtls_x509_crt_free(&pinned);
    ctl_subject_free(&s);
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
    bool have_crt = ctl_exists(w->crt), have_key = ctl_exists(w->key);
    if (!have_crt && !have_key)
        return EX_OK;
    if (have_crt && ctl_file_describe(w->crt, &old) == 0)
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
        return ctl_fail("%s: path too long", w->crt);
    if ((have_crt && ctl_exists(a->to_crt)) || (have_key && ctl_exists(a->to_key)))
        return ctl_fail("%s already exists: refusing to overwrite it",
                        ctl_exists(a->to_crt) ? a->to_crt : a->to_key);
    if (have_crt) {
        if (rename(a->from_crt, a->to_crt) != 0)
            return ctl_fail("cannot move %s to %s: %s", a->from_crt, a->to_crt,
                            strerror(errno));
        a->crt_moved = true;
    }
    if (have_key) {
        if (rename(a->from_key, a->to_key) != 0)
            return ctl_fail("cannot move %s to %s: %s", a->from_key, a->to_key,
                            strerror(errno));
        a->key_moved = true;
    }
    return EX_OK;
}

static void archive_undo(struct archive *a)
{
    if (a->crt_moved && rename(a->to_crt, a->from_crt) != 0)
        ctl_warn("could not move %s back to %s: %s", a->to_crt, a->from_crt, strerror(errno));
    if (a->key_moved && rename(a->to_key, a->from_key) != 0)
        ctl_warn("could not move %s back to %s: %s", a->to_key, a->from_key, strerror(errno));
    a->crt_moved = a->key_moved = false;
}

int cmd_rotate(struct ctl *c)
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
    int64_t overlap = OVERLAP_DEFAULT_S;
    bool rotated = false;
    int rv;

    memset(&ca, 0, sizeof ca);
    memset(&w, 0, sizeof w);
    memset(&a, 0, sizeof a);
    ctl_subject_init(&s);
    if ((rv = ctl_check_name(c, name)) != EX_OK)
        goto out;
    if (c->val[O_OVERLAP] != NULL && ctl_parse_duration(c->val[O_OVERLAP], &overlap) != 0) {
        rv = ctl_usage_err(c->cmd, "bad duration '%s' for --overlap: a number and s, m, h or d "
                                   "(30s, 15m, 12h, 7d), at most 3650d",
                           c->val[O_OVERLAP]);
        goto out;
    }
    if ((rv = ctl_need_reg(c, false)) != EX_OK)
        goto out;
    struct gw_regdb_server cur;
    if (c->reg->show(c, name, &cur, err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
        goto out;
    }
    if (strcmp(cur.status, "active") != 0) {
        rv = ctl_fail("server %s is %s: a new key would not let it in", name, cur.status);
        goto out;
    }
    if ((rv = ctl_need_ca(c, &ca)) != EX_OK || (rv = ctl_agent_paths(c, name, &w)) != EX_OK ||
        (rv = ctl_issue_agent(c, &ca, name, &s, csr, &pem)) != EX_OK)
        goto out;
    ctl_pem_describe(pem, &ci);
    ctl_hex_of(s.spki, hex);

    /* The files first, taken back when the registry refuses the key; on
     * SQLite all of it is one transaction with the rows. */
    int64_t now = (int64_t)time(NULL);
    if ((rv = archive_old(&a, &w, name)) != EX_OK ||
        (rv = ctl_write_identity(&w, &s, pem)) != EX_OK || (rv = c->reg->begin(c)) != EX_OK)
        goto out;
    if (c->reg->rotate(c, name, s.spki, overlap, now, err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
        goto out;
    }
    rotated = true;
    if ((rv = ctl_record_issued(c, cur.id, name, now, &ci, "client", w.crt)) != EX_OK ||
        (rv = c->reg->commit(c)) != EX_OK)
        goto out;

    char t[32];
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "spki_sha256", hex);
        cJSON_AddItemToObject(o, "certificate", ctl_crt_json(&ci, w.crt));
        ctl_json_add_key(o, &s, &w);
        cJSON_AddNumberToObject(o, "overlap_s", (double)overlap);
        cJSON_AddStringToObject(o, "old_pins_not_after", ctl_iso(now + overlap, t));
        if (a.crt_moved)
            cJSON_AddStringToObject(o, "previous_certificate", a.to_crt);
        if (a.key_moved)
            cJSON_AddStringToObject(o, "previous_key", a.to_key);
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("rotated %s\n", name);
        printf("  %-12s %s\n", "new pin", hex);
        ctl_crt_text("certificate", &ci, w.crt);
        if (s.generated)
            printf("  %-12s %s (0600)\n", "key", w.key);
        printf("  %-12s the previous pins are accepted until %s\n", "overlap",
               ctl_iso(now + overlap, t));
        if (a.crt_moved)
            printf("  %-12s %s\n", "previous", a.to_crt);
        if (a.key_moved)
            printf("  %-12s %s\n", "previous", a.to_key);
    }
    rv = EX_OK;
out:
    if (rv != EX_OK && rotated && !c->reg->atomic) {
        ctl_warn("the new key of %s stays pinned on the %s registry: each step there stands "
                 "alone",
                 name, c->reg->name);
    } else if (rv != EX_OK) {
        c->reg->abort(c);
        ctl_unwrite(&w);
        archive_undo(&a);
    }
    free(pem);
    ctl_subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

/* ------------------------------------------------------------ revoke */

int cmd_revoke(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024];
    int rv;
    if ((rv = ctl_check_name(c, name)) != EX_OK || (rv = ctl_need_reg(c, false)) != EX_OK)
        return rv;
    struct gw_regdb_server cur;
    if (c->reg->show(c, name, &cur, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    bool was = strcmp(cur.status, "revoked") == 0;
    if (c->reg->revoke(c, name, (int64_t)time(NULL), err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "status", "revoked");
        cJSON_AddBoolToObject(o, "changed", !was);
        ctl_json_print(o);
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

/* Every field, the pin in use and the pins read (with "expired"). */
static cJSON *server_json(const struct gw_regdb_server *s, int64_t now)
{
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *o = ctl_server_json(s);
    const struct gw_regdb_pin *cur = current_pin(s, now);
    if (cur != NULL) {
        ctl_hex_of(cur->spki, hex);
        cJSON_AddStringToObject(o, "spki_sha256", hex);
    } else {
        cJSON_AddNullToObject(o, "spki_sha256");
    }
    cJSON_AddNumberToObject(o, "pins_total", s->n_pins_total);
    cJSON *pins = cJSON_AddArrayToObject(o, "pins");
    for (unsigned i = 0; i < s->n_pins; i++) {
        const struct gw_regdb_pin *p = &s->pins[i];
        cJSON *po = ctl_pin_json(p);
        cJSON_AddBoolToObject(po, "expired", p->not_after != 0 && p->not_after < now);
        cJSON_AddItemToArray(pins, po);
    }
    return o;
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
        ctl_hex_of(cur->spki, hex);
        snprintf(spki, sizeof spki, "%.16s\xe2\x80\xa6", hex); /* U+2026 */
    } else {
        snprintf(spki, sizeof spki, "-");
    }
    const char *row[] = {s->name, s->kind, s->status, ctl_iso(s->created_at, created),
                         pins, spki};
    if (ctl_table_row(&l->tab, row) != 0) {
        l->oom = 1;
        return 1;
    }
    return 0;
}

int cmd_list(struct ctl *c)
{
    char err[1024];
    int rv = ctl_need_reg_ro(c);
    if (rv != EX_OK)
        return rv;
    struct list_ctx l = {.json = c->json, .now = (int64_t)time(NULL), .tab = {.ncol = 6}};
    static const char *const head[] = {"NAME", "KIND", "STATUS", "CREATED", "PINS", "SPKI"};
    if (l.json)
        l.arr = cJSON_CreateArray();
    else if (ctl_table_row(&l.tab, head) != 0)
        return ctl_fail("out of memory");
    if (c->reg->list(c, list_one, &l, err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
    } else if (l.oom) {
        rv = ctl_fail("out of memory");
    } else if (l.json) {
        ctl_json_print(l.arr);
    } else {
        ctl_table_print(&l.tab, "");
    }
    cJSON_Delete(l.arr);
    ctl_table_free(&l.tab);
    return rv;
}

int cmd_show(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024], t1[32], t2[32], hex[2 * GW_SPKI_LEN + 1];
    int rv;
    if ((rv = ctl_check_name(c, name)) != EX_OK || (rv = ctl_need_reg_ro(c)) != EX_OK)
        return rv;
    struct gw_regdb_server s;
    if (c->reg->show(c, name, &s, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    int64_t now = (int64_t)time(NULL);
    struct gw_activity_filter f = {.server = name, .limit = SHOW_ACTIVITY};

    /* the certificate made here, when there is one */
    char crt[PATH_BUF], leaf[300];
    struct crtinfo ci;
    bool have_crt = false;
    snprintf(leaf, sizeof leaf, "agents/%s.crt", name);
    if (ctl_join(crt, sizeof crt, c->pki, leaf) == 0 && ctl_exists(crt) &&
        ctl_file_describe(crt, &ci) == 0)
        have_crt = true;

    if (c->json) {
        cJSON *o = server_json(&s, now);
        if (have_crt)
            cJSON_AddItemToObject(o, "certificate", ctl_crt_json(&ci, crt));
        cJSON *acts = cJSON_AddArrayToObject(o, "activity");
        rv = ctl_run_activity(c, &f, false, acts, "");
        if (rv == EX_OK)
            ctl_json_print(o);
        cJSON_Delete(o);
        return rv;
    }
    printf("%-12s %s\n", "name", s.name);
    printf("%-12s %lld\n", "id", (long long)s.id);
    printf("%-12s %s\n", "kind", s.kind);
    printf("%-12s %s\n", "status", s.status);
    printf("%-12s %s\n", "created", ctl_iso(s.created_at, t1));
    const struct gw_regdb_pin *cur = current_pin(&s, now);
    printf("%-12s %u%s\n", "pins", s.n_pins_total,
           s.n_pins < s.n_pins_total ? " (the newest shown)" : "");
    for (unsigned i = 0; i < s.n_pins; i++) {
        const struct gw_regdb_pin *p = &s.pins[i];
        ctl_hex_of(p->spki, hex);
        const char *state = p->not_after == 0        ? "no expiry"
                            : p->not_after < now     ? "expired"
                                                     : "expires";
        printf("  %s  created %s  not_after %s (%s)%s\n", hex, ctl_iso(p->created_at, t1),
               p->not_after ? ctl_iso(p->not_after, t2) : "-", state,
               p == cur ? "  current" : "");
    }
    if (have_crt) {
        printf("certificate\n");
        ctl_crt_text("file", &ci, crt);
    }
    printf("activity (the last %d)\n", SHOW_ACTIVITY);
    return ctl_run_activity(c, &f, false, NULL, "  ");
}
