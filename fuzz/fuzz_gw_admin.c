/*
 * fuzz_gw_admin.c - the admin listener (gateway/net/admin.c) on arbitrary
 * request bytes.  Its parsing is libevent's evhttp (request line, headers,
 * URI, the method and size limits admin.c sets) and its answers are
 * admin.c's handlers over metrics.c; both run as the gateway runs them:
 * gw_admin_new binds 127.0.0.1 port 0 on a real event loop once, and each
 * input is one loopback connection that sends the bytes, half-closes and
 * reads until the listener closes.
 *
 * The first input byte chooses how the rest is sent: whole, or in chunks of
 * (byte % 64 + 1) bytes with a loop pass between them, so evhttp's
 * incremental reading of a request split across reads is exercised too.
 * Whatever comes back must be nothing or start like an HTTP/1.x status
 * line.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>

#include "admin.h"
#include "config.h"
#include "gw.h"
#include "log.h"

static struct event_base *base;
static struct gw_config cfg;
static struct gw_app app;
static unsigned port;

static int setup(void)
{
    char err[256];

    gw_log_set_level(GW_LOG_ERROR);
    base = event_base_new();
    if (base == NULL || gw_config_defaults(&cfg) != 0)
        return -1;
    cfg.admin_on = true;
    snprintf(cfg.admin_listen.host, sizeof cfg.admin_listen.host, "127.0.0.1");
    cfg.admin_listen.port = 0;
    app.base = base;
    app.cfg = &cfg;
    app.started_ms = gw_mono_ms();
    if (gw_admin_new(&app.admin, &app, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_gw_admin: %s\n", err);
        return -1;
    }
    port = gw_admin_port(app.admin);
    return port != 0 ? 0 : -1;
}

/* Reads what is there; 1 once the listener closed (EOF or reset). */
static int drain(int fd, char *head, size_t *hlen, size_t hcap)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            size_t take = (size_t)n < hcap - *hlen ? (size_t)n : hcap - *hlen;
            memcpy(head + *hlen, buf, take);
            *hlen += take;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct sockaddr_in sa;
    char head[16];
    size_t hlen = 0, off = 0, chunk;
    int fd, closed = 0;

    if (ready == 0)
        ready = setup() == 0 ? 1 : -1;
    if (ready < 0)
        abort();
    if (size == 0)
        return 0;
    chunk = data[0] & 0x80 ? (size_t)(data[0] & 0x3f) + 1 : SIZE_MAX;
    data++;
    size--;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    /* the listener closes first; a reset close here keeps no TIME_WAIT
     * on this side either */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        abort();

    while (off < size && !closed) {
        size_t want = size - off < chunk ? size - off : chunk;
        ssize_t n = send(fd, data + off, want, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* the listener gave up on us (reset) */
        event_base_loop(base, EVLOOP_NONBLOCK);
        closed = drain(fd, head, &hlen, sizeof head);
    }
    shutdown(fd, SHUT_WR);
    /* Each pass waits for an event (the accept, the request's bytes, the
     * answer written, the close); the listener always ends the connection
     * once it has read the EOF, so this ends without a timer. */
    while (!closed) {
        event_base_loop(base, EVLOOP_ONCE);
        closed = drain(fd, head, &hlen, sizeof head);
    }
    close(fd);
    if (hlen > 0 && (hlen < 5 || memcmp(head, "HTTP/", 5) != 0))
        abort();
    return 0;
}
