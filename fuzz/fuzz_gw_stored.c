/*
 * fuzz_gw_stored.c - the stored form read back (gateway/policy/stored.c),
 * as panelgate-store reads every JetStream message: gw_stored_decode, then
 * gw_samples_build from what it gives, under the default limits and under
 * tight ones (a few connections, config nodes and names).
 *
 * Checks, on every accepted input: the frame has no connections; the
 * buckets are codes of two letters A-Z or "--", strictly ascending by
 * (cc, asn), XP ones without an asn, all their connections within
 * max_conns; gw_privacy_encode of the result is the input byte for byte;
 * the samples count the buckets' connections.  On a refused one: no frame,
 * no buckets, a reason.  Seeds: fuzz/gen_stored_seeds.sh (the stored bodies
 * test_gw_stored builds, plus the wire frames of fuzz/corpus/frame).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "alloc.h"
#include "privacy.h"
#include "samples.h"
#include "stored.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void one(const uint8_t *data, size_t size, const struct pa_frame_limits *lim)
{
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct gw_viewers v;
    char err[256] = "";

    pa_arena_init(&a, 64u << 20, NULL);
    int rv = gw_stored_decode(data, size, lim, &a, &f, &v, err, sizeof err);
    if (rv != 0) {
        check(rv == GW_EINVAL || rv == GW_ENOMEM);
        check(f == NULL && v.n == 0 && v.aggs == NULL && err[0] != '\0');
        pa_arena_cleanup(&a);
        return;
    }
    check(f != NULL && f->n_conns == 0 && f->conns == NULL && v.lookup_errors == 0);
    uint64_t total = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        const struct gw_viewer_agg *g = &v.aggs[i];
        check(g->cc[2] == '\0');
        check((g->cc[0] == '-' && g->cc[1] == '-') ||
              (g->cc[0] >= 'A' && g->cc[0] <= 'Z' && g->cc[1] >= 'A' && g->cc[1] <= 'Z'));
        check(strcmp(g->cc, GW_CC_PRIVATE) != 0 || g->asn == 0);
        check(g->conns >= 1);
        if (i > 0) {
            int c = memcmp(v.aggs[i - 1].cc, g->cc, 2);
            check(c < 0 || (c == 0 && v.aggs[i - 1].asn < g->asn));
        }
        total += g->conns;
    }
    check(total <= lim->max_conns);

    struct pa_buf again;
    pa_buf_init(&again, NULL);
    check(gw_privacy_encode(f, &v, &again) == 0);
    check(again.len == size && memcmp(again.data, data, size) == 0);
    pa_buf_cleanup(&again);

    struct gw_samples *s = NULL;
    if (gw_samples_build(f, &v, &s) == 0) {
        check(s->n_viewers == v.n && s->conns == total);
        gw_free(s);
    }
    pa_arena_cleanup(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pa_frame_limits lim;

    pa_frame_limits_default(&lim);
    one(data, size, &lim);

    lim.max_conns = 4;
    lim.max_config_nodes = 8;
    lim.max_name_len = 16;
    lim.max_streams = 4;
    lim.max_unknown_keys = 0;
    lim.max_depth = PA_LIMIT_MIN_DEPTH;
    one(data, size, &lim);
    return 0;
}
