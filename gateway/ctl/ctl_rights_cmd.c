/*
 * ctl_rights_cmd.c - panelgatectl's data-rights commands: purge
 * (retention), erase (erasure) and export (portability: everything stored
 * for one server as one JSON or msgpack document).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <msgpack.h>

#include "ctl.h"
#include <panelproto/mpread.h>

/* ------------------------------------------------------------ purge, erase */

int cmd_purge(struct ctl *c)
{
    char err[1024];
    int64_t secs, n = 0;
    if (c->val[O_OLDER_THAN] == NULL)
        return ctl_usage_err(c->cmd, "purge: --older-than is required");
    /* 0 is a duration too: every frame received before now */
    if (ctl_parse_duration(c->val[O_OLDER_THAN], &secs) != 0)
        return ctl_usage_err(c->cmd,
                             "bad --older-than '%s': a duration like 30d, 12h, 15m, 30s, or 0",
                             c->val[O_OLDER_THAN]);
    int rv = ctl_need_reg(c, false);
    if (rv != EX_OK)
        return rv;
    /* received_ms is milliseconds: "before now" to the millisecond */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec;
    int64_t cutoff_ms = now * 1000 + ts.tv_nsec / 1000000 - secs * 1000;
    rv = c->reg->purge(c, cutoff_ms, now, &n, err, sizeof err);
    if (rv != 0) {
        if (n > 0)
            fprintf(stderr, "panelgatectl: purge: %lld frames were deleted before the error\n",
                    (long long)n);
        return ctl_fail("%s", err);
    }
    if (c->json) {
        char t[32];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "frames", (double)n);
        cJSON_AddStringToObject(o, "received_before", ctl_iso(cutoff_ms / 1000, t));
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        char t[32];
        printf("purged %lld frames received before %s\n", (long long)n,
               ctl_iso(cutoff_ms / 1000, t));
    }
    return EX_OK;
}

int cmd_erase(struct ctl *c)
{
    const char *name = c->pos[0];
    char err[1024];
    int64_t frames = 0, acts = 0;
    int rv;
    if ((rv = ctl_check_name(c, name)) != EX_OK)
        return rv;
    if (!(c->given & BIT(O_YES)))
        return ctl_usage_err(c->cmd,
                             "erase deletes every frame, pin and activity row of %s for good; "
                             "add --yes to confirm",
                             name);
    if ((rv = ctl_need_reg(c, false)) != EX_OK)
        return rv;
    if (c->reg->erase(c, name, (int64_t)time(NULL), &frames, &acts, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "server", name);
        cJSON_AddNumberToObject(o, "frames", (double)frames);
        cJSON_AddNumberToObject(o, "activity_rows", (double)acts);
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("erased %s: %lld frames and %lld activity rows deleted, the server and its pins "
               "removed; its next handshake is refused\n",
               name, (long long)frames, (long long)acts);
    }
    return EX_OK;
}

/* ------------------------------------------------------------ export */

/* -- the stored msgpack body as JSON: a generic, strict, bounded converter
 *    (the stored form is not a wire frame, so not the frame decoder) */

#define MP_JSON_MAX_DEPTH 64

cJSON *ctl_json_int(int neg, uint64_t u, int64_t i)
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
    case MP_UINT: return ctl_json_int(0, t.v.u, 0);
    case MP_INT: return ctl_json_int(1, 0, t.v.i);
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

cJSON *ctl_body_json(const uint8_t *p, size_t n)
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
    int64_t server_id;
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
    pk_kstr(pk, k, t ? ctl_iso(t, b) : NULL);
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

/* JSON: ends the pins (and the frames when there were none) and starts
 * the activity rows. */
static void json_open_activity(struct exp *e)
{
    if (e->n_frames == 0)
        fputs("],\n\"frames\":[", e->out);
    fputs("],\n\"activity\":[", e->out);
}

static int bad_body(struct exp *e, const struct gw_regdb_frame *f)
{
    fprintf(stderr, "panelgatectl: frame seq %llu: the stored body is not valid msgpack\n",
            (unsigned long long)f->seq);
    return e->err = 1;
}

static int exp_server(const struct gw_regdb_server *s, void *ud)
{
    struct exp *e = ud;
    e->server_id = s->id;
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
    cJSON *o = ctl_server_json(s);
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
    if (e->msgpack) {
        char hex[2 * GW_SPKI_LEN + 1];
        ctl_hex_of(p->spki, hex);
        msgpack_packer *pk = &e->pp;
        msgpack_pack_map(pk, 3);
        pk_kstr(pk, "spki_sha256", hex);
        pk_ktime(pk, "created_at", p->created_at);
        pk_ktime(pk, "not_after", p->not_after);
        e->n_pins++;
        return 0;
    }
    cJSON *o = ctl_pin_json(p);
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
        if (!body_valid(f->body, f->body_len))
            return bad_body(e, f);
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
    cJSON *body = ctl_body_json(f->body, f->body_len);
    if (body == NULL)
        return bad_body(e, f);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "seq", ctl_json_int(0, f->seq, 0));
    cJSON_AddItemToObject(o, "ts_ms", ctl_json_int(0, f->ts_ms, 0));
    cJSON_AddItemToObject(o, "received_ms",
                          ctl_json_int(f->received_ms < 0, (uint64_t)f->received_ms,
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
    if (!e->msgpack && e->n_acts == 0)
        json_open_activity(e);
    if (e->msgpack) {
        char t[32];
        msgpack_packer *pk = &e->pa;
        msgpack_pack_map(pk, 5);
        pk_kint(pk, "id", r->id);
        pk_kstr(pk, "at", ctl_iso(r->at, t));
        pk_kstr(pk, "actor", r->actor);
        pk_kstr(pk, "action", r->action);
        pk_kstr(pk, "details", r->details); /* JSON text */
        e->n_acts++;
        return 0;
    }
    cJSON *o = ctl_activity_json(r, false);
    json_item(e, o, &e->n_acts);
    cJSON_Delete(o);
    return e->err;
}

/* Opens the export file |path| (the server's data: owner-only), never
 * through a symbolic link: a new file, refusing any existing path; with
 * |force| and an existing regular file, a new temporary file in the same
 * directory, named in |tmp|, for the caller to rename over path once it is
 * complete (tmp is "" otherwise).  An exit status. */
static int out_open(const char *path, bool force, char tmp[PATH_BUF], FILE **out)
{
    struct stat st;
    int fd;

    tmp[0] = '\0';
    if (force && lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return ctl_fail("%s: not a regular file%s; refusing to replace it", path,
                            S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
        int n = snprintf(tmp, PATH_BUF, "%s.XXXXXX", path);
        if (n < 0 || n >= PATH_BUF) {
            tmp[0] = '\0';
            return ctl_fail("%s: path too long", path);
        }
        fd = mkstemp(tmp); /* O_EXCL, 0600 */
        if (fd < 0)
            tmp[0] = '\0';
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST)
            return ctl_fail("%s: already exists; refusing to overwrite it (--force replaces "
                            "a regular file)",
                            path);
    }
    if (fd < 0 || (*out = fdopen(fd, "w")) == NULL) {
        int rv = ctl_fail("%s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp[0] ? tmp : path);
        }
        return rv;
    }
    return EX_OK;
}

/* The "export" activity row of an export read from the read-only
 * connection: written through a read-write one of its own, the only write
 * of the command (so it needs write access; nothing is handed over
 * unrecorded); on the JetStream registry, a row of the activity stream.
 * An exit status. */
static int record_export(struct ctl *c, int64_t server_id, const char *name, const char *fmt,
                         unsigned n_frames)
{
    char err[1024];
    sqlite3 *rw = NULL;
    int rv = EX_FAIL;
    cJSON *o = cJSON_CreateObject();
    char *details = NULL;
    if (o == NULL || cJSON_AddStringToObject(o, "format", fmt) == NULL ||
        cJSON_AddNumberToObject(o, "frames", (double)n_frames) == NULL ||
        (details = cJSON_PrintUnformatted(o)) == NULL) {
        rv = ctl_fail("out of memory");
        goto out;
    }
    if (c->reg != &ctl_sqlite_reg) {
        /* the stream takes the row as any other */
        if (c->reg->activity_add(c, (int64_t)time(NULL), "export", server_id, name, details,
                                 err, sizeof err) != 0) {
            rv = ctl_fail("recording the export: %s", err);
            goto out;
        }
    } else if (gw_regdb_open(c->db_path, 0, &rw, err, sizeof err) != 0 ||
               gw_activity_add(rw, (int64_t)time(NULL), c->actor, "export", server_id, details,
                               err, sizeof err) != 0) {
        rv = ctl_fail("recording the export: %s", err);
        goto out;
    }
    rv = EX_OK;
out:
    cJSON_free(details);
    cJSON_Delete(o);
    sqlite3_close(rw);
    return rv;
}

int cmd_export(struct ctl *c)
{
    const char *name = c->pos[0], *fmt = c->val[O_FORMAT], *outp = c->val[O_OUT];
    char err[1024], tmp[PATH_BUF] = "";
    int rv;
    struct exp e;

    if ((rv = ctl_check_name(c, name)) != EX_OK)
        return rv;
    if (fmt == NULL)
        fmt = "json";
    if (strcmp(fmt, "json") != 0 && strcmp(fmt, "msgpack") != 0)
        return ctl_usage_err(c->cmd, "bad --format '%s': json or msgpack", fmt);
    if (strcmp(fmt, "msgpack") == 0 && outp == NULL && isatty(STDOUT_FILENO))
        return ctl_usage_err(c->cmd, "--format msgpack is binary: give --out FILE or redirect");
    if ((c->given & BIT(O_FORCE)) && (outp == NULL || strcmp(outp, "-") == 0))
        return ctl_usage_err(c->cmd, "--force goes with --out FILE");
    if ((rv = ctl_need_reg_ro(c)) != EX_OK)
        return rv;
    memset(&e, 0, sizeof e);
    e.msgpack = strcmp(fmt, "msgpack") == 0;
    e.out = stdout;
    if (outp != NULL && strcmp(outp, "-") != 0 &&
        (rv = out_open(outp, (c->given & BIT(O_FORCE)) != 0, tmp, &e.out)) != EX_OK)
        return rv;
    msgpack_sbuffer *bufs[] = {&e.head, &e.pins, &e.frames, &e.acts};
    msgpack_packer *pks[] = {&e.ph, &e.pp, &e.pf, &e.pa};
    for (int i = 0; i < 4; i++) {
        msgpack_sbuffer_init(bufs[i]);
        msgpack_packer_init(pks[i], bufs[i], msgpack_sbuffer_write);
    }
    static const struct gw_regdb_export_ops ops = {
        .server = exp_server, .pin = exp_pin, .frame = exp_frame, .activity = exp_activity};
    rv = EX_OK;
    if (c->reg->export(c, name, &ops, &e, err, sizeof err) != 0) {
        rv = e.err ? ctl_fail("export failed") : ctl_fail("%s", err);
    } else if ((rv = record_export(c, e.server_id, name, fmt, e.n_frames)) != EX_OK) {
        /* the output goes (below) */
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
        if (e.n_acts == 0)
            json_open_activity(&e);
        fputs("]}\n", e.out);
    }
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_destroy(bufs[i]);
    if (e.out != stdout) {
        /* a replacement is on disk before it takes the old file's place */
        if (tmp[0] != '\0' && rv == EX_OK && (fflush(e.out) != 0 || fsync(fileno(e.out)) != 0))
            rv = ctl_fail("%s: %s", outp, strerror(errno));
        if (fclose(e.out) != 0 && rv == EX_OK)
            rv = ctl_fail("%s: %s", outp, strerror(errno));
        if (rv == EX_OK && tmp[0] != '\0' && rename(tmp, outp) != 0)
            rv = ctl_fail("%s: cannot replace it: %s", outp, strerror(errno));
        if (rv != EX_OK)
            unlink(tmp[0] != '\0' ? tmp : outp);
        else if (!c->json)
            fprintf(stderr, "exported %s: %u frames, %u pins, %u activity rows to %s\n", name,
                    e.n_frames, e.n_pins, e.n_acts, outp);
    }
    return rv;
}
