/*
 * hello.h - what the gateway reads of a ClientHello itself, before and
 * beside mbedTLS.
 *
 * RFC 5246 7.4.1.2 (and RFC 8446 4.1.2): a ClientHello's compression
 * methods MUST include null.  mbedTLS 2.28 answers one without it anyway,
 * choosing null, so the gateway checks the first record itself as the
 * bytes stream by (byte p of the connection: the record header first, 5
 * bytes, then the handshake header, 4, then the ClientHello body).  After
 * the compression methods it reads on through the extensions to note
 * whether ALPN (RFC 7301) was offered and with h2: mbedTLS refuses an ALPN
 * list without h2 (no_application_protocol) with the same error as any bad
 * ClientHello, and that refusal deserves its own name.  A ClientHello that
 * does not fit its first record is left to mbedTLS (done, nothing noted).
 *
 * Pure: bytes in, state out; no allocation, every offset bounded by the
 * 16-bit lengths of the record.  Peer input before any authentication:
 * fuzzed by fuzz_gw_hello.
 */
#ifndef GW_HELLO_H
#define GW_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the first record stands; zero it before the first byte. */
struct gw_hello_check {
    uint32_t p, rec_len, sid_len, cs_len, cm_len;
    uint32_t ext_end;          /* body offset where the extensions end (0 = not read) */
    uint32_t ext_at, ext_type, ext_len; /* the extension being read */
    uint32_t name_at, name_len; /* the ALPN protocol name being read */
    uint8_t name[2];
    bool done, null_seen, bad;
    bool alpn_seen, h2_offered;
};

/* Feeds the next |n| bytes the peer sent.  Once h->done, nothing more is
 * read; h->bad says the compression methods lack null. */
void gw_hello_feed(struct gw_hello_check *h, const unsigned char *buf, size_t n);

#endif /* GW_HELLO_H */
