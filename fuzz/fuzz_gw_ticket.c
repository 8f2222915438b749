/*
 * fuzz_gw_ticket.c - the two parsers of gateway/net/ticket.c: the ticket key
 * file (operator input) and gw_ticket_parse on a session ticket (peer
 * input: the bytes a ClientHello offers).
 *
 * The first input byte picks the parser.  Even: the rest is a key file,
 * written with mode 0400 (read only, so it is never rotated or written
 * back) and loaded.  Odd: the rest is a ticket, offered as is to a context
 * on a fixed key file, and a second time with its first 4 bytes set to that
 * key's name, so that the AEAD check (not the name lookup) is what refuses it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ssl.h>

#include "ticket.h"

static int zero_rng(void *p, unsigned char *out, size_t n)
{
    (void)p;
    memset(out, 0x42, n);
    return 0;
}

static int put(const char *path, const uint8_t *data, size_t size)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    int ok = size == 0 || write(fd, data, size) == (ssize_t)size;
    close(fd);
    return ok && chmod(path, 0400) == 0 ? 0 : -1;
}

static const char fixed[] =
    "panelgate-ticket-keys 1\n"
    "current 0badc0de 1800000000 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
    "previous 0ddba11a 1799990000 1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static struct gw_ticket *keys;
    char err[512];

    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_gw_ticket.%ld.key", (long)getpid());
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        struct gw_ticket *t = NULL;
        if (put(path, data + 1, size - 1) == 0 &&
            gw_ticket_new(&t, path, 86400, zero_rng, NULL, 1800000000, err, sizeof err) == 0)
            gw_ticket_free(t);
        unlink(path);
        return 0;
    }
    if (!keys) {
        if (put(path, (const uint8_t *)fixed, sizeof fixed - 1) != 0 ||
            gw_ticket_new(&keys, path, 86400, zero_rng, NULL, 1800000000, err, sizeof err) != 0)
            abort();
        unlink(path);
    }
    size_t n = size - 1;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        mbedtls_ssl_session s;
        memcpy(buf, data + 1, n);
        if (pass == 1 && n >= 4)
            memcpy(buf, "\x0b\xad\xc0\xde", 4);
        mbedtls_ssl_session_init(&s);
        (void)gw_ticket_parse(keys, &s, buf, n);
        mbedtls_ssl_session_free(&s);
    }
    free(buf);
    return 0;
}
