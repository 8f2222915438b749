/*
 * fuzz_gw_mmdb.c - MaxMind-format databases as the privacy reduction reads
 * them (gateway/policy/privacy.c): the input is written to a file, opened
 * by gw_geo_open as both the country and the ASN database ([geo]
 * country_db, asn_db), described as the reload log does, and a fixed set
 * of public IPv4, IPv6 and IPv4-mapped addresses is reduced through it
 * (MMDB_lookup_sockaddr, then the iso_code and autonomous_system_number
 * paths with their type checks).  A valid seed: tests/data/
 * make_test_mmdb.pl (fuzz/gen_mmdb_seeds.sh).
 *
 * Checks: an open that fails leaves no gw_geo and says why; every bucket's
 * cc is two upper-case letters, "ZZ" or "XP"; the buckets are sorted and
 * count every connection once.
 *
 * Leaks: libmaxminddb before 1.8.0 (Debian 12 ships 1.7.1) leaks the
 * metadata's entry list when MMDB_open fails on bad metadata (about 4.6 KiB
 * per failed open; maxmind/libmaxminddb#356).  Our code cannot free it, so
 * a probe MMDB_open, with leak checking off, says whether the open will
 * fail; only a failing gw_geo_open runs with leak checking off, and one
 * that succeeds must free everything through gw_geo_free.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <maxminddb.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "privacy.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WITH_LSAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define WITH_LSAN 1
#endif
#ifdef WITH_LSAN
#include <sanitizer/lsan_interface.h>
#define LSAN_OFF() __lsan_disable()
#define LSAN_ON() __lsan_enable()
#else
#define LSAN_OFF() ((void)0)
#define LSAN_ON() ((void)0)
#endif

/* Whether libmaxminddb opens |path| (see "Leaks" above). */
static int mmdb_opens(const char *path)
{
    MMDB_s probe;
    LSAN_OFF();
    int st = MMDB_open(path, MMDB_MODE_MMAP, &probe);
    if (st == MMDB_SUCCESS)
        MMDB_close(&probe);
    LSAN_ON();
    return st == MMDB_SUCCESS;
}

static const struct pa_ip addrs[] = {
    {4, {192, 0, 2, 1}},     {4, {198, 51, 100, 7}}, {4, {203, 0, 113, 200}},
    {4, {8, 8, 8, 8}},       {4, {1, 1, 1, 1}},      {4, {10, 0, 0, 1}},
    {4, {255, 255, 255, 255}},
    {6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {6, {0x2a, 0x00, 0x14, 0x50, 0x40, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x0e}},
    {6, {0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff}},
    {6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9}},
    {6, {0x20, 0x02, 0xcb, 0x00, 0x71, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
};
#define N_ADDRS (sizeof addrs / sizeof addrs[0])

static int cc_ok(const char cc[3])
{
    return cc[2] == '\0' && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[256];
    struct gw_geo *geo = NULL;
    struct pa_conn conns[N_ADDRS];
    struct pa_arena arena;
    struct gw_viewers v;
    char err[512], desc[256];
    FILE *f;

    if (!path[0]) {
        const char *dir = getenv("TMPDIR"); /* /dev/shm makes it faster */
        snprintf(path, sizeof path, "%s/fuzz_gw_mmdb.%ld.mmdb", dir && *dir ? dir : "/tmp",
                 (long)getpid());
    }
    f = fopen(path, "wb");
    if (!f)
        return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);

    err[0] = '\0';
    int opens = mmdb_opens(path);
    if (!opens)
        LSAN_OFF();
    int rv = gw_geo_open(&geo, path, path, err, sizeof err);
    if (!opens)
        LSAN_ON();
    unlink(path); /* an open database stays mapped */
    if ((rv == 0) != opens)
        abort();
    if (rv != 0) {
        if (geo != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    (void)gw_geo_describe(geo, desc, sizeof desc);

    for (size_t i = 0; i < N_ADDRS; i++) {
        conns[i].ip = addrs[i];
        conns[i].bytes_in = i;
        conns[i].bytes_out = 1;
    }
    pa_arena_init(&arena, 1 << 16, NULL);
    if (gw_privacy_reduce(geo, conns, N_ADDRS, &arena, &v) != 0)
        abort();
    uint64_t total = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        const struct gw_viewer_agg *a = &v.aggs[i];
        if (!cc_ok(a->cc))
            abort();
        if (i > 0) {
            int c = memcmp(v.aggs[i - 1].cc, a->cc, 2);
            if (c > 0 || (c == 0 && v.aggs[i - 1].asn >= a->asn))
                abort();
        }
        total += a->conns;
    }
    if (total != N_ADDRS)
        abort();
    pa_arena_cleanup(&arena);
    gw_geo_free(geo);
    return 0;
}
