/*
 * js_msg.c - one message of the frames stream, read against the contract
 * (js_msg.h).
 */
#include "js_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "js.h"
#include "stored.h"

/* A decimal ASCII integer, strictly: digits only, no sign, no leading
 * zero (but "0"), no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return GW_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return GW_EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return GW_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The one value of header |key|, or NULL (absent, or given twice). */
static const char *header1(natsMsg *m, const char *key)
{
    const char **vals = NULL;
    int n = 0;
    const char *v = NULL;
    if (natsMsgHeader_Values(m, key, &vals, &n) == NATS_OK && n == 1)
        v = vals[0];
    free((void *)vals);
    return v;
}

static int header_u64(natsMsg *m, const char *key, uint64_t max, uint64_t *out, char *why,
                      size_t whylen)
{
    const char *v = header1(m, key);
    if (v == NULL)
        return gw_fail(GW_EINVAL, why, whylen, "header %s: missing or repeated", key);
    if (parse_u64(v, out) != 0 || *out > max)
        return gw_fail(GW_EINVAL, why, whylen, "header %s: not a decimal integer in range", key);
    return 0;
}

natsStatus gw_js_msg_make(const char *prefix, int64_t server_id, uint64_t seq, uint64_t ts_ms,
                          int64_t received_ms, const uint8_t *body, size_t body_len,
                          natsMsg **out)
{
    char subject[256], id[48], sid[24], sq[24], ts[24], rx[24];
    natsMsg *m = NULL;
    natsStatus s;

    *out = NULL;
    if (snprintf(subject, sizeof subject, "%s.%" PRId64, prefix, server_id) >=
        (int)sizeof subject)
        return NATS_INVALID_ARG;
    snprintf(id, sizeof id, "%" PRId64 ".%" PRIu64, server_id, seq);
    snprintf(sid, sizeof sid, "%" PRId64, server_id);
    snprintf(sq, sizeof sq, "%" PRIu64, seq);
    snprintf(ts, sizeof ts, "%" PRIu64, ts_ms);
    snprintf(rx, sizeof rx, "%" PRId64, received_ms);
    const char *const headers[][2] = {
        {"Nats-Msg-Id", id},         {"Panelgate-Format", GW_JS_FORMAT},
        {"Panelgate-Server-Id", sid}, {"Panelgate-Seq", sq},
        {"Panelgate-Ts-Ms", ts},      {"Panelgate-Received-Ms", rx},
    };
    s = natsMsg_Create(&m, subject, NULL, (const char *)body, (int)body_len);
    for (size_t i = 0; s == NATS_OK && i < sizeof headers / sizeof headers[0]; i++)
        s = natsMsgHeader_Set(m, headers[i][0], headers[i][1]);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return s;
    }
    *out = m;
    return NATS_OK;
}

int gw_js_msg_read(const struct gw_config *cfg, natsMsg *m, struct pa_arena *a,
                   struct gw_js_msg *out, char *why, size_t whylen)
{
    uint64_t server = 0, seq = 0, ts = 0, received = 0;
    char want[128];
    int rv;

    memset(out, 0, sizeof *out);
    const char *format = header1(m, "Panelgate-Format");
    if (format == NULL || strcmp(format, GW_JS_FORMAT) != 0)
        return gw_fail(GW_EINVAL, why, whylen, "header Panelgate-Format: not %s", GW_JS_FORMAT);
    if ((rv = header_u64(m, "Panelgate-Server-Id", INT64_MAX, &server, why, whylen)) != 0 ||
        (rv = header_u64(m, "Panelgate-Seq", UINT64_MAX, &seq, why, whylen)) != 0 ||
        (rv = header_u64(m, "Panelgate-Ts-Ms", UINT64_MAX, &ts, why, whylen)) != 0 ||
        (rv = header_u64(m, "Panelgate-Received-Ms", INT64_MAX, &received, why, whylen)) != 0)
        return rv;
    if (server == 0)
        return gw_fail(GW_EINVAL, why, whylen, "header Panelgate-Server-Id: 0");
    const char *id = header1(m, "Nats-Msg-Id");
    snprintf(want, sizeof want, "%" PRIu64 ".%" PRIu64, server, seq);
    if (id == NULL || strcmp(id, want) != 0)
        return gw_fail(GW_EINVAL, why, whylen,
                       "header Nats-Msg-Id: not <Panelgate-Server-Id>.<Panelgate-Seq>");
    if (gw_js_subject(cfg, (int64_t)server, want, sizeof want) != 0 ||
        strcmp(natsMsg_GetSubject(m), want) != 0)
        return gw_fail(GW_EINVAL, why, whylen,
                       "subject: not <subject_prefix>.<Panelgate-Server-Id>");

    const uint8_t *body = (const uint8_t *)natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    struct pa_frame *f = NULL;
    rv = gw_stored_decode(body, len > 0 ? (size_t)len : 0, &cfg->frame, a, &f, &out->viewers,
                          why, whylen);
    if (rv != 0)
        return rv;
    if (f->seq != seq || f->ts_ms != ts)
        return gw_fail(GW_EINVAL, why, whylen,
                       "body: seq or ts not the headers' Panelgate-Seq, Panelgate-Ts-Ms");
    out->server_id = (int64_t)server;
    out->seq = seq;
    out->ts_ms = ts;
    out->received_ms = (int64_t)received;
    out->body = body;
    out->body_len = len > 0 ? (size_t)len : 0;
    out->frame = f;
    return 0;
}

uint64_t gw_js_msg_stream_seq(natsMsg *m)
{
    jsMsgMetaData *meta = NULL;
    uint64_t seq = 0;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK && meta != NULL)
        seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return seq;
}
