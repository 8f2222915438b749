/*
 * arena.h - a capped bump allocator and a growable byte buffer.
 *
 * struct pa_arena hands out aligned blocks from a list of chunks and frees
 * them all at once (pa_arena_reset / pa_arena_cleanup).  It never holds more
 * than |cap| bytes of chunks: an allocation that would pass the cap fails,
 * which is how a hostile frame is kept from growing the decoder's memory.
 * Reset and cleanup wipe every byte handed out before the memory is reused
 * or freed (a decoded frame holds personal data: viewer addresses).
 *
 * Both take an optional allocator (NULL = malloc/realloc/free) so tests can
 * inject failures.
 */
#ifndef PANELPROTO_ARENA_H
#define PANELPROTO_ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pa_allocator {
    void *(*malloc)(size_t n, void *ud);
    void *(*realloc)(void *p, size_t n, void *ud);
    void (*free)(void *p, void *ud);
    void *ud;
};

struct pa_arena_chunk;

struct pa_arena {
    struct pa_arena_chunk *head; /* newest chunk first */
    size_t cap;                  /* most bytes of chunks ever held */
    size_t held;                 /* bytes of chunks now held */
    size_t used;                 /* bytes handed out since reset */
    const struct pa_allocator *mem;
};

/* |cap| 0 means no cap.  |mem| NULL means the C library. */
void pa_arena_init(struct pa_arena *a, size_t cap, const struct pa_allocator *mem);

/* Wipes what was handed out, frees every chunk but the newest one, which
 * is kept for reuse. */
void pa_arena_reset(struct pa_arena *a);

/* Wipes what was handed out and frees every chunk. */
void pa_arena_cleanup(struct pa_arena *a);

/* n bytes aligned for any scalar type, or NULL (cap reached, OOM, n == 0
 * is allowed and returns a valid unique pointer). */
void *pa_arena_alloc(struct pa_arena *a, size_t n);

/* Zeroed array of |count| elements of |size|, with overflow checking. */
void *pa_arena_calloc(struct pa_arena *a, size_t count, size_t size);

/* Copies |len| bytes and appends a NUL. */
char *pa_arena_strndup(struct pa_arena *a, const char *s, size_t len);

/* A growable byte buffer.  Owner frees with pa_buf_cleanup. */
struct pa_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    const struct pa_allocator *mem;
};

void pa_buf_init(struct pa_buf *b, const struct pa_allocator *mem);
void pa_buf_cleanup(struct pa_buf *b);

/* Returns 0, or -1 on allocation failure (the buffer is unchanged). */
int pa_buf_append(struct pa_buf *b, const void *p, size_t n);
int pa_buf_reserve(struct pa_buf *b, size_t extra);

#ifdef __cplusplus
}
#endif

#endif /* PANELPROTO_ARENA_H */
