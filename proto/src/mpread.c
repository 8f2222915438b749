/*
 * mpread.c - strict msgpack cursor (see mpread.h and the msgpack spec).
 */
#include <panelproto/mpread.h>

#include <string.h>

#include <panelproto/frame.h>

void mp_reader_init(struct mp_reader *r, const uint8_t *buf, size_t len)
{
    r->start = buf;
    r->p = buf;
    r->end = buf ? buf + len : buf; /* NULL + 0 is undefined behaviour */
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Sets a str/bin token of length |len| whose body starts |hdr| bytes in. */
static int take_bytes(struct mp_reader *r, struct mp_tok *t, enum mp_kind kind,
                      size_t hdr, uint64_t len)
{
    size_t left = (size_t)(r->end - r->p);
    if (hdr > left || len > left - hdr)
        return PA_FE_TRUNCATED;
    t->kind = kind;
    t->v.s.p = r->p + hdr;
    t->v.s.len = (uint32_t)len;
    r->p += hdr + (size_t)len;
    return 0;
}

/* Sets an array (per = 1) or map (per = 2) token; every element takes at
 * least one byte, so a count the rest of the input cannot hold is refused
 * before anyone allocates for it. */
static int take_count(struct mp_reader *r, struct mp_tok *t, enum mp_kind kind,
                      size_t hdr, uint64_t n, unsigned per)
{
    size_t left = (size_t)(r->end - r->p);
    if (hdr > left || n * per > left - hdr)
        return PA_FE_TRUNCATED;
    t->kind = kind;
    t->v.n = (uint32_t)n;
    r->p += hdr;
    return 0;
}

static int take_uint(struct mp_reader *r, struct mp_tok *t, unsigned n)
{
    if ((size_t)(r->end - r->p) < 1 + (size_t)n)
        return PA_FE_TRUNCATED;
    t->kind = MP_UINT;
    t->v.u = be(r->p + 1, n);
    r->p += 1 + n;
    return 0;
}

static int take_int(struct mp_reader *r, struct mp_tok *t, unsigned n)
{
    if ((size_t)(r->end - r->p) < 1 + (size_t)n)
        return PA_FE_TRUNCATED;
    uint64_t raw = be(r->p + 1, n);
    int64_t v;
    /* sign-extend the n-byte two's complement value */
    if (n < 8 && (raw >> (8 * n - 1)) & 1)
        raw |= ~(uint64_t)0 << (8 * n);
    memcpy(&v, &raw, sizeof v);
    if (v >= 0) {
        t->kind = MP_UINT;
        t->v.u = (uint64_t)v;
    } else {
        t->kind = MP_INT;
        t->v.i = v;
    }
    r->p += 1 + n;
    return 0;
}

int mp_next(struct mp_reader *r, struct mp_tok *t)
{
    if (r->p >= r->end)
        return PA_FE_TRUNCATED;

    const uint8_t *p = r->p;
    size_t left = (size_t)(r->end - p);
    uint8_t b = p[0];

    if (b <= 0x7f) {
        t->kind = MP_UINT;
        t->v.u = b;
        r->p++;
        return 0;
    }
    if (b >= 0xe0) {
        t->kind = MP_INT;
        t->v.i = (int8_t)b;
        r->p++;
        return 0;
    }
    if ((b & 0xf0) == 0x80)
        return take_count(r, t, MP_MAP, 1, b & 0x0f, 2);
    if ((b & 0xf0) == 0x90)
        return take_count(r, t, MP_ARRAY, 1, b & 0x0f, 1);
    if ((b & 0xe0) == 0xa0)
        return take_bytes(r, t, MP_STR, 1, b & 0x1f);

    switch (b) {
    case 0xc0:
        t->kind = MP_NIL;
        r->p++;
        return 0;
    case 0xc2:
    case 0xc3:
        t->kind = MP_BOOL;
        t->v.b = b == 0xc3;
        r->p++;
        return 0;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6: {
        unsigned n = 1u << (b - 0xc4);
        if (left < 1 + (size_t)n)
            return PA_FE_TRUNCATED;
        return take_bytes(r, t, MP_BIN, 1 + n, be(p + 1, n));
    }
    case 0xca: { /* float 32 */
        if (left < 5)
            return PA_FE_TRUNCATED;
        uint32_t raw = (uint32_t)be(p + 1, 4);
        float f;
        memcpy(&f, &raw, sizeof f);
        t->kind = MP_FLOAT;
        t->v.f = (double)f;
        r->p += 5;
        return 0;
    }
    case 0xcb: { /* float 64 */
        if (left < 9)
            return PA_FE_TRUNCATED;
        uint64_t raw = be(p + 1, 8);
        double f;
        memcpy(&f, &raw, sizeof f);
        t->kind = MP_FLOAT;
        t->v.f = f;
        r->p += 9;
        return 0;
    }
    case 0xcc:
        return take_uint(r, t, 1);
    case 0xcd:
        return take_uint(r, t, 2);
    case 0xce:
        return take_uint(r, t, 4);
    case 0xcf:
        return take_uint(r, t, 8);
    case 0xd0:
        return take_int(r, t, 1);
    case 0xd1:
        return take_int(r, t, 2);
    case 0xd2:
        return take_int(r, t, 4);
    case 0xd3:
        return take_int(r, t, 8);
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb: {
        unsigned n = 1u << (b - 0xd9);
        if (left < 1 + (size_t)n)
            return PA_FE_TRUNCATED;
        return take_bytes(r, t, MP_STR, 1 + n, be(p + 1, n));
    }
    case 0xdc: /* array 16/32 */
    case 0xdd: {
        unsigned n = b == 0xdc ? 2 : 4;
        if (left < 1 + (size_t)n)
            return PA_FE_TRUNCATED;
        return take_count(r, t, MP_ARRAY, 1 + n, be(p + 1, n), 1);
    }
    case 0xde: /* map 16/32 */
    case 0xdf: {
        unsigned n = b == 0xde ? 2 : 4;
        if (left < 1 + (size_t)n)
            return PA_FE_TRUNCATED;
        return take_count(r, t, MP_MAP, 1 + n, be(p + 1, n), 2);
    }
    case 0xc7: /* ext 8/16/32, fixext 1..16 */
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return PA_FE_EXT;
    default: /* 0xc1, never used */
        return PA_FE_INVALID;
    }
}

int mp_skip(struct mp_reader *r, uint32_t depth, uint32_t max_depth)
{
    /* pending[k]: values still to read in the container open at level k */
    uint64_t pending[PA_LIMIT_MAX_DEPTH + 1];
    uint32_t top = 0;
    struct mp_tok t;
    int rv;

    if (max_depth > PA_LIMIT_MAX_DEPTH)
        max_depth = PA_LIMIT_MAX_DEPTH;
    pending[0] = 1;
    for (;;) {
        while (top > 0 && pending[top] == 0)
            top--;
        if (pending[top] == 0)
            return 0;
        pending[top]--;
        if ((rv = mp_next(r, &t)) != 0)
            return rv;
        if (t.kind != MP_ARRAY && t.kind != MP_MAP)
            continue;
        if (depth + top + 1 > max_depth)
            return PA_FE_TOO_DEEP;
        top++;
        pending[top] = t.kind == MP_MAP ? 2 * (uint64_t)t.v.n : t.v.n;
    }
}

int mp_check_text(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0)
                return PA_FE_NUL;
            i++;
            continue;
        }
        uint32_t cp;
        size_t n;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07u;
        } else {
            return PA_FE_UTF8; /* continuation, overlong lead, > U+10FFFF */
        }
        if (len - i < n)
            return PA_FE_UTF8;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return PA_FE_UTF8;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return PA_FE_UTF8;
        i += n;
    }
    return 0;
}

const char *mp_kind_name(enum mp_kind k)
{
    static const char *const names[] = {
        "nil", "bool", "integer", "integer", "float", "str", "bin", "array", "map",
    };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}
