/*
 * test_frame_random.c - seeded property tests of the frame codec.
 *
 *   valid:    random valid frames (counts, UTF-8 names up to 255 bytes,
 *             config trees, uint64 edges) round-trip exactly: struct equal,
 *             canonical bytes equal to testutil's writer, re-encode equal.
 *   mutation: valid encodings with flipped bits, inserted/deleted bytes,
 *             truncations, splices and poked length fields.  The decoder
 *             returns 0 or a PA_FE_* code with a message; whatever it
 *             accepts re-encodes and decodes to an equal frame.
 *
 * PANELGATE_SEED=<n> replays a run (the seed is printed); PANELGATE_QUICK=1
 * runs a tenth of the iterations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <panelproto/frame.h>
#include "testutil.h"

#define DEFAULT_SEED 0x70616e656c676174ull /* "panelgat" */
#define N_VALID 2000u
#define N_MUTATIONS 20000u
#define N_BASES 48u

static uint64_t g_seed;

static uint32_t iterations(uint32_t n)
{
    return tu_quick() ? n / 10 : n;
}

static int setup(void **state)
{
    (void)state;
    g_seed = tu_seed(DEFAULT_SEED);
    print_message("seed 0x%llx (set PANELGATE_SEED to replay)\n", (unsigned long long)g_seed);
    return 0;
}

/* ---- (a) valid frames -------------------------------------------------- */

static void test_random_valid_frames_roundtrip(void **state)
{
    (void)state;
    struct tu_rng rng = {g_seed};
    struct pa_arena a, d;
    struct pa_buf b1, b2;
    uint32_t n = iterations(N_VALID);
    size_t total = 0;

    pa_arena_init(&a, 0, NULL);
    pa_arena_init(&d, 0, NULL);
    pa_buf_init(&b1, NULL);
    pa_buf_init(&b2, NULL);
    for (uint32_t i = 0; i < n; i++) {
        struct tu_pool pool = {0};
        struct pa_frame *f, *back = NULL;
        struct pa_frame_error err;
        char why[256];
        size_t len;

        pa_arena_reset(&a);
        pa_arena_reset(&d);
        b1.len = b2.len = 0;
        f = tu_frame_random(&a, &rng, i % 4 == 0);

        assert_int_equal(pa_frame_encode(f, &b1), 0);
        struct tu_node tree = tu_frame_tree(&pool, f);
        uint8_t *want = tu_bytes(&pool, &tree, &len);
        if (len != b1.len || memcmp(want, b1.data, len) != 0)
            fail_msg("frame %u (seed 0x%llx): encoding not canonical (%zu vs %zu bytes)", i,
                     (unsigned long long)g_seed, b1.len, len);
        tu_pool_free(&pool);

        int rv = pa_frame_decode(b1.data, b1.len, NULL, &d, &back, &err);
        if (rv != 0)
            fail_msg("frame %u (seed 0x%llx): valid frame rejected: %s at \"%s\": %s", i,
                     (unsigned long long)g_seed, pa_frame_errname(rv), err.path, err.msg);
        if (!tu_frame_eq(f, back, 0, why, sizeof why))
            fail_msg("frame %u (seed 0x%llx): decoded frame differs: %s", i,
                     (unsigned long long)g_seed, why);
        assert_int_equal(pa_frame_encode(back, &b2), 0);
        if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
            fail_msg("frame %u (seed 0x%llx): re-encoding differs", i,
                     (unsigned long long)g_seed);
        total += b1.len;
    }
    print_message("%u valid frames, %zu bytes\n", n, total);
    pa_buf_cleanup(&b1);
    pa_buf_cleanup(&b2);
    pa_arena_cleanup(&a);
    pa_arena_cleanup(&d);
}

/* ---- (b) mutations ------------------------------------------------------- */

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static void bytes_reserve(struct bytes *x, size_t cap)
{
    if (cap <= x->cap)
        return;
    uint8_t *p = realloc(x->p, cap);
    assert_non_null(p);
    x->p = p;
    x->cap = cap;
}

static void bytes_insert(struct bytes *x, size_t at, const uint8_t *src, size_t n)
{
    bytes_reserve(x, x->len + n);
    memmove(x->p + at + n, x->p + at, x->len - at);
    memcpy(x->p + at, src, n);
    x->len += n;
}

static void bytes_delete(struct bytes *x, size_t at, size_t n)
{
    if (at + n > x->len)
        n = x->len - at;
    memmove(x->p + at, x->p + at + n, x->len - at - n);
    x->len -= n;
}

/* Headers that claim lengths/counts, and bytes the decoder must refuse. */
static const struct {
    const char *p;
    size_t len;
} pokes[] = {
    {"\xdb\xff\xff\xff\xff", 5}, {"\xda\xff\xff", 3}, {"\xd9\xff", 2},
    {"\xc6\xff\xff\xff\xff", 5}, {"\xc4\x10", 2},     {"\xdd\xff\xff\xff\xff", 5},
    {"\xdc\x00\x10", 3},         {"\xdf\x00\x01\x00\x00", 5}, {"\xde\x00\x02", 3},
    {"\x9f", 1},                 {"\x8f", 1},         {"\xbf", 1},
    {"\xc1", 1},                 {"\xd4\x01\x00", 3}, {"\xd6\xff\x00\x00\x00\x01", 6},
    {"\xc0", 1},                 {"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9},
    {"\xca\x7f\x80\x00\x00", 5}, {"\xff", 1},         {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9},
    {"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9},      {"\x00", 1},
    {"\xa2\xc0\x80", 3},         {"\xa1\x00", 2},     {"\x80", 1}, {"\x90", 1},
};

static void mutate_once(struct tu_rng *r, struct bytes *x, const struct bytes *bases,
                        uint32_t nbases)
{
    size_t at = x->len ? tu_rng_below(r, (uint32_t)x->len) : 0;
    switch (tu_rng_below(r, 9)) {
    case 0: /* bit flip */
        if (x->len)
            x->p[at] ^= (uint8_t)(1u << tu_rng_below(r, 8));
        break;
    case 1: /* random byte */
        if (x->len)
            x->p[at] = (uint8_t)tu_rng_next(r);
        break;
    case 2: { /* insert random bytes */
        uint8_t tmp[8];
        uint32_t n = 1 + tu_rng_below(r, 8);
        for (uint32_t i = 0; i < n; i++)
            tmp[i] = (uint8_t)tu_rng_next(r);
        bytes_insert(x, at, tmp, n);
        break;
    }
    case 3: /* delete a range */
        bytes_delete(x, at, 1 + tu_rng_below(r, 16));
        break;
    case 4: /* truncate */
        x->len = at;
        break;
    case 5: { /* splice a slice of another valid encoding */
        const struct bytes *o = &bases[tu_rng_below(r, nbases)];
        size_t from = tu_rng_below(r, (uint32_t)o->len);
        size_t n = 1 + tu_rng_below(r, 64);
        if (from + n > o->len)
            n = o->len - from;
        if (tu_rng_one_in(r, 2))
            bytes_delete(x, at, n);
        bytes_insert(x, at, o->p + from, n);
        break;
    }
    case 6: { /* overwrite with a length/count header or a bad byte */
        size_t k = tu_rng_below(r, (uint32_t)TU_ARRAY_LEN(pokes));
        if (tu_rng_one_in(r, 2)) {
            bytes_insert(x, at, (const uint8_t *)pokes[k].p, pokes[k].len);
        } else {
            bytes_reserve(x, at + pokes[k].len);
            if (at + pokes[k].len > x->len)
                x->len = at + pokes[k].len;
            memcpy(x->p + at, pokes[k].p, pokes[k].len);
        }
        break;
    }
    case 7: /* nudge a length byte: +-1 on a fixstr/fixarray/fixmap head */
        for (size_t i = 0; i < 64 && x->len; i++) {
            size_t j = (at + i) % x->len;
            uint8_t c = x->p[j];
            if ((c & 0xe0) == 0xa0 || (c & 0xf0) == 0x80 || (c & 0xf0) == 0x90) {
                x->p[j] = tu_rng_one_in(r, 2) ? (uint8_t)(c + 1) : (uint8_t)(c - 1);
                break;
            }
        }
        break;
    default: { /* duplicate a slice of itself (repeated keys, extra items) */
        size_t n = 1 + tu_rng_below(r, 32);
        if (at + n > x->len)
            n = x->len - at;
        uint8_t tmp[32];
        memcpy(tmp, x->p + at, n);
        bytes_insert(x, tu_rng_below(r, (uint32_t)x->len + 1), tmp, n);
        break;
    }
    }
}

static void test_random_mutations(void **state)
{
    (void)state;
    struct tu_rng rng = {g_seed ^ 0x6d75746174696f6eull};
    struct bytes bases[N_BASES];
    struct pa_arena a;
    struct pa_buf b;
    uint32_t n = iterations(N_MUTATIONS);
    uint32_t accepted = 0, by_code[32] = {0};

    /* valid encodings to start from: random frames of both sizes, the two
     * realistic styles and the minimal frame */
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&b, NULL);
    for (uint32_t i = 0; i < N_BASES; i++) {
        struct pa_frame *f;
        pa_arena_reset(&a);
        if (i == 0)
            f = tu_frame_nimble(&a, 12, 1);
        else if (i == 1)
            f = tu_frame_wowza(&a, 12, 1);
        else if (i == 2)
            f = tu_frame_min(&a);
        else
            f = tu_frame_random(&a, &rng, i % 8 == 0);
        b.len = 0;
        assert_int_equal(pa_frame_encode(f, &b), 0);
        bases[i].p = malloc(b.len);
        assert_non_null(bases[i].p);
        memcpy(bases[i].p, b.data, b.len);
        bases[i].len = bases[i].cap = b.len;
    }

    struct tu_alloc t;
    struct pa_arena d, d2;
    struct pa_buf e1, e2;
    struct bytes x = {0};
    struct pa_frame_limits tight;
    pa_frame_limits_default(&tight);
    tight.max_depth = PA_LIMIT_MIN_DEPTH;
    tight.max_arena_bytes = 16 * 1024;
    tight.max_conns = 8;
    tight.max_unknown_keys = 2;
    tight.max_config_nodes = 16;
    tu_alloc_init(&t);
    pa_arena_init(&d, 0, &t.pa);
    pa_arena_init(&d2, 0, &t.pa);
    pa_buf_init(&e1, NULL);
    pa_buf_init(&e2, NULL);

    for (uint32_t i = 0; i < n; i++) {
        const struct bytes *base = &bases[tu_rng_below(&rng, N_BASES)];
        bytes_reserve(&x, base->len);
        memcpy(x.p, base->p, base->len);
        x.len = base->len;
        uint32_t rounds = 1 + tu_rng_below(&rng, tu_rng_one_in(&rng, 4) ? 8 : 2);
        for (uint32_t k = 0; k < rounds; k++)
            mutate_once(&rng, &x, bases, N_BASES);

        const struct pa_frame_limits *lim = tu_rng_one_in(&rng, 4) ? &tight : NULL;
        struct pa_frame *out = NULL, *again = NULL;
        struct pa_frame_error err;
        char why[256];
        pa_arena_reset(&d);
        pa_arena_reset(&d2);
        int rv = pa_frame_decode(x.p, x.len, lim, &d, &out, &err);
        if (rv != 0) {
            if (rv >= 0 || rv <= PA_FE_ARG || rv == PA_FE_NOMEM || err.code != rv ||
                out != NULL || err.msg[0] == '\0' ||
                memchr(err.path, '\0', sizeof err.path) == NULL || err.offset > x.len) {
                char hex[200];
                fail_msg("mutation %u (seed 0x%llx): bad failure %d \"%s\" \"%.96s\" out=%p; "
                         "input %s",
                         i, (unsigned long long)g_seed, rv, err.path, err.msg, (void *)out,
                         tu_hex(x.p, x.len, hex, sizeof hex));
            }
            by_code[-rv]++;
            continue;
        }
        accepted++;
        e1.len = e2.len = 0;
        assert_int_equal(pa_frame_encode(out, &e1), 0);
        rv = pa_frame_decode(e1.data, e1.len, lim, &d2, &again, &err);
        if (rv != 0)
            fail_msg("mutation %u (seed 0x%llx): accepted frame re-encodes into a rejected one: "
                     "%s at \"%s\": %s",
                     i, (unsigned long long)g_seed, pa_frame_errname(rv), err.path, err.msg);
        if (!tu_frame_eq(out, again, TU_EQ_IGNORE_UNKNOWN, why, sizeof why))
            fail_msg("mutation %u (seed 0x%llx): re-decoded frame differs: %s", i,
                     (unsigned long long)g_seed, why);
        assert_int_equal(again->n_unknown, 0);
        assert_int_equal(pa_frame_encode(again, &e2), 0);
        assert_int_equal(e1.len, e2.len);
        assert_memory_equal(e1.data, e2.data, e1.len);
    }

    print_message("%u mutations: %u accepted", n, accepted);
    for (int c = 1; c < 32; c++)
        if (by_code[c])
            print_message(", %s %u", pa_frame_errname(-c), by_code[c]);
    print_message("\n");

    pa_arena_cleanup(&d);
    pa_arena_cleanup(&d2);
    assert_int_equal(t.live, 0);
    pa_buf_cleanup(&e1);
    pa_buf_cleanup(&e2);
    pa_buf_cleanup(&b);
    pa_arena_cleanup(&a);
    free(x.p);
    for (uint32_t i = 0; i < N_BASES; i++)
        free(bases[i].p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_valid_frames_roundtrip),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
