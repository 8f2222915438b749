/*
 * fuzz_gw_hello.c - the gateway's own reading of the first TLS record
 * (gateway/net/hello.h), the only parser that sees a peer's bytes before
 * any authentication.  The first input byte picks a chunk size; the rest
 * is fed whole and in chunks of that size, and the two readings must
 * agree (the state machine may not depend on how recv splits the bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_hello_check whole, split;

    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    memset(&whole, 0, sizeof whole);
    memset(&split, 0, sizeof split);
    gw_hello_feed(&whole, data, size);
    for (size_t off = 0; off < size; off += chunk)
        gw_hello_feed(&split, data + off, size - off < chunk ? size - off : chunk);
    if (whole.done != split.done || whole.bad != split.bad ||
        whole.alpn_seen != split.alpn_seen || whole.h2_offered != split.h2_offered)
        abort();
    /* h2 is only ever found inside an ALPN extension, and nothing is
     * noted of a hello found bad */
    if ((whole.h2_offered && !whole.alpn_seen) || (whole.bad && whole.alpn_seen))
        abort();
    return 0;
}
