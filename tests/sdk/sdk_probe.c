/*
 * sdk_probe.c - drives one panelagent_client from the command line, for
 * the SDK integration tests (tests/integration/test_sdk_*.sh, $SDK_PROBE).
 *
 * It builds frames with panelagent_frame_* (or loads one msgpack file),
 * submits --frames of them --interval ms apart, keeps running until --run
 * ms have passed (or, with --until-done, until every submitted frame was
 * acknowledged or finally failed), then closes the client with
 * --close-timeout.  One machine-readable line per event on stdout:
 *
 *   new rv=PANELAGENT_OK
 *   submit n=3 rv=PANELAGENT_OK seq=1700000000123
 *   ack seq=1700000000123
 *   error code=PANELAGENT_EDROPPED seq=1700000000123 detail=...
 *   log t=MS level=3 msg=...                 (with --log LEVEL; MS since start)
 *   flush rv=PANELAGENT_OK acks=3 errors=0   (with --flush MS: the ack and
 *                                            error callbacks that had
 *                                            returned when flush did)
 *   callback_flush rv=PANELAGENT_EBUSY close_rv=PANELAGENT_EBUSY
 *                                            (--callback-flush: flush and
 *                                            close called from the first ack
 *                                            callback)
 *   stat submitted=10 acked=10 ...           (before close)
 *   close undelivered=0
 *   rusage maxrss_kb=12345                   (the peak resident size)
 *
 * --slow-ack MS makes every ack callback sleep that long before it
 * returns.
 *
 * Exit status: 0, or 2 when the client could not be created (the reason
 * is on the "new" line), 1 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "panelagent.h"

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_level = -1;
static int64_t t0_ms;
static panelagent_client *the_client;
static int64_t slow_ack_ms;
static int callback_flush;
static int n_acks_done, n_errors_done; /* callbacks that have returned (out_mu) */

static int64_t mono_ms(void);

static const char *code_name(int e)
{
    switch (e) {
#define C(x)                                                                                 \
    case PANELAGENT_##x: return "PANELAGENT_" #x
        C(OK); C(EINVAL); C(ENOMEM); C(EAGAIN); C(ETIMEDOUT); C(ECLOSED); C(ELIMIT);
        C(EFRAME); C(EIO); C(ECONFIG); C(ECONNECT); C(ETLS); C(EPROTOCOL);
        C(EGATEWAY_CERT); C(EGATEWAY_PIN); C(ENOT_REGISTERED); C(EREVOKED);
        C(ECERT_REJECTED); C(ERATE_LIMITED); C(EREJECTED); C(EDROPPED); C(EUNDELIVERED);
        C(EBUSY); C(EINTERNAL);
#undef C
    }
    return "PANELAGENT_UNKNOWN";
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void out(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_mu);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

/* detail on one line, no spaces lost: newlines become spaces */
static void one_line(const char *in, char *dst, size_t n)
{
    size_t k = 0;
    for (; in && *in && k + 1 < n; in++)
        dst[k++] = (*in == '\n' || *in == '\r') ? ' ' : *in;
    dst[k] = '\0';
}

static void sleep_ms(int64_t ms);

static void on_ack(uint64_t seq, void *ud)
{
    (void)ud;
    out("ack seq=%" PRIu64 "\n", seq);
    if (callback_flush) {
        callback_flush = 0;
        int f = panelagent_client_flush(the_client, 1000);
        int c = panelagent_client_close(the_client, 0);
        out("callback_flush rv=%s close_rv=%s\n", code_name(f), code_name(c));
    }
    if (slow_ack_ms > 0)
        sleep_ms(slow_ack_ms);
    pthread_mutex_lock(&out_mu);
    n_acks_done++;
    pthread_mutex_unlock(&out_mu);
}

static void on_error(int err, uint64_t seq, const char *detail, void *ud)
{
    char d[512];
    (void)ud;
    one_line(detail, d, sizeof d);
    out("error code=%s seq=%" PRIu64 " detail=%s\n", code_name(err), seq, d);
    if (seq != 0) {
        pthread_mutex_lock(&out_mu);
        n_errors_done++;
        pthread_mutex_unlock(&out_mu);
    }
}

static void on_log(int level, const char *msg, void *ud)
{
    char d[600];
    (void)ud;
    if (level > log_level)
        return;
    one_line(msg, d, sizeof d);
    out("log t=%lld level=%d msg=%s\n", (long long)(mono_ms() - t0_ms), level, d);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sdk_probe (--host H [--port P] | --gateways H:P,H:P) --ca FILE --cert FILE\n"
            "  --key FILE\n"
            "  [--name NAME] [--pin HEX] [--seq-file FILE]\n"
            "  [--queue-frames N] [--queue-bytes N] [--policy reject|drop] [--in-flight N]\n"
            "  [--backoff-initial MS] [--backoff-max MS] [--refused-backoff MS]\n"
            "  [--connect-timeout MS] [--request-timeout MS] [--idle-timeout MS]\n"
            "  [--frames N] [--interval MS] [--run MS] [--until-done] [--close-timeout MS]\n"
            "  [--server NAME] [--kind nimble|wowza] [--msgpack FILE] [--log LEVEL]\n"
            "  [--flush MS] [--slow-ack MS] [--callback-flush]\n");
}

static int build_frame(panelagent_frame **out_f, const char *server, int kind,
                       const uint8_t *mp, size_t mplen, int n)
{
    panelagent_frame *f = NULL;
    char err[256];
    int rv;

    if (mp != NULL)
        return panelagent_frame_new_msgpack(out_f, mp, mplen, err, sizeof err);
    if ((rv = panelagent_frame_new(&f)) != PANELAGENT_OK)
        return rv;
    if ((rv = panelagent_frame_set_server(f, server, kind, "sdk_probe/1")) != 0 ||
        (rv = panelagent_frame_set_load(f, 12.5, 1u << 30, 4ull << 30)) != 0 ||
        (rv = panelagent_frame_set_traffic(f, 1000u + (unsigned)n, 2000, 5000)) != 0 ||
        (rv = panelagent_frame_add_stream(f, "_defaultVHost_", "live", "_definst_", "cam1",
                                          2, 2500000, 1000, 2000)) != 0 ||
        (rv = panelagent_frame_add_conn(f, "203.0.113.7", 10, 2000)) != 0) {
        panelagent_frame_free(f);
        return rv;
    }
    *out_f = f;
    return PANELAGENT_OK;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (fp == NULL)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(fp);
    return buf;
}

int main(int argc, char **argv)
{
    panelagent_config *cfg = NULL;
    panelagent_client *cl = NULL;
    const char *server = "probe", *msgpack = NULL;
    int kind = PANELAGENT_KIND_NIMBLE, frames = 1, until_done = 0;
    int64_t interval = 0, run = 0, close_timeout = 5000, flush_ms = -2;
    uint8_t *mp = NULL;
    size_t mplen = 0;
    char err[512];

    t0_ms = mono_ms();
    if (panelagent_config_new(&cfg) != PANELAGENT_OK)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rv = PANELAGENT_OK, used = 1;
        if (strcmp(a, "--until-done") == 0) {
            until_done = 1;
            continue;
        }
        if (strcmp(a, "--callback-flush") == 0) {
            callback_flush = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            return 1;
        }
        long long num = strtoll(v, NULL, 10);
        if (strcmp(a, "--host") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAY_HOST, v);
        else if (strcmp(a, "--gateways") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAYS, v);
        else if (strcmp(a, "--name") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAY_NAME, v);
        else if (strcmp(a, "--ca") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_CA_FILE, v);
        else if (strcmp(a, "--cert") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_CERT_FILE, v);
        else if (strcmp(a, "--key") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_KEY_FILE, v);
        else if (strcmp(a, "--pin") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_GATEWAY_PIN, v);
        else if (strcmp(a, "--seq-file") == 0) rv = panelagent_config_set_str(cfg, PANELAGENT_OPT_SEQ_FILE, v);
        else if (strcmp(a, "--port") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_GATEWAY_PORT, num);
        else if (strcmp(a, "--queue-frames") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_QUEUE_MAX_FRAMES, num);
        else if (strcmp(a, "--queue-bytes") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_QUEUE_MAX_BYTES, num);
        else if (strcmp(a, "--policy") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_QUEUE_POLICY, strcmp(v, "drop") == 0 ? PANELAGENT_QUEUE_DROP_OLDEST : PANELAGENT_QUEUE_REJECT_NEW);
        else if (strcmp(a, "--in-flight") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_MAX_IN_FLIGHT, num);
        else if (strcmp(a, "--backoff-initial") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_BACKOFF_INITIAL_MS, num);
        else if (strcmp(a, "--backoff-max") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_BACKOFF_MAX_MS, num);
        else if (strcmp(a, "--refused-backoff") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_REFUSED_BACKOFF_MS, num);
        else if (strcmp(a, "--connect-timeout") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_CONNECT_TIMEOUT_MS, num);
        else if (strcmp(a, "--request-timeout") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_REQUEST_TIMEOUT_MS, num);
        else if (strcmp(a, "--idle-timeout") == 0) rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_IDLE_TIMEOUT_MS, num);
        else if (strcmp(a, "--frames") == 0) frames = (int)num;
        else if (strcmp(a, "--interval") == 0) interval = num;
        else if (strcmp(a, "--run") == 0) run = num;
        else if (strcmp(a, "--close-timeout") == 0) close_timeout = num;
        else if (strcmp(a, "--server") == 0) server = v;
        else if (strcmp(a, "--kind") == 0) kind = strcmp(v, "wowza") == 0 ? PANELAGENT_KIND_WOWZA : PANELAGENT_KIND_NIMBLE;
        else if (strcmp(a, "--msgpack") == 0) msgpack = v;
        else if (strcmp(a, "--log") == 0) log_level = (int)num;
        else if (strcmp(a, "--flush") == 0) flush_ms = num;
        else if (strcmp(a, "--slow-ack") == 0) slow_ack_ms = num;
        else used = 0;
        if (!used) {
            fprintf(stderr, "sdk_probe: unknown option %s\n", a);
            usage();
            return 1;
        }
        if (rv != PANELAGENT_OK) {
            fprintf(stderr, "sdk_probe: %s %s: %s\n", a, v, panelagent_strerror(rv));
            return 1;
        }
        i++;
    }
    if (msgpack != NULL && (mp = read_file(msgpack, &mplen)) == NULL) {
        fprintf(stderr, "sdk_probe: cannot read %s\n", msgpack);
        return 1;
    }
    panelagent_config_set_ack(cfg, on_ack, NULL);
    panelagent_config_set_error(cfg, on_error, NULL);
    if (log_level >= 0)
        panelagent_config_set_log(cfg, on_log, NULL);

    err[0] = '\0';
    int rv = panelagent_client_new(&cl, cfg, err, sizeof err);
    panelagent_config_free(cfg);
    out("new rv=%s err=%s\n", code_name(rv), err);
    if (rv != PANELAGENT_OK) {
        free(mp);
        return 2;
    }
    the_client = cl;

    int64_t t0 = mono_ms();
    for (int n = 1; n <= frames; n++) {
        panelagent_frame *f = NULL;
        uint64_t seq = 0;
        rv = build_frame(&f, server, kind, mp, mplen, n);
        if (rv == PANELAGENT_OK) {
            err[0] = '\0';
            rv = panelagent_client_submit_take(cl, f, &seq, err, sizeof err);
        }
        out("submit n=%d rv=%s seq=%" PRIu64 "\n", n, code_name(rv), seq);
        if (interval > 0 && n < frames)
            sleep_ms(interval);
    }
    if (flush_ms >= -1) {
        rv = panelagent_client_flush(cl, (int)flush_ms);
        pthread_mutex_lock(&out_mu);
        int a = n_acks_done, e = n_errors_done;
        pthread_mutex_unlock(&out_mu);
        out("flush rv=%s acks=%d errors=%d\n", code_name(rv), a, e);
    }
    for (;;) {
        uint64_t sub = 0, acked = 0, rej = 0, dropped = 0;
        int64_t left = run - (mono_ms() - t0);
        if (left <= 0)
            break;
        if (until_done) {
            panelagent_client_stat(cl, PANELAGENT_STAT_SUBMITTED, &sub);
            panelagent_client_stat(cl, PANELAGENT_STAT_ACKED, &acked);
            panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED, &rej);
            panelagent_client_stat(cl, PANELAGENT_STAT_DROPPED_OLDEST, &dropped);
            if (acked + rej + dropped >= sub)
                break;
        }
        sleep_ms(left < 50 ? left : 50);
    }

    static const struct {
        panelagent_stat id;
        const char *name;
    } stats[] = {
        {PANELAGENT_STAT_SUBMITTED, "submitted"},
        {PANELAGENT_STAT_ACKED, "acked"},
        {PANELAGENT_STAT_QUEUED, "queued"},
        {PANELAGENT_STAT_QUEUED_BYTES, "queued_bytes"},
        {PANELAGENT_STAT_REJECTED_FULL, "rejected_full"},
        {PANELAGENT_STAT_DROPPED_OLDEST, "dropped_oldest"},
        {PANELAGENT_STAT_REJECTED, "rejected"},
        {PANELAGENT_STAT_RETRIES, "retries"},
        {PANELAGENT_STAT_CONNECTS, "connects"},
        {PANELAGENT_STAT_CONNECT_FAILURES, "connect_failures"},
        {PANELAGENT_STAT_RESUMED, "resumed"},
        {PANELAGENT_STAT_LAST_ACKED_SEQ, "last_acked_seq"},
    };
    char line[1024];
    size_t k = (size_t)snprintf(line, sizeof line, "stat");
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        uint64_t v = 0;
        panelagent_client_stat(cl, stats[i].id, &v);
        k += (size_t)snprintf(line + k, sizeof line - k, " %s=%" PRIu64, stats[i].name, v);
    }
    out("%s\n", line);
    int n = panelagent_client_close(cl, (int)close_timeout);
    out("close undelivered=%d\n", n);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out("rusage maxrss_kb=%ld\n", ru.ru_maxrss);
    free(mp);
    return 0;
}
