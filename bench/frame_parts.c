/*
 * frame_parts.c - bench_frame_parts: what the event loop's own work on one
 * frame costs, apart from TLS, HTTP/2 and the kernel: pa_frame_decode,
 * gw_privacy_reduce (geo/ASN lookups), gw_privacy_encode (the stored
 * form) and gw_samples_build, on bench_loadgen's frame (bench_frame.h).
 *
 *   bench_frame_parts [--country-db F --asn-db F] [--frames N] [--rounds R]
 *                     [--streams S] [--conns C] [--once]
 *
 * Each round runs the first part alone for N frames, then the first two,
 * and so on (each frame in a fresh arena, as the gateway does); a part's
 * cost is the difference, in CPU time per frame (CLOCK_PROCESS_CPUTIME_ID),
 * the minimum over R rounds (the least disturbed by other work on the
 * core; on a busy core a part of a few hundred ns can even come out
 * negative).  Output: one line of key=value pairs (ns per frame).  --once runs
 * the whole pipeline N times without timing, for an instruction count
 * that no other load disturbs:
 *
 *   valgrind --tool=callgrind bench_frame_parts --once --frames 1000 ...
 *   callgrind_annotate --inclusive=yes callgrind.out.PID
 *
 * Databases: bench/make_bench_mmdb.pl writes the two bench_loadgen's
 * addresses fall in; without them the reduction is plain counts.  Built
 * with the gateway; run by hand (docs/ARCHITECTURE.md, "What a frame
 * costs on the loop").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "alloc.h"
#include "bench_frame.h"
#include "privacy.h"
#include "samples.h"

enum { PART_DECODE, PART_REDUCE, PART_ENCODE, PART_SAMPLES, N_PARTS };

static const char *const part_name[N_PARTS] = {"decode", "reduce", "encode", "samples"};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parts 0..last on one frame; 0 or the failing part + 1. */
static int run_frame(const uint8_t *buf, size_t len, const struct pa_frame_limits *lim,
                     const struct gw_geo *geo, int last)
{
    struct pa_arena a;
    struct pa_buf stored;
    struct pa_frame *f = NULL;
    struct pa_frame_error fe;
    struct gw_viewers v;
    struct gw_samples *sm = NULL;
    int rv = 0;

    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&stored, NULL);
    if (pa_frame_decode(buf, len, lim, &a, &f, &fe) != 0)
        rv = PART_DECODE + 1;
    else if (last >= PART_REDUCE && gw_privacy_reduce(geo, f->conns, f->n_conns, &a, &v) != 0)
        rv = PART_REDUCE + 1;
    else if (last >= PART_ENCODE &&
             (pa_buf_reserve(&stored, len) != 0 || gw_privacy_encode(f, &v, &stored) != 0))
        rv = PART_ENCODE + 1; /* reserved as h2.c does */
    else if (last >= PART_SAMPLES && gw_samples_build(f, &v, &sm) != 0)
        rv = PART_SAMPLES + 1;
    gw_free(sm);
    pa_buf_cleanup(&stored);
    pa_arena_cleanup(&a);
    return rv;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_frame_parts [--country-db F --asn-db F] [--frames N] "
                 "[--rounds R] [--streams S] [--conns C] [--once]\n");
}

int main(int argc, char **argv)
{
    const char *country = NULL, *asn = NULL;
    unsigned frames = 20000, rounds = 7, streams = 6, conns = 50;
    int once = 0, opt;
    static const struct option opts[] = {
        {"country-db", required_argument, NULL, 'c'}, {"asn-db", required_argument, NULL, 'a'},
        {"frames", required_argument, NULL, 'n'},     {"rounds", required_argument, NULL, 'r'},
        {"streams", required_argument, NULL, 's'},    {"conns", required_argument, NULL, 'C'},
        {"once", no_argument, NULL, 'o'},             {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': country = optarg; break;
        case 'a': asn = optarg; break;
        case 'n': frames = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'C': conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': once = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || frames == 0 || rounds == 0 || rounds > 99) {
        usage(stderr);
        return 1;
    }

    char err[256];
    struct gw_geo *geo = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct pa_frame_limits lim;
    int rv = 1;

    pa_frame_limits_default(&lim);
    if (gw_geo_open(&geo, country, asn, err, sizeof err) != 0) {
        fprintf(stderr, "bench_frame_parts: %s\n", err);
        return 1;
    }
    if (make_frame("bench-001", streams, conns, &buf, &len) != PANELAGENT_OK) {
        fprintf(stderr, "bench_frame_parts: cannot build the frame\n");
        goto out;
    }
    if (once) {
        for (unsigned i = 0; i < frames; i++)
            if (run_frame(buf, len, &lim, geo, PART_SAMPLES) != 0)
                goto fail;
        rv = 0;
        goto out;
    }

    double t[N_PARTS][100];
    for (unsigned r = 0; r < rounds; r++) {
        for (int last = 0; last < N_PARTS; last++) {
            double t0 = cpu_s();
            for (unsigned i = 0; i < frames; i++)
                if (run_frame(buf, len, &lim, geo, last) != 0)
                    goto fail;
            t[last][r] = (cpu_s() - t0) / frames * 1e9;
        }
    }
    printf("frame_parts frame_bytes=%zu frames=%u rounds=%u", len, frames, rounds);
    double prev = 0;
    for (int p = 0; p < N_PARTS; p++) {
        qsort(t[p], rounds, sizeof t[p][0], cmp_double);
        printf(" %s_ns=%.0f", part_name[p], t[p][0] - prev);
        prev = t[p][0];
    }
    printf(" total_ns=%.0f\n", prev);
    rv = 0;
    goto out;
fail:
    fprintf(stderr, "bench_frame_parts: a part failed on the frame\n");
out:
    panelagent_free(buf);
    gw_geo_free(geo);
    return rv;
}
