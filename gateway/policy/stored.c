/*
 * stored.c - the stored form read back (stored.h).
 *
 * Three passes over bytes that are at most gw_stored_max_bytes long:
 * pa_frame_decode (the frame, "viewers" skipped as an unknown key), a walk
 * of the top-level map that reads "viewers" into buckets, and
 * gw_privacy_encode of the result compared with the input.
 */
#include "stored.h"

#include <string.h>

#include <panelproto/mpread.h>

#include "alloc.h"
#include "err.h"

/* The widest encodings gw_privacy_encode writes for one bucket:
 * fixmap(5), "cc" + fixstr(2), "asn" + uint32, "conns"/"in"/"out" +
 * uint64. */
#define BUCKET_MAX_BYTES (1 + (3 + 3) + (4 + 5) + (6 + 9) + (3 + 9) + (4 + 9))
/* "viewers" (fixstr) and an array32 header */
#define VIEWERS_HEAD_BYTES (8 + 5)
/* A float32 on the wire (cpu, config values) is float64 in the stored
 * form: 4 more bytes each. */
#define FLOAT_GROWTH 4

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

size_t gw_stored_max_bytes(const struct pa_frame_limits *lim)
{
    struct pa_frame_limits d;
    if (lim == NULL) {
        pa_frame_limits_default(&d);
        lim = &d;
    }
    size_t n = lim->max_frame_bytes;
    n = sat_add(n, sat_mul(FLOAT_GROWTH, sat_add(lim->max_config_nodes, 1)));
    n = sat_add(n, VIEWERS_HEAD_BYTES);
    return sat_add(n, sat_mul(BUCKET_MAX_BYTES, lim->max_conns));
}

static bool key_is(const struct mp_tok *k, const char *s)
{
    size_t n = strlen(s);
    return k->kind == MP_STR && k->v.s.len == n && memcmp(k->v.s.p, s, n) == 0;
}

static bool cc_ok(const uint8_t *p, uint32_t len)
{
    if (len != 2)
        return false;
    if (p[0] == '-' && p[1] == '-')
        return true;
    return p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z';
}

static int agg_cmp(const struct gw_viewer_agg *x, const struct gw_viewer_agg *y)
{
    int c = memcmp(x->cc, y->cc, 2);
    if (c != 0)
        return c;
    return x->asn < y->asn ? -1 : x->asn > y->asn;
}

/* One bucket map at the cursor into |g|.  0 or GW_EINVAL (why in err). */
static int read_bucket(struct mp_reader *r, uint32_t i, struct gw_viewer_agg *g, char *err,
                       size_t errlen)
{
    static const char *const names[5] = {"cc", "asn", "conns", "in", "out"};
    struct mp_tok t, k;
    unsigned seen = 0;

    if (mp_next(r, &t) != 0 || t.kind != MP_MAP || t.v.n != 5)
        return gw_fail(GW_EINVAL, err, errlen, "viewers[%u]: not a map of 5 keys", i);
    for (uint32_t j = 0; j < 5; j++) {
        unsigned f = 0;
        if (mp_next(r, &k) != 0)
            return gw_fail(GW_EINVAL, err, errlen, "viewers[%u]: truncated", i);
        while (f < 5 && !key_is(&k, names[f]))
            f++;
        if (f == 5 || (seen & (1u << f)))
            return gw_fail(GW_EINVAL, err, errlen, "viewers[%u]: unknown or duplicate key", i);
        seen |= 1u << f;
        if (mp_next(r, &t) != 0)
            return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].%s: truncated", i, names[f]);
        if (f == 0) {
            if (t.kind != MP_STR || !cc_ok(t.v.s.p, t.v.s.len))
                return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].cc: not a bucket code", i);
            memcpy(g->cc, t.v.s.p, 2);
            g->cc[2] = '\0';
            continue;
        }
        if (t.kind != MP_UINT)
            return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].%s: not an unsigned integer", i,
                           names[f]);
        if (f == 1) {
            if (t.v.u > UINT32_MAX)
                return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].asn: out of range", i);
            g->asn = (uint32_t)t.v.u;
        } else if (f == 2) {
            g->conns = t.v.u;
        } else if (f == 3) {
            g->bytes_in = t.v.u;
        } else {
            g->bytes_out = t.v.u;
        }
    }
    if (g->conns == 0)
        return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].conns: zero", i);
    if (memcmp(g->cc, GW_CC_PRIVATE, 2) == 0 && g->asn != 0)
        return gw_fail(GW_EINVAL, err, errlen, "viewers[%u].asn: not 0 in bucket XP", i);
    return 0;
}

/* The "viewers" array at the cursor into |v| (buckets in |a|). */
static int read_viewers(struct mp_reader *r, const struct pa_frame_limits *lim,
                        struct pa_arena *a, struct gw_viewers *v, char *err, size_t errlen)
{
    struct mp_tok t;
    uint64_t total = 0;

    if (mp_next(r, &t) != 0 || t.kind != MP_ARRAY)
        return gw_fail(GW_EINVAL, err, errlen, "viewers: not an array");
    if (t.v.n == 0)
        return gw_fail(GW_EINVAL, err, errlen, "viewers: empty (the stored form omits it)");
    if (t.v.n > lim->max_conns)
        return gw_fail(GW_EINVAL, err, errlen, "viewers: more than %u buckets", lim->max_conns);
    struct gw_viewer_agg *g = pa_arena_calloc(a, t.v.n, sizeof *g);
    if (g == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "viewers: out of memory");
    for (uint32_t i = 0; i < t.v.n; i++) {
        int rv = read_bucket(r, i, &g[i], err, errlen);
        if (rv != 0)
            return rv;
        if (i > 0 && agg_cmp(&g[i - 1], &g[i]) >= 0)
            return gw_fail(GW_EINVAL, err, errlen,
                           "viewers[%u]: not after the bucket before it in (cc, asn) order", i);
        if (g[i].conns > lim->max_conns - total)
            return gw_fail(GW_EINVAL, err, errlen, "viewers: more than %u connections",
                           lim->max_conns);
        total += g[i].conns;
    }
    v->aggs = g;
    v->n = t.v.n;
    return 0;
}

/* Walks the top-level map of a body pa_frame_decode accepted: "viewers"
 * into |v|, *has_conns when a "conns" key is there. */
static int read_top(const uint8_t *buf, size_t len, const struct pa_frame_limits *lim,
                    struct pa_arena *a, struct gw_viewers *v, bool *has_conns, char *err,
                    size_t errlen)
{
    struct mp_reader r;
    struct mp_tok t, k;

    mp_reader_init(&r, buf, len);
    if (mp_next(&r, &t) != 0 || t.kind != MP_MAP)
        return gw_fail(GW_EINTERNAL, err, errlen, "the decoded body is not a map");
    for (uint32_t i = 0; i < t.v.n; i++) {
        if (mp_next(&r, &k) != 0 || k.kind != MP_STR)
            return gw_fail(GW_EINTERNAL, err, errlen, "the decoded body has a bad key");
        if (key_is(&k, "viewers")) {
            int rv = read_viewers(&r, lim, a, v, err, errlen);
            if (rv != 0)
                return rv;
            continue;
        }
        *has_conns |= key_is(&k, "conns");
        if (mp_skip(&r, 1, lim->max_depth) != 0)
            return gw_fail(GW_EINTERNAL, err, errlen, "the decoded body has a bad value");
    }
    return 0;
}

int gw_stored_decode(const uint8_t *buf, size_t len, const struct pa_frame_limits *lim,
                     struct pa_arena *a, struct pa_frame **out, struct gw_viewers *v, char *err,
                     size_t errlen)
{
    struct pa_frame_limits l;
    struct pa_frame_error fe;
    struct pa_frame *f = NULL;
    struct pa_buf again;
    bool has_conns = false;
    int rv = GW_EINTERNAL;

    *out = NULL;
    memset(v, 0, sizeof *v);
    if (lim == NULL)
        pa_frame_limits_default(&l);
    else
        l = *lim;
    size_t max = gw_stored_max_bytes(&l);
    l.max_frame_bytes = max;
    if (l.max_unknown_keys < 1)
        l.max_unknown_keys = 1;
    pa_buf_init(&again, &gw_pa_mem);

    int code = pa_frame_decode(buf, len, &l, a, &f, &fe);
    if (code != 0) {
        char why[sizeof fe.path + sizeof fe.msg + 4];
        pa_frame_error_format(&fe, why, sizeof why);
        rv = gw_fail(code == PA_FE_NOMEM ? GW_ENOMEM : GW_EINVAL, err, errlen,
                     "not a stored frame: %s (%s)", why, pa_frame_errname(code));
        goto out;
    }
    if ((rv = read_top(buf, len, &l, a, v, &has_conns, err, errlen)) != 0)
        goto out;
    rv = GW_EINVAL;
    if (has_conns || f->n_conns != 0) {
        gw_seterr(err, errlen, "not a stored frame: conns: present (the stored form has none)");
        goto out;
    }
    if (f->n_unknown != (v->n > 0 ? 1u : 0u)) {
        gw_seterr(err, errlen, "not a stored frame: %u unknown keys",
                  f->n_unknown - (v->n > 0 ? 1u : 0u));
        goto out;
    }
    /* the canonical form, byte for byte */
    if ((rv = gw_privacy_encode(f, v, &again)) != 0) {
        gw_seterr(err, errlen, "stored frame: re-encoding: %s", gw_strerror(rv));
        goto out;
    }
    if (again.len != len || memcmp(again.data, buf, len) != 0) {
        rv = gw_fail(GW_EINVAL, err, errlen,
                     "not a stored frame: not the canonical stored form (%zu bytes, the "
                     "canonical encoding of what they hold has %zu)",
                     len, again.len);
        goto out;
    }
    *out = f;
    rv = 0;
out:
    if (rv != 0)
        memset(v, 0, sizeof *v);
    pa_buf_cleanup(&again);
    return rv;
}
