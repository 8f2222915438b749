/*
 * arena.c - capped bump allocator and growable byte buffer.
 *
 * A frame's arena holds what the decoder copied out of it, the viewers'
 * addresses included: every chunk's handed-out bytes are wiped (with a
 * wipe the compiler cannot drop) before the chunk is reused or freed, so
 * they do not linger in memory the heap hands out again.  What was never
 * handed out was never written and is left alone.
 */
#include <panelproto/arena.h>

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_MIN_CHUNK 4096u

struct pa_arena_chunk {
    struct pa_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t off;  /* bytes handed out */
    /* data follows, aligned */
};

#define CHUNK_HDR ((sizeof(struct pa_arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static void *mem_malloc(const struct pa_allocator *m, size_t n)
{
    return m ? m->malloc(n, m->ud) : malloc(n);
}

static void *mem_realloc(const struct pa_allocator *m, void *p, size_t n)
{
    return m ? m->realloc(p, n, m->ud) : realloc(p, n);
}

static void mem_free(const struct pa_allocator *m, void *p)
{
    if (m)
        m->free(p, m->ud);
    else
        free(p);
}

void pa_arena_init(struct pa_arena *a, size_t cap, const struct pa_allocator *mem)
{
    a->head = NULL;
    a->cap = cap;
    a->held = 0;
    a->used = 0;
    a->mem = mem;
}

static void wipe_chunk(struct pa_arena_chunk *c)
{
    explicit_bzero((unsigned char *)c + CHUNK_HDR, c->off);
    c->off = 0;
}

static void free_chunks(struct pa_arena *a, struct pa_arena_chunk *c)
{
    while (c) {
        struct pa_arena_chunk *next = c->next;
        wipe_chunk(c);
        a->held -= CHUNK_HDR + c->size;
        mem_free(a->mem, c);
        c = next;
    }
}

void pa_arena_reset(struct pa_arena *a)
{
    if (a->head) {
        free_chunks(a, a->head->next);
        a->head->next = NULL;
        wipe_chunk(a->head);
    }
    a->used = 0;
}

void pa_arena_cleanup(struct pa_arena *a)
{
    if (!a)
        return;
    free_chunks(a, a->head);
    a->head = NULL;
    a->used = 0;
}

void *pa_arena_alloc(struct pa_arena *a, size_t n)
{
    struct pa_arena_chunk *c = a->head;
    size_t need, size;

    if (n > SIZE_MAX / 2)
        return NULL;
    need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0)
        need = ARENA_ALIGN;

    if (!c || c->size - c->off < need) {
        /* Grow geometrically so a frame with many small objects needs few
         * chunks, but never past the cap. */
        size = c ? c->size * 2 : ARENA_MIN_CHUNK;
        if (size < need)
            size = need;
        if (a->cap) {
            if (a->held + CHUNK_HDR + need > a->cap)
                return NULL;
            if (a->held + CHUNK_HDR + size > a->cap)
                size = a->cap - a->held - CHUNK_HDR;
        }
        c = mem_malloc(a->mem, CHUNK_HDR + size);
        if (!c)
            return NULL;
        c->size = size;
        c->off = 0;
        c->next = a->head;
        a->head = c;
        a->held += CHUNK_HDR + size;
    }

    void *p = (unsigned char *)c + CHUNK_HDR + c->off;
    c->off += need;
    a->used += need;
    return p;
}

void *pa_arena_calloc(struct pa_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = pa_arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

char *pa_arena_strndup(struct pa_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = pa_arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void pa_buf_init(struct pa_buf *b, const struct pa_allocator *mem)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->mem = mem;
}

void pa_buf_cleanup(struct pa_buf *b)
{
    if (!b)
        return;
    mem_free(b->mem, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int pa_buf_reserve(struct pa_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -1;
    size_t want = b->len + extra;
    if (want <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    uint8_t *p = mem_realloc(b->mem, b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pa_buf_append(struct pa_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (pa_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
