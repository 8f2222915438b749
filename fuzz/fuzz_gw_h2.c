/*
 * fuzz_gw_h2.c - the gateway's HTTP/2 request path (h2.c) under hostile
 * bytes: the client preface, then the fuzzer's input as frames, fed to a
 * real nghttp2 server session with the gateway's own callbacks, limits and
 * frame decoder.  TLS is left out (its own parser belongs to mbedTLS); the
 * sink is a stand-in that completes every frame at once, since storage is
 * not what is being fuzzed here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "gw.h"
#include "log.h"
#include "sink.h"

static int stub_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    (void)err;
    (void)errlen;
    *state = NULL;
    return 0;
}

static int stub_write(void *state, struct gw_sink_item **items, size_t n)
{
    (void)state;
    /* every answer to a frame the sink can cause: 202, 202 duplicate, 500 */
    for (size_t i = 0; i < n; i++)
        items[i]->status = items[i]->seq % 3 == 0 ? GW_SINK_REJECTED
                           : (items[i]->seq & 1)  ? GW_SINK_STORED
                                                  : GW_SINK_DUPLICATE;
    return 0;
}

static void stub_close(void *state)
{
    (void)state;
}

static const struct gw_sink_ops stub_ops = {
    .name = "fuzz", .open = stub_open, .write_batch = stub_write, .close = stub_close};

static struct gw_app app;

static void noop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void setup(void)
{
    char err[256];

    evthread_use_pthreads();
    app.base = event_base_new();
    app.cfg = calloc(1, sizeof *app.cfg);
    if (!app.base || !app.cfg || gw_config_defaults(app.cfg) != 0)
        abort();
    /* small limits so the fuzzer reaches them */
    app.cfg->max_body_bytes = 65536;
    app.cfg->frame.max_frame_bytes = 65536;
    app.cfg->max_conn_buffer_bytes = 131072;
    app.cfg->max_header_list_size = 4096;
    app.cfg->max_concurrent_streams = 8;
    app.cfg->queue_max_bytes = 1 << 20;
    gw_log_set_level(GW_LOG_ERROR);
    if (gw_sink_new(&app.sink, app.base, &stub_ops, app.cfg, err, sizeof err) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    struct gw_conn *c;

    if (!app.base)
        setup();
    c = calloc(1, sizeof *c);
    if (!c)
        return 0;
    c->app = &app;
    c->id = 1;
    c->fd = -1;
    c->state = GW_CONN_H2;
    c->server_id = 1;
    pa_buf_init(&c->out, NULL);
    c->timer = evtimer_new(app.base, noop, c);
    if (!c->timer || gw_h2_session_new(c) != 0)
        abort();

    if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)preface, sizeof preface - 1) >= 0)
        (void)nghttp2_session_mem_recv(c->h2, data, size);
    for (int i = 0; i < 1000; i++) {
        const uint8_t *out;
        if (nghttp2_session_mem_send(c->h2, &out) <= 0)
            break;
    }

    /* as gw_conn_close does: detach in-flight items, then free */
    gw_h2_streams_free(c);
    nghttp2_session_del(c->h2);
    event_free(c->timer);
    pa_buf_cleanup(&c->out);
    free(c);
    /* completions of detached items: nothing waits for them */
    event_base_loop(app.base, EVLOOP_NONBLOCK);
    return 0;
}
