/*
 * regkv_rec.c - the pure half of regkv.h: the bucket's keys and the server
 * record's JSON (docs/STORAGE.md, "The registry bucket"), both ways, and
 * the registry snapshot entries of one record.
 *
 * The decoder is strict because the bucket is shared input: every gateway
 * parses what any panelgatectl (or anyone with write access to the
 * bucket) put there.  Exactly the fields of the layout, each once and of
 * its type, integers exact, nothing else.  A refusal names the field,
 * never the value.
 */
#include "regkv.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc.h"

/* Integers JSON carries exactly (cJSON keeps numbers as doubles). */
#define EXACT_MAX 9007199254740991.0 /* 2^53 - 1 */

/* ------------------------------------------------------------ keys */

int gw_regkv_server_key(const char *name, char *buf, size_t n)
{
    if (!gw_regdb_name_ok(name) || buf == NULL || n < 8)
        return GW_EINVAL;
    size_t o = (size_t)snprintf(buf, n, "server.");
    for (const char *p = name; *p; p++) {
        const char *piece = *p == '.' ? "=2e" : NULL;
        size_t len = piece ? 3 : 1;
        if (o + len + 1 > n)
            return GW_EINVAL;
        if (piece)
            memcpy(buf + o, piece, 3);
        else
            buf[o] = *p;
        o += len;
    }
    buf[o] = '\0';
    return 0;
}

void gw_regkv_pin_key(const uint8_t spki[GW_SPKI_LEN], char *buf)
{
    memcpy(buf, "pin.", 4);
    gw_spki_hex(spki, buf + 4);
}

/* ------------------------------------------------------------ encode */

static cJSON *time_or_null(int64_t t)
{
    return t == 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)t);
}

char *gw_regkv_rec_encode(const struct gw_regdb_server *s, size_t *len)
{
    char hex[2 * GW_SPKI_LEN + 1];
    char *txt = NULL;
    cJSON *o = cJSON_CreateObject(), *pins = NULL;
    if (o == NULL || cJSON_AddNumberToObject(o, "id", (double)s->id) == NULL ||
        cJSON_AddStringToObject(o, "name", s->name) == NULL ||
        cJSON_AddStringToObject(o, "kind", s->kind) == NULL ||
        cJSON_AddStringToObject(o, "status", s->status) == NULL ||
        cJSON_AddNumberToObject(o, "created_at", (double)s->created_at) == NULL ||
        (pins = cJSON_AddArrayToObject(o, "pins")) == NULL)
        goto out;
    for (unsigned i = 0; i < s->n_pins && i < GW_REGKV_MAX_PINS; i++) {
        const struct gw_regdb_pin *p = &s->pins[i];
        cJSON *po = cJSON_CreateObject();
        if (po == NULL || !cJSON_AddItemToArray(pins, po)) { /* pins owns po from here */
            cJSON_Delete(po);
            goto out;
        }
        cJSON *na = time_or_null(p->not_after);
        gw_spki_hex(p->spki, hex);
        if (cJSON_AddStringToObject(po, "spki_sha256", hex) == NULL ||
            cJSON_AddNumberToObject(po, "created_at", (double)p->created_at) == NULL ||
            na == NULL || !cJSON_AddItemToObject(po, "not_after", na)) {
            cJSON_Delete(na);
            goto out;
        }
    }
    txt = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    if (txt != NULL && len != NULL)
        *len = strlen(txt);
    return txt;
}

/* ------------------------------------------------------------ decode */

struct dec {
    char *err;
    size_t errlen;
};

static int bad(struct dec *d, const char *field, const char *why)
{
    gw_seterr(d->err, d->errlen, "server record: %s: %s", field, why);
    return GW_EINVAL;
}

/* An exact integer in [lo, EXACT_MAX]. */
static int get_int(struct dec *d, const cJSON *v, const char *field, double lo, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return bad(d, field, "not a number");
    double x = v->valuedouble;
    if (!(x >= lo && x <= EXACT_MAX) || x != (double)(int64_t)x)
        return bad(d, field, "not an integer in range");
    *out = (int64_t)x;
    return 0;
}

static int get_str(struct dec *d, const cJSON *v, const char *field, char *buf, size_t n)
{
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return bad(d, field, "not a string");
    size_t len = strlen(v->valuestring);
    if (len >= n)
        return bad(d, field, "too long");
    memcpy(buf, v->valuestring, len + 1);
    return 0;
}

/* |o| is an object with exactly the |n| keys of |keys|, each once. */
static int exact_keys(struct dec *d, const cJSON *o, const char *what, const char *const *keys,
                      size_t n)
{
    size_t count = 0;
    if (!cJSON_IsObject(o))
        return bad(d, what, "not an object");
    for (const cJSON *c = o->child; c != NULL; c = c->next) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = c->string != NULL && strcmp(c->string, keys[i]) == 0;
        if (!known)
            return bad(d, what, "a field the layout does not have");
        count++;
    }
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetObjectItemCaseSensitive(o, keys[i]) == NULL) {
            char f[64];
            snprintf(f, sizeof f, "%s.%s", what, keys[i]);
            return bad(d, f, "missing");
        }
    if (count != n)
        return bad(d, what, "a field given twice");
    return 0;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int get_spki(struct dec *d, const cJSON *v, const char *field, uint8_t out[GW_SPKI_LEN])
{
    if (!cJSON_IsString(v) || v->valuestring == NULL ||
        strlen(v->valuestring) != 2 * GW_SPKI_LEN)
        return bad(d, field, "not 64 lower-case hex digits");
    for (size_t i = 0; i < GW_SPKI_LEN; i++) {
        int hi = hex_nibble(v->valuestring[2 * i]), lo = hex_nibble(v->valuestring[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return bad(d, field, "not 64 lower-case hex digits");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int decode_pin(struct dec *d, const cJSON *po, unsigned i, struct gw_regdb_pin *p)
{
    static const char *const keys[] = {"spki_sha256", "created_at", "not_after"};
    char f[64];
    int rv;
    snprintf(f, sizeof f, "pins[%u]", i);
    if ((rv = exact_keys(d, po, f, keys, 3)) != 0)
        return rv;
    snprintf(f, sizeof f, "pins[%u].spki_sha256", i);
    if ((rv = get_spki(d, cJSON_GetObjectItemCaseSensitive(po, "spki_sha256"), f, p->spki)) != 0)
        return rv;
    snprintf(f, sizeof f, "pins[%u].created_at", i);
    if ((rv = get_int(d, cJSON_GetObjectItemCaseSensitive(po, "created_at"), f, 0,
                      &p->created_at)) != 0)
        return rv;
    const cJSON *na = cJSON_GetObjectItemCaseSensitive(po, "not_after");
    snprintf(f, sizeof f, "pins[%u].not_after", i);
    p->not_after = 0;
    if (cJSON_IsNull(na))
        return 0;
    if ((rv = get_int(d, na, f, 1, &p->not_after)) != 0)
        return bad(d, f, "neither null nor a time");
    return 0;
}

int gw_regkv_rec_decode(const void *data, size_t len, struct gw_regdb_server *out, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"id", "name", "kind", "status", "created_at", "pins"};
    struct dec d = {err, errlen};
    int rv = GW_EINVAL;
    cJSON *o = NULL;

    memset(out, 0, sizeof *out);
    if (data == NULL || len == 0)
        return bad(&d, "value", "empty");
    if (memchr(data, '\0', len) != NULL)
        return bad(&d, "value", "holds a NUL byte");
    const char *end = NULL;
    o = cJSON_ParseWithLengthOpts(data, len, &end, false);
    /* one value, then white space at most */
    while (o != NULL && end < (const char *)data + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (o == NULL || end != (const char *)data + len) {
        /* cJSON cannot tell a bad text from no memory: a small value that
         * does not parse is the value's fault */
        rv = bad(&d, "value", "not JSON");
        goto out;
    }
    if ((rv = exact_keys(&d, o, "record", keys, 6)) != 0 ||
        (rv = get_int(&d, cJSON_GetObjectItemCaseSensitive(o, "id"), "id", 1, &out->id)) != 0 ||
        (rv = get_str(&d, cJSON_GetObjectItemCaseSensitive(o, "name"), "name", out->name,
                      sizeof out->name)) != 0 ||
        (rv = get_str(&d, cJSON_GetObjectItemCaseSensitive(o, "kind"), "kind", out->kind,
                      sizeof out->kind)) != 0 ||
        (rv = get_str(&d, cJSON_GetObjectItemCaseSensitive(o, "status"), "status", out->status,
                      sizeof out->status)) != 0 ||
        (rv = get_int(&d, cJSON_GetObjectItemCaseSensitive(o, "created_at"), "created_at", 0,
                      &out->created_at)) != 0)
        goto out;
    if (!gw_regdb_name_ok(out->name)) {
        rv = bad(&d, "name", "not a valid server name");
        goto out;
    }
    if (strcmp(out->kind, "nimble") != 0 && strcmp(out->kind, "wowza") != 0) {
        rv = bad(&d, "kind", "neither nimble nor wowza");
        goto out;
    }
    if (strcmp(out->status, "active") != 0 && strcmp(out->status, "revoked") != 0) {
        rv = bad(&d, "status", "neither active nor revoked");
        goto out;
    }
    const cJSON *pins = cJSON_GetObjectItemCaseSensitive(o, "pins");
    int n = cJSON_GetArraySize(pins);
    if (!cJSON_IsArray(pins) || n < 1 || n > GW_REGKV_MAX_PINS) {
        rv = bad(&d, "pins", "not an array of 1 to 8 pins");
        goto out;
    }
    unsigned i = 0;
    for (const cJSON *po = pins->child; po != NULL; po = po->next, i++) {
        if ((rv = decode_pin(&d, po, i, &out->pins[i])) != 0)
            goto out;
        for (unsigned j = 0; j < i; j++)
            if (memcmp(out->pins[j].spki, out->pins[i].spki, GW_SPKI_LEN) == 0) {
                char f[32];
                snprintf(f, sizeof f, "pins[%u].spki_sha256", i);
                rv = bad(&d, f, "the same key as an earlier pin");
                goto out;
            }
    }
    out->n_pins = out->n_pins_total = i;
    rv = 0;
out:
    cJSON_Delete(o);
    if (rv != 0)
        memset(out, 0, sizeof *out);
    return rv;
}

/* ------------------------------------------------------------ entries */

void gw_regkv_rec_entries(const struct gw_regdb_server *s, struct gw_server *out, size_t *n)
{
    enum gw_server_status st =
        strcmp(s->status, "active") == 0 ? GW_SERVER_ACTIVE : GW_SERVER_REVOKED;
    size_t k = 0;
    for (unsigned i = 0; i < s->n_pins && i < GW_REGKV_MAX_PINS; i++, k++) {
        struct gw_server *e = &out[k];
        memset(e, 0, sizeof *e);
        e->id = s->id;
        snprintf(e->name, sizeof e->name, "%s", s->name);
        snprintf(e->kind, sizeof e->kind, "%s", s->kind);
        e->status = st;
        memcpy(e->spki, s->pins[i].spki, GW_SPKI_LEN);
        e->pin_not_after = s->pins[i].not_after;
    }
    *n = k;
}
