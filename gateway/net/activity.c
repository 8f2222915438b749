/*
 * activity.c - aggregation of refused handshakes for the activity log.
 */
#include "activity.h"

#include <stdio.h>
#include <string.h>

#include <panelproto/arena.h>
#include "alloc.h"
#include "err.h"
#include "problem.h"

void gw_refusals_init(struct gw_refusals *r)
{
    memset(r, 0, sizeof *r);
}

static bool same(const struct gw_refusal *s, const char *reason, const uint8_t *spki)
{
    if (strcmp(s->reason, reason) != 0 || s->have_spki != (spki != NULL))
        return false;
    return !spki || memcmp(s->spki, spki, GW_SPKI_LEN) == 0;
}

void gw_refusals_note(struct gw_refusals *r, const char *reason, const uint8_t *spki,
                      int64_t server_id, const char *peer, int64_t now_ms)
{
    struct gw_refusal *s = NULL;

    for (unsigned i = 0; i < r->n; i++) {
        if (same(&r->slot[i], reason, spki)) {
            s = &r->slot[i];
            break;
        }
    }
    if (!s) {
        if (r->n == GW_REFUSAL_SLOTS) {
            if (r->overflow++ == 0)
                r->overflow_first_ms = now_ms;
            return;
        }
        s = &r->slot[r->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->reason, sizeof s->reason, "%s", reason);
        if (spki) {
            s->have_spki = true;
            memcpy(s->spki, spki, GW_SPKI_LEN);
        }
        s->first_ms = now_ms;
    }
    s->count++;
    s->last_ms = now_ms;
    if (server_id)
        s->server_id = server_id;
    snprintf(s->peer, sizeof s->peer, "%s", peer ? peer : "");
}

static int emit_one(const struct gw_refusal *s, gw_activity_emit_fn emit, void *ud)
{
    char hex[2 * GW_SPKI_LEN + 1] = "";
    char num[96];
    struct pa_buf b;
    int rv = GW_ENOMEM;

    pa_buf_init(&b, &gw_pa_mem);
    if (s->have_spki)
        gw_spki_hex(s->spki, hex);
    snprintf(num, sizeof num, "\",\"count\":%llu,\"first\":%lld,\"last\":%lld,\"peer\":\"",
             (unsigned long long)s->count, (long long)(s->first_ms / 1000),
             (long long)(s->last_ms / 1000));
    if (pa_buf_append(&b, "{\"reason\":\"", 11) || gw_json_escape(&b, s->reason) ||
        pa_buf_append(&b, "\",\"spki_sha256\":\"", 17) || gw_json_escape(&b, hex) ||
        pa_buf_append(&b, num, strlen(num)) || gw_json_escape(&b, s->peer) ||
        pa_buf_append(&b, "\"}", 3)) /* with the NUL: details is a C string */
        goto out;
    rv = emit(ud, "handshake_refused", s->server_id, (const char *)b.data, s->last_ms);
out:
    pa_buf_cleanup(&b);
    return rv;
}

unsigned gw_refusals_flush(struct gw_refusals *r, gw_activity_emit_fn emit, void *ud)
{
    unsigned rows = 0;

    for (unsigned i = 0; i < r->n; i++)
        if (emit_one(&r->slot[i], emit, ud) == 0)
            rows++;
    if (r->overflow) {
        struct gw_refusal o;
        memset(&o, 0, sizeof o);
        snprintf(o.reason, sizeof o.reason, "other");
        o.count = r->overflow;
        o.first_ms = r->overflow_first_ms;
        o.last_ms = r->overflow_first_ms;
        if (emit_one(&o, emit, ud) == 0)
            rows++;
    }
    r->n = 0;
    r->overflow = 0;
    return rows;
}

/* ---- throttled connections ------------------------------------------------ */

void gw_throttles_init(struct gw_throttles *t)
{
    memset(t, 0, sizeof *t);
}

void gw_throttles_note(struct gw_throttles *t, const char *addr, int64_t now_ms)
{
    struct gw_throttle *s = NULL;

    for (unsigned i = 0; i < t->n; i++) {
        if (strcmp(t->slot[i].addr, addr) == 0) {
            s = &t->slot[i];
            break;
        }
    }
    if (!s) {
        if (t->n == GW_THROTTLE_SLOTS) {
            if (t->overflow++ == 0)
                t->overflow_first_ms = now_ms;
            t->overflow_last_ms = now_ms;
            return;
        }
        s = &t->slot[t->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->addr, sizeof s->addr, "%s", addr);
        s->first_ms = now_ms;
    }
    s->count++;
    s->last_ms = now_ms;
}

static int emit_throttle(const struct gw_throttle *s, gw_activity_emit_fn emit, void *ud)
{
    char num[96];
    struct pa_buf b;
    int rv = GW_ENOMEM;

    pa_buf_init(&b, &gw_pa_mem);
    snprintf(num, sizeof num, "\",\"count\":%llu,\"first\":%lld,\"last\":%lld}",
             (unsigned long long)s->count, (long long)(s->first_ms / 1000),
             (long long)(s->last_ms / 1000));
    if (pa_buf_append(&b, "{\"addr\":\"", 9) || gw_json_escape(&b, s->addr) ||
        pa_buf_append(&b, num, strlen(num) + 1)) /* with the NUL */
        goto out;
    rv = emit(ud, "handshake_throttled", 0, (const char *)b.data, s->last_ms);
out:
    pa_buf_cleanup(&b);
    return rv;
}

unsigned gw_throttles_flush(struct gw_throttles *t, gw_activity_emit_fn emit, void *ud)
{
    unsigned rows = 0;

    for (unsigned i = 0; i < t->n; i++)
        if (emit_throttle(&t->slot[i], emit, ud) == 0)
            rows++;
    if (t->overflow) {
        struct gw_throttle o;
        memset(&o, 0, sizeof o);
        snprintf(o.addr, sizeof o.addr, "other");
        o.count = t->overflow;
        o.first_ms = t->overflow_first_ms;
        o.last_ms = t->overflow_last_ms;
        if (emit_throttle(&o, emit, ud) == 0)
            rows++;
    }
    t->n = 0;
    t->overflow = 0;
    return rows;
}
