/*
 * test_arena.c - struct pa_arena and struct pa_buf (proto/include/panelproto/arena.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <panelproto/arena.h>
#include "testutil.h"

#define ALIGN_ANY _Alignof(max_align_t)

/* ---- pa_arena ---------------------------------------------------------- */

static void test_alloc_alignment_and_disjoint(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63,
                                   100, 255, 1000, 4095, 4096, 4097, 10000, 70000};
    struct pa_arena a;
    unsigned char *p[TU_ARRAY_LEN(sizes) * 3];
    size_t n[TU_ARRAY_LEN(sizes) * 3];
    size_t k = 0;

    pa_arena_init(&a, 0, NULL);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < TU_ARRAY_LEN(sizes); i++, k++) {
            n[k] = sizes[i];
            p[k] = pa_arena_alloc(&a, sizes[i]);
            assert_non_null(p[k]);
            assert_int_equal((uintptr_t)p[k] % ALIGN_ANY, 0);
            memset(p[k], (int)(k & 0xff), n[k]);
        }
    }
    /* every block still holds its own pattern: nothing overlaps */
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < n[i]; j++)
            assert_int_equal(p[i][j], (unsigned char)(i & 0xff));
    assert_true(a.used >= 3 * 86000u);
    assert_true(a.held >= a.used);
    pa_arena_cleanup(&a);
}

static void test_alloc_zero_is_unique(void **state)
{
    (void)state;
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    void *x = pa_arena_alloc(&a, 0);
    void *y = pa_arena_alloc(&a, 0);
    assert_non_null(x);
    assert_non_null(y);
    assert_ptr_not_equal(x, y);
    assert_int_equal((uintptr_t)x % ALIGN_ANY, 0);
    void *z = pa_arena_calloc(&a, 0, 16);
    assert_non_null(z);
    pa_arena_cleanup(&a);
}

static void test_cap_enforced(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 64, 4096, 5000, 8192, 20000, 100000};
    for (size_t c = 0; c < TU_ARRAY_LEN(caps); c++) {
        struct tu_alloc t;
        struct pa_arena a;
        tu_alloc_init(&t);
        pa_arena_init(&a, caps[c], &t.pa);
        size_t got = 0;
        for (int i = 0; i < 100000; i++) {
            void *p = pa_arena_alloc(&a, 24 + (size_t)(i % 50));
            assert_true(a.held <= caps[c]);
            assert_true(t.live_bytes <= caps[c]);
            if (p == NULL)
                break;
            got += 24 + (size_t)(i % 50);
        }
        /* the cap bounds what was handed out, and something fails */
        assert_true(got <= caps[c]);
        assert_null(pa_arena_alloc(&a, caps[c] + 1));
        assert_true(a.held <= caps[c]);
        pa_arena_cleanup(&a);
        assert_int_equal(t.live, 0);
        assert_int_equal(t.live_bytes, 0);
    }
}

static void test_cap_single_large_request(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    pa_arena_init(&a, 1u << 20, &t.pa);
    assert_null(pa_arena_alloc(&a, 2u << 20));
    /* the refused request was never passed to the allocator */
    assert_true(t.max_request <= 1u << 20);
    assert_non_null(pa_arena_alloc(&a, 1000));
    assert_null(pa_arena_alloc(&a, (1u << 20) - 100));
    pa_arena_cleanup(&a);
    assert_int_equal(t.live, 0);
}

static void test_huge_requests(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    pa_arena_init(&a, 0, &t.pa);
    assert_null(pa_arena_alloc(&a, SIZE_MAX));
    assert_null(pa_arena_alloc(&a, SIZE_MAX - 15));
    assert_null(pa_arena_alloc(&a, SIZE_MAX / 2 + 1));
    assert_null(pa_arena_strndup(&a, "x", SIZE_MAX));
    assert_int_equal(t.live, 0);
    pa_arena_cleanup(&a);
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    static const struct {
        size_t count, size;
    } bad[] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4)},
        {SIZE_MAX / 24 + 1, 24},
        {SIZE_MAX, SIZE_MAX},
    };
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    pa_arena_init(&a, 0, &t.pa);
    for (size_t i = 0; i < TU_ARRAY_LEN(bad); i++)
        assert_null(pa_arena_calloc(&a, bad[i].count, bad[i].size));
    /* nothing absurd reached the allocator */
    assert_true(t.max_request < ((size_t)1 << 32));
    pa_arena_cleanup(&a);
    assert_int_equal(t.live, 0);
}

static void test_calloc_zeroes_reused_memory(void **state)
{
    (void)state;
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    unsigned char *p = pa_arena_alloc(&a, 512);
    assert_non_null(p);
    memset(p, 0xa5, 512);
    pa_arena_reset(&a);
    unsigned char *q = pa_arena_calloc(&a, 64, 8);
    assert_non_null(q);
    for (size_t i = 0; i < 512; i++)
        assert_int_equal(q[i], 0);
    pa_arena_cleanup(&a);
}

static void test_strndup(void **state)
{
    (void)state;
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    char *s = pa_arena_strndup(&a, "hello, world", 5);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    char *e = pa_arena_strndup(&a, "", 0);
    assert_non_null(e);
    assert_string_equal(e, "");
    const char bytes[] = {'a', '\0', 'b'};
    char *z = pa_arena_strndup(&a, bytes, 3);
    assert_non_null(z);
    assert_memory_equal(z, bytes, 3);
    assert_int_equal(z[3], '\0');
    pa_arena_cleanup(&a);
}

static void test_reset_reuses_newest_chunk(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    pa_arena_init(&a, 0, &t.pa);

    void *first = pa_arena_alloc(&a, 100);
    assert_non_null(first);
    long calls = t.calls;
    pa_arena_reset(&a);
    assert_int_equal(a.used, 0);
    void *again = pa_arena_alloc(&a, 100);
    assert_ptr_equal(first, again);
    assert_int_equal(t.calls, calls); /* no new chunk */

    /* many chunks: reset keeps exactly one, cleanup none */
    for (int i = 0; i < 2000; i++)
        assert_non_null(pa_arena_alloc(&a, 300));
    assert_true(t.live > 1);
    pa_arena_reset(&a);
    assert_int_equal(t.live, 1);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.held, t.live_bytes);

    /* a reset arena serves the same workload again with fewer chunks */
    calls = t.calls;
    for (int i = 0; i < 100; i++)
        assert_non_null(pa_arena_alloc(&a, 300));
    assert_int_equal(t.calls, calls);

    pa_arena_cleanup(&a);
    assert_int_equal(t.live, 0);
    assert_int_equal(t.live_bytes, 0);
    assert_int_equal(a.held, 0);
}

static void test_reset_and_cleanup_edge_cases(void **state)
{
    (void)state;
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    pa_arena_reset(&a); /* empty */
    pa_arena_cleanup(&a);
    pa_arena_cleanup(&a); /* twice */
    pa_arena_cleanup(NULL);
    assert_non_null(pa_arena_alloc(&a, 8)); /* usable after cleanup */
    pa_arena_cleanup(&a);
}

/* An allocator whose free looks into each block before it goes: issue 11
 * (privacy), a decoded frame's arena held viewer addresses that reached
 * the heap's free lists unwiped when a frame was refused. */
static const unsigned char MARK[16] = {0x0a, 0x7b, 0x01, 0xc9, 0x20, 0x01, 0x0d, 0xb8,
                                       0x7e, 0x57, 0x5c, 0xa1, 0xab, 0x1e, 0xc0, 0xde};

static bool has_mark(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i + sizeof MARK <= n; i++)
        if (b[i] == MARK[0] && memcmp(b + i, MARK, sizeof MARK) == 0)
            return true;
    return false;
}

struct peek_alloc {
    struct tu_alloc t;
    struct pa_allocator pa;
    long freed, freed_marked;
};

static void *peek_malloc(size_t n, void *ud)
{
    struct peek_alloc *p = ud;
    return p->t.pa.malloc(n, &p->t);
}

static void *peek_realloc(void *q, size_t n, void *ud)
{
    struct peek_alloc *p = ud;
    return p->t.pa.realloc(q, n, &p->t);
}

static void peek_free(void *q, void *ud)
{
    struct peek_alloc *p = ud;
    if (q) {
        size_t n;
        memcpy(&n, (unsigned char *)q - TU_HDR, sizeof n); /* tu_alloc's header */
        p->freed++;
        if (has_mark(q, n))
            p->freed_marked++;
    }
    p->t.pa.free(q, &p->t);
}

static void peek_init(struct peek_alloc *p)
{
    memset(p, 0, sizeof *p);
    tu_alloc_init(&p->t);
    p->pa = (struct pa_allocator){peek_malloc, peek_realloc, peek_free, p};
}

static void fill_marked(struct pa_arena *a, int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        unsigned char *b = pa_arena_alloc(a, size);
        assert_non_null(b);
        for (size_t j = 0; j + sizeof MARK <= size; j += sizeof MARK)
            memcpy(b + j, MARK, sizeof MARK);
    }
}

static void test_reset_and_cleanup_wipe(void **state)
{
    (void)state;
    struct peek_alloc p;
    struct pa_arena a;
    peek_init(&p);
    pa_arena_init(&a, 0, &p.pa);

    /* reset: the chunks it frees are wiped, and so is the one it keeps */
    fill_marked(&a, 200, 112);
    assert_true(p.t.live > 1);
    pa_arena_reset(&a);
    assert_true(p.freed > 0);
    assert_int_equal(p.freed_marked, 0);
    unsigned char *again = pa_arena_alloc(&a, 4000);
    assert_non_null(again);
    assert_false(has_mark(again, 4000));

    /* cleanup: every chunk wiped before it is freed */
    fill_marked(&a, 300, 48);
    long freed = p.freed;
    pa_arena_cleanup(&a);
    assert_int_equal(p.t.live, 0);
    assert_true(p.freed > freed);
    assert_int_equal(p.freed_marked, 0);
}

static void test_held_tracks_allocator(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    pa_arena_init(&a, 0, &t.pa);
    for (int i = 0; i < 500; i++) {
        assert_non_null(pa_arena_alloc(&a, (size_t)(i * 37 % 3000)));
        assert_int_equal(a.held, t.live_bytes);
    }
    pa_arena_cleanup(&a);
}

static void test_allocation_failure_injection(void **state)
{
    (void)state;
    /* fail the Nth chunk allocation: that request fails, the arena stays
     * consistent and usable, and nothing leaks */
    for (long n = 1; n <= 6; n++) {
        struct tu_alloc t;
        struct pa_arena a;
        tu_alloc_init(&t);
        t.fail_at = n;
        pa_arena_init(&a, 0, &t.pa);
        int nulls = 0;
        for (int i = 0; i < 400; i++) {
            unsigned char *p = pa_arena_alloc(&a, 1000);
            if (p == NULL) {
                nulls++;
                continue;
            }
            memset(p, 1, 1000);
        }
        assert_int_equal(nulls, 1);
        assert_int_equal(t.failures, 1);
        assert_int_equal(a.held, t.live_bytes);
        pa_arena_reset(&a);
        assert_int_equal(t.live, 1);
        pa_arena_cleanup(&a);
        assert_int_equal(t.live, 0);
    }

    /* an allocator that always fails */
    struct tu_alloc t;
    struct pa_arena a;
    tu_alloc_init(&t);
    t.fail_from = 1;
    pa_arena_init(&a, 0, &t.pa);
    assert_null(pa_arena_alloc(&a, 1));
    assert_null(pa_arena_calloc(&a, 4, 4));
    assert_null(pa_arena_strndup(&a, "abc", 3));
    assert_int_equal(a.held, 0);
    assert_int_equal(a.used, 0);
    pa_arena_reset(&a);
    pa_arena_cleanup(&a);
    assert_int_equal(t.live, 0);
}

/* ---- pa_buf ------------------------------------------------------------- */

static void test_buf_append(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_buf b;
    tu_alloc_init(&t);
    pa_buf_init(&b, &t.pa);
    assert_int_equal(b.len, 0);

    unsigned char chunk[97];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)i;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(pa_buf_append(&b, chunk, sizeof chunk), 0);
        assert_true(b.cap >= b.len);
    }
    assert_int_equal(b.len, 97000);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], (unsigned char)(i % 97));
    /* geometric growth: a handful of reallocs, not one per append */
    assert_true(t.calls < 40);
    assert_int_equal(pa_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 97000);
    pa_buf_cleanup(&b);
    assert_int_equal(t.live, 0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    pa_buf_cleanup(&b); /* twice */
    pa_buf_cleanup(NULL);
}

static void test_buf_reserve(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_buf b;
    tu_alloc_init(&t);
    pa_buf_init(&b, &t.pa);
    assert_int_equal(pa_buf_reserve(&b, 10000), 0);
    assert_true(b.cap >= 10000);
    long calls = t.calls;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(pa_buf_append(&b, "x", 1), 0);
    assert_int_equal(t.calls, calls); /* reserved room was enough */
    assert_int_equal(pa_buf_reserve(&b, 0), 0);
    pa_buf_cleanup(&b);
    assert_int_equal(t.live, 0);
}

static void test_buf_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    struct tu_alloc t;
    struct pa_buf b;
    tu_alloc_init(&t);
    pa_buf_init(&b, &t.pa);
    assert_int_equal(pa_buf_append(&b, "hello", 5), 0);

    uint8_t *data = b.data;
    size_t len = b.len, cap = b.cap;
    unsigned char big[4096];
    memset(big, 'z', sizeof big);

    t.fail_from = t.calls + 1;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pa_buf_append(&b, big, sizeof big), -1);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.len, len);
        assert_int_equal(b.cap, cap);
        assert_memory_equal(b.data, "hello", 5);
        assert_int_equal(pa_buf_reserve(&b, cap * 4), -1);
        assert_int_equal(b.len, len);
        assert_int_equal(b.cap, cap);
    }
    /* overflowing sizes fail without calling the allocator */
    long calls = t.calls;
    assert_int_equal(pa_buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(pa_buf_reserve(&b, SIZE_MAX - 2), -1);
    assert_int_equal(t.calls, calls);
    assert_int_equal(b.len, len);

    /* once the allocator recovers, appends work and keep the old bytes */
    t.fail_from = 0;
    assert_int_equal(pa_buf_append(&b, big, sizeof big), 0);
    assert_int_equal(b.len, len + sizeof big);
    assert_memory_equal(b.data, "hello", 5);
    pa_buf_cleanup(&b);
    assert_int_equal(t.live, 0);

    /* first allocation fails on an empty buffer */
    tu_alloc_init(&t);
    t.fail_at = 1;
    pa_buf_init(&b, &t.pa);
    assert_int_equal(pa_buf_append(&b, "x", 1), -1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(pa_buf_append(&b, "x", 1), 0);
    pa_buf_cleanup(&b);
    assert_int_equal(t.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_alignment_and_disjoint),
        cmocka_unit_test(test_alloc_zero_is_unique),
        cmocka_unit_test(test_cap_enforced),
        cmocka_unit_test(test_cap_single_large_request),
        cmocka_unit_test(test_huge_requests),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_calloc_zeroes_reused_memory),
        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_reset_reuses_newest_chunk),
        cmocka_unit_test(test_reset_and_cleanup_edge_cases),
        cmocka_unit_test(test_reset_and_cleanup_wipe),
        cmocka_unit_test(test_held_tracks_allocator),
        cmocka_unit_test(test_allocation_failure_injection),
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_buf_failure_leaves_buffer_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
