/*
 * fuzz_pa_h2client.c - libpanelagent's HTTP/2 response path (transport.c
 * and the answer handling of client.c) under hostile bytes from the
 * gateway.  A client without TLS or I/O thread (pa_client_test_new) queues
 * three frames (seq 1000..1002), starts their requests on a connection
 * without a socket (pa_conn_new_mem), and the fuzzer's input is handed to
 * its nghttp2 client session as if it came from the gateway, with the
 * SDK's own callbacks.  TLS is left out (mbedTLS parses that).
 *
 * Checked on top of the sanitizers: an ack is only ever for a frame that
 * was sent, once; the counters agree with the callbacks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define SEQ0 1000u
#define N_FRAMES 3

static struct panelagent_client *cl;
static unsigned acked_mask;
static unsigned n_acks, n_rejected;

static void on_ack(uint64_t seq, void *ud)
{
    (void)ud;
    if (seq < SEQ0 || seq >= SEQ0 + N_FRAMES || (acked_mask & (1u << (seq - SEQ0))))
        abort(); /* an ack for a frame never sent, or twice */
    acked_mask |= 1u << (seq - SEQ0);
    n_acks++;
}

static void on_error(int err, uint64_t seq, const char *detail, void *ud)
{
    (void)ud;
    if (detail == NULL || (seq != 0 && (seq < SEQ0 || seq >= SEQ0 + N_FRAMES)))
        abort();
    if (err == PANELAGENT_EREJECTED)
        n_rejected++;
}

static void setup(void)
{
    panelagent_config *cfg = NULL;

    if (panelagent_config_new(&cfg) != PANELAGENT_OK ||
        panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAY_HOST, "gateway.invalid") != 0 ||
        panelagent_config_set_i64(cfg, PANELAGENT_OPT_MAX_IN_FLIGHT, N_FRAMES) != 0 ||
        panelagent_config_set_ack(cfg, on_ack, NULL) != 0 ||
        panelagent_config_set_error(cfg, on_error, NULL) != 0 ||
        pa_client_test_new(&cl, cfg) != PANELAGENT_OK)
        abort();
    panelagent_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t body[] = "\x85\xa1v\x01\xa3seq\xcd\x03\xe8"; /* not decoded here */
    struct pa_conn *c = NULL;
    char err[320];
    int connected;
    uint64_t before = 0, after = 0, rej0 = 0, rej1 = 0;

    if (cl == NULL)
        setup();
    acked_mask = 0;
    n_acks = n_rejected = 0;
    panelagent_client_stat(cl, PANELAGENT_STAT_ACKED, &before);
    panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED, &rej0);

    if (pa_conn_new_mem(&c, cl, &cl->o) != PANELAGENT_OK)
        abort();
    for (unsigned i = 0; i < N_FRAMES; i++)
        if (pa_client_test_queue(cl, SEQ0 + i, body, sizeof body - 1) != PANELAGENT_OK)
            abort();
    if (pa_client_test_attach(cl, c) != N_FRAMES)
        abort();
    /* the requests go out (thrown away), then the gateway's bytes come in */
    if (pa_conn_feed(c, NULL, 0, &connected, err, sizeof err) == PANELAGENT_OK)
        (void)pa_conn_feed(c, data, size, &connected, err, sizeof err);

    /* drops the connection, runs the callbacks, empties the queue */
    pa_client_test_detach(cl);
    panelagent_client_stat(cl, PANELAGENT_STAT_ACKED, &after);
    panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED, &rej1);
    if (after - before != n_acks || rej1 - rej0 != n_rejected)
        abort();
    return 0;
}
