/*
 * regkv.c - the registry bucket of the JetStream engine (regkv.h,
 * docs/STORAGE.md): open (bucket, schema key, activity stream), the
 * registry's changes (each a compare-and-set on the bucket as read,
 * kv_cas, retried when another writer got there first) and reading servers
 * back.  The activity rows, erase and purge are in regkv_stream.c.
 *
 * The pin index (pin.<hex>) is what keeps one key on one server across
 * hosts: it is created (only when absent) before the server record that
 * holds the pin, and removed after the pin left the record.  A writer that
 * dies between the two steps leaves an index no record backs; the next
 * registration of that key takes it over once it is older than a
 * registration can take (two API timeouts), or at once when its server id
 * is not the record's (ids are never reused).
 */
#include "regkv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "alloc.h"
#include "config.h"
#include "js.h"
#include "regkv_int.h"

/* Compare-and-set rounds before giving up on a busy key. */
#define CAS_TRIES 32

/* ------------------------------------------------------------ helpers */

int gw_regkv_nats_fail(natsStatus s, char *err, size_t errlen, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *last = nats_GetLastError(NULL);
    gw_seterr(err, errlen, "jetstream: %s: %s%s%s", what, natsStatus_GetText(s),
              last && *last ? ": " : "", last ? last : "");
    return s == NATS_NO_MEMORY ? GW_ENOMEM : GW_ESTORAGE;
}

bool gw_regkv_not_found(natsStatus s, jsErrCode jerr)
{
    return s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int copy_name(char *dst, size_t n, const char *src, const char *what, char *err,
                     size_t errlen)
{
    if (src == NULL || *src == '\0' || strlen(src) >= n)
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: %s: not set or too long", what);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* The bucket's stream sequence now, as its leader has it: what a change
 * read "as of" and is conditioned on (kv_cas). */
static int kv_snap(struct gw_regkv *k, uint64_t *last, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, k->jc, k->kv_stream, NULL, &jerr);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "bucket %s: info (JetStream error %d)", k->bucket,
                         (int)jerr);
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* One value, read from the stream's leader (never a replica's copy, which
 * may be behind): *msg (the caller destroys it) and its sequence, or
 * GW_ENOTFOUND when the key is absent or deleted. */
static int kv_read(struct gw_regkv *k, const char *key, natsMsg **msg, char *err, size_t errlen)
{
    char subject[GW_REGKV_KEY_MAX + GW_REGKV_NAME_MAX + 8];
    jsErrCode jerr = 0;
    const char *op = NULL;
    *msg = NULL;
    snprintf(subject, sizeof subject, "%s%s", k->kv_prefix, key);
    natsStatus s = js_GetLastMsg(msg, k->jc, k->kv_stream, subject, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        *msg = NULL;
        return GW_ENOTFOUND;
    }
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "bucket %s: reading %s (JetStream error %d)",
                         k->bucket, key, (int)jerr);
    if (natsMsgHeader_Get(*msg, "KV-Operation", &op) == NATS_OK && op != NULL &&
        (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0)) {
        natsMsg_Destroy(*msg);
        *msg = NULL;
        return GW_ENOTFOUND;
    }
    return 0;
}

/* Writes |val| to |key| if and only if nothing at all was written to the
 * bucket after sequence |last| (kv_snap): a compare-and-set on the whole
 * bucket.  Not kvStore_Update's on the key's own revision: nats-server
 * 2.9 accepts two concurrent writes that expect the same last sequence of
 * one subject in a replicated stream (nats-server issue 4320), while the
 * stream's own last sequence is checked in the order of its log.  0 when
 * written, 1 when another writer got there first, else a GW_E* code. */
static int kv_cas(struct gw_regkv *k, const char *key, const char *val, uint64_t last,
                  char *err, size_t errlen)
{
    char subject[GW_REGKV_KEY_MAX + GW_REGKV_NAME_MAX + 8];
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsPubOptions po;
    jsErrCode jerr = 0;
    snprintf(subject, sizeof subject, "%s%s", k->kv_prefix, key);
    natsStatus s = natsMsg_Create(&m, subject, NULL, val, (int)strlen(val));
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "bucket %s: writing %s", k->bucket, key);
    jsPubOptions_Init(&po);
    po.ExpectLastSeq = last;
    s = js_PublishMsg(&pa, k->jc, m, &po, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    if (s == NATS_OK)
        return 0;
    if (jerr == JSStreamWrongLastSequenceErr)
        return 1;
    return gw_regkv_nats_fail(s, err, errlen, "bucket %s: writing %s (JetStream error %d)", k->bucket,
                     key, (int)jerr);
}

int gw_regkv_kv_delete(struct gw_regkv *k, const char *key, bool purge, char *err, size_t errlen)
{
    natsStatus s = purge ? kvStore_Purge(k->kv, key, NULL) : kvStore_Delete(k->kv, key);
    if (s != NATS_OK && s != NATS_NOT_FOUND)
        return gw_regkv_nats_fail(s, err, errlen, "bucket %s: deleting %s", k->bucket, key);
    return 0;
}

/* A message's data, NUL-terminated (gw_free), or NULL. */
static char *msg_text(natsMsg *m)
{
    int n = natsMsg_GetDataLength(m);
    char *t = gw_malloc((size_t)(n > 0 ? n : 0) + 1);
    if (t == NULL)
        return NULL;
    if (n > 0)
        memcpy(t, natsMsg_GetData(m), (size_t)n);
    t[n > 0 ? n : 0] = '\0';
    return t;
}

/* ------------------------------------------------------------ records */

/* Server |name|'s record and the sequence it was written at. */
int gw_regkv_get_server(struct gw_regkv *k, const char *name, struct gw_regdb_server *s,
                      uint64_t *seq, char *err, size_t errlen)
{
    char key[GW_REGKV_KEY_MAX], why[256];
    natsMsg *m = NULL;
    memset(s, 0, sizeof *s);
    if (gw_regkv_server_key(name, key, sizeof key) != 0)
        return gw_fail(GW_EINVAL, err, errlen, "bad server name '%.64s'", name ? name : "");
    int rv = kv_read(k, key, &m, err, errlen);
    if (rv == GW_ENOTFOUND)
        return gw_fail(GW_ENOTFOUND, err, errlen, "unknown server %s (not registered)", name);
    if (rv != 0)
        return rv;
    rv = gw_regkv_rec_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), s, why,
                             sizeof why);
    if (rv == 0 && strcmp(s->name, name) != 0) {
        snprintf(why, sizeof why, "server record: name: not the name of its key");
        memset(s, 0, sizeof *s);
        rv = GW_EINVAL;
    }
    if (rv != 0)
        gw_seterr(err, errlen, "bucket %s: key %s: %s", k->bucket, key, why);
    else if (seq != NULL)
        *seq = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    return rv;
}

/* Writes |s| if nothing was written to the bucket after |last|: 0, 1
 * (lost the race), or an error. */
static int put_server(struct gw_regkv *k, const struct gw_regdb_server *s, uint64_t last,
                      char *err, size_t errlen)
{
    char key[GW_REGKV_KEY_MAX];
    if (gw_regkv_server_key(s->name, key, sizeof key) != 0)
        return gw_fail(GW_EINVAL, err, errlen, "bad server name");
    char *val = gw_regkv_rec_encode(s, NULL);
    if (val == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
    int rv = kv_cas(k, key, val, last, err, errlen);
    gw_free(val);
    return rv;
}


int gw_regkv_get_pin(struct gw_regkv *k, const char *key, struct pin_idx *p, char *err,
                   size_t errlen)
{
    natsMsg *m = NULL;
    memset(p, 0, sizeof *p);
    int rv = kv_read(k, key, &m, err, errlen);
    if (rv != 0)
        return rv;
    char *t = msg_text(m);
    cJSON *o = t ? cJSON_Parse(t) : NULL;
    const cJSON *srv = cJSON_GetObjectItemCaseSensitive(o, "server");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (t == NULL) {
        rv = gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
    } else if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != 2 || !cJSON_IsString(srv) ||
               !gw_regdb_name_ok(srv->valuestring) || !cJSON_IsNumber(id) ||
               id->valuedouble < 1 || id->valuedouble > 9007199254740991.0 ||
               id->valuedouble != (double)(int64_t)id->valuedouble) {
        rv = gw_fail(GW_EINVAL, err, errlen,
                     "bucket %s: key %s: pin index: not {\"server\":name,\"id\":id}", k->bucket,
                     key);
    } else {
        snprintf(p->server, sizeof p->server, "%s", srv->valuestring);
        p->id = (int64_t)id->valuedouble;
        p->seq = natsMsg_GetSequence(m);
        p->created_ns = natsMsg_GetTime(m);
    }
    cJSON_Delete(o);
    gw_free(t);
    natsMsg_Destroy(m);
    return rv;
}

static bool holds(const struct gw_regdb_server *s, const uint8_t spki[GW_SPKI_LEN])
{
    for (unsigned i = 0; i < s->n_pins; i++)
        if (memcmp(s->pins[i].spki, spki, GW_SPKI_LEN) == 0)
            return true;
    return false;
}

/* Whether pin.<hex> keeps |spki| on a server: GW_EPINNED naming it; 0
 * with the index in *p when it is an orphan that may be taken over (see
 * the top of the file); GW_ENOTFOUND when there is no index. */
static int pin_taken(struct gw_regkv *k, const uint8_t spki[GW_SPKI_LEN], struct pin_idx *p,
                     char *err, size_t errlen)
{
    char key[4 + 2 * GW_SPKI_LEN + 1];
    gw_regkv_pin_key(spki, key);
    int rv = gw_regkv_get_pin(k, key, p, err, errlen);
    if (rv != 0)
        return rv;
    struct gw_regdb_server owner;
    rv = gw_regkv_get_server(k, p->server, &owner, NULL, err, errlen);
    if (rv != 0 && rv != GW_ENOTFOUND)
        return rv;
    bool backed = rv == 0 && owner.id == p->id && holds(&owner, spki);
    bool other_id = rv == 0 && owner.id != p->id;
    bool old = now_ns() - p->created_ns > 2 * k->wait_ms * 1000000;
    if (backed || (!other_id && !old))
        return gw_fail(GW_EPINNED, err, errlen, "this public key is already pinned to server %s",
                       p->server);
    return 0;
}

/* Makes pin.<hex> point at (name, id): created when absent, taken over
 * when it is an orphan, else GW_EPINNED naming its server. */
static int claim_pin(struct gw_regkv *k, const uint8_t spki[GW_SPKI_LEN], const char *name,
                     int64_t id, char *err, size_t errlen)
{
    char key[4 + 2 * GW_SPKI_LEN + 1], val[320];
    gw_regkv_pin_key(spki, key);
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (o == NULL || cJSON_AddStringToObject(o, "server", name) == NULL ||
        cJSON_AddNumberToObject(o, "id", (double)id) == NULL ||
        (txt = cJSON_PrintUnformatted(o)) == NULL) {
        cJSON_Delete(o);
        return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
    }
    snprintf(val, sizeof val, "%s", txt);
    cJSON_free(txt);
    cJSON_Delete(o);

    for (int round = 0; round < CAS_TRIES; round++) {
        uint64_t last;
        struct pin_idx p;
        int rv = kv_snap(k, &last, err, errlen);
        if (rv != 0)
            return rv;
        rv = pin_taken(k, spki, &p, err, errlen);
        if (rv != 0 && rv != GW_ENOTFOUND)
            return rv;
        if (rv == 0 && p.seq > last)
            continue; /* written since the snapshot: look again */
        /* absent, or an orphan: write it, if the bucket did not move */
        rv = kv_cas(k, key, val, last, err, errlen);
        if (rv <= 0)
            return rv;
    }
    return gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: %s: too many concurrent writers",
                   k->bucket, key);
}

static void drop_pin(struct gw_regkv *k, const uint8_t spki[GW_SPKI_LEN])
{
    char key[4 + 2 * GW_SPKI_LEN + 1], e[256];
    gw_regkv_pin_key(spki, key);
    gw_regkv_kv_delete(k, key, false, e, sizeof e); /* best effort: an orphan is taken over later */
}

/* ------------------------------------------------------------ open */

static int check_bucket(struct gw_regkv *k, const struct gw_config *cfg, char *err,
                        size_t errlen)
{
    kvStatus *st = NULL;
    natsStatus s = kvStore_Status(&st, k->kv);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "bucket %s: status", k->bucket);
    char diff[512] = "";
    if (kvStatus_Replicas(st) != (int64_t)cfg->js_replicas)
        snprintf(diff + strlen(diff), sizeof diff - strlen(diff),
                 "replicas: configured %" PRIu32 ", bucket has %" PRId64 "; ", cfg->js_replicas,
                 kvStatus_Replicas(st));
    if (kvStatus_History(st) != 1)
        snprintf(diff + strlen(diff), sizeof diff - strlen(diff), "history: %" PRId64
                 " (the layout keeps 1); ", kvStatus_History(st));
    if (kvStatus_TTL(st) != 0)
        snprintf(diff + strlen(diff), sizeof diff - strlen(diff),
                 "ttl: %" PRId64 " ms (the layout has none); ", kvStatus_TTL(st));
    kvStatus_Destroy(st);
    if (diff[0] != '\0') {
        diff[strlen(diff) - 2] = '\0';
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: bucket %s: %s", k->bucket, diff);
    }
    return 0;
}

static int ensure_schema(struct gw_regkv *k, bool create, char *err, size_t errlen)
{
    for (int round = 0; round < CAS_TRIES; round++) {
        natsMsg *m = NULL;
        uint64_t last = 0;
        int rv = kv_snap(k, &last, err, errlen);
        if (rv != 0)
            return rv;
        rv = kv_read(k, "schema", &m, err, errlen);
        if (rv == 0) {
            bool same = natsMsg_GetDataLength(m) == (int)strlen(GW_REGKV_SCHEMA) &&
                        memcmp(natsMsg_GetData(m), GW_REGKV_SCHEMA, strlen(GW_REGKV_SCHEMA)) == 0;
            natsMsg_Destroy(m);
            if (!same)
                return gw_fail(GW_ECONFIG, err, errlen,
                               "jetstream: bucket %s: key schema: another layout version than "
                               "%s (this build's)",
                               k->bucket, GW_REGKV_SCHEMA);
            return 0;
        }
        if (rv != GW_ENOTFOUND)
            return rv;
        if (!create)
            return gw_fail(GW_ECONFIG, err, errlen,
                           "jetstream: bucket %s: no schema key: not a panelgate registry",
                           k->bucket);
        /* an empty bucket's stream has no last sequence to expect */
        uint64_t rev;
        natsStatus s = kvStore_Create(&rev, k->kv, "schema", GW_REGKV_SCHEMA,
                                      (int)strlen(GW_REGKV_SCHEMA));
        (void)s; /* created, or another opener did: read it again */
    }
    return gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: schema: too many writers", k->bucket);
}

static int ensure_activity(struct gw_regkv *k, const struct gw_config *cfg, bool create,
                           char *err, size_t errlen)
{
    char subject[GW_REGKV_NAME_MAX + 4];
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    snprintf(subject, sizeof subject, "%s.>", k->act_prefix);
    natsStatus s = js_GetStreamInfo(&si, k->jc, k->act_stream, NULL, &jerr);
    if (gw_regkv_not_found(s, jerr)) {
        if (!create)
            return gw_fail(GW_ENOTFOUND, err, errlen,
                           "jetstream: no activity stream %s on this cluster: run panelgatectl "
                           "register first",
                           k->act_stream);
        jsStreamConfig sc;
        const char *subjects[1] = {subject};
        jsStreamConfig_Init(&sc);
        sc.Name = k->act_stream;
        sc.Description = "panelgate activity log (docs/STORAGE.md)";
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.Replicas = cfg->js_replicas;
        jerr = 0;
        s = js_AddStream(&si, k->jc, &sc, NULL, &jerr);
        if (s != NATS_OK && jerr == JSStreamNameExistErr)
            s = js_GetStreamInfo(&si, k->jc, k->act_stream, NULL, &jerr);
    }
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "activity stream %s (JetStream error %d)",
                         k->act_stream, (int)jerr);
    char diff[512] = "";
    const jsStreamConfig *c = si->Config;
    if (c->Replicas != (int64_t)cfg->js_replicas)
        snprintf(diff, sizeof diff, "replicas: configured %" PRIu32 ", stream has %" PRId64 "; ",
                 cfg->js_replicas, c->Replicas);
    if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], subject) != 0)
        snprintf(diff + strlen(diff), sizeof diff - strlen(diff),
                 "subjects: configured %s, stream has %s%s; ", subject,
                 c->SubjectsLen > 0 ? c->Subjects[0] : "none", c->SubjectsLen > 1 ? ",..." : "");
    jsStreamInfo_Destroy(si);
    if (diff[0] != '\0') {
        diff[strlen(diff) - 2] = '\0';
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: activity stream %s: %s",
                       k->act_stream, diff);
    }
    return 0;
}

int gw_regkv_open(struct gw_regkv **out, struct gw_js *js, const struct gw_config *cfg,
                  bool create, char *err, size_t errlen)
{
    int rv = GW_EINTERNAL;
    struct gw_regkv *k = NULL;
    *out = NULL;
    if (js == NULL || cfg == NULL)
        return gw_fail(GW_EINVAL, err, errlen, "regkv: bad argument");
    if ((k = gw_calloc(1, sizeof *k)) == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "regkv: out of memory");
    k->js = js;
    k->jc = gw_js_ctx(js);
    k->wait_ms = cfg->js_connect_timeout_ms;
    if ((rv = copy_name(k->bucket, sizeof k->bucket, cfg->js_registry_bucket,
                        "registry_bucket", err, errlen)) != 0 ||
        (rv = copy_name(k->act_stream, sizeof k->act_stream, cfg->js_activity_stream,
                        "activity_stream", err, errlen)) != 0 ||
        (rv = copy_name(k->act_prefix, sizeof k->act_prefix, cfg->js_activity_prefix,
                        "activity_subject_prefix", err, errlen)) != 0 ||
        (rv = copy_name(k->frames_stream, sizeof k->frames_stream, cfg->js_stream, "stream",
                        err, errlen)) != 0 ||
        (rv = copy_name(k->frames_prefix, sizeof k->frames_prefix, cfg->js_subject_prefix,
                        "subject_prefix", err, errlen)) != 0)
        goto fail;
    snprintf(k->kv_stream, sizeof k->kv_stream, "KV_%s", k->bucket);
    snprintf(k->kv_prefix, sizeof k->kv_prefix, "$KV.%s.", k->bucket);

    natsStatus s = js_KeyValue(&k->kv, k->jc, k->bucket);
    if (s == NATS_NOT_FOUND) {
        if (!create) {
            rv = gw_fail(GW_ENOTFOUND, err, errlen,
                         "jetstream: no registry bucket %s on this cluster: run panelgatectl "
                         "register first",
                         k->bucket);
            goto fail;
        }
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = k->bucket;
        kc.Description = "panelgate registry (docs/STORAGE.md)";
        kc.History = 1;
        kc.StorageType = js_FileStorage;
        kc.Replicas = (int)cfg->js_replicas;
        s = js_CreateKeyValue(&k->kv, k->jc, &kc);
        if (s != NATS_OK) /* another creator, maybe: bind to what is there */
            s = js_KeyValue(&k->kv, k->jc, k->bucket);
    }
    if (s != NATS_OK) {
        rv = gw_regkv_nats_fail(s, err, errlen, "registry bucket %s", k->bucket);
        goto fail;
    }
    if ((rv = check_bucket(k, cfg, err, errlen)) != 0 ||
        (rv = ensure_schema(k, create, err, errlen)) != 0 ||
        (rv = ensure_activity(k, cfg, create, err, errlen)) != 0)
        goto fail;
    *out = k;
    return 0;
fail:
    gw_regkv_free(k);
    return rv;
}

void gw_regkv_free(struct gw_regkv *k)
{
    if (k == NULL)
        return;
    kvStore_Destroy(k->kv);
    gw_free(k);
}

/* ------------------------------------------------------------ register, rotate, revoke */

static int kind_ok(const char *kind)
{
    return kind != NULL && (strcmp(kind, "nimble") == 0 || strcmp(kind, "wowza") == 0);
}

/* The next server id: a compare-and-set on next_id (and the bucket). */
static int take_id(struct gw_regkv *k, int64_t *id, char *err, size_t errlen)
{
    for (int round = 0; round < CAS_TRIES; round++) {
        natsMsg *m = NULL;
        uint64_t last = 0;
        long long prev = 0;
        int rv = kv_snap(k, &last, err, errlen);
        if (rv != 0)
            return rv;
        rv = kv_read(k, "next_id", &m, err, errlen);
        if (rv == 0) {
            char *t = msg_text(m), *end = NULL;
            bool newer = natsMsg_GetSequence(m) > last;
            natsMsg_Destroy(m);
            if (t == NULL)
                return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
            prev = strtoll(t, &end, 10);
            bool ok = *t >= '0' && *t <= '9' && *end == '\0' && prev >= 0;
            gw_free(t);
            if (!ok)
                return gw_fail(GW_EINVAL, err, errlen,
                               "bucket %s: key next_id: not a decimal server id", k->bucket);
            if (newer)
                continue;
        } else if (rv != GW_ENOTFOUND) {
            return rv;
        }
        char val[32];
        snprintf(val, sizeof val, "%lld", prev + 1);
        rv = kv_cas(k, "next_id", val, last, err, errlen);
        if (rv < 0)
            return rv;
        if (rv == 0) {
            *id = prev + 1;
            return 0;
        }
    }
    return gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: next_id: too many concurrent writers",
                   k->bucket);
}

int gw_regkv_register(struct gw_regkv *k, const char *name, const char *kind,
                      const uint8_t spki[GW_SPKI_LEN], const char *actor, const char *details,
                      int64_t now, int64_t *id_out, char *err, size_t errlen)
{
    char hex[2 * GW_SPKI_LEN + 1], dbuf[160];
    struct gw_regdb_server s;
    int rv;

    if (id_out != NULL)
        *id_out = 0;
    if (k == NULL || spki == NULL || actor == NULL || *actor == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "register: missing argument");
    if (!gw_regdb_name_ok(name))
        return gw_fail(GW_EINVAL, err, errlen,
                       "bad server name '%.64s': 1..255 of A-Z a-z 0-9 . _ -, not starting "
                       "with . or -",
                       name ? name : "");
    if (!kind_ok(kind))
        return gw_fail(GW_EINVAL, err, errlen, "bad kind '%.32s': nimble or wowza",
                       kind ? kind : "");
    gw_spki_hex(spki, hex);
    if (details == NULL) {
        snprintf(dbuf, sizeof dbuf, "{\"kind\":\"%s\",\"spki_sha256\":\"%s\"}", kind, hex);
        details = dbuf;
    }
    /* the cheap refusals first, so a refused registration spends no id */
    rv = gw_regkv_get_server(k, name, &s, NULL, err, errlen);
    if (rv == 0)
        return gw_fail(GW_EEXIST, err, errlen, "server %s is already registered", name);
    if (rv != GW_ENOTFOUND)
        return rv;

    struct pin_idx p;
    rv = pin_taken(k, spki, &p, err, errlen);
    if (rv != 0 && rv != GW_ENOTFOUND)
        return rv;
    int64_t id = 0;
    if ((rv = take_id(k, &id, err, errlen)) != 0 ||
        (rv = claim_pin(k, spki, name, id, err, errlen)) != 0)
        return rv;
    memset(&s, 0, sizeof s);
    s.id = id;
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    snprintf(s.status, sizeof s.status, "active");
    s.created_at = now;
    memcpy(s.pins[0].spki, spki, GW_SPKI_LEN);
    s.pins[0].created_at = now;
    s.n_pins = s.n_pins_total = 1;
    for (int round = 0;; round++) {
        struct gw_regdb_server other;
        uint64_t last = 0;
        if (round == CAS_TRIES)
            rv = gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: too many concurrent writers",
                         k->bucket);
        else if ((rv = kv_snap(k, &last, err, errlen)) == 0 &&
                 (rv = gw_regkv_get_server(k, name, &other, NULL, err, errlen)) == 0)
            rv = gw_fail(GW_EEXIST, err, errlen, "server %s is already registered", name);
        else if (rv == GW_ENOTFOUND)
            rv = put_server(k, &s, last, err, errlen);
        if (rv == 0)
            break;
        if (rv < 0) {
            drop_pin(k, spki); /* ours: undo it */
            return rv;
        }
    }
    if ((rv = gw_regkv_activity_add(k, now, actor, "register", id, name, details, err,
                                    errlen)) != 0)
        return rv;
    if (id_out != NULL)
        *id_out = id;
    return 0;
}

int gw_regkv_rotate(struct gw_regkv *k, const char *name, const uint8_t spki[GW_SPKI_LEN],
                    int64_t overlap_s, const char *actor, int64_t now, char *err,
                    size_t errlen)
{
    struct gw_regdb_server s, dropped;
    uint64_t rev;
    int rv;
    int64_t not_after = now + overlap_s, limited = 0;

    if (k == NULL || spki == NULL || actor == NULL || *actor == '\0' || overlap_s < 0)
        return gw_fail(GW_EINVAL, err, errlen, "rotate: bad argument");
    if (!gw_regdb_name_ok(name))
        return gw_fail(GW_EINVAL, err, errlen, "bad server name '%.64s'", name ? name : "");
    if ((rv = gw_regkv_get_server(k, name, &s, &rev, err, errlen)) != 0 ||
        (rv = claim_pin(k, spki, name, s.id, err, errlen)) != 0)
        return rv;
    for (int round = 0;; round++) {
        uint64_t last = 0;
        if (round == CAS_TRIES) {
            rv = gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: server %s: too many writers",
                         k->bucket, name);
            goto undo;
        }
        if ((rv = kv_snap(k, &last, err, errlen)) != 0 ||
            (rv = gw_regkv_get_server(k, name, &s, &rev, err, errlen)) != 0)
            goto undo;
        if (rev > last)
            continue;
        if (holds(&s, spki)) {
            rv = gw_fail(GW_EPINNED, err, errlen,
                         "this public key is already pinned to server %s", name);
            goto out; /* the index is the record's: keep it */
        }
        limited = 0;
        memset(&dropped, 0, sizeof dropped);
        struct gw_regdb_pin keep[GW_REGKV_MAX_PINS + 1];
        unsigned n = 0;
        keep[n].created_at = now;
        keep[n].not_after = 0;
        memcpy(keep[n++].spki, spki, GW_SPKI_LEN);
        for (unsigned i = 0; i < s.n_pins; i++) {
            keep[n] = s.pins[i];
            if (keep[n].not_after == 0 || keep[n].not_after > not_after) {
                keep[n].not_after = not_after;
                limited++;
            }
            n++;
        }
        /* too many: the oldest expired ones go (the list is newest first) */
        for (unsigned i = n; n > GW_REGKV_MAX_PINS && i-- > 1;) {
            if (keep[i].not_after != 0 && keep[i].not_after < now) {
                dropped.pins[dropped.n_pins++] = keep[i];
                memmove(&keep[i], &keep[i + 1], (n - i - 1) * sizeof keep[0]);
                n--;
            }
        }
        if (n > GW_REGKV_MAX_PINS) {
            rv = gw_fail(GW_EINVAL, err, errlen,
                         "server %s: %u pins still valid: at most %d pins (wait until the "
                         "older ones expire)",
                         name, n - 1, GW_REGKV_MAX_PINS);
            goto undo;
        }
        memcpy(s.pins, keep, n * sizeof keep[0]);
        s.n_pins = s.n_pins_total = n;
        rv = put_server(k, &s, last, err, errlen);
        if (rv == 0)
            break;
        if (rv < 0)
            goto undo;
    }
    for (unsigned i = 0; i < dropped.n_pins; i++)
        drop_pin(k, dropped.pins[i].spki);

    char hex[2 * GW_SPKI_LEN + 1], d[256];
    gw_spki_hex(spki, hex);
    snprintf(d, sizeof d,
             "{\"spki_sha256\":\"%s\",\"overlap_s\":%" PRId64 ",\"old_pins_not_after\":%" PRId64
             ",\"old_pins_limited\":%" PRId64 "}",
             hex, overlap_s, not_after, limited);
    return gw_regkv_activity_add(k, now, actor, "rotate", s.id, name, d, err, errlen);
undo:
    drop_pin(k, spki);
out:
    return rv;
}

int gw_regkv_mark_revoked(struct gw_regkv *k, const char *name, struct gw_regdb_server *s,
                          bool *changed, char *err, size_t errlen)
{
    *changed = false;
    for (int round = 0; round < CAS_TRIES; round++) {
        uint64_t last = 0, rev = 0;
        int rv;
        if ((rv = kv_snap(k, &last, err, errlen)) != 0 ||
            (rv = gw_regkv_get_server(k, name, s, &rev, err, errlen)) != 0)
            return rv;
        if (rev > last)
            continue;
        if (strcmp(s->status, "revoked") == 0)
            return 0;
        snprintf(s->status, sizeof s->status, "revoked");
        rv = put_server(k, s, last, err, errlen);
        if (rv < 0)
            return rv;
        if (rv == 0) {
            *changed = true;
            return 0;
        }
    }
    return gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: server %s: too many writers", k->bucket,
                   name);
}

int gw_regkv_revoke(struct gw_regkv *k, const char *name, const char *actor, int64_t now,
                    char *err, size_t errlen)
{
    struct gw_regdb_server s;
    bool changed = false;
    int rv;
    if (k == NULL || actor == NULL || *actor == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "revoke: missing argument");
    if (!gw_regdb_name_ok(name))
        return gw_fail(GW_EINVAL, err, errlen, "bad server name '%.64s'", name ? name : "");
    if ((rv = gw_regkv_mark_revoked(k, name, &s, &changed, err, errlen)) != 0 || !changed)
        return rv; /* revoked already: nothing changes, no row */
    return gw_regkv_activity_add(k, now, actor, "revoke", s.id, name, "{\"status\":\"revoked\"}",
                                 err, errlen);
}

/* ------------------------------------------------------------ list, show */

int gw_regkv_show(struct gw_regkv *k, const char *name, struct gw_regdb_server *out, char *err,
                  size_t errlen)
{
    if (k == NULL || out == NULL || name == NULL)
        return GW_EINVAL;
    return gw_regkv_get_server(k, name, out, NULL, err, errlen);
}

/* Unescapes a server key's name ("=2e" -> "."); false when it is not one. */
static bool key_name(const char *key, char *name, size_t n)
{
    if (strncmp(key, "server.", 7) != 0)
        return false;
    size_t o = 0;
    for (const char *p = key + 7; *p; p++) {
        if (o + 1 >= n)
            return false;
        if (strncmp(p, "=2e", 3) == 0) {
            name[o++] = '.';
            p += 2;
        } else {
            name[o++] = *p;
        }
    }
    name[o] = '\0';
    return o > 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key of the bucket into *keys (the caller destroys it): 0, 1 when
 * the bucket has none, or the error. */
static int bucket_keys(struct gw_regkv *k, kvKeysList *keys, char *err, size_t errlen)
{
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.Timeout = k->wait_ms;
    natsStatus st = kvStore_Keys(keys, k->kv, &wo);
    if (st == NATS_NOT_FOUND)
        return 1;
    if (st != NATS_OK)
        return gw_regkv_nats_fail(st, err, errlen, "bucket %s: listing keys", k->bucket);
    return 0;
}

int gw_regkv_list(struct gw_regkv *k, gw_regdb_server_fn fn, void *ud, char *err,
                  size_t errlen)
{
    kvKeysList keys = {0};
    char **names = NULL;
    size_t n = 0;
    int rv = GW_ENOMEM;
    struct gw_regdb_server *s = NULL;
    if (k == NULL || fn == NULL)
        return GW_EINVAL;
    if ((rv = bucket_keys(k, &keys, err, errlen)) != 0)
        return rv > 0 ? 0 : rv;
    rv = GW_ENOMEM;
    if ((names = gw_calloc((size_t)keys.Count + 1, sizeof *names)) == NULL ||
        (s = gw_malloc(sizeof *s)) == NULL)
        goto out;
    for (int i = 0; i < keys.Count; i++) {
        char name[256];
        if (!key_name(keys.Keys[i], name, sizeof name))
            continue;
        if ((names[n] = gw_strdup(name)) == NULL)
            goto out;
        n++;
    }
    /* by name, as the SQLite list (BINARY collation: bytes) */
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        rv = gw_regkv_get_server(k, names[i], s, NULL, err, errlen);
        if (rv == GW_ENOTFOUND)
            continue; /* erased meanwhile */
        if (rv != 0)
            goto done;
        if (fn(s, ud) != 0)
            break;
    }
    rv = 0;
    goto done;
out:
    gw_seterr(err, errlen, "list: out of memory");
done:
    for (size_t i = 0; names != NULL && i < n; i++)
        gw_free(names[i]);
    gw_free(names);
    gw_free(s);
    kvKeysList_Destroy(&keys);
    return rv;
}

/* ------------------------------------------------------------ import */

/* Whether the record at server |s|'s key is exactly |s| (as encoded). */
static int same_record(struct gw_regkv *k, const struct gw_regdb_server *s, bool *same,
                       char *err, size_t errlen)
{
    struct gw_regdb_server cur;
    *same = false;
    int rv = gw_regkv_get_server(k, s->name, &cur, NULL, err, errlen);
    if (rv != 0)
        return rv;
    char *a = gw_regkv_rec_encode(&cur, NULL), *b = gw_regkv_rec_encode(s, NULL);
    if (a == NULL || b == NULL)
        rv = gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
    else
        *same = strcmp(a, b) == 0;
    gw_free(a);
    gw_free(b);
    return rv;
}

int gw_regkv_import_check(struct gw_regkv *k, gw_regkv_import_fn known, void *ud,
                          size_t *n_present, char *err, size_t errlen)
{
    kvKeysList keys = {0};
    natsMsg *m = NULL;
    int rv = 0;
    *n_present = 0;
    if (kv_read(k, "next_id", &m, err, errlen) == 0) {
        natsMsg_Destroy(m);
        return gw_fail(GW_EEXIST, err, errlen,
                       "bucket %s is not empty (it has handed out server ids): import-registry "
                       "fills a new bucket only",
                       k->bucket);
    }
    if ((rv = bucket_keys(k, &keys, err, errlen)) != 0)
        return rv > 0 ? 0 : rv;
    for (int i = 0; i < keys.Count && rv == 0; i++) {
        char name[256];
        const struct gw_regdb_server *want;
        bool same = false;
        if (!key_name(keys.Keys[i], name, sizeof name))
            continue; /* schema, pin.* */
        if ((want = known(name, ud)) == NULL)
            rv = gw_fail(GW_EEXIST, err, errlen,
                         "bucket %s is not empty: server %s is not in the file", k->bucket, name);
        else if ((rv = same_record(k, want, &same, err, errlen)) == 0 && !same)
            rv = gw_fail(GW_EEXIST, err, errlen,
                         "bucket %s is not empty: server %s differs from the file's", k->bucket,
                         name);
        else if (rv == 0)
            (*n_present)++;
        else if (rv == GW_ENOTFOUND)
            rv = 0; /* deleted meanwhile */
    }
    kvKeysList_Destroy(&keys);
    return rv;
}

int gw_regkv_import(struct gw_regkv *k, const struct gw_regdb_server *s, bool *written,
                    char *err, size_t errlen)
{
    struct gw_regdb_server rec = *s;
    unsigned claimed = 0;
    int rv;
    *written = false;
    if (k == NULL || s->id < 1 || !gw_regdb_name_ok(s->name))
        return gw_fail(GW_EINVAL, err, errlen, "import: bad server (id %lld, name '%.64s')",
                       (long long)s->id, s->name);
    if (!kind_ok(s->kind) || (strcmp(s->status, "active") != 0 && strcmp(s->status, "revoked") != 0))
        return gw_fail(GW_EINVAL, err, errlen, "import: server %s: bad kind or status", s->name);
    if (s->n_pins < 1 || s->n_pins > GW_REGKV_MAX_PINS)
        return gw_fail(GW_EINVAL, err, errlen, "import: server %s: %u pins (1..%d)", s->name,
                       s->n_pins, GW_REGKV_MAX_PINS);
    rec.n_pins_total = rec.n_pins;
    bool same = false;
    rv = same_record(k, &rec, &same, err, errlen);
    if (rv == 0)
        return same ? 0 : gw_fail(GW_EEXIST, err, errlen, "server %s is already registered",
                                  s->name);
    if (rv != GW_ENOTFOUND)
        return rv;
    /* the pins first, as a registration claims them (one left by an
     * import of this server that stopped half way is ours already) */
    for (; claimed < rec.n_pins; claimed++) {
        char key[4 + 2 * GW_SPKI_LEN + 1];
        struct pin_idx p;
        gw_regkv_pin_key(rec.pins[claimed].spki, key);
        rv = gw_regkv_get_pin(k, key, &p, err, errlen);
        if (rv == 0 && p.id == rec.id && strcmp(p.server, rec.name) == 0)
            continue;
        if ((rv != 0 && rv != GW_ENOTFOUND) ||
            (rv = claim_pin(k, rec.pins[claimed].spki, rec.name, rec.id, err, errlen)) != 0)
            goto undo;
    }
    for (int round = 0;; round++) {
        struct gw_regdb_server other;
        uint64_t last = 0;
        if (round == CAS_TRIES)
            rv = gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: too many concurrent writers",
                         k->bucket);
        else if ((rv = kv_snap(k, &last, err, errlen)) == 0 &&
                 (rv = gw_regkv_get_server(k, rec.name, &other, NULL, err, errlen)) == 0)
            rv = gw_fail(GW_EEXIST, err, errlen, "server %s is already registered", rec.name);
        else if (rv == GW_ENOTFOUND)
            rv = put_server(k, &rec, last, err, errlen);
        if (rv == 0)
            break;
        if (rv < 0)
            goto undo;
    }
    *written = true;
    return 0;
undo:
    for (unsigned i = 0; i < claimed; i++)
        drop_pin(k, rec.pins[i].spki);
    return rv;
}

int gw_regkv_import_next_id(struct gw_regkv *k, int64_t last_id, char *err, size_t errlen)
{
    char val[32];
    snprintf(val, sizeof val, "%lld", (long long)last_id);
    for (int round = 0; round < CAS_TRIES; round++) {
        natsMsg *m = NULL;
        uint64_t last = 0;
        int rv = kv_snap(k, &last, err, errlen);
        if (rv != 0)
            return rv;
        if ((rv = kv_read(k, "next_id", &m, err, errlen)) == 0) {
            natsMsg_Destroy(m);
            return gw_fail(GW_EEXIST, err, errlen,
                           "bucket %s: next_id was set meanwhile (a registration during the "
                           "import?)",
                           k->bucket);
        }
        if (rv != GW_ENOTFOUND)
            return rv;
        if ((rv = kv_cas(k, "next_id", val, last, err, errlen)) <= 0)
            return rv;
    }
    return gw_fail(GW_ESTORAGE, err, errlen, "bucket %s: next_id: too many concurrent writers",
                   k->bucket);
}
