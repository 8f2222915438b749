/*
 * alloc.c - see alloc.h.
 */
#include "alloc.h"

#include <string.h>

atomic_long gw_alloc_countdown_;
static atomic_long injected;

bool gw_alloc_inject_(void)
{
    long v = atomic_load(&gw_alloc_countdown_);
    /* several threads may race down the counter: exactly one takes 1 -> 0 */
    while (v > 0) {
        if (atomic_compare_exchange_weak(&gw_alloc_countdown_, &v, v - 1)) {
            if (v == 1) {
                atomic_fetch_add(&injected, 1);
                return true;
            }
            return false;
        }
    }
    return false;
}

void gw_alloc_fail_nth(long n)
{
    atomic_store(&injected, 0);
    atomic_store(&gw_alloc_countdown_, n > 0 ? n : 0);
}

long gw_alloc_injected(void)
{
    return atomic_load(&injected);
}

char *gw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = gw_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void *pa_malloc(size_t n, void *ud)
{
    (void)ud;
    return gw_malloc(n);
}

static void *pa_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return gw_realloc(p, n);
}

static void pa_free(void *p, void *ud)
{
    (void)ud;
    gw_free(p);
}

const struct pa_allocator gw_pa_mem = {
    .malloc = pa_malloc, .realloc = pa_realloc, .free = pa_free, .ud = NULL};
