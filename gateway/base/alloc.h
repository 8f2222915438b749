/*
 * alloc.h - the gateway's allocator, with a failure switch for tests.
 *
 * The gateway core (config, registry, sink, policy, net) allocates only
 * through gw_malloc / gw_calloc / gw_realloc / gw_strdup and frees with
 * gw_free.  They are the C library's functions behind one branch on a
 * counter that is 0 in production: a test arms it with gw_alloc_fail_nth()
 * and the nth allocation from then on (on any thread) returns NULL, once.
 * tests/unit/test_gw_allocfail.c sweeps n = 1, 2, 3, ... over real
 * operations and checks each failure path returns GW_ENOMEM and leaks
 * nothing.
 *
 * gw_pa_mem routes panelproto's arenas and buffers (struct pa_allocator)
 * through the same functions, and so do nghttp2's sessions (an nghttp2_mem
 * in net/h2.c).  mbedTLS, libevent and SQLite allocate on their own: their
 * global allocator hooks would need set-up before any other call and
 * would change them for the whole process.
 */
#ifndef GW_ALLOC_H
#define GW_ALLOC_H

#include <panelproto/arena.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Allocations left before the failing one; 0 = off.  Not for direct use. */
extern atomic_long gw_alloc_countdown_;
/* The slow path once armed: true when this allocation is the one to fail. */
bool gw_alloc_inject_(void);

static inline bool gw_alloc_fails_(void)
{
    return __builtin_expect(
               atomic_load_explicit(&gw_alloc_countdown_, memory_order_relaxed) != 0, 0) &&
           gw_alloc_inject_();
}

static inline void *gw_malloc(size_t n)
{
    return gw_alloc_fails_() ? NULL : malloc(n);
}

static inline void *gw_calloc(size_t count, size_t size)
{
    return gw_alloc_fails_() ? NULL : calloc(count, size);
}

/* On failure |p| is untouched (and still the caller's), as realloc. */
static inline void *gw_realloc(void *p, size_t n)
{
    return gw_alloc_fails_() ? NULL : realloc(p, n);
}

static inline void gw_free(void *p)
{
    free(p);
}

/* A copy of |s| to gw_free, or NULL. */
char *gw_strdup(const char *s);

/* panelproto's allocator hooks on the functions above. */
extern const struct pa_allocator gw_pa_mem;

/* Tests: make the |n|th allocation from now fail (1 = the next one), once;
 * n <= 0 disarms.  Resets gw_alloc_injected(). */
void gw_alloc_fail_nth(long n);

/* How many allocations the switch has failed since gw_alloc_fail_nth()
 * (0 or 1): 0 after an operation means it ran past the nth allocation
 * without reaching it - the sweep is over. */
long gw_alloc_injected(void);

#endif /* GW_ALLOC_H */
