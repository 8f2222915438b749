/*
 * mpread.h - a strict, bounds-checked msgpack cursor (no allocation).
 *
 * mp_next() reads one token head.  Scalars come back whole; str and bin
 * come back as a pointer into the input, already checked to fit; array and
 * map counts are checked against the bytes left (every element needs at
 * least one byte) so a caller may size an allocation from them.  Extension
 * types and the reserved byte 0xc1 are errors: the stats frame uses neither.
 */
#ifndef PANELPROTO_MPREAD_H
#define PANELPROTO_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mp_kind {
    MP_NIL,
    MP_BOOL,
    MP_UINT, /* any integer format holding a value >= 0 */
    MP_INT,  /* any integer format holding a value < 0 */
    MP_FLOAT,
    MP_STR,
    MP_BIN,
    MP_ARRAY,
    MP_MAP,
};

struct mp_tok {
    enum mp_kind kind;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        struct {
            const uint8_t *p;
            uint32_t len;
        } s;          /* MP_STR, MP_BIN */
        uint32_t n;   /* MP_ARRAY, MP_MAP: element / pair count */
    } v;
};

struct mp_reader {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
};

void mp_reader_init(struct mp_reader *r, const uint8_t *buf, size_t len);

/* Returns 0, PA_FE_TRUNCATED, PA_FE_EXT or PA_FE_INVALID (0xc1).  On error
 * the cursor does not move. */
int mp_next(struct mp_reader *r, struct mp_tok *t);

/* Skips one complete value whose first byte is at the cursor, without
 * recursion.  |depth| is the depth of the container holding the value;
 * containers inside it may reach |max_depth| (else PA_FE_TOO_DEEP). */
int mp_skip(struct mp_reader *r, uint32_t depth, uint32_t max_depth);

/* 0, PA_FE_UTF8 (not strict UTF-8) or PA_FE_NUL (a NUL byte). */
int mp_check_text(const uint8_t *p, size_t len);

/* "nil", "bool", "integer", "float", "str", "bin", "array", "map". */
const char *mp_kind_name(enum mp_kind k);

#endif /* PANELPROTO_MPREAD_H */
