/*
 * bench_frame.h - the frame bench_loadgen sends and bench_frame_parts
 * measures: a busy edge server's (|streams| streams over 2 vhosts x 2
 * apps, |conns| viewer connections over bench/make_bench_mmdb.pl's 20
 * networks, every tenth private, a small config map), about 2 KiB of
 * msgpack with 6 streams and 50 connections, built by libpanelagent with
 * seq SENTINEL_SEQ (the load generator patches it in place).  Included by
 * one .c file each; *out is the SDK's to free (panelagent_free).
 */
#ifndef PANELGATE_BENCH_FRAME_H
#define PANELGATE_BENCH_FRAME_H

#include <stdint.h>
#include <stdio.h>

#include <panelagent.h>

#define SENTINEL_SEQ 0x7eadbeefcafe1234ull

static int make_frame(const char *name, unsigned streams, unsigned conns, uint8_t **out,
                      size_t *len)
{
    static const char *const vh[] = {"_defaultVHost_", "edge.example.net"};
    static const char *const ap[] = {"live", "vod"};
    panelagent_frame *f = NULL;
    int rv = panelagent_frame_new(&f);
    if (rv != PANELAGENT_OK)
        return rv;
    rv = panelagent_frame_set_server(f, name, PANELAGENT_KIND_NIMBLE, "4.1.2");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_add_server_ip(f, "192.0.2.10");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_set_load(f, 37.5, 6ull << 30, 16ull << 30);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_set_traffic(f, 123456789, 9876543210ull, 5000);
    for (unsigned i = 0; rv == PANELAGENT_OK && i < streams; i++) {
        char s[32];
        snprintf(s, sizeof s, "stream-%03u_720p", i);
        uint64_t viewers = 10 + i * 7 % 300;
        rv = panelagent_frame_add_stream(f, vh[i % 2], ap[i / 2 % 2], "_definst_", s, viewers,
                                         2500000 + i * 1000, 1562500, viewers * 1562500ull);
    }
    for (unsigned i = 0; rv == PANELAGENT_OK && i < conns; i++) {
        /* 198.18.N.x, N = 0..19 (bench/make_bench_mmdb.pl's networks);
         * every tenth private */
        uint8_t a[4] = {198, 18, (uint8_t)(i % 20), (uint8_t)(i % 250 + 1)};
        if (i % 10 == 9) {
            a[0] = 10;
            a[1] = 0;
            a[2] = 0;
        }
        rv = panelagent_frame_add_conn_raw(f, a, sizeof a, 4096 + i, 1562500 + i);
    }
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_begin_map(f, "server");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_str(f, "edition", "nimble-streamer");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_i64(f, "rtmp_port", 1935);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_bool(f, "hls_enabled", 1);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_end(f);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_encode(f, SENTINEL_SEQ, out, len);
    panelagent_frame_free(f);
    return rv;
}

#endif
