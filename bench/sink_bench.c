/*
 * sink_bench.c - frames per second through the gateway's real storage
 * path, on one thread of the caller's choice (bench/run_sink.sh pins it
 * and the writer thread to one core with taskset):
 *
 *   pa_frame_decode -> gw_privacy_reduce -> gw_privacy_encode ->
 *   gw_samples_build -> gw_sink_submit -> writer thread -> SQLite commit
 *   -> done callback on the event loop
 *
 * The frame is a typical one (docs/STORAGE.md): --streams streams spread
 * over 2 vhosts x 2 apps x 1 instance, --conns viewer connections over the
 * 20 networks of bench/make_bench_mmdb.pl (so about 20 geo buckets when
 * --country-db/--asn-db are given).  Frames come from --servers servers in
 * turn (seq increasing per server), as a busy gateway sees them; one
 * untimed round (one frame per server) warms the path cache first.
 *
 * Variants (--variant):
 *   frames   the frames table only (store_samples off)
 *   pk       the shipped schema: derived tables, primary keys only
 *   indexed  the shipped schema plus the secondary indexes a panel might
 *            be tempted to add (per stream path, per country, per time
 *            across servers)
 *
 * Pacing (--rate): by default frames are submitted as fast as the queue
 * takes them (a burst: every commit is a full batch).  --rate N submits
 * them at N frames/s instead, on the monotonic clock, sleeping in between
 * - a fleet's trickle, where what a commit carries depends on
 * --commit-delay ([storage] commit_delay_ms, default 0 here so that older
 * figures stay comparable).  --cache-kib and --mmap-mib set the SQLite
 * knobs of the same names ([storage] sqlite_cache_kib, sqlite_mmap_mib,
 * when present).
 *
 * Output: one line of key=value pairs.  Timing is wall clock for the whole
 * run, plus CPU time split between this thread (decode .. submit) and the
 * rest of the process (the writer thread); frames_per_commit is the mean
 * of the sink's panelgate_sink_batch_frames over the timed frames, and
 * ack_p50_ms / ack_p99_ms the time from submit to the done callback.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include <panelproto/arena.h>
#include "config.h"
#include <panelproto/frame.h>
#include "log.h"
#include "privacy.h"
#include "registry.h"
#include "samples.h"
#include "sink.h"
#include "store.h"

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t n_stored, n_failed;
static double *t_submit, *t_ack; /* per frame index, monotonic seconds */

static void on_done(struct gw_sink_item *it, void *ud)
{
    if (it->status < 0) /* not stored: failed, rejected, refused */
        n_failed++;
    else
        n_stored++;
    t_ack[(uintptr_t)ud] = now_s(CLOCK_MONOTONIC);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sleeps until |t| (monotonic seconds). */
static void sleep_until(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

/* The typical frame, encoded. */
static int make_frame(unsigned n_streams, unsigned n_conns, struct pa_buf *out)
{
    static const char *const vh[] = {"_defaultVHost_", "edge.example.net"};
    static const char *const ap[] = {"live", "vod"};
    struct pa_frame f;
    struct pa_vhost vhosts[2];
    struct pa_app apps[4];
    struct pa_instance inst[4];
    struct pa_stream *streams = calloc(n_streams ? n_streams : 1, sizeof *streams);
    struct pa_conn *conns = calloc(n_conns ? n_conns : 1, sizeof *conns);
    char (*names)[32] = calloc(n_streams ? n_streams : 1, sizeof *names);
    int rv = -1;

    if (!streams || !conns || !names)
        goto out;
    memset(&f, 0, sizeof f);
    f.version = 1;
    f.seq = 1;
    f.ts_ms = 1754990000000ull;
    f.server.name = "edge-bench-01.example.net";
    f.server.kind = PA_KIND_NIMBLE;
    f.server.version = "4.1.2";
    f.load.cpu_pct = 37.5;
    f.load.ram_used = 6ull << 30;
    f.load.ram_total = 16ull << 30;
    f.traffic.bytes_in = 123456789;
    f.traffic.bytes_out = 9876543210ull;
    f.traffic.period_ms = 5000;
    for (unsigned i = 0; i < n_streams; i++) {
        snprintf(names[i], sizeof names[i], "stream-%03u_720p", i);
        streams[i].name = names[i];
        streams[i].viewers = 10 + i * 7 % 300;
        streams[i].bitrate = 2500000 + i * 1000;
        streams[i].bytes_in = 1562500;
        streams[i].bytes_out = streams[i].viewers * 1562500ull;
    }
    /* 4 instances (2 vhosts x 2 apps), the streams split evenly */
    unsigned per = n_streams / 4, rest = n_streams % 4, k = 0;
    for (unsigned i = 0; i < 4; i++) {
        inst[i].name = "_definst_";
        inst[i].streams = streams + k;
        inst[i].n_streams = per + (i < rest);
        k += inst[i].n_streams;
        apps[i].name = ap[i % 2];
        apps[i].instances = &inst[i];
        apps[i].n_instances = 1;
    }
    for (unsigned i = 0; i < 2; i++) {
        vhosts[i].name = vh[i];
        vhosts[i].apps = &apps[2 * i];
        vhosts[i].n_apps = 2;
    }
    f.vhosts = vhosts;
    f.n_vhosts = 2;
    /* 198.18.N.x for N in 0..19: the bench database's 20 networks; every
     * tenth connection private (bucket XP) */
    for (unsigned i = 0; i < n_conns; i++) {
        conns[i].ip.family = 4;
        if (i % 10 == 9) {
            conns[i].ip.addr[0] = 10;
            conns[i].ip.addr[3] = (uint8_t)(i % 250 + 1);
        } else {
            conns[i].ip.addr[0] = 198;
            conns[i].ip.addr[1] = 18;
            conns[i].ip.addr[2] = (uint8_t)(i % 20);
            conns[i].ip.addr[3] = (uint8_t)(i % 250 + 1);
        }
        conns[i].bytes_in = 4096 + i;
        conns[i].bytes_out = 1562500 + i;
    }
    f.conns = conns;
    f.n_conns = n_conns;
    rv = pa_frame_encode(&f, out) == 0 ? 0 : -1;
out:
    free(streams);
    free(conns);
    free(names);
    return rv;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_sink: %s: %s\n", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Schema of --variant indexed: the shipped one plus secondary indexes. */
static int add_indexes(const char *path)
{
    sqlite3 *db = NULL;
    char err[256];
    int rv = -1;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        goto out;
    if (gw_store_schema(db, err, sizeof err) != 0) {
        fprintf(stderr, "bench_sink: %s\n", err);
        goto out;
    }
    if (exec(db, "CREATE INDEX IF NOT EXISTS stream_samples_path"
                 " ON stream_samples(stream_id, seq)") != 0 ||
        exec(db, "CREATE INDEX IF NOT EXISTS geo_samples_cc ON geo_samples(cc, asn)") != 0 ||
        exec(db, "CREATE INDEX IF NOT EXISTS server_samples_ts ON server_samples(ts_ms)") != 0)
        goto out;
    rv = 0;
out:
    sqlite3_close(db);
    return rv;
}

/* Servers 1..n in the registry: the sink stores frames of registered
 * servers only. */
static int register_servers(const char *path, unsigned long n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char err[256];
    int rv = -1;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        goto out;
    if (gw_registry_schema(db, err, sizeof err) != 0) {
        fprintf(stderr, "bench_sink: %s\n", err);
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i"
                           " WHERE x < ?1) INSERT OR IGNORE INTO servers(id, name, kind,"
                           " created_at) SELECT x, 'bench-' || x, 'nimble', 0 FROM i",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, (sqlite3_int64)n) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "bench_sink: registering servers: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rv;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_sink --db FILE [--variant frames|pk|indexed] [--frames N]\n"
            "                  [--servers N] [--streams N] [--conns N] [--batch N]\n"
            "                  [--sync full|normal] [--country-db F] [--asn-db F]\n"
            "                  [--rate FRAMES_PER_S] [--commit-delay MS]\n"
            "                  [--cache-kib N] [--mmap-mib N] [--wal-autocheckpoint PAGES]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},        {"variant", required_argument, NULL, 'v'},
        {"frames", required_argument, NULL, 'n'},    {"servers", required_argument, NULL, 's'},
        {"streams", required_argument, NULL, 't'},   {"conns", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'b'},     {"sync", required_argument, NULL, 'y'},
        {"country-db", required_argument, NULL, 'C'}, {"asn-db", required_argument, NULL, 'A'},
        {"rate", required_argument, NULL, 'r'},      {"commit-delay", required_argument, NULL, 'D'},
        {"cache-kib", required_argument, NULL, 'K'}, {"mmap-mib", required_argument, NULL, 'M'},
        {"wal-autocheckpoint", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *variant = "pk", *sync = "full", *cdb = NULL, *adb = NULL;
    unsigned long frames = 20000, servers = 1000, n_streams = 40, n_conns = 200, batch = 512;
    unsigned long rate = 0, delay = 0;
    long cache_kib = -1, mmap_mib = -1, ckpt = -1;
    int opt;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': db = optarg; break;
        case 'v': variant = optarg; break;
        case 'n': frames = strtoul(optarg, NULL, 10); break;
        case 's': servers = strtoul(optarg, NULL, 10); break;
        case 't': n_streams = strtoul(optarg, NULL, 10); break;
        case 'c': n_conns = strtoul(optarg, NULL, 10); break;
        case 'b': batch = strtoul(optarg, NULL, 10); break;
        case 'y': sync = optarg; break;
        case 'C': cdb = optarg; break;
        case 'A': adb = optarg; break;
        case 'r': rate = strtoul(optarg, NULL, 10); break;
        case 'D': delay = strtoul(optarg, NULL, 10); break;
        case 'K': cache_kib = strtol(optarg, NULL, 10); break;
        case 'M': mmap_mib = strtol(optarg, NULL, 10); break;
        case 'W': ckpt = strtol(optarg, NULL, 10); break;
        default: usage(); return 64;
        }
    }
    if (db == NULL || frames == 0 || servers == 0 || batch == 0 ||
        (strcmp(variant, "frames") && strcmp(variant, "pk") && strcmp(variant, "indexed"))) {
        usage();
        return 64;
    }
    gw_log_set_level(GW_LOG_WARN);
    unlink(db);
    char side[4096];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    if (strcmp(variant, "indexed") == 0 && add_indexes(db) != 0)
        return 1;
    if (register_servers(db, servers) != 0)
        return 1;

    struct gw_config cfg;
    char err[512];
    if (gw_config_defaults(&cfg) != 0)
        return 1;
    free(cfg.sqlite_path);
    cfg.sqlite_path = strdup(db);
    cfg.sqlite_synchronous = strcmp(sync, "normal") == 0 ? GW_SYNC_NORMAL : GW_SYNC_FULL;
    cfg.batch_max_frames = (uint32_t)batch;
    cfg.queue_max_frames = batch * 4 > 4096 ? (uint32_t)batch * 4 : 4096;
    cfg.store_samples = strcmp(variant, "frames") != 0;
    cfg.commit_delay_ms = (uint32_t)delay;
    if (cache_kib >= 0)
        cfg.sqlite_cache_size = (size_t)cache_kib * 1024;
    if (mmap_mib >= 0)
        cfg.sqlite_mmap_size = (size_t)mmap_mib << 20;
    if (ckpt >= 0)
        cfg.sqlite_wal_autocheckpoint = (uint32_t)ckpt;

    struct gw_geo *geo = NULL;
    if (gw_geo_open(&geo, cdb, adb, err, sizeof err) != 0) {
        fprintf(stderr, "bench_sink: %s\n", err);
        return 1;
    }
    struct pa_buf wire;
    pa_buf_init(&wire, NULL);
    if (make_frame((unsigned)n_streams, (unsigned)n_conns, &wire) != 0) {
        fprintf(stderr, "bench_sink: cannot build the frame\n");
        return 1;
    }
    struct event_base *base = NULL;
    struct gw_sink *sink = NULL;
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL ||
        gw_sink_new(&sink, base, &gw_sink_sqlite_ops, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_sink: %s\n", base ? err : "event loop");
        return 1;
    }

    struct pa_arena arena;
    struct pa_buf stored;
    pa_buf_init(&stored, NULL);
    size_t stored_len = 0, n_buckets = 0;
    unsigned long total = frames + servers; /* the first round warms up */
    double t0 = 0, c0 = 0, p0 = 0, loop_cpu = 0;
    struct gw_sink_stats st0, st1;
    t_submit = calloc(total, sizeof *t_submit);
    t_ack = calloc(total, sizeof *t_ack);
    if (t_submit == NULL || t_ack == NULL)
        return 1;
    for (unsigned long i = 0; i < total; i++) {
        if (i == servers) {
            /* warm-up done: wait for it to be committed, then start the clock */
            while (n_stored + n_failed < servers)
                event_base_loop(base, EVLOOP_ONCE);
            t0 = now_s(CLOCK_MONOTONIC);
            p0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
            c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
            loop_cpu = 0;
            gw_sink_get_stats(sink, &st0);
        }
        if (rate > 0 && i >= servers) {
            /* a trickle: frame i is due at t0 + (i - servers) / rate */
            double due = t0 + (double)(i - servers) / (double)rate;
            if (now_s(CLOCK_MONOTONIC) < due) {
                sleep_until(due);
                event_base_loop(base, EVLOOP_NONBLOCK); /* completions */
            }
        }
        double l0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        struct pa_frame *f = NULL;
        struct pa_frame_error fe;
        struct gw_viewers v;
        struct gw_samples *sm = NULL;
        pa_arena_init(&arena, 0, NULL);
        stored.len = 0;
        if (pa_frame_decode(wire.data, wire.len, &cfg.frame, &arena, &f, &fe) != 0 ||
            gw_privacy_reduce(geo, f->conns, f->n_conns, &arena, &v) != 0 ||
            gw_privacy_encode(f, &v, &stored) != 0 ||
            (cfg.store_samples && gw_samples_build(f, &v, &sm) != 0)) {
            fprintf(stderr, "bench_sink: frame %lu failed\n", i);
            return 1;
        }
        stored_len = stored.len;
        n_buckets = v.n;
        struct gw_sink_item *it = gw_sink_item_new(f->server.name, stored.data, stored.len);
        if (it == NULL)
            return 1;
        it->samples = sm;
        it->server_id = (int64_t)(i % servers) + 1;
        it->seq = i / servers + 1;
        it->ts_ms = f->ts_ms + (i / servers) * 5000;
        it->received_ms = (int64_t)it->ts_ms;
        it->done = on_done;
        it->ud = (void *)(uintptr_t)i;
        pa_arena_cleanup(&arena);
        loop_cpu += now_s(CLOCK_THREAD_CPUTIME_ID) - l0;
        t_submit[i] = now_s(CLOCK_MONOTONIC);
        while (gw_sink_submit(sink, it) != 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
    /* the last frames: completed on the loop, so that their stats count
     * (a timer keeps the loop waiting instead of spinning: the sink's
     * wake event is never added) */
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    if (tick == NULL || event_add(tick, &tv) != 0)
        return 1;
    while (n_stored + n_failed < total)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    gw_sink_get_stats(sink, &st1);
    gw_sink_free(sink); /* stops the writer */
    double wall = now_s(CLOCK_MONOTONIC) - t0;
    double pcpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - p0;
    double tcpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    (void)tcpu;
    struct stat st;
    long long dbsize = stat(db, &st) == 0 ? (long long)st.st_size : -1;
    snprintf(side, sizeof side, "%s-wal", db);
    if (stat(side, &st) == 0)
        dbsize += (long long)st.st_size;

    uint64_t commits = 0, items = st1.batch_items_sum - st0.batch_items_sum;
    for (unsigned b = 0; b < GW_SINK_BATCH_BUCKETS; b++)
        commits += st1.batch_items[b] - st0.batch_items[b];
    for (unsigned long i = servers; i < total; i++)
        t_ack[i - servers] = (t_ack[i] - t_submit[i]) * 1e3;
    qsort(t_ack, frames, sizeof *t_ack, cmp_double);

    printf("variant=%s frames=%lu servers=%lu streams=%lu conns=%lu buckets=%zu wire_bytes=%zu "
           "stored_bytes=%zu batch=%lu sync=%s rate=%lu commit_delay_ms=%lu cache_kib=%ld "
           "mmap_mib=%ld wal_autocheckpoint=%ld stored=%llu failed=%llu seconds=%.3f "
           "frames_per_s=%.0f cpu_us_per_frame=%.1f loop_us_per_frame=%.1f "
           "writer_us_per_frame=%.1f frames_per_commit=%.1f ack_p50_ms=%.2f ack_p99_ms=%.2f "
           "db_bytes_per_frame=%.0f\n",
           variant, frames, servers, n_streams, n_conns, n_buckets, wire.len, stored_len, batch,
           sync, rate, delay, cache_kib, mmap_mib, ckpt, (unsigned long long)n_stored,
           (unsigned long long)n_failed, wall, (double)frames / wall, pcpu * 1e6 / (double)frames,
           loop_cpu * 1e6 / (double)frames, (pcpu - loop_cpu) * 1e6 / (double)frames,
           commits ? (double)items / (double)commits : 0.0, t_ack[frames / 2],
           t_ack[frames - 1 - frames / 100], (double)dbsize / (double)total);
    free(t_submit);
    free(t_ack);

    pa_buf_cleanup(&stored);
    pa_buf_cleanup(&wire);
    gw_geo_free(geo);
    event_base_free(base);
    gw_config_cleanup(&cfg);
    return n_failed ? 1 : 0;
}
