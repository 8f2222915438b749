/*
 * test_pa_config.c - panelagent_config: every integer option at and past
 * both ends of its range, string options and the pin, callbacks; and
 * panelagent_client_new's refusals (missing options, unreadable files, a
 * key that does not match the certificate, a corrupt seq file), plus what
 * a client does without a gateway: queue limits under both policies, flush
 * and close from a callback (EBUSY), EUNDELIVERED at close.
 *
 * Certificates are made with the openssl command in a temporary directory.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_internal.h"

/* ---- config ------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    panelagent_config *c = NULL;
    struct pa_opts o;

    assert_int_equal(panelagent_config_new(&c), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_null(o.host);
    assert_null(o.name);
    assert_int_equal(o.has_pin, 0);
    assert_int_equal(o.port, 8443);
    assert_int_equal(o.queue_max_frames, 1000);
    assert_int_equal(o.queue_max_bytes, 64 << 20);
    assert_int_equal(o.queue_policy, PANELAGENT_QUEUE_REJECT_NEW);
    assert_int_equal(o.max_in_flight, 8);
    assert_int_equal(o.connect_timeout_ms, 10000);
    assert_int_equal(o.request_timeout_ms, 30000);
    assert_int_equal(o.backoff_initial_ms, 500);
    assert_int_equal(o.backoff_max_ms, 30000);
    assert_int_equal(o.refused_backoff_ms, 60000);
    assert_int_equal(o.idle_timeout_ms, 60000);
    pa_opts_cleanup(&o);
    panelagent_config_free(c);
    panelagent_config_free(NULL);
    assert_int_equal(panelagent_config_new(NULL), PANELAGENT_EINVAL);
}

static int64_t get_i64(const struct pa_opts *o, panelagent_opt id)
{
    switch (id) {
    case PANELAGENT_OPT_GATEWAY_PORT: return o->port;
    case PANELAGENT_OPT_QUEUE_MAX_FRAMES: return o->queue_max_frames;
    case PANELAGENT_OPT_QUEUE_MAX_BYTES: return o->queue_max_bytes;
    case PANELAGENT_OPT_QUEUE_POLICY: return o->queue_policy;
    case PANELAGENT_OPT_MAX_IN_FLIGHT: return o->max_in_flight;
    case PANELAGENT_OPT_CONNECT_TIMEOUT_MS: return o->connect_timeout_ms;
    case PANELAGENT_OPT_REQUEST_TIMEOUT_MS: return o->request_timeout_ms;
    case PANELAGENT_OPT_BACKOFF_INITIAL_MS: return o->backoff_initial_ms;
    case PANELAGENT_OPT_BACKOFF_MAX_MS: return o->backoff_max_ms;
    case PANELAGENT_OPT_REFUSED_BACKOFF_MS: return o->refused_backoff_ms;
    case PANELAGENT_OPT_IDLE_TIMEOUT_MS: return o->idle_timeout_ms;
    default: fail();
    }
    return -1;
}

static void test_i64_ranges(void **state)
{
    (void)state;
    static const struct {
        panelagent_opt id;
        int64_t min, max;
    } t[] = {
        {PANELAGENT_OPT_GATEWAY_PORT, 1, 65535},
        {PANELAGENT_OPT_QUEUE_MAX_FRAMES, 1, 1000000},
        {PANELAGENT_OPT_QUEUE_MAX_BYTES, 4096, 4LL << 30},
        {PANELAGENT_OPT_QUEUE_POLICY, 0, 1},
        {PANELAGENT_OPT_MAX_IN_FLIGHT, 1, 100},
        {PANELAGENT_OPT_CONNECT_TIMEOUT_MS, 100, 600000},
        {PANELAGENT_OPT_REQUEST_TIMEOUT_MS, 100, 600000},
        {PANELAGENT_OPT_BACKOFF_INITIAL_MS, 10, 600000},
        {PANELAGENT_OPT_BACKOFF_MAX_MS, 10, 3600000},
        {PANELAGENT_OPT_REFUSED_BACKOFF_MS, 10, 3600000},
        {PANELAGENT_OPT_IDLE_TIMEOUT_MS, 0, 86400000},
    };
    panelagent_config *c = NULL;
    struct pa_opts o;

    assert_int_equal(panelagent_config_new(&c), 0);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t before;
        assert_int_equal(pa_opts_copy(&o, c), 0);
        before = get_i64(&o, t[i].id);
        pa_opts_cleanup(&o);
        /* out of range on both sides: EINVAL and nothing changes */
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, t[i].min - 1), PANELAGENT_EINVAL);
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, t[i].max + 1), PANELAGENT_EINVAL);
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, INT64_MIN), PANELAGENT_EINVAL);
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, INT64_MAX), PANELAGENT_EINVAL);
        assert_int_equal(pa_opts_copy(&o, c), 0);
        assert_int_equal(get_i64(&o, t[i].id), before);
        pa_opts_cleanup(&o);
        /* both ends are allowed */
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, t[i].min), 0);
        assert_int_equal(pa_opts_copy(&o, c), 0);
        assert_int_equal(get_i64(&o, t[i].id), t[i].min);
        pa_opts_cleanup(&o);
        assert_int_equal(panelagent_config_set_i64(c, t[i].id, t[i].max), 0);
        assert_int_equal(pa_opts_copy(&o, c), 0);
        assert_int_equal(get_i64(&o, t[i].id), t[i].max);
        pa_opts_cleanup(&o);
        /* an integer option is not a string */
        assert_int_equal(panelagent_config_set_str(c, t[i].id, "1"), PANELAGENT_EINVAL);
    }
    /* unknown ids */
    static const int bad_ids[] = {0, 9, 19, 31, -1, 1000};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        assert_int_equal(panelagent_config_set_i64(c, (panelagent_opt)bad_ids[i], 1),
                         PANELAGENT_EINVAL);
        assert_int_equal(panelagent_config_set_str(c, (panelagent_opt)bad_ids[i], "x"),
                         PANELAGENT_EINVAL);
    }
    assert_int_equal(panelagent_config_set_i64(NULL, PANELAGENT_OPT_GATEWAY_PORT, 1),
                     PANELAGENT_EINVAL);
    panelagent_config_free(c);
}

static void test_strings_and_pin(void **state)
{
    (void)state;
    static const char good[] =
        "00112233445566778899aabbccddeeffFFEEDDCCBBAA99887766554433221100";
    panelagent_config *c = NULL;
    struct pa_opts o;

    assert_int_equal(panelagent_config_new(&c), 0);
    for (int id = PANELAGENT_OPT_GATEWAY_HOST; id <= PANELAGENT_OPT_GATEWAYS; id++) {
        assert_int_equal(panelagent_config_set_i64(c, (panelagent_opt)id, 1), PANELAGENT_EINVAL);
        if (id != PANELAGENT_OPT_GATEWAY_NAME) /* "" means something only there */
            assert_int_equal(panelagent_config_set_str(c, (panelagent_opt)id, ""),
                             PANELAGENT_EINVAL);
    }
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_HOST, "gw.example"), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_NAME, ""), 0);
    /* pins: exactly 64 hex digits */
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, good), 0);
    char bad[80];
    snprintf(bad, sizeof bad, "%.63s", good); /* 63 */
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, bad),
                     PANELAGENT_EINVAL);
    snprintf(bad, sizeof bad, "%s0", good); /* 65 */
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, bad),
                     PANELAGENT_EINVAL);
    snprintf(bad, sizeof bad, "%s", good);
    bad[10] = 'g';
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, bad),
                     PANELAGENT_EINVAL);
    bad[10] = ':';
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, bad),
                     PANELAGENT_EINVAL);

    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_string_equal(o.host, "gw.example");
    assert_string_equal(o.name, "");
    assert_int_equal(o.has_pin, 1); /* the good one stayed */
    assert_int_equal(o.pin[0], 0x00);
    assert_int_equal(o.pin[1], 0x11);
    assert_int_equal(o.pin[15], 0xff);
    assert_int_equal(o.pin[16], 0xff);
    assert_int_equal(o.pin[31], 0x00);
    pa_opts_cleanup(&o);

    /* NULL resets to the default */
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_PIN, NULL), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_NAME, NULL), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_int_equal(o.has_pin, 0);
    assert_null(o.name);
    pa_opts_cleanup(&o);
    panelagent_config_free(c);
}

/* PANELAGENT_OPT_GATEWAYS: the list is checked when set and becomes the
 * candidates; without it GATEWAY_HOST/PORT is the one candidate. */
static void test_gateway_list(void **state)
{
    (void)state;
    panelagent_config *c = NULL;
    struct pa_opts o;

    assert_int_equal(panelagent_config_new(&c), 0);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_GATEWAY_PORT, 9443), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_HOST, "one.example"), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_int_equal(o.has_list, 0);
    assert_int_equal(o.n_gws, 1);
    assert_string_equal(o.gws[0].host, "one.example");
    assert_int_equal(o.gws[0].port, 9443);
    pa_opts_cleanup(&o);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_HOST, NULL), 0);

    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAYS,
                                               "a.example:8001, b.example ,[::1]:8003,"
                                               "10.0.0.4:65535,[fe80::1]"),
                     0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_int_equal(o.has_list, 1);
    assert_null(o.host);
    assert_int_equal(o.n_gws, 5);
    static const struct {
        const char *host;
        int64_t port;
    } want[] = {{"a.example", 8001}, {"b.example", 9443}, {"::1", 8003},
                {"10.0.0.4", 65535}, {"fe80::1", 9443}};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(o.gws[i].host, want[i].host);
        assert_int_equal(o.gws[i].port, want[i].port);
    }
    pa_opts_cleanup(&o);

    static const char *const bad[] = {
        ",",  "a,",    ",a",     "a,,b",     "a:0",       "a:65536", "a:",   "a:x",
        "::1", "[::1", "[::1]x", "[a.b]:1",  "a b:1",     "[]:1",    ":8443", "a:1:2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAYS, bad[i]) != PANELAGENT_EINVAL)
            fail_msg("GATEWAYS \"%s\" was accepted", bad[i]);
    char many[33 * 4 + 1] = "";
    for (int i = 0; i < 33; i++)
        strcat(many, i ? ",g.x" : "g.x");
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAYS, many),
                     PANELAGENT_EINVAL); /* 33 > 32 */
    many[strlen(many) - 4] = '\0';
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAYS, many), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_int_equal(o.n_gws, 32);
    pa_opts_cleanup(&o);
    panelagent_config_free(c);
}

static void cb_ack(uint64_t seq, void *ud)
{
    (void)seq;
    (void)ud;
}

static void cb_err(int err, uint64_t seq, const char *d, void *ud)
{
    (void)err;
    (void)seq;
    (void)d;
    (void)ud;
}

static void cb_log(int level, const char *msg, void *ud)
{
    (void)level;
    (void)msg;
    (void)ud;
}

static void test_callbacks(void **state)
{
    (void)state;
    panelagent_config *c = NULL;
    struct pa_opts o;
    int x;

    assert_int_equal(panelagent_config_new(&c), 0);
    assert_int_equal(panelagent_config_set_ack(c, cb_ack, &x), 0);
    assert_int_equal(panelagent_config_set_error(c, cb_err, &x), 0);
    assert_int_equal(panelagent_config_set_log(c, cb_log, &x), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_ptr_equal(o.ack_fn, cb_ack);
    assert_ptr_equal(o.ack_ud, &x);
    assert_ptr_equal(o.error_fn, cb_err);
    assert_ptr_equal(o.log_fn, cb_log);
    pa_opts_cleanup(&o);
    assert_int_equal(panelagent_config_set_ack(c, NULL, &x), 0);
    assert_int_equal(pa_opts_copy(&o, c), 0);
    assert_null(o.ack_fn);
    assert_null(o.ack_ud);
    pa_opts_cleanup(&o);
    assert_int_equal(panelagent_config_set_ack(NULL, cb_ack, NULL), PANELAGENT_EINVAL);
    panelagent_config_free(c);
}

/* ---- client_new --------------------------------------------------------------------- */

struct pki {
    char dir[256];
    char ca[300], cert[300], key[300], other_key[300], seq[300];
};

static int pki_setup(void **state)
{
    struct pki *p = calloc(1, sizeof *p);
    char cmd[2048];
    if (p == NULL)
        return -1;
    snprintf(p->dir, sizeof p->dir, "%s/pa_cfg.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(p->dir) == NULL) {
        free(p);
        return -1;
    }
    snprintf(p->ca, sizeof p->ca, "%s/ca.crt", p->dir);
    snprintf(p->cert, sizeof p->cert, "%s/agent.crt", p->dir);
    snprintf(p->key, sizeof p->key, "%s/agent.key", p->dir);
    snprintf(p->other_key, sizeof p->other_key, "%s/other.key", p->dir);
    snprintf(p->seq, sizeof p->seq, "%s/seq", p->dir);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.crt -subj /CN=test-ca -days 2 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout agent.key -out agent.csr -subj /CN=agent && "
             "openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out agent.crt -days 2 && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key",
             p->dir);
    strncat(cmd, " >/dev/null 2>&1", sizeof cmd - strlen(cmd) - 1);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl failed\n");
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static int pki_teardown(void **state)
{
    struct pki *p = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
    int rc = system(cmd);
    free(p);
    return rc == 0 ? 0 : -1;
}

static panelagent_config *good_config(const struct pki *p)
{
    panelagent_config *c = NULL;
    assert_int_equal(panelagent_config_new(&c), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_HOST, "127.0.0.1"), 0);
    /* port 1: nothing listens there, every connect is refused */
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_GATEWAY_PORT, 1), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_CA_FILE, p->ca), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_CERT_FILE, p->cert), 0);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_KEY_FILE, p->key), 0);
    return c;
}

static void expect_config_error(panelagent_config *c, const char *want1, const char *want2)
{
    panelagent_client *cl = (panelagent_client *)1;
    char err[512] = "";
    assert_int_equal(panelagent_client_new(&cl, c, err, sizeof err), PANELAGENT_ECONFIG);
    assert_null(cl);
    if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
        fail_msg("error '%s' does not name '%s'", err, want1);
}

static void test_client_new_errors(void **state)
{
    struct pki *p = *state;
    panelagent_config *c;
    static const struct {
        panelagent_opt id;
        const char *name;
    } req[] = {
        {PANELAGENT_OPT_GATEWAY_HOST, "GATEWAY_HOST"},
        {PANELAGENT_OPT_CA_FILE, "CA_FILE"},
        {PANELAGENT_OPT_CERT_FILE, "CERT_FILE"},
        {PANELAGENT_OPT_KEY_FILE, "KEY_FILE"},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        c = good_config(p);
        assert_int_equal(panelagent_config_set_str(c, req[i].id, NULL), 0);
        expect_config_error(c, req[i].name, "not set");
        panelagent_config_free(c);
    }
    /* the gateway list instead of the host, not beside it */
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAYS, "127.0.0.1:1,[::1]:1"),
                     0);
    expect_config_error(c, "GATEWAY_HOST and PANELAGENT_OPT_GATEWAYS", "both");
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_GATEWAY_HOST, NULL), 0);
    panelagent_client *ok = NULL;
    assert_int_equal(panelagent_client_new(&ok, c, NULL, 0), PANELAGENT_OK);
    assert_int_equal(panelagent_client_close(ok, 0), 0);
    panelagent_config_free(c);
    /* unreadable files name the option and the path */
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_CA_FILE, "/nonexistent/ca.crt"), 0);
    expect_config_error(c, "CA_FILE", "/nonexistent/ca.crt");
    panelagent_config_free(c);
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_CERT_FILE, p->key), 0);
    expect_config_error(c, "CERT_FILE", p->key);
    panelagent_config_free(c);
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_KEY_FILE, "/nonexistent/k"), 0);
    expect_config_error(c, "KEY_FILE", "/nonexistent/k");
    panelagent_config_free(c);
    /* a key that is not the certificate's */
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_KEY_FILE, p->other_key), 0);
    expect_config_error(c, "does not match", p->cert);
    panelagent_config_free(c);
    /* backoff max below initial */
    c = good_config(p);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_BACKOFF_INITIAL_MS, 5000), 0);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_BACKOFF_MAX_MS, 1000), 0);
    expect_config_error(c, "BACKOFF_MAX_MS", NULL);
    panelagent_config_free(c);
    /* a corrupt seq file */
    FILE *fp = fopen(p->seq, "w");
    assert_non_null(fp);
    fputs("not a number\n", fp);
    fclose(fp);
    c = good_config(p);
    assert_int_equal(panelagent_config_set_str(c, PANELAGENT_OPT_SEQ_FILE, p->seq), 0);
    expect_config_error(c, "corrupt", p->seq);
    panelagent_config_free(c);
    unlink(p->seq);
    /* bad arguments */
    panelagent_client *cl = NULL;
    assert_int_equal(panelagent_client_new(&cl, NULL, NULL, 0), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_client_new(NULL, NULL, NULL, 0), PANELAGENT_EINVAL);
}

/* ---- a client without a gateway ------------------------------------------------------ */

struct events {
    pthread_mutex_t mu;
    panelagent_client *cl;
    int n_err[32];       /* by -code */
    uint64_t seqs[64];   /* seqs of per-frame errors, in order */
    int n_seqs;
    int flush_rv, close_rv, called_from_cb;
};

static void ev_error(int err, uint64_t seq, const char *detail, void *ud)
{
    struct events *e = ud;
    (void)detail;
    pthread_mutex_lock(&e->mu);
    if (-err >= 0 && -err < 32)
        e->n_err[-err]++;
    if (seq != 0 && e->n_seqs < 64)
        e->seqs[e->n_seqs++] = seq;
    panelagent_client *cl = e->cl;
    int first = !e->called_from_cb && err == PANELAGENT_ECONNECT;
    if (first)
        e->called_from_cb = 1;
    pthread_mutex_unlock(&e->mu);
    if (first) {
        e->flush_rv = panelagent_client_flush(cl, 1000);
        e->close_rv = panelagent_client_close(cl, 0);
    }
}

static panelagent_frame *frame(void)
{
    panelagent_frame *f = NULL;
    assert_int_equal(panelagent_frame_new(&f), 0);
    assert_int_equal(panelagent_frame_set_server(f, "edge-1", PANELAGENT_KIND_NIMBLE, "1.0"), 0);
    assert_int_equal(panelagent_frame_set_load(f, 1.0, 1, 2), 0);
    assert_int_equal(panelagent_frame_set_traffic(f, 1, 2, 5000), 0);
    return f;
}

static void run_queue_policy(struct pki *p, int policy)
{
    struct events ev;
    panelagent_config *c = good_config(p);
    panelagent_client *cl = NULL;
    uint64_t seq[3] = {0}, v;
    char err[256];

    memset(&ev, 0, sizeof ev);
    pthread_mutex_init(&ev.mu, NULL);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_QUEUE_MAX_FRAMES, 2), 0);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_QUEUE_POLICY, policy), 0);
    assert_int_equal(panelagent_config_set_i64(c, PANELAGENT_OPT_BACKOFF_INITIAL_MS, 10000), 0);
    assert_int_equal(panelagent_config_set_error(c, ev_error, &ev), 0);
    assert_int_equal(panelagent_client_new(&cl, c, err, sizeof err), 0);
    panelagent_config_free(c);
    pthread_mutex_lock(&ev.mu);
    ev.cl = cl;
    pthread_mutex_unlock(&ev.mu);

    assert_int_equal(panelagent_client_submit_take(cl, frame(), &seq[0], NULL, 0), 0);
    assert_int_equal(panelagent_client_submit_take(cl, frame(), &seq[1], NULL, 0), 0);
    assert_true(seq[1] > seq[0]);
    int rv = panelagent_client_submit_take(cl, frame(), &seq[2], err, sizeof err);
    if (policy == PANELAGENT_QUEUE_REJECT_NEW) {
        assert_int_equal(rv, PANELAGENT_EAGAIN);
        assert_int_equal(seq[2], 0);
        assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED_FULL, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_DROPPED_OLDEST, &v), 0);
        assert_int_equal(v, 0);
    } else {
        assert_int_equal(rv, 0);
        assert_true(seq[2] > seq[1]);
        assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_DROPPED_OLDEST, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_REJECTED_FULL, &v), 0);
        assert_int_equal(v, 0);
    }
    assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_QUEUED, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_QUEUED_BYTES, &v), 0);
    assert_true(v > 0);
    assert_int_equal(panelagent_client_stat(cl, (panelagent_stat)0, &v), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_client_stat(cl, (panelagent_stat)14, &v), PANELAGENT_EINVAL);
    /* nothing can be delivered: flush times out */
    assert_int_equal(panelagent_client_flush(cl, 200), PANELAGENT_ETIMEDOUT);

    /* the first connection failure's callback tried flush and close */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&ev.mu);
        int done = ev.called_from_cb;
        pthread_mutex_unlock(&ev.mu);
        if (done)
            break;
        usleep(20000);
    }
    assert_int_equal(ev.called_from_cb, 1);
    assert_int_equal(ev.flush_rv, PANELAGENT_EBUSY);
    assert_int_equal(ev.close_rv, PANELAGENT_EBUSY);

    assert_int_equal(panelagent_client_close(cl, 0), 2);
    /* every frame that left the queue was reported with its seq */
    assert_int_equal(ev.n_err[-PANELAGENT_EUNDELIVERED], 2);
    if (policy == PANELAGENT_QUEUE_DROP_OLDEST) {
        assert_int_equal(ev.n_err[-PANELAGENT_EDROPPED], 1);
        assert_int_equal(ev.n_seqs, 3);
        assert_int_equal(ev.seqs[0], seq[0]); /* the oldest was dropped */
        assert_int_equal(ev.seqs[1], seq[1]);
        assert_int_equal(ev.seqs[2], seq[2]);
    } else {
        assert_int_equal(ev.n_err[-PANELAGENT_EDROPPED], 0);
        assert_int_equal(ev.n_seqs, 2);
        assert_int_equal(ev.seqs[0], seq[0]);
        assert_int_equal(ev.seqs[1], seq[1]);
    }
    assert_int_equal(ev.n_err[-PANELAGENT_ECONNECT], 1); /* reported once, backoff 10 s */
    pthread_mutex_destroy(&ev.mu);
}

static void test_queue_reject_new(void **state)
{
    run_queue_policy(*state, PANELAGENT_QUEUE_REJECT_NEW);
}

static void test_queue_drop_oldest(void **state)
{
    run_queue_policy(*state, PANELAGENT_QUEUE_DROP_OLDEST);
}

/* Submit: a bad frame is EFRAME, and the frame is always taken. */
static void test_submit_bad_frame(void **state)
{
    struct pki *p = *state;
    panelagent_config *c = good_config(p);
    panelagent_client *cl = NULL;
    panelagent_frame *f = NULL;
    char err[256] = "";
    uint64_t seq = 99, v = 9;

    assert_int_equal(panelagent_client_new(&cl, c, err, sizeof err), 0);
    panelagent_config_free(c);
    assert_int_equal(panelagent_frame_new(&f), 0); /* nothing set: invalid */
    assert_int_equal(panelagent_client_submit_take(cl, f, &seq, err, sizeof err),
                     PANELAGENT_EFRAME);
    assert_int_equal(seq, 0);
    assert_true(err[0] != '\0');
    assert_int_equal(panelagent_client_submit_take(cl, NULL, &seq, NULL, 0), PANELAGENT_EINVAL);
    assert_int_equal(panelagent_client_stat(cl, PANELAGENT_STAT_SUBMITTED, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(panelagent_client_flush(cl, 0), 0); /* nothing to wait for */
    assert_int_equal(panelagent_client_close(cl, 0), 0);
    panelagent_client_free(NULL);
    assert_int_equal(panelagent_client_close(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_i64_ranges),
        cmocka_unit_test(test_strings_and_pin),
        cmocka_unit_test(test_gateway_list),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test_setup_teardown(test_client_new_errors, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_queue_reject_new, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_queue_drop_oldest, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_submit_bad_frame, pki_setup, pki_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
