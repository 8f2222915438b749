/*
 * fuzz_pa_h2client.c - libpanelagent's HTTP/2 response path (transport.c
 * and the answer handling of client.c) under a hostile gateway.  A client
 * without TLS or I/O thread (pa_client_test_new) queues three frames (seq
 * 1000..1002) and starts their requests on a connection without a socket
 * (pa_conn_new_mem); what the gateway sends is then handed to its nghttp2
 * client session with the SDK's own callbacks, and what the client sends
 * back is produced (and thrown away) after every feed.  TLS is left out
 * (mbedTLS parses that).
 *
 * Structure-aware: random bytes rarely make HTTP/2 frames, so the input is
 * a program of operations that this file serialises into frames, valid or
 * slightly off, with header blocks HPACK-encoded by nghttp2's own deflater
 * (one per input, as the gateway has one per connection):
 *
 *   input := op*        op := OPBYTE param*    (a read past the end is 0)
 *   OPBYTE: low 4 bits the operation, high 4 bits its variant v:
 *     0 SETTINGS      n = u8%5 entries (id u8%9, value from a table or u32);
 *                     v&1 ACK flag anyway, v&2 on stream 1
 *     1 SETTINGS ACK  v&1 with a 6-byte payload
 *     2 HEADERS       stream, :status from a table, hflags u8 (content-type,
 *                     panelgate-ack-seq once or twice, retry-after, a pad
 *                     header, :status last); v&1 END_STREAM, v&2 only a
 *                     prefix of the block (the rest waits for op 3), v&4
 *                     PADDED + PRIORITY
 *     3 CONTINUATION  the rest of a split block (u8 * 64 bytes of it at a
 *                     time, 0: all), or u8 raw bytes; v&1 on another stream
 *     4 DATA          stream, a problem+json, an ack body, raw bytes or
 *                     u16 bytes of filler (in 16 KiB frames unless v&4);
 *                     v&1 END_STREAM, v&2 PADDED
 *     5 RST_STREAM    stream, code          6 GOAWAY  last id, code, debug
 *     7 PING          8 bytes; v&1 ACK, v&2 on stream 1
 *     8 WINDOW_UPDATE stream, increment     9 PUSH_PROMISE  stream, promised id
 *    10 PRIORITY      stream, 5 bytes      11 other type  type, flags, bytes
 *    12 raw bytes     u8 of them, verbatim
 *    13 FEED          hands the bytes so far to the client (v&1: in two parts)
 *    14 SUBMIT        queues one more frame (up to 8) and starts the queued
 *                     ones when the connection has room, as client.c does
 *    15 ANSWER        a whole answer on a stream: HEADERS :status (202 with
 *                     the right ack, or a problem status) + DATA END_STREAM
 *   v&8 on a frame op: the length field is off by a signed u8.
 *   Streams are picked by u8 from a table (1, 3, 5, 7, 0, even, idle, max).
 * Whatever is left unfed is fed at the end; a feed that fails ends the
 * connection, as the I/O thread would.  Seeds: gen_pa_h2_seeds.py.
 *
 * Checked on top of the sanitizers: an ack is only ever for a frame that
 * was sent, once; the counters agree with the callbacks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "client_internal.h"

#define SEQ0 1000u
#define N_FIRST 3   /* frames queued before the first byte */
#define N_MAX 8     /* frames an input may queue in all */
#define WIRE_MAX (1u << 20)

static struct panelagent_client *cl;
static unsigned acked_mask, n_queued;
static unsigned n_acks, n_rejected;

static void on_ack(uint64_t seq, void *ud)
{
    (void)ud;
    if (seq < SEQ0 || seq >= SEQ0 + n_queued || (acked_mask & (1u << (seq - SEQ0))))
        abort(); /* an ack for a frame never sent, or twice */
    acked_mask |= 1u << (seq - SEQ0);
    n_acks++;
}

static void on_error(int err, uint64_t seq, const char *detail, void *ud)
{
    (void)ud;
    if (detail == NULL || (seq != 0 && (seq < SEQ0 || seq >= SEQ0 + n_queued)))
        abort();
    if (err == PANELAGENT_EREJECTED)
        n_rejected++;
}

static void setup(void)
{
    panelagent_config *cfg = NULL;

    if (panelagent_config_new(&cfg) != PANELAGENT_OK ||
        panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAY_HOST, "gateway.invalid") != 0 ||
        panelagent_config_set_i64(cfg, PANELAGENT_OPT_MAX_IN_FLIGHT, N_MAX) != 0 ||
        panelagent_config_set_ack(cfg, on_ack, NULL) != 0 ||
        panelagent_config_set_error(cfg, on_error, NULL) != 0 ||
        pa_client_test_new(&cl, cfg) != PANELAGENT_OK)
        abort();
    panelagent_config_free(cfg);
}

/* ---- reading the program ------------------------------------------------------------ */

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint32_t u32(struct in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | u8(in);
    return v;
}

static uint32_t pick_stream(struct in *in)
{
    static const uint32_t ids[] = {1, 3, 5, 1, 3, 5, 7, 9, 0, 2, 4, 11, 0x7fffffff, 1, 3};
    uint8_t x = u8(in);
    if (x % 16 == 15)
        return u32(in) & 0x7fffffff;
    return ids[x % 16];
}

static uint32_t pick_code(struct in *in)
{
    static const uint32_t codes[] = {
        NGHTTP2_NO_ERROR,       NGHTTP2_PROTOCOL_ERROR,    NGHTTP2_INTERNAL_ERROR,
        NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL,
        NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_HTTP_1_1_REQUIRED, 0xff,
    };
    uint8_t x = u8(in);
    if (x % 10 == 9)
        return u32(in);
    return codes[x % 10];
}

/* ---- writing frames ---------------------------------------------------------------- */

struct out {
    uint8_t *b;
    size_t len, fed;
    nghttp2_hd_deflater *hd;
    uint8_t *cont;  /* the part of a split header block still to send */
    size_t cont_len, cont_off;
    uint32_t cont_sid;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (n > WIRE_MAX - o->len)
        n = WIRE_MAX - o->len;
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static void put32(struct out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 4);
}

/* A frame header for |len| payload bytes, its length field off by a
 * signed byte of the program when |off|. */
static void head(struct out *o, struct in *in, size_t len, uint8_t type, uint8_t flags,
                 uint32_t sid, int off)
{
    int64_t l = (int64_t)len;
    if (off)
        l += (int8_t)u8(in);
    if (l < 0)
        l = 0;
    l &= 0xffffff;
    uint8_t b[5] = {(uint8_t)(l >> 16), (uint8_t)(l >> 8), (uint8_t)l, type, flags};
    put(o, b, 5);
    put32(o, sid);
}

static void frame(struct out *o, struct in *in, uint8_t type, uint8_t flags, uint32_t sid,
                  const void *payload, size_t len, int off)
{
    head(o, in, len, type, flags, sid, off);
    put(o, payload, len);
}

/* u8 bytes of the program, copied into |buf| (256 bytes). */
static size_t raw(struct in *in, uint8_t *buf)
{
    size_t n = u8(in);
    for (size_t i = 0; i < n; i++)
        buf[i] = u8(in);
    return n;
}

/* ---- header blocks --------------------------------------------------------------------- */

/* |n| and |v| are evaluated twice: plain strings only */
#define NV(n, v) ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0})

/* HPACK-encodes |nv| with the input's deflater into a new block (*blk,
 * the caller frees). */
static size_t deflate(struct out *o, const nghttp2_nv *nv, size_t n, uint8_t **blk)
{
    size_t bound = nghttp2_hd_deflate_bound(o->hd, nv, n);
    ssize_t len;

    if ((*blk = malloc(bound ? bound : 1)) == NULL ||
        (len = nghttp2_hd_deflate_hd(o->hd, *blk, bound, nv, n)) < 0)
        abort();
    return (size_t)len;
}

static uint64_t seq_of(uint32_t sid)
{
    return SEQ0 + (sid ? (sid - 1) / 2 : 0); /* streams 1, 3, 5... in queue order */
}

/* A response header list chosen by the program. */
static size_t response_block(struct out *o, struct in *in, uint32_t sid, uint8_t **blk)
{
    static const char *const status[] = {
        "202", "202", "202", "400", "429", "503", "500", "413", "401", "403", "404", "408",
        "200", "204", "100", "103", "301", "999", "abc", "", "0202", "2020", "409", "-1",
    };
    static const char *const ctype[] = {
        "application/json", "application/problem+json", "application/msgpack", "text/html",
    };
    static const char *const retry[] = {"0", "1", "2", "3600", "99999999999", "-1", "x", ""};
    static char pad[255 * 150];
    char ack[48], ack2[16];
    nghttp2_nv nv[9];
    size_t n = 0;
    const char *st = status[u8(in) % (sizeof status / sizeof status[0])];
    uint8_t h = u8(in);

    if (!(h & 128))
        nv[n++] = NV(":status", st);
    if (h & 1)
        nv[n++] = NV("content-type", ctype[(h >> 1) & 3]);
    if (h & 8) {
        uint8_t k = u8(in);
        unsigned long long seq = seq_of(sid);
        switch (k % 6) {
        case 0: snprintf(ack, sizeof ack, "%llu", seq); break;
        case 1: snprintf(ack, sizeof ack, "%u", SEQ0 + u8(in) % N_MAX); break;
        case 2: snprintf(ack, sizeof ack, "abc"); break;
        case 3: snprintf(ack, sizeof ack, "99999999999999999999"); break;
        case 4: snprintf(ack, sizeof ack, " %llu", seq); break;
        default: snprintf(ack, sizeof ack, "%040llu", seq); break; /* too long to read */
        }
        nv[n++] = NV("panelgate-ack-seq", ack);
        if (h & 16) {
            snprintf(ack2, sizeof ack2, "%u", SEQ0 + u8(in) % N_MAX);
            nv[n++] = NV("panelgate-ack-seq", ack2);
        }
    }
    if (h & 32) {
        const char *ra = retry[u8(in) % 8];
        nv[n++] = NV("retry-after", ra);
    }
    if (h & 64) { /* twice up to 38 KB: past the client's header list cap */
        size_t len = (size_t)u8(in) * 150;
        memset(pad, 'p', len);
        nv[n++] = (nghttp2_nv){(uint8_t *)"x-pad", (uint8_t *)pad, 5, len, 0};
        nv[n++] = (nghttp2_nv){(uint8_t *)"x-pad2", (uint8_t *)pad, 6, len, 0};
    }
    if (h & 128)
        nv[n++] = NV(":status", st); /* after a regular header: malformed */
    return deflate(o, nv, n, blk);
}

/* Sends |blk| as HEADERS (or PUSH_PROMISE with |promised|) on |sid|. */
static void send_block(struct out *o, struct in *in, uint8_t type, uint32_t sid,
                       uint32_t promised, uint8_t *blk, size_t len, uint8_t v)
{
    static const uint8_t zeros[256];
    uint8_t pre[9], flags = NGHTTP2_FLAG_END_HEADERS;
    size_t npre = 0, padlen = 0, first = len;

    if (type == NGHTTP2_HEADERS && (v & 1))
        flags |= NGHTTP2_FLAG_END_STREAM;
    if (v & 4) {
        flags |= NGHTTP2_FLAG_PADDED;
        padlen = u8(in);
        pre[npre++] = (uint8_t)padlen;
    }
    if (type == NGHTTP2_HEADERS && (v & 4)) { /* stream dependency and weight */
        flags |= NGHTTP2_FLAG_PRIORITY;
        uint32_t dep = pick_stream(in) | (u8(in) & 1u) << 31;
        for (int i = 3; i >= 0; i--)
            pre[npre++] = (uint8_t)(dep >> (8 * i));
        pre[npre++] = u8(in);
    }
    if (type == NGHTTP2_PUSH_PROMISE)
        for (int i = 3; i >= 0; i--)
            pre[npre++] = (uint8_t)(promised >> (8 * i));
    if (v & 2) { /* a prefix only: op 3 sends the rest */
        first = len ? u8(in) % len : 0;
        flags &= (uint8_t)~NGHTTP2_FLAG_END_HEADERS;
        free(o->cont);
        o->cont = blk;
        o->cont_len = len;
        o->cont_off = first;
        o->cont_sid = sid;
    }
    head(o, in, npre + first + padlen, type, flags, sid, v & 8);
    put(o, pre, npre);
    put(o, blk, first);
    put(o, zeros, padlen);
    if (!(v & 2))
        free(blk);
}

static void continuation(struct out *o, struct in *in, uint8_t v)
{
    uint8_t buf[256];
    uint32_t sid = v & 1 ? pick_stream(in) : o->cont_sid;

    if (o->cont == NULL) {
        size_t n = raw(in, buf);
        frame(o, in, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, sid, buf, n, v & 8);
        return;
    }
    /* u8 * 64 bytes of it (up to a frame's default maximum), 0: all */
    size_t left = o->cont_len - o->cont_off, n = (size_t)u8(in) * 64;
    if (n == 0 || n > left)
        n = left;
    frame(o, in, NGHTTP2_CONTINUATION, n == left ? NGHTTP2_FLAG_END_HEADERS : 0, sid,
          o->cont + o->cont_off, n, v & 8);
    o->cont_off += n;
    if (o->cont_off == o->cont_len) {
        free(o->cont);
        o->cont = NULL;
    }
}

/* ---- bodies ---------------------------------------------------------------------------- */

/* A problem+json body, well-formed or nearly. */
static int problem_body(struct in *in, char *buf, size_t n)
{
    static const char *const type[] = {
        "rate_limited", "queue_full", "storage_rejected", "frame:too_long", "internal",
        "not_registered", "storage_rejected:x", "",
    };
    static const char *const detail[] = {
        "frames per second", "a \\\"quoted\\\"\\n\\t detail \\u00e9", "\x01\x7f\xff", "",
    };
    uint8_t k = u8(in);
    const char *t = type[k / 4 % 8], *d = detail[k / 32 % 4];
    switch (k % 4) {
    case 0:
        return snprintf(buf, n, "{\"type\":\"urn:panelgate:problem:%s\",\"title\":\"t\","
                                "\"detail\":\"%s\"}", t, d);
    case 1:
        return snprintf(buf, n, "{\"detail\" : \"%s\", \"type\" :\n\"urn:panelgate:problem:%s\"}",
                        d, t);
    case 2: /* cut short */
        return snprintf(buf, n, "{\"type\":\"urn:panelgate:problem:%s\",\"detail\":\"%s", t, d);
    default: /* no colon, no quotes */
        return snprintf(buf, n, "{\"type\"\"%s\",\"detail\":%s}", t, d);
    }
}

static void data(struct out *o, struct in *in, uint8_t v)
{
    static uint8_t fill[65536];
    uint8_t buf[512], flags = v & 1 ? NGHTTP2_FLAG_END_STREAM : 0;
    uint32_t sid = pick_stream(in);
    const uint8_t *p = buf;
    size_t n = 0, padlen = 0;

    switch (u8(in) % 4) {
    case 0: n = (size_t)problem_body(in, (char *)buf, sizeof buf); break;
    case 1: n = (size_t)snprintf((char *)buf, sizeof buf, "{\"seq\":%llu}",
                                 (unsigned long long)seq_of(sid)); break;
    case 2: n = raw(in, buf); break;
    default:
        n = (size_t)u8(in) << 8 | u8(in);
        memset(fill, 'f', n);
        p = fill;
        /* in frames of the default maximum size, unless v&4 */
        while (!(v & 4) && n > 16384) {
            frame(o, in, NGHTTP2_DATA, 0, sid, p, 16384, 0);
            p += 16384;
            n -= 16384;
        }
    }
    if (v & 2) {
        flags |= NGHTTP2_FLAG_PADDED;
        padlen = u8(in);
    }
    head(o, in, n + (v & 2 ? 1 + padlen : 0), NGHTTP2_DATA, flags, sid, v & 8);
    if (v & 2) {
        uint8_t pl = (uint8_t)padlen;
        put(o, &pl, 1);
    }
    put(o, p, n);
    memset(fill, 0, padlen);
    put(o, fill, padlen);
}

/* HEADERS + DATA END_STREAM: a 202 with the stream's ack, or a problem. */
static void answer(struct out *o, struct in *in, uint8_t v)
{
    static const char *const status[] = {"400", "429", "503", "500", "413", "408", "401", "404"};
    uint32_t sid = pick_stream(in);
    char body[512], ack[24];
    nghttp2_nv nv[4];
    size_t n = 0;
    int blen;
    uint8_t *blk;

    if (!(v & 1)) {
        snprintf(ack, sizeof ack, "%llu", (unsigned long long)seq_of(sid));
        nv[n++] = NV(":status", "202");
        nv[n++] = NV("content-type", "application/json");
        nv[n++] = NV("panelgate-ack-seq", ack);
        blen = snprintf(body, sizeof body, "{\"seq\":%s}", ack);
    } else {
        nv[n++] = NV(":status", status[(v >> 1) & 7]);
        nv[n++] = NV("content-type", "application/problem+json");
        if (v & 2)
            nv[n++] = NV("retry-after", "1");
        blen = problem_body(in, body, sizeof body);
    }
    size_t len = deflate(o, nv, n, &blk);
    send_block(o, in, NGHTTP2_HEADERS, sid, 0, blk, len, 0);
    frame(o, in, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, body, (size_t)blen, 0);
}

/* ---- the other frames ------------------------------------------------------------------ */

static void settings(struct out *o, struct in *in, uint8_t v)
{
    static const uint32_t vals[] = {0, 1, 16, 100, 4096, 16384, 65535, 65536, 1u << 20,
                                    (1u << 24) - 1, 1u << 24, 0x7fffffff, 0x80000000u,
                                    0xffffffffu, 3};
    uint8_t buf[4 * 6];
    size_t n = u8(in) % 5;

    for (size_t i = 0; i < n; i++) {
        uint8_t id = u8(in) % 9, k = u8(in);
        uint32_t val = k % 16 == 15 ? u32(in) : vals[k % 16];
        buf[6 * i] = 0;
        buf[6 * i + 1] = id;
        for (int j = 0; j < 4; j++)
            buf[6 * i + 2 + j] = (uint8_t)(val >> (8 * (3 - j)));
    }
    frame(o, in, NGHTTP2_SETTINGS, v & 1 ? NGHTTP2_FLAG_ACK : 0, v & 2 ? 1 : 0, buf, 6 * n,
          v & 8);
}

static void goaway(struct out *o, struct in *in, uint8_t v)
{
    static const uint32_t last[] = {0, 1, 3, 5, 7, 0x7fffffff, 2, 0x80000005u};
    static const char calm[] = "rate_limited";
    uint8_t buf[8 + 256];
    uint32_t id = last[u8(in) % 8], code = pick_code(in);
    size_t dn = 0;

    for (int i = 0; i < 4; i++) {
        buf[i] = (uint8_t)(id >> (8 * (3 - i)));
        buf[4 + i] = (uint8_t)(code >> (8 * (3 - i)));
    }
    if (v & 1) {
        memcpy(buf + 8, calm, sizeof calm - 1);
        dn = sizeof calm - 1;
    } else if (v & 2) {
        dn = raw(in, buf + 8);
    }
    frame(o, in, NGHTTP2_GOAWAY, 0, v & 4 ? 1 : 0, buf, 8 + dn, v & 8);
}

static void window_update(struct out *o, struct in *in, uint8_t v)
{
    static const uint32_t incs[] = {0, 1, 1000, 65535, 1u << 20, 0x7fffffff, 0x80000001u};
    uint32_t sid = v & 1 ? pick_stream(in) : 0;
    uint8_t k = u8(in);
    uint32_t inc = k % 8 == 7 ? u32(in) : incs[k % 8];
    uint8_t buf[4] = {(uint8_t)(inc >> 24), (uint8_t)(inc >> 16), (uint8_t)(inc >> 8),
                      (uint8_t)inc};
    frame(o, in, NGHTTP2_WINDOW_UPDATE, 0, sid, buf, 4, v & 8);
}

static void push_promise(struct out *o, struct in *in, uint8_t v)
{
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
                       NV(":authority", "gateway.invalid"), NV(":path", "/pushed")};
    uint32_t sid = pick_stream(in), promised = pick_stream(in);
    uint8_t *blk;
    size_t len = deflate(o, nv, sizeof nv / sizeof nv[0], &blk);
    send_block(o, in, NGHTTP2_PUSH_PROMISE, sid, promised, blk, len, v);
}

/* ---- running the program --------------------------------------------------------------- */

/* Hands the client what was written since the last feed; returns 0 while
 * the connection lives. */
static int feed(struct pa_conn *c, struct out *o, size_t upto)
{
    char err[320];
    int connected;

    if (upto > o->len)
        upto = o->len;
    int rv = pa_conn_feed(c, o->b + o->fed, upto - o->fed, &connected, err, sizeof err);
    o->fed = upto;
    return rv;
}

static void submit(struct panelagent_client *client, struct pa_conn *c)
{
    static const uint8_t body[] = "\x85\xa1v\x01\xa3seq\xcd\x03\xe8"; /* not decoded here */

    if (n_queued < N_MAX &&
        pa_client_test_queue(client, SEQ0 + n_queued, body, sizeof body - 1) == PANELAGENT_OK)
        n_queued++;
    if (pa_conn_slots(c, N_MAX) > 0)
        (void)pa_client_test_attach(client, c);
}

static int run(struct pa_conn *c, struct out *o, struct in *in)
{
    uint8_t buf[256];

    while (in->n > 0 && o->len < WIRE_MAX) {
        uint8_t op = u8(in), v = op >> 4;
        switch (op & 15) {
        case 0: settings(o, in, v); break;
        case 1: frame(o, in, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, buf,
                      v & 1 ? (memset(buf, 0, 6), 6) : 0, v & 8); break;
        case 2: {
            uint32_t sid = pick_stream(in);
            uint8_t *blk;
            size_t len = response_block(o, in, sid, &blk);
            send_block(o, in, NGHTTP2_HEADERS, sid, 0, blk, len, v);
            break;
        }
        case 3: continuation(o, in, v); break;
        case 4: data(o, in, v); break;
        case 5: {
            uint32_t sid = pick_stream(in), code = pick_code(in);
            uint8_t b[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16), (uint8_t)(code >> 8),
                            (uint8_t)code};
            frame(o, in, NGHTTP2_RST_STREAM, 0, sid, b, 4, v & 8);
            break;
        }
        case 6: goaway(o, in, v); break;
        case 7:
            for (int i = 0; i < 8; i++)
                buf[i] = u8(in);
            frame(o, in, NGHTTP2_PING, v & 1 ? NGHTTP2_FLAG_ACK : 0, v & 2 ? 1 : 0, buf, 8,
                  v & 8);
            break;
        case 8: window_update(o, in, v); break;
        case 9: push_promise(o, in, v); break;
        case 10: {
            uint32_t sid = pick_stream(in);
            for (int i = 0; i < 5; i++)
                buf[i] = u8(in);
            frame(o, in, NGHTTP2_PRIORITY, 0, sid, buf, 5, v & 8);
            break;
        }
        case 11: {
            uint8_t type = (uint8_t)(10 + u8(in) % 246), flags = u8(in);
            uint32_t sid = pick_stream(in);
            size_t n = raw(in, buf);
            frame(o, in, type, flags, sid, buf, n, v & 8);
            break;
        }
        case 12: {
            size_t n = raw(in, buf);
            put(o, buf, n);
            break;
        }
        case 13:
            if (v & 1 && feed(c, o, o->fed + (o->len - o->fed) * u8(in) / 256) != 0)
                return -1;
            if (feed(c, o, o->len) != 0)
                return -1;
            break;
        case 14: /* what came so far, the new requests out, as the I/O thread */
            if (feed(c, o, o->len) != 0)
                return -1;
            submit(cl, c);
            if (feed(c, o, o->len) != 0)
                return -1;
            break;
        default: answer(o, in, v); break;
        }
    }
    return feed(c, o, o->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data_, size_t size)
{
    static const uint8_t body[] = "\x85\xa1v\x01\xa3seq\xcd\x03\xe8"; /* not decoded here */
    static uint8_t wire[WIRE_MAX];
    struct pa_conn *c = NULL;
    struct in in = {data_, size};
    struct out o = {.b = wire};
    char err[320];
    int connected;
    uint64_t before = 0, after = 0, rej0 = 0, rej1 = 0;

    if (cl == NULL)
        setup();
    acked_mask = 0;
    n_acks = n_rejected = 0;
    panelagent_client_stat(cl, PANELAGENT_STAT_ACKED, &before);
    panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED, &rej0);

    if (pa_conn_new_mem(&c, cl, &cl->o) != PANELAGENT_OK ||
        nghttp2_hd_deflate_new(&o.hd, 4096) != 0)
        abort();
    for (n_queued = 0; n_queued < N_FIRST; n_queued++)
        if (pa_client_test_queue(cl, SEQ0 + n_queued, body, sizeof body - 1) != PANELAGENT_OK)
            abort();
    if (pa_client_test_attach(cl, c) != N_FIRST)
        abort();
    /* the requests go out (thrown away), then the gateway's frames come in */
    if (pa_conn_feed(c, NULL, 0, &connected, err, sizeof err) == PANELAGENT_OK)
        (void)run(c, &o, &in);

    /* drops the connection, runs the callbacks, empties the queue */
    pa_client_test_detach(cl);
    nghttp2_hd_deflate_del(o.hd);
    free(o.cont);
    panelagent_client_stat(cl, PANELAGENT_STAT_ACKED, &after);
    panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED, &rej1);
    if (after - before != n_acks || rej1 - rej0 != n_rejected)
        abort();
    return 0;
}
