/*
 * regkv_stream.c - the JetStream registry's streams (regkv.h): the activity
 * stream's rows (one message each, on <activity_subject_prefix>.<server
 * id>, read back through an ordered consumer), and erase and purge, which
 * purge the frames stream and the activity stream as docs/STORAGE.md says.
 */
#include "regkv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "alloc.h"
#include "regkv_int.h"

/* ------------------------------------------------------------ activity */

/* One row, as gw_regkv_activity_add; with |msg_id| (Nats-Msg-Id) a second
 * publish of it within the stream's duplicate window is dropped by the
 * stream (a resumed erase: its row once). */
static int add_row(struct gw_regkv *k, int64_t at, const char *actor, const char *action,
                   int64_t server_id, const char *server, const char *details,
                   const char *msg_id, char *err, size_t errlen)
{
    char subject[GW_REGKV_NAME_MAX + 24];
    int rv = GW_ENOMEM;
    char *txt = NULL;
    if (k == NULL || actor == NULL || *actor == '\0' || action == NULL || *action == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "activity: actor and action are required");
    cJSON *d = NULL;
    if (details != NULL && (!cJSON_IsObject(d = cJSON_Parse(details)))) {
        cJSON_Delete(d);
        return gw_fail(GW_EINVAL, err, errlen, "activity: details: not a JSON object");
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddNumberToObject(o, "at", (double)at) == NULL ||
        cJSON_AddStringToObject(o, "actor", actor) == NULL ||
        cJSON_AddStringToObject(o, "action", action) == NULL ||
        (server_id > 0 ? cJSON_AddNumberToObject(o, "server_id", (double)server_id)
                       : cJSON_AddNullToObject(o, "server_id")) == NULL ||
        (server_id > 0 && server != NULL ? cJSON_AddStringToObject(o, "server", server)
                                          : cJSON_AddNullToObject(o, "server")) == NULL) {
        cJSON_Delete(d);
        goto out;
    }
    if (d == NULL ? cJSON_AddNullToObject(o, "details") == NULL
                  : !cJSON_AddItemToObject(o, "details", d)) {
        cJSON_Delete(d);
        goto out;
    }
    if ((txt = cJSON_PrintUnformatted(o)) == NULL)
        goto out;
    snprintf(subject, sizeof subject, "%s.%" PRId64, k->act_prefix, server_id > 0 ? server_id : 0);
    jsErrCode jerr = 0;
    jsPubAck *pa = NULL;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    natsStatus s = js_Publish(&pa, k->jc, subject, txt, (int)strlen(txt), &po, &jerr);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
        rv = gw_regkv_nats_fail(s, err, errlen, "activity stream %s: adding a row (JetStream error %d)",
                       k->act_stream, (int)jerr);
        goto out;
    }
    rv = 0;
out:
    if (rv == GW_ENOMEM)
        gw_seterr(err, errlen, "activity: out of memory");
    cJSON_free(txt);
    cJSON_Delete(o);
    return rv;
}

int gw_regkv_activity_add(struct gw_regkv *k, int64_t at, const char *actor,
                          const char *action, int64_t server_id, const char *server,
                          const char *details, char *err, size_t errlen)
{
    return add_row(k, at, actor, action, server_id, server, details, NULL, err, errlen);
}

struct act_row {
    uint64_t seq;
    int64_t at;
    char *actor, *action, *server, *details;
};

struct act_rows {
    struct act_row *v;
    size_t n, cap;
};

static void rows_free(struct act_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_free(r->v[i].actor);
        gw_free(r->v[i].action);
        gw_free(r->v[i].server);
        gw_free(r->v[i].details);
    }
    gw_free(r->v);
}

static int cmp_rows(const void *a, const void *b)
{
    const struct act_row *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static char *dup_str(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring ? gw_strdup(v->valuestring) : NULL;
}

/* One message of the activity stream into |r| when the filter keeps it.
 * GW_EINVAL (naming the sequence) when it breaks the layout. */
static int take_row(struct gw_regkv *k, natsMsg *m, uint64_t seq,
                    const struct gw_activity_filter *f, struct act_rows *r, char *err,
                    size_t errlen)
{
    int rv = GW_ENOMEM;
    cJSON *o = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(o, "actor");
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(o, "action");
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(o, "server");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(o, "details");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(at) || !cJSON_IsString(actor) ||
        !cJSON_IsString(action) || !(cJSON_IsNull(server) || cJSON_IsString(server)) ||
        !(cJSON_IsNull(details) || cJSON_IsObject(details))) {
        rv = gw_fail(GW_EINVAL, err, errlen,
                     "activity stream %s: message %" PRIu64 ": not an activity row", k->act_stream,
                     seq);
        goto out;
    }
    int64_t t = (int64_t)at->valuedouble;
    if ((f->action != NULL && strcmp(f->action, action->valuestring) != 0) ||
        (f->since != 0 && t < f->since) || (f->until != 0 && t > f->until)) {
        rv = 0;
        goto out;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        struct act_row *nv = gw_realloc(r->v, cap * sizeof *nv);
        if (nv == NULL)
            goto out;
        r->v = nv;
        r->cap = cap;
    }
    struct act_row *row = &r->v[r->n];
    memset(row, 0, sizeof *row);
    row->seq = seq;
    row->at = t;
    row->actor = dup_str(actor);
    row->action = dup_str(action);
    row->server = dup_str(server);
    row->details = cJSON_IsObject(details) ? cJSON_PrintUnformatted(details) : NULL;
    r->n++; /* freed with the others, even half made */
    if (row->actor == NULL || row->action == NULL || (cJSON_IsString(server) && !row->server) ||
        (cJSON_IsObject(details) && !row->details))
        goto out;
    rv = 0;
out:
    if (rv == GW_ENOMEM)
        gw_seterr(err, errlen, "activity: out of memory");
    cJSON_Delete(o);
    return rv;
}

/* Messages of |stream| on |subject| now (a count from the stream's state). */
static int count_subject(struct gw_regkv *k, const char *stream, const char *subject,
                         uint64_t *n, uint64_t *last_seq, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    *n = 0;
    if (last_seq != NULL)
        *last_seq = 0;
    natsStatus s = js_GetStreamInfo(&si, k->jc, stream, &o, &jerr);
    if (gw_regkv_not_found(s, jerr))
        return GW_ENOTFOUND;
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "stream %s: info (JetStream error %d)", stream,
                         (int)jerr);
    if (si->State.Subjects != NULL)
        for (int i = 0; i < si->State.Subjects->Count; i++)
            *n += si->State.Subjects->List[i].Msgs;
    if (last_seq != NULL)
        *last_seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* Every row on |subject|, in stream order, through an ordered consumer. */
static int read_rows(struct gw_regkv *k, const char *subject, const struct gw_activity_filter *f,
                     struct act_rows *r, char *err, size_t errlen)
{
    uint64_t n = 0;
    int rv = count_subject(k, k->act_stream, subject, &n, NULL, err, errlen);
    if (rv != 0 || n == 0)
        return rv == GW_ENOTFOUND ? 0 : rv;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = k->act_stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&sub, k->jc, subject, NULL, &so, &jerr);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "activity stream %s: reading (JetStream error %d)",
                         k->act_stream, (int)jerr);
    for (;;) {
        natsMsg *m = NULL;
        jsMsgMetaData *md = NULL;
        s = natsSubscription_NextMsg(&m, sub, k->wait_ms);
        if (s != NATS_OK) {
            rv = gw_regkv_nats_fail(s, err, errlen, "activity stream %s: reading", k->act_stream);
            break;
        }
        if ((s = natsMsg_GetMetaData(&md, m)) != NATS_OK) {
            natsMsg_Destroy(m);
            rv = gw_regkv_nats_fail(s, err, errlen, "activity stream %s: a message without metadata",
                           k->act_stream);
            break;
        }
        uint64_t pending = md->NumPending;
        rv = take_row(k, m, md->Sequence.Stream, f, r, err, errlen);
        jsMsgMetaData_Destroy(md);
        natsMsg_Destroy(m);
        if (rv != 0 || pending == 0)
            break;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return rv;
}

int gw_regkv_activity_query(struct gw_regkv *k, const struct gw_activity_filter *f,
                            gw_activity_fn fn, void *ud, char *err, size_t errlen)
{
    struct gw_activity_filter none = {0};
    struct act_rows rows = {0};
    char subject[GW_REGKV_NAME_MAX + 24];
    int rv;
    if (k == NULL || fn == NULL)
        return GW_EINVAL;
    if (f == NULL)
        f = &none;
    if (f->server != NULL) {
        struct gw_regdb_server s;
        rv = gw_regkv_get_server(k, f->server, &s, NULL, err, errlen);
        if (rv == GW_ENOTFOUND)
            return 0; /* as the SQLite join: no such server, no rows */
        if (rv != 0)
            return rv;
        snprintf(subject, sizeof subject, "%s.%" PRId64, k->act_prefix, s.id);
    } else {
        snprintf(subject, sizeof subject, "%s.>", k->act_prefix);
    }
    if ((rv = read_rows(k, subject, f, &rows, err, errlen)) != 0)
        goto out;
    qsort(rows.v, rows.n, sizeof *rows.v, cmp_rows);
    size_t first = f->limit && rows.n > f->limit ? rows.n - f->limit : 0;
    for (size_t i = first; i < rows.n; i++) {
        const struct act_row *a = &rows.v[i];
        struct gw_activity_row row = {.id = (int64_t)a->seq, .at = a->at, .actor = a->actor,
                                      .action = a->action, .server = a->server,
                                      .details = a->details};
        if (fn(&row, ud) != 0)
            break;
    }
    rv = 0;
out:
    rows_free(&rows);
    return rv;
}

/* ------------------------------------------------------------ erase, purge */

/* Purges |subject| (NULL: the whole stream; |below| > 0: below that
 * sequence) of |stream|; *n gets the messages that went.  A missing
 * stream purges nothing. */
static int purge(struct gw_regkv *k, const char *stream, const char *subject, uint64_t below,
                 int64_t *n, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t msgs0, last0;
    *n = 0;
    natsStatus s = js_GetStreamInfo(&si, k->jc, stream, NULL, &jerr);
    if (gw_regkv_not_found(s, jerr))
        return 0;
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "stream %s: info (JetStream error %d)", stream,
                         (int)jerr);
    msgs0 = si->State.Msgs;
    last0 = si->State.LastSeq;
    jsStreamInfo_Destroy(si);

    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Purge.Subject = subject;
    o.Stream.Purge.Sequence = below;
    jerr = 0;
    s = js_PurgeStream(k->jc, stream, &o, &jerr);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "stream %s: purging %s (JetStream error %d)", stream,
                         subject ? subject : "", (int)jerr);
    /* the count: what left, allowing for what arrived meanwhile (libnats
     * does not hand back the server's count) */
    si = NULL;
    jerr = 0;
    s = js_GetStreamInfo(&si, k->jc, stream, NULL, &jerr);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "stream %s: info (JetStream error %d)", stream,
                         (int)jerr);
    int64_t gone = (int64_t)msgs0 - (int64_t)si->State.Msgs +
                   (int64_t)(si->State.LastSeq - last0);
    jsStreamInfo_Destroy(si);
    *n = gone > 0 ? gone : 0;
    return 0;
}

/* The steps are in an order that a failed erase can be run again to the
 * end (docs/STORAGE.md, "erase"): the record is revoked first (every
 * gateway cuts the server; a re-run finds it there), then the purges,
 * then the erase row (its Nats-Msg-Id "erase.<id>": once in the stream's
 * duplicate window), and last the pins and the key, so that no step the
 * stores depend on comes after the key is gone. */
int gw_regkv_erase(struct gw_regkv *k, const char *name, const char *actor, int64_t now,
                   int64_t *n_frames, int64_t *n_activity, char *err, size_t errlen)
{
    struct gw_regdb_server s;
    char key[GW_REGKV_KEY_MAX], subject[GW_REGKV_NAME_MAX + 24], d[600], msg_id[40];
    int64_t frames = 0, acts = 0;
    int rv;
    if (n_frames != NULL)
        *n_frames = 0;
    if (n_activity != NULL)
        *n_activity = 0;
    if (k == NULL || actor == NULL || *actor == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "erase: missing argument");
    if (!gw_regdb_name_ok(name))
        return gw_fail(GW_EINVAL, err, errlen, "bad server name '%.64s'", name ? name : "");
    bool revoked_now = false;
    if ((rv = gw_regkv_mark_revoked(k, name, &s, &revoked_now, err, errlen)) != 0)
        return rv;
    snprintf(subject, sizeof subject, "%s.%" PRId64, k->frames_prefix, s.id);
    if ((rv = purge(k, k->frames_stream, subject, 0, &frames, err, errlen)) != 0)
        return rv;
    snprintf(subject, sizeof subject, "%s.%" PRId64, k->act_prefix, s.id);
    if ((rv = purge(k, k->act_stream, subject, 0, &acts, err, errlen)) != 0)
        return rv;
    snprintf(d, sizeof d,
             "{\"server\":\"%s\",\"server_id\":%" PRId64 ",\"frames\":%" PRId64
             ",\"pins\":%u,\"activity_rows\":%" PRId64 "}",
             name, s.id, frames, s.n_pins, acts);
    snprintf(msg_id, sizeof msg_id, "erase.%" PRId64, s.id);
    if ((rv = add_row(k, now, actor, "erase", 0, NULL, d, msg_id, err, errlen)) != 0)
        return rv;
    for (unsigned i = 0; i < s.n_pins; i++) {
        char pk[4 + 2 * GW_SPKI_LEN + 1];
        struct pin_idx p;
        gw_regkv_pin_key(s.pins[i].spki, pk);
        rv = gw_regkv_get_pin(k, pk, &p, err, errlen);
        if (rv == 0 && p.id == s.id)
            rv = gw_regkv_kv_delete(k, pk, true, err, errlen);
        if (rv != 0 && rv != GW_ENOTFOUND)
            return rv;
    }
    gw_regkv_server_key(name, key, sizeof key);
    if ((rv = gw_regkv_kv_delete(k, key, true, err, errlen)) != 0)
        return rv;
    if (n_frames != NULL)
        *n_frames = frames;
    if (n_activity != NULL)
        *n_activity = acts;
    return 0;
}

/* The stream sequence of the first message of |stream| stored at or after
 * |ms|; 0 when there is none. */
static int first_at(struct gw_regkv *k, const char *stream, const char *subject, int64_t ms,
                    uint64_t *seq, char *err, size_t errlen)
{
    uint64_t n = 0, last = 0;
    *seq = 0;
    int rv = count_subject(k, stream, subject, &n, &last, err, errlen);
    if (rv != 0 || n == 0)
        return rv == GW_ENOTFOUND ? 0 : rv;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartTime;
    so.Config.OptStartTime = ms * 1000000;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    jsMsgMetaData *md = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&sub, k->jc, subject, NULL, &so, &jerr);
    if (s != NATS_OK)
        return gw_regkv_nats_fail(s, err, errlen, "stream %s: reading (JetStream error %d)", stream,
                         (int)jerr);
    /* a message stored after the cutoff comes at once; none is a timeout */
    s = natsSubscription_NextMsg(&m, sub, k->wait_ms);
    if (s == NATS_OK && natsMsg_GetMetaData(&md, m) == NATS_OK)
        *seq = md->Sequence.Stream;
    else if (s != NATS_TIMEOUT)
        rv = gw_regkv_nats_fail(s, err, errlen, "stream %s: reading", stream);
    else
        *seq = last + 1; /* all older: everything goes */
    jsMsgMetaData_Destroy(md);
    natsMsg_Destroy(m);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return rv;
}

int gw_regkv_purge(struct gw_regkv *k, int64_t cutoff_ms, const char *actor, int64_t now,
                   int64_t *n, char *err, size_t errlen)
{
    char subject[GW_REGKV_NAME_MAX + 4], d[128];
    uint64_t below = 0;
    int64_t frames = 0;
    int rv;
    if (n != NULL)
        *n = 0;
    if (k == NULL || actor == NULL || *actor == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "purge: missing argument");
    snprintf(subject, sizeof subject, "%s.>", k->frames_prefix);
    if ((rv = first_at(k, k->frames_stream, subject, cutoff_ms, &below, err, errlen)) != 0)
        return rv;
    if (below > 1 && (rv = purge(k, k->frames_stream, NULL, below, &frames, err, errlen)) != 0)
        return rv;
    snprintf(d, sizeof d, "{\"received_before_ms\":%" PRId64 ",\"frames\":%" PRId64 "}",
             cutoff_ms, frames);
    if ((rv = gw_regkv_activity_add(k, now, actor, "purge", 0, NULL, d, err, errlen)) != 0)
        return rv;
    if (n != NULL)
        *n = frames;
    return 0;
}
