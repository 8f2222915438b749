/*
 * panelgate_bench.c - panelgate-bench, the gateway's load generator: agents
 * on mutual-TLS HTTP/2 connections posting frames to /v1/stats.
 *
 *  - identities: --identities K registered agents (certificate
 *    <agent-dir>/<prefix>NNN.crt and .key, NNN = 001, 002, ...), spread
 *    over --clients N connections (connection i is identity i mod K + 1;
 *    K defaults to N: one connection per agent);
 *  - --in-flight M frames unanswered per connection at most, each on its
 *    own stream;
 *  - a frame profile (--profile small | typical | large | wide: about
 *    0.5 KiB, 2 KiB, 10 KiB, and a 40-stream, 200-viewer frame), or
 *    --streams / --conns by hand;
 *  - a fixed rate (--rate R frames/s per connection) or, without it, as
 *    fast as the answers allow (every answer sends the next frame);
 *  - a fresh seq per frame: each identity's counter starts at the Unix time
 *    in microseconds and counts up, so it grows across runs as the protocol
 *    wants;
 *  - a reconnect storm after the window (--storm full | resume): every
 *    connection is dropped at once and reopened at once, offering the TLS
 *    session it had (resume) or not (full), and the run goes on until each
 *    has a frame acknowledged again (or --storm-timeout).
 *
 * It has to cost far less per frame than the gateway, so it is one thread
 * with epoll over plain mbedTLS and nghttp2 (the libraries the gateway and
 * the SDK use), and sends a frame encoded once per identity by
 * libpanelagent's builders, only patching each copy's seq in place.
 * (Through libpanelagent itself, decoding and encoding every frame again
 * cost the generator about as much CPU per frame as the gateway spends.)
 * Connects and handshakes are non-blocking: at most --open-parallel
 * handshakes are in progress while the connections are first opened; a
 * storm opens them all at once, as a fleet does (or --storm-parallel at a
 * time).  A handshake not done in --handshake-timeout seconds is abandoned
 * and tried again, as an agent would.  The client's side of a full mTLS
 * handshake costs this one thread milliseconds of CPU (ECDHE, the
 * certificate's signature, the server's chain), so a storm of many full
 * handshakes can be bounded by the generator rather than the server:
 * storm_loadgen_cpu_s says how much of the storm it spent.
 *
 * Answers: --ack-status (202; nghttpd, which serves a file, answers 200) is
 * an acknowledgement; a 503 or 429 is counted and the same frame is sent
 * again 200 ms later (sooner than retry-after: a benchmark keeps the
 * pressure on); any other answer is counted and the slot moves on to the
 * next frame.  A connection lost while measuring is counted (conn_errors)
 * and reopened only with --reconnect-ms.
 *
 * After --warmup seconds (handshakes, first frames) a window of --duration
 * seconds is measured: acknowledgements in it and their latency (request
 * sent to answer complete: p50, p99, p999), the other answers, errors by
 * kind (connect, handshake, handshake timeout, connection lost), the CPU
 * used in it by this process and, with --gw-pid, by the server
 * (/proc/PID/stat, every thread) and its memory (/proc/PID/status: VmRSS
 * before the first connection and at the end of the window, VmHWM), and
 * with --watch-pid (repeatable) by other processes together (NATS nodes).
 * --lat-file writes every latency of the window, in microseconds, one a
 * line (for plots).  Output: one line of key=value pairs starting with
 * "panelgate-bench", which bench/run_engines.sh and bench/run_peers.sh
 * parse.  Exit 0 when the run completed, 1 on a setup error (an option, a
 * certificate, a refused handshake while opening).
 *
 * The connections live in bench_conn.c (bench.h); this file has the
 * options, the phases and the report.  Built with the gateway; run by
 * hand, by bench/run_engines.sh and
 * bench/run_peers.sh, and for a few seconds by
 * tests/integration/test_bench_loadgen.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/entropy.h>

#include <panelagent.h>

#include "bench.h"

#define MAX_WATCH 8
#define MAX_CLIENTS 50000

static const char *const err_name[E_KINDS] = {"err_connect", "err_handshake", "err_timeout",
                                              "err_closed"};
static mbedtls_entropy_context entropy;

static double cpu_self_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of process |pid| (all its threads), seconds; -1 when it
 * cannot be read. */
static double cpu_pid_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -1;
    unsigned long long ut = 0, stime = 0;
    /* after ")": state is field 3; utime and stime are fields 14 and 15 */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key:   N kB" line of /proc/PID/status, in kB; -1 when unreadable. */
static long status_kb(long pid, const char *key)
{
    char path[64], line[256];
    long v = -1;
    size_t n = strlen(key);
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* ---- main ------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The |q|-quantile (0..1) of the sorted latencies, in ms. */
static double quantile_ms(double q)
{
    if (stats.n_lat == 0)
        return 0;
    size_t i = (size_t)(q * (double)stats.n_lat + 0.999999);
    if (i < 1)
        i = 1;
    if (i > stats.n_lat)
        i = stats.n_lat;
    return stats.lat_us[i - 1] / 1e3;
}

static const struct profile {
    const char *name;
    unsigned streams, conns;
} profiles[] = {
    {"small", 1, 4},      /* about 0.5 KiB */
    {"typical", 6, 50},   /* about 2 KiB: a busy edge server */
    {"large", 30, 320},   /* about 10 KiB */
    {"wide", 40, 200},    /* 40 streams, 200 viewers: ~60 panel rows */
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: panelgate-bench --port PORT --ca FILE --agent-dir DIR [options]\n"
            "  --host ADDR          the server's IPv4 address (127.0.0.1)\n"
            "  --name NAME          its certificate's name: SNI, :authority (localhost)\n"
            "  --agent-prefix P     certificates DIR/PNNN.crt + .key, NNN from 001 (bench-)\n"
            "  --clients N          connections, 1..%d (16)\n"
            "  --identities K       agents the connections are spread over, 1..N (N)\n"
            "  --in-flight M        unanswered frames (streams) per connection, 1..100 (8)\n"
            "  --profile P          small (~0.5 KiB), typical (~2 KiB), large (~10 KiB),\n"
            "                       wide (40 streams, 200 viewers) (typical)\n"
            "  --streams N          streams per frame (the profile's)\n"
            "  --conns N            viewer connections per frame (the profile's)\n"
            "  --rate R             frames/s per connection; 0: as fast as acks allow (0)\n"
            "  --warmup S           seconds before the window (2)\n"
            "  --duration S         seconds measured (10)\n"
            "  --storm MODE         after the window, drop every connection and reopen\n"
            "                       all at once: full (no session offered) or resume\n"
            "                       (the saved TLS session offered); none (none)\n"
            "  --storm-timeout S    give the storm up after S seconds (60)\n"
            "  --storm-parallel N   handshakes in progress in the storm; 0: all at once (0)\n"
            "  --open-parallel N    handshakes in progress while first opening (32)\n"
            "  --handshake-timeout S  abandon a connect + handshake after S s (10)\n"
            "  --reconnect-ms MS    reopen a lost connection after MS ms; 0: never (0)\n"
            "  --ack-status CODE    the answer that acknowledges a frame (202)\n"
            "  --gw-pid PID         the server: its CPU over the window, its memory\n"
            "  --watch-pid PID      another process whose CPU is added to watch_cpu\n"
            "                       (repeatable, up to %d)\n"
            "  --lat-file FILE      every latency of the window (us), one a line\n"
            "  --ciphersuite NAME   offer only this suite (mbedTLS name, e.g.\n"
            "                       TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256)\n"
            "  --dry-run            build the frame, print its size, connect nowhere\n",
            MAX_CLIENTS, MAX_WATCH);
}

int main(int argc, char **argv)
{
    const char *ca_file = NULL, *dir = NULL, *prefix = "bench-", *lat_file = NULL;
    const char *profile = "typical";
    long port = 0, gw_pid = 0, watch[MAX_WATCH];
    unsigned n_watch = 0, identities = 0, streams = ~0u, conns = ~0u;
    double warmup = 2, duration = 10, storm_timeout = 60, hs_timeout = 10, reconnect_ms = 0;
    int dry_run = 0;
    run.clients = 16;
    run.in_flight = 8;
    run.open_parallel = 32;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},       {"port", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},       {"ca", required_argument, NULL, 'a'},
        {"agent-dir", required_argument, NULL, 'd'},  {"agent-prefix", required_argument, NULL, 'x'},
        {"clients", required_argument, NULL, 'c'},    {"in-flight", required_argument, NULL, 'i'},
        {"warmup", required_argument, NULL, 'w'},     {"duration", required_argument, NULL, 't'},
        {"streams", required_argument, NULL, 's'},    {"conns", required_argument, NULL, 'v'},
        {"gw-pid", required_argument, NULL, 'g'},     {"watch-pid", required_argument, NULL, 'W'},
        {"identities", required_argument, NULL, 'I'}, {"profile", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'r'},       {"storm", required_argument, NULL, 'S'},
        {"storm-timeout", required_argument, NULL, 'T'},
        {"storm-parallel", required_argument, NULL, 'Q'},
        {"open-parallel", required_argument, NULL, 'o'},
        {"handshake-timeout", required_argument, NULL, 'k'},
        {"reconnect-ms", required_argument, NULL, 'R'},
        {"ack-status", required_argument, NULL, 'A'}, {"lat-file", required_argument, NULL, 'L'},
        {"dry-run", no_argument, NULL, 'D'},          {"ciphersuite", required_argument, NULL, 'C'},          {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': run.host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'n': run.authority = optarg; break;
        case 'a': ca_file = optarg; break;
        case 'd': dir = optarg; break;
        case 'x': prefix = optarg; break;
        case 'c': run.clients = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'i': run.in_flight = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 't': duration = strtod(optarg, NULL); break;
        case 's': streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'g': gw_pid = strtol(optarg, NULL, 10); break;
        case 'I': identities = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'P': profile = optarg; break;
        case 'r': run.rate = strtod(optarg, NULL); break;
        case 'S':
            if (strcmp(optarg, "none") == 0)
                run.storm = 0;
            else if (strcmp(optarg, "full") == 0)
                run.storm = 1;
            else if (strcmp(optarg, "resume") == 0)
                run.storm = 2;
            else
                bad = 1;
            break;
        case 'T': storm_timeout = strtod(optarg, NULL); break;
        case 'Q': run.storm_parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': run.open_parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': hs_timeout = strtod(optarg, NULL); break;
        case 'R': reconnect_ms = strtod(optarg, NULL); break;
        case 'A': run.ack_status = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'L': lat_file = optarg; break;
        case 'D': dry_run = 1; break;
        case 'C':
            run.suites[0] = mbedtls_ssl_get_ciphersuite_id(optarg);
            bad |= run.suites[0] == 0;
            break;
        case 'W':
            if (n_watch == MAX_WATCH) {
                fprintf(stderr, "panelgate-bench: at most %d --watch-pid\n", MAX_WATCH);
                return 1;
            }
            watch[n_watch++] = strtol(optarg, NULL, 10);
            break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    const struct profile *pf = NULL;
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (strcmp(profile, profiles[i].name) == 0)
            pf = &profiles[i];
    if (identities == 0)
        identities = run.clients;
    if (pf != NULL && streams == ~0u)
        streams = pf->streams;
    if (pf != NULL && conns == ~0u)
        conns = pf->conns;
    struct sockaddr_in probe;
    if (bad || pf == NULL || (!dry_run && (port < 1 || port > 65535 || ca_file == NULL ||
                                           dir == NULL)) ||
        run.clients < 1 || run.clients > MAX_CLIENTS || identities > run.clients ||
        run.in_flight < 1 || run.in_flight > 100 || warmup < 0 || duration <= 0 || run.rate < 0 ||
        storm_timeout <= 0 || run.open_parallel < 1 || hs_timeout <= 0 || reconnect_ms < 0 ||
        run.ack_status < 100 || run.ack_status > 599 || streams > 10000 || conns > 100000 ||
        inet_pton(AF_INET, run.host, &probe.sin_addr) != 1 || optind != argc) {
        usage(stderr);
        return 1;
    }
    run.port = (int)port;
    run.hs_timeout_us = (int64_t)(hs_timeout * 1e6);
    run.reconnect_us = (int64_t)(reconnect_ms * 1e3);

    int rv = 1;
    struct conn *cs = calloc(run.clients, sizeof *cs);
    struct ident *ids = calloc(identities, sizeof *ids);
    struct epoll_event *evs = calloc(1024, sizeof *evs);
    unsigned loaded = 0;
    run.epfd = -1;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&bench_drbg);
    mbedtls_x509_crt_init(&bench_ca);
    if (cs == NULL || ids == NULL || evs == NULL)
        goto out;
    if (dry_run) {
        uint8_t *body = NULL;
        size_t len = 0;
        if (bench_make_frame("bench-001", streams, conns, &body, &len) != 0) {
            fprintf(stderr, "panelgate-bench: cannot build the frame\n");
            goto out;
        }
        panelagent_free(body);
        printf("panelgate-bench profile=%s streams=%u conns=%u frame_bytes=%zu\n", pf->name,
               streams, conns, len);
        rv = 0;
        goto out;
    }
    /* one descriptor per connection, and some */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < run.clients + 64u) {
        rl.rlim_cur = rl.rlim_max < run.clients + 64u ? rl.rlim_max : run.clients + 64u;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (mbedtls_ctr_drbg_seed(&bench_drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&bench_ca, ca_file) != 0) {
        fprintf(stderr, "panelgate-bench: --ca %s: cannot load it\n", ca_file);
        goto out;
    }
    run.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (run.epfd < 0)
        goto out;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    srandom((unsigned)wall.tv_nsec);
    uint64_t seq0 = (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
    for (; loaded < identities; loaded++) {
        struct ident *a = &ids[loaded];
        char err[512];
        bench_ident_init(a);
        snprintf(a->name, sizeof a->name, "%.50s%03u", prefix, loaded + 1);
        if (bench_ident_load(a, dir, streams, conns, seq0, err, sizeof err) != 0) {
            fprintf(stderr, "panelgate-bench: agent %s: %s\n", a->name, err);
            loaded++;
            goto out;
        }
    }
    for (unsigned i = 0; i < run.clients; i++) {
        struct conn *c = &cs[i];
        c->id = &ids[i % identities];
        c->fd = -1;
        c->state = C_WAIT;
        c->slots = calloc(run.in_flight, sizeof *c->slots);
        c->out = malloc(BENCH_OUT_CAP);
        if (c->slots == NULL || c->out == NULL) {
            fprintf(stderr, "panelgate-bench: out of memory\n");
            goto out;
        }
        for (unsigned k = 0; k < run.in_flight; k++) {
            c->slots[k].c = c;
            c->slots[k].seq = c->id->next_seq++;
        }
    }

    long rss0 = gw_pid ? status_kb(gw_pid, "VmRSS") : -1, rss1 = -1, hwm = -1;
    int64_t scan_us = run.clients / 1000 < 1 ? 1000 : run.clients / 1000 > 10 ? 10000
                                                                           : run.clients;
    int64_t t_open = bench_mono_us(), last_scan = 0, win0 = 0, win1 = 0, t0 = 0, t1 = 0, storm_end = 0;
    double self0 = 0, self1 = 0, gw0 = 0, gw1 = 0, w0 = 0, w1 = 0, gws0 = 0, gws1 = 0;
    double selfs0 = 0, selfs1 = 0;
    double open_s = 0;
    int done = 0;
    run.phase = PH_OPEN;
    while (!done) {
        int64_t now = bench_mono_us();
        int scanned = now - last_scan >= scan_us;
        if (scanned) {
            bench_scan(cs, now);
            last_scan = now;
        }
        if (run.fatal[0] != '\0') {
            fprintf(stderr, "panelgate-bench: %s\n", run.fatal);
            goto out;
        }
        if (run.phase == PH_OPEN && run.opening == 0 && bench_count_state(cs, C_OPEN) == run.clients) {
            run.phase = PH_RUN;
            open_s = (double)(now - t_open) / 1e6;
            win0 = now + (int64_t)(warmup * 1e6);
            win1 = win0 + (int64_t)(duration * 1e6);
        } else if (run.phase == PH_OPEN && scanned && bench_count_state(cs, C_DEAD) > 0) {
            fprintf(stderr, "panelgate-bench: a connection was lost while opening\n");
            goto out;
        }
        if (run.phase == PH_RUN && !run.measuring && t0 == 0 && now >= win0) {
            self0 = cpu_self_s();
            gw0 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            for (unsigned i = 0; i < n_watch; i++)
                w0 += cpu_pid_s(watch[i]);
            t0 = bench_mono_us();
            run.measuring = 1;
        } else if (run.phase == PH_RUN && run.measuring && now >= win1) {
            run.measuring = 0;
            t1 = bench_mono_us();
            self1 = cpu_self_s();
            gw1 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            rss1 = gw_pid ? status_kb(gw_pid, "VmRSS") : -1;
            for (unsigned i = 0; i < n_watch; i++)
                w1 += cpu_pid_s(watch[i]);
            if (!run.storm)
                break; /* what is still in flight does not count */
            /* the storm: every connection dropped, all reopened at once */
            run.phase = PH_STORM;
            gws0 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            selfs0 = cpu_self_s();
            run.storm_t0 = bench_mono_us();
            storm_end = run.storm_t0 + (int64_t)(storm_timeout * 1e6);
            for (unsigned i = 0; i < run.clients; i++) {
                struct conn *c = &cs[i];
                if (c->state == C_DEAD)
                    continue;
                bench_conn_teardown(c);
                c->state = C_WAIT;
                c->reopen_at_us = run.storm_t0;
                c->storm_wait = 1;
                run.storm_left++;
            }
            bench_scan(cs, run.storm_t0);
            last_scan = run.storm_t0;
        }
        if (run.phase == PH_STORM && (run.storm_left == 0 || now >= storm_end)) {
            gws1 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            selfs1 = cpu_self_s();
            break;
        }
        if (run.phase != PH_OPEN && scanned && bench_count_state(cs, C_DEAD) == run.clients) {
            fprintf(stderr, "panelgate-bench: the server closed every connection\n");
            break;
        }
        int n = epoll_wait(run.epfd, evs, 1024, 1);
        if (n < 0 && errno != EINTR)
            break;
        now = bench_mono_us();
        for (int i = 0; i < n; i++)
            bench_conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    if (t1 == 0) {
        fprintf(stderr, "panelgate-bench: stopped before the end of the window\n");
        goto out;
    }
    hwm = gw_pid ? status_kb(gw_pid, "VmHWM") : -1;

    double secs = (double)(t1 - t0) / 1e6;
    qsort(stats.lat_us, stats.n_lat, sizeof *stats.lat_us, cmp_u32);
    if (lat_file != NULL) {
        FILE *f = fopen(lat_file, "w");
        if (f == NULL) {
            fprintf(stderr, "panelgate-bench: --lat-file %s: %s\n", lat_file, strerror(errno));
            goto out;
        }
        for (size_t i = 0; i < stats.n_lat; i++)
            fprintf(f, "%" PRIu32 "\n", stats.lat_us[i]);
        fclose(f);
    }
    printf("panelgate-bench clients=%u identities=%u in_flight=%u profile=%s streams=%u conns=%u"
           " rate=%g frame_bytes=%zu suite=%s open_s=%.3f seconds=%.3f acks=%" PRIu64
           " acks_per_s=%.0f r503=%" PRIu64 " r429=%" PRIu64 " r_other=%" PRIu64
           " conn_errors=%" PRIu64,
           run.clients, identities, run.in_flight, pf->name, streams, conns, run.rate, ids[0].body_len,
           run.suite[0] ? run.suite : "none", open_s, secs, stats.ok, (double)stats.ok / secs, stats.r503,
           stats.r429, stats.r_other, stats.conn_errors);
    for (int k = 0; k < E_KINDS; k++)
        printf(" %s=%" PRIu64, err_name[k], stats.err[k]);
    printf(" handshakes=%" PRIu64 " resumed=%" PRIu64
           " lat_ms_p50=%.3f lat_ms_p99=%.3f lat_ms_p999=%.3f loadgen_cpu=%.3f",
           stats.handshakes, stats.resumed, quantile_ms(0.50), quantile_ms(0.99), quantile_ms(0.999),
           (self1 - self0) / secs);
    if (gw_pid) {
        double gw_cpu = (gw1 - gw0) / secs;
        if (gw0 < 0 || gw1 < 0 || gw_cpu <= 0)
            printf(" gw_cpu=na");
        else
            printf(" gw_cpu=%.3f gw_cpu_s=%.3f gw_frames_per_core=%.0f gw_cpu_us_per_frame=%.1f",
                   gw_cpu, gw1 - gw0, (double)stats.ok / secs / gw_cpu,
                   stats.ok ? (gw1 - gw0) * 1e6 / (double)stats.ok : 0);
        if (rss0 >= 0 && rss1 >= 0)
            printf(" gw_rss0_kb=%ld gw_rss_kb=%ld gw_hwm_kb=%ld gw_kb_per_conn=%.1f", rss0, rss1,
                   hwm, (double)(rss1 - rss0) / run.clients);
    }
    if (n_watch)
        printf(" watch_cpu=%.3f", (w1 - w0) / secs);
    if (run.storm) {
        unsigned left = run.storm_left;
        printf(" storm=%s storm_s=%.3f storm_left=%u storm_attempts=%" PRIu64
               " storm_failed=%" PRIu64 " storm_handshakes=%" PRIu64 " storm_resumed=%" PRIu64,
               run.storm == 2 ? "resume" : "full",
               (double)((left ? bench_mono_us() : run.storm_last) - run.storm_t0) / 1e6, left,
               run.storm_attempts, run.storm_err, run.storm_handshakes, run.storm_resumed);
        printf(" storm_loadgen_cpu_s=%.3f", selfs1 - selfs0);
        if (gw_pid && gws0 >= 0 && gws1 >= 0)
            printf(" storm_gw_cpu_s=%.3f", gws1 - gws0);
    }
    printf("\n");
    fflush(stdout);
    rv = 0;
out:
    for (unsigned i = 0; cs != NULL && i < run.clients; i++) {
        if (cs[i].slots == NULL)
            break;
        bench_conn_teardown(&cs[i]);
        if (cs[i].have_sess)
            mbedtls_ssl_session_free(&cs[i].sess);
        free(cs[i].slots);
        free(cs[i].out);
    }
    for (unsigned i = 0; i < loaded; i++)
        bench_ident_cleanup(&ids[i]);
    if (run.epfd >= 0)
        close(run.epfd);
    free(cs);
    free(ids);
    free(evs);
    free(stats.lat_us);
    mbedtls_x509_crt_free(&bench_ca);
    mbedtls_ctr_drbg_free(&bench_drbg);
    mbedtls_entropy_free(&entropy);
    return rv;
}
