/*
 * test_gw_hello.c - the gateway's own reading of the first TLS record
 * (gateway/net/hello.h): compression methods without null are bad, and an
 * ALPN extension is noted with whether it offers h2, whatever the other
 * extensions and however the bytes arrive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hello.h"

struct msg {
    uint8_t b[2048];
    size_t n;
};

static void put8(struct msg *m, unsigned x)
{
    m->b[m->n++] = (uint8_t)x;
}

static void put16(struct msg *m, unsigned x)
{
    put8(m, x >> 8);
    put8(m, x & 0xff);
}

static void put(struct msg *m, const void *p, size_t n)
{
    if (n > 0) /* an empty extension has no data at all (p NULL) */
        memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* One extension of |type| with |len| bytes of |data|. */
static void ext(struct msg *m, unsigned type, const void *data, size_t len)
{
    put16(m, type);
    put16(m, (unsigned)len);
    put(m, data, len);
}

/* An ALPN extension's data for a comma-free list of names. */
static size_t alpn_data(uint8_t *out, const char *const *names, size_t n)
{
    size_t k = 2;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        out[k++] = (uint8_t)l;
        memcpy(out + k, names[i], l);
        k += l;
    }
    out[0] = (uint8_t)((k - 2) >> 8);
    out[1] = (uint8_t)((k - 2) & 0xff);
    return k;
}

/* A TLS 1.2 ClientHello record: a session id of |sid| bytes, |cm| the
 * compression methods (|n_cm| of them), then the extensions in |exts|
 * (already encoded, |exts_len| bytes; none when exts is NULL). */
static void hello(struct msg *m, size_t sid, const uint8_t *cm, size_t n_cm, const uint8_t *exts,
                  size_t exts_len)
{
    struct msg body = {.n = 0};
    put16(&body, 0x0303);
    for (int i = 0; i < 32; i++)
        put8(&body, (unsigned)i);
    put8(&body, (unsigned)sid);
    for (size_t i = 0; i < sid; i++)
        put8(&body, 0xaa);
    put16(&body, 4);
    put16(&body, 0xcca9);
    put16(&body, 0xc02b);
    put8(&body, (unsigned)n_cm);
    put(&body, cm, n_cm);
    if (exts != NULL) {
        put16(&body, (unsigned)exts_len);
        put(&body, exts, exts_len);
    }
    m->n = 0;
    put8(m, 22);
    put16(m, 0x0301);
    put16(m, (unsigned)(body.n + 4));
    put8(m, 1);
    put8(m, 0);
    put16(m, (unsigned)body.n);
    put(m, body.b, body.n);
}

/* Feeds |m| in pieces of |chunk| bytes (0 = all at once). */
static struct gw_hello_check feed(const struct msg *m, size_t chunk)
{
    struct gw_hello_check h;
    memset(&h, 0, sizeof h);
    if (chunk == 0)
        chunk = m->n;
    for (size_t off = 0; off < m->n; off += chunk)
        gw_hello_feed(&h, m->b + off, m->n - off < chunk ? m->n - off : chunk);
    return h;
}

/* The same answer however the record is split. */
static void expect(const struct msg *m, bool bad, bool alpn, bool h2)
{
    static const size_t chunks[] = {0, 1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct gw_hello_check h = feed(m, chunks[i]);
        if (h.bad != bad || h.alpn_seen != alpn || h.h2_offered != h2)
            fail_msg("chunk %zu: bad=%d alpn=%d h2=%d, want %d %d %d", chunks[i], h.bad,
                     h.alpn_seen, h.h2_offered, bad, alpn, h2);
    }
}

static const uint8_t null_cm[] = {0};

static void test_alpn(void **state)
{
    uint8_t ex[512], data[128];
    struct msg m;
    size_t n = 0, l;
    (void)state;

    /* SNI first, then ALPN "http/1.1", "h2" */
    static const uint8_t sni[] = {0, 9, 0, 0, 6, 'g', 'w', '.', 'l', 'a', 'n'};
    struct msg e = {.n = 0};
    ext(&e, 0, sni, sizeof sni);
    l = alpn_data(data, (const char *const[]){"http/1.1", "h2"}, 2);
    ext(&e, 16, data, l);
    ext(&e, 23, NULL, 0); /* extended master secret: empty */
    memcpy(ex, e.b, e.n);
    n = e.n;
    hello(&m, 32, null_cm, 1, ex, n);
    expect(&m, false, true, true);

    /* ALPN without h2: noted, no h2 */
    e.n = 0;
    ext(&e, 23, NULL, 0);
    l = alpn_data(data, (const char *const[]){"http/1.1", "h2c", "h"}, 3);
    ext(&e, 16, data, l);
    hello(&m, 0, null_cm, 1, e.b, e.n);
    expect(&m, false, true, false);

    /* "h2" as the prefix of a longer name is not h2 */
    e.n = 0;
    l = alpn_data(data, (const char *const[]){"h2x"}, 1);
    ext(&e, 16, data, l);
    hello(&m, 0, null_cm, 1, e.b, e.n);
    expect(&m, false, true, false);

    /* h2 inside another extension's data is not ALPN */
    e.n = 0;
    l = alpn_data(data, (const char *const[]){"h2"}, 1);
    ext(&e, 0x3374, data, l);
    hello(&m, 0, null_cm, 1, e.b, e.n);
    expect(&m, false, false, false);

    /* no extensions at all */
    hello(&m, 0, null_cm, 1, NULL, 0);
    expect(&m, false, false, false);
}

static void test_compression(void **state)
{
    static const uint8_t deflate_only[] = {1};
    static const uint8_t both[] = {1, 0};
    uint8_t data[16];
    struct msg m, e = {.n = 0};
    size_t l = alpn_data(data, (const char *const[]){"h2"}, 1);
    (void)state;

    ext(&e, 16, data, l);
    hello(&m, 0, deflate_only, 1, e.b, e.n);
    expect(&m, true, false, false); /* bad: stops before the extensions */
    hello(&m, 0, both, 2, e.b, e.n);
    expect(&m, false, true, true);
    hello(&m, 0, null_cm, 0, e.b, e.n); /* no methods at all */
    expect(&m, true, false, false);
}

/* Not a handshake record, not a ClientHello, a ClientHello longer than
 * its record: nothing is noted, nothing is bad. */
static void test_not_ours(void **state)
{
    uint8_t data[16];
    struct msg m, e = {.n = 0};
    size_t l = alpn_data(data, (const char *const[]){"h2"}, 1);
    (void)state;

    ext(&e, 16, data, l);
    hello(&m, 0, null_cm, 1, e.b, e.n);
    struct msg alert = m;
    alert.b[0] = 21;
    expect(&alert, false, false, false);
    struct msg sh = m;
    sh.b[5] = 2; /* ServerHello */
    expect(&sh, false, false, false);
    /* the record ends before the extensions: left to mbedTLS */
    struct msg cut = m;
    unsigned rec = 4 + 2 + 32 + 1 + 2 + 4 + 1 + 1; /* up to the compression methods */
    cut.b[3] = (uint8_t)(rec >> 8);
    cut.b[4] = (uint8_t)(rec & 0xff);
    expect(&cut, false, false, false);
    struct gw_hello_check h = feed(&cut, 0);
    assert_true(h.done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_not_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
