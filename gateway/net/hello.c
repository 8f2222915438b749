/*
 * hello.c - the gateway's own look at the first TLS record (hello.h).
 */
#include "hello.h"

/* One byte |x| at offset |d| of the ALPN extension's data: a 2-byte list
 * length, then protocol names, each a length byte and that many bytes. */
static void hello_alpn(struct gw_hello_check *h, uint32_t d, uint32_t x)
{
    if (d < 2)
        return;
    if (d == h->name_at) { /* a name's length */
        h->name_len = x;
        h->name_at = d + 1 + x;
        return;
    }
    uint32_t k = d - (h->name_at - h->name_len); /* byte k of the name */
    if (h->name_len == 2 && k < 2)
        h->name[k] = (uint8_t)x;
    if (d + 1 == h->name_at && h->name_len == 2 && h->name[0] == 'h' && h->name[1] == '2')
        h->h2_offered = true;
}

void gw_hello_feed(struct gw_hello_check *h, const unsigned char *buf, size_t n)
{

    for (size_t i = 0; i < n && !h->done; i++, h->p++) {
        uint32_t p = h->p, x = buf[i];
        if (p == 0) {
            h->done = x != 22; /* not a handshake record */
            continue;
        }
        if (p == 3 || p == 4) {
            h->rec_len = (h->rec_len << 8) | x;
            continue;
        }
        if (p < 5)
            continue;
        if (p >= 5 + h->rec_len) {
            h->done = true;
            continue;
        }
        if (p == 5) {
            h->done = x != 1; /* not a ClientHello */
            continue;
        }
        if (p < 9 + 34) /* handshake header, version, random */
            continue;
        uint32_t b = p - 9, cs_at = 35 + h->sid_len;
        if (b == 34) {
            h->sid_len = x;
            continue;
        }
        if (b < cs_at)
            continue;
        if (b < cs_at + 2) {
            h->cs_len = (h->cs_len << 8) | x;
            continue;
        }
        uint32_t cm_at = cs_at + 2 + h->cs_len;
        if (b < cm_at)
            continue;
        if (b == cm_at) {
            h->cm_len = x;
            h->bad = h->done = x == 0;
            continue;
        }
        uint32_t ext_at = cm_at + 1 + h->cm_len; /* the extensions' length */
        if (b < ext_at) {
            if (x == 0)
                h->null_seen = true;
            if (b + 1 == ext_at) {
                h->bad = !h->null_seen;
                h->done = h->bad;
            }
            continue;
        }
        if (b < ext_at + 2) {
            h->ext_end = (h->ext_end << 8) | x;
            if (b + 1 == ext_at + 2) {
                h->ext_end += ext_at + 2;
                h->ext_at = ext_at + 2;
            }
            continue;
        }
        if (b >= h->ext_end) {
            h->done = true;
            continue;
        }
        uint32_t e = b - h->ext_at; /* byte e of this extension */
        if (e < 2) {
            h->ext_type = (e == 0 ? 0 : h->ext_type << 8) | x;
            continue;
        }
        if (e < 4) {
            h->ext_len = (e == 2 ? 0 : h->ext_len << 8) | x;
            if (e == 3) {
                h->alpn_seen |= h->ext_type == 16;
                h->name_at = 2;
                if (h->ext_len == 0)
                    h->ext_at = b + 1;
            }
            continue;
        }
        if (h->ext_type == 16)
            hello_alpn(h, e - 4, x);
        if (e - 4 + 1 == h->ext_len)
            h->ext_at = b + 1; /* the next extension starts after this byte */
    }
}
