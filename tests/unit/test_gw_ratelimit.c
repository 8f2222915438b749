/*
 * test_gw_ratelimit.c - token buckets, the per-address and per-server
 * tables, override resolution and request verdicts (gateway/policy/ratelimit.c),
 * all with an injected clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "config.h"
#include "ratelimit.h"

/* ---- buckets ----------------------------------------------------------------- */

static void test_burst_then_exact_wait(void **state)
{
    struct gw_bucket b = {0};
    struct gw_rl_rate r = {5, 3}; /* a token every 200 ms, 3 at most */
    (void)state;

    /* a fresh bucket is full */
    assert_int_equal(gw_rl_tokens(&b, &r, 1000), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_rl_take(&b, &r, 1, 1000), 0);
    assert_int_equal(gw_rl_tokens(&b, &r, 1000), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1000), 200);
    /* a refused take takes nothing; wait never takes */
    assert_int_equal(gw_rl_wait(&b, &r, 1, 1100), 100);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1199), 1);
    assert_int_equal(gw_rl_wait(&b, &r, 1, 1200), 0);
    assert_int_equal(gw_rl_wait(&b, &r, 1, 1200), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1200), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1200), 200);
    /* two tokens at once: 400 ms from empty */
    assert_int_equal(gw_rl_take(&b, &r, 2, 1200), 400);
    assert_int_equal(gw_rl_take(&b, &r, 2, 1600), 0);
    /* refill stops at the burst */
    assert_int_equal(gw_rl_tokens(&b, &r, 1000000), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_rl_take(&b, &r, 1, 1000000), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1000000), 200);
}

static void test_fractional_refill(void **state)
{
    struct gw_bucket b = {0};
    struct gw_rl_rate r = {3, 10}; /* 3 per second: one per 333.3 ms */
    (void)state;

    assert_int_equal(gw_rl_take(&b, &r, 10, 0), 0);
    assert_int_equal(gw_rl_wait(&b, &r, 1, 0), 334); /* ceil(1000 / 3) */
    assert_int_equal(gw_rl_wait(&b, &r, 1, 333), 1); /* 999 thousandths */
    assert_int_equal(gw_rl_take(&b, &r, 1, 334), 0); /* 1002 thousandths */
    /* the 2 left over thousandths are kept: the next token is due at 667 */
    assert_int_equal(gw_rl_wait(&b, &r, 1, 334), 333);
    assert_int_equal(gw_rl_take(&b, &r, 1, 667), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, 1000), 0);
    /* exactly 3 per second over a long run, refilled in many small steps */
    struct gw_bucket c = {0};
    struct gw_rl_rate big = {3, 1000};
    assert_int_equal(gw_rl_take(&c, &big, 1000, 0), 0);
    int got = 0;
    for (int64_t t = 1; t <= 10000; t += 7)
        if (gw_rl_take(&c, &big, 1, t) == 0)
            got++;
    assert_int_equal(got, 29); /* t <= 9997: floor(9997 * 3 / 1000) */
}

static void test_unlimited_and_never(void **state)
{
    struct gw_bucket b = {0};
    struct gw_rl_rate unlimited = {0, 1};
    struct gw_rl_rate r = {100, 10};
    (void)state;

    for (int i = 0; i < 1000; i++)
        assert_int_equal(gw_rl_take(&b, &unlimited, 1000000, 5), 0);

    /* a cost over the burst can never be met, whatever the wait */
    memset(&b, 0, sizeof b);
    assert_int_equal(gw_rl_take(&b, &r, 11, 0), GW_RL_NEVER);
    assert_int_equal(gw_rl_take(&b, &r, 11, INT64_MAX / 4), GW_RL_NEVER);
    /* ... and it took nothing */
    assert_int_equal(gw_rl_tokens(&b, &r, INT64_MAX / 4), 10);
    assert_int_equal(gw_rl_take(&b, &r, 10, INT64_MAX / 4), 0);
    assert_int_equal(gw_rl_retry_after_s(GW_RL_NEVER), 86400);
}

static void test_overflow_safe(void **state)
{
    struct gw_bucket b = {0};
    struct gw_rl_rate r = {UINT64_MAX, UINT64_MAX}; /* clamped to GW_RL_MAX */
    struct gw_rl_rate slow = {1, GW_RL_MAX};
    (void)state;

    assert_int_equal(gw_rl_take(&b, &r, GW_RL_MAX, INT64_MIN / 2), 0);
    assert_int_equal(gw_rl_take(&b, &r, 1, INT64_MIN / 2), 1);
    /* the largest gap there is: full again, nothing wrapped */
    assert_int_equal(gw_rl_tokens(&b, &r, INT64_MAX), GW_RL_MAX);
    assert_int_equal(gw_rl_take(&b, &r, GW_RL_MAX, INT64_MAX), 0);

    /* a huge burst refilling slowly over a huge gap */
    memset(&b, 0, sizeof b);
    assert_int_equal(gw_rl_take(&b, &slow, GW_RL_MAX, 0), 0);
    assert_int_equal(gw_rl_tokens(&b, &slow, 86400000), 86400);
    assert_int_equal(gw_rl_take(&b, &slow, GW_RL_MAX, 86400000),
                     (int64_t)(GW_RL_MAX * 1000) - 86400000);
    assert_int_equal(gw_rl_tokens(&b, &slow, INT64_MAX), GW_RL_MAX);

    /* a clock that steps back refills nothing and restarts from there */
    struct gw_rl_rate r5 = {5, 1};
    memset(&b, 0, sizeof b);
    assert_int_equal(gw_rl_take(&b, &r5, 1, 10000), 0);
    assert_int_equal(gw_rl_take(&b, &r5, 1, 5000), 200);
    assert_int_equal(gw_rl_take(&b, &r5, 1, 5199), 1);
    assert_int_equal(gw_rl_take(&b, &r5, 1, 5200), 0);
}

static void test_burst_lowered(void **state)
{
    struct gw_bucket b = {0};
    struct gw_rl_rate r = {10, 100}, lower = {10, 5};
    (void)state;

    assert_int_equal(gw_rl_tokens(&b, &r, 0), 100);
    assert_int_equal(gw_rl_take(&b, &r, 1, 0), 0); /* 99 left */
    /* a reload lowers the burst: the bucket holds at most the new one */
    assert_int_equal(gw_rl_tokens(&b, &lower, 0), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_rl_take(&b, &lower, 1, 0), 0);
    assert_int_equal(gw_rl_take(&b, &lower, 1, 0), 100);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(gw_rl_retry_after_s(-5), 1);
    assert_int_equal(gw_rl_retry_after_s(0), 1);
    assert_int_equal(gw_rl_retry_after_s(1), 1);
    assert_int_equal(gw_rl_retry_after_s(999), 1);
    assert_int_equal(gw_rl_retry_after_s(1000), 1);
    assert_int_equal(gw_rl_retry_after_s(1001), 2);
    assert_int_equal(gw_rl_retry_after_s(59999), 60);
    assert_int_equal(gw_rl_retry_after_s(86400 * 1000LL + 1), 86400);
}

/* ---- the address table ------------------------------------------------------- */

static void v4key(uint8_t key[GW_RL_KEY_LEN], uint32_t host_order)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons(40000);
    in.sin_addr.s_addr = htonl(host_order);
    assert_int_equal(gw_rl_addr_key(&in, sizeof in, key), 0);
}

static void v6key(uint8_t key[GW_RL_KEY_LEN], const char *text)
{
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
    assert_int_equal(gw_rl_addr_key(&in6, sizeof in6, key), 0);
}

static void test_addr_keys(void **state)
{
    uint8_t a[GW_RL_KEY_LEN], b[GW_RL_KEY_LEN];
    char text[64];
    (void)state;

    v4key(a, 0x7f000002);
    gw_rl_addr_text(a, text, sizeof text);
    assert_string_equal(text, "127.0.0.2");
    /* the same host seen through an IPv4-mapped IPv6 address */
    v6key(b, "::ffff:127.0.0.2");
    assert_memory_equal(a, b, GW_RL_KEY_LEN);
    /* IPv6: one /64 is one key */
    v6key(a, "2001:db8:1:2::1");
    v6key(b, "2001:db8:1:2:ffff:eeee:dddd:cccc");
    assert_memory_equal(a, b, GW_RL_KEY_LEN);
    gw_rl_addr_text(a, text, sizeof text);
    assert_string_equal(text, "2001:db8:1:2::/64");
    v6key(b, "2001:db8:1:3::1");
    assert_memory_not_equal(a, b, GW_RL_KEY_LEN);
    /* no IPv6 /64 is taken for an IPv4 address */
    v6key(a, "::");
    v4key(b, 0);
    assert_memory_not_equal(a, b, GW_RL_KEY_LEN);
    /* other families and short addresses are refused */
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    assert_int_equal(gw_rl_addr_key(&un, sizeof un, a), GW_EINVAL);
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    assert_int_equal(gw_rl_addr_key(&in, sizeof in - 1, a), GW_EINVAL);
    assert_int_equal(gw_rl_addr_key(&in, 1, a), GW_EINVAL);
}

static void test_addr_limit(void **state)
{
    struct gw_rl_addrs *t;
    struct gw_rl_rate r = {10, 40};
    uint8_t a[GW_RL_KEY_LEN], b[GW_RL_KEY_LEN];
    (void)state;

    assert_int_equal(gw_rl_addrs_new(&t, 100, 1, 2), 0);
    assert_int_equal(gw_rl_addrs_capacity(t), 104); /* a multiple of the ways */
    v4key(a, 0x7f000002);
    v4key(b, 0x7f000001);
    for (int i = 0; i < 40; i++)
        assert_int_equal(gw_rl_addrs_take(t, a, &r, 0), 0);
    assert_int_equal(gw_rl_addrs_take(t, a, &r, 0), 100);
    /* another address is not affected */
    assert_int_equal(gw_rl_addrs_take(t, b, &r, 0), 0);
    assert_int_equal(gw_rl_addrs_take(t, a, &r, 100), 0);
    assert_int_equal(gw_rl_addrs_take(t, a, &r, 100), 100);
    assert_int_equal(gw_rl_addrs_used(t), 2);
    gw_rl_addrs_free(t);
    gw_rl_addrs_free(NULL);
}

/* A flood of distinct addresses: memory stays fixed, the entries recycle,
 * and an address that spent its tokens stays limited all along. */
static void test_addr_flood(void **state)
{
    struct gw_rl_addrs *t;
    struct gw_rl_rate r = {1, 5};
    uint8_t hot[GW_RL_KEY_LEN], k[GW_RL_KEY_LEN];
    int hot_ok = 0;
    int64_t now = 0;
    (void)state;

    assert_int_equal(gw_rl_addrs_new(&t, 64, 0x0123456789abcdefull, 0xfedcba9876543210ull), 0);
    v4key(hot, 0xc0000201);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_rl_addrs_take(t, hot, &r, 0), 0);
    /* 200000 new addresses over 20 s, the hot one trying every 100th */
    for (uint32_t i = 0; i < 200000; i++) {
        if (i % 10 == 0)
            now++;
        v4key(k, 0x0a000000 + i);
        gw_rl_addrs_take(t, k, &r, now);
        if (i % 100 == 0 && gw_rl_addrs_take(t, hot, &r, now) == 0)
            hot_ok++;
        assert_true(gw_rl_addrs_used(t) <= gw_rl_addrs_capacity(t));
    }
    assert_int_equal(gw_rl_addrs_capacity(t), 64);
    assert_int_equal(gw_rl_addrs_used(t), 64);
    assert_true(gw_rl_addrs_evictions(t) >= 200000 - 64);
    /* one token a second (tries at 1, 11, 21 ... 19991 ms succeed at 1001,
     * 2001 ... 19001), and not one more: it was never forgotten */
    assert_int_equal(hot_ok, 19);

    /* a resize keeps it limited */
    struct gw_rl_addrs *bigger;
    assert_int_equal(gw_rl_addrs_new(&bigger, 4096, 5, 6), 0);
    gw_rl_addrs_move(bigger, t, &r, now);
    assert_true(gw_rl_addrs_used(bigger) <= 64);
    assert_int_equal(gw_rl_addrs_take(bigger, hot, &r, 19995), 5);
    gw_rl_addrs_free(bigger);
    gw_rl_addrs_free(t);
}

/* ---- overrides ----------------------------------------------------------------- */

/* The rate-limit view of |c| as it is now (the tests change c between
 * calls, so the view is taken at each one). */
static const struct gw_rl_config *rlc(const struct gw_config *c)
{
    static struct gw_rl_config rc;
    gw_rl_config_from(&rc, c);
    return &rc;
}

static void add_server(struct gw_config *c, const char *name, unsigned set, uint32_t fps,
                       size_t bburst)
{
    c->rl_servers = realloc(c->rl_servers, (c->n_rl_servers + 1) * sizeof *c->rl_servers);
    assert_non_null(c->rl_servers);
    struct gw_rl_server_override *o = &c->rl_servers[c->n_rl_servers++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->o.set = set;
    o->o.v.frames_per_s = fps;
    o->o.v.bytes_burst = bburst;
}

static void test_resolve(void **state)
{
    struct gw_config c;
    struct gw_rl_limits l;
    (void)state;

    assert_int_equal(gw_config_defaults(&c), 0);
    /* defaults only */
    gw_rl_resolve(rlc(&c), "edge-1", "nimble", &l);
    assert_int_equal(l.frames_per_s, 5);
    assert_int_equal(l.frames_burst, 50);
    assert_int_equal(l.bytes_per_s, 8u << 20);
    assert_int_equal(l.bytes_burst, 32u << 20);

    /* kind over default, key by key */
    c.rl_kind[GW_RL_KIND_NIMBLE].set = GW_RL_SET_FRAMES_PER_S | GW_RL_SET_BYTES_PER_S;
    c.rl_kind[GW_RL_KIND_NIMBLE].v.frames_per_s = 7;
    c.rl_kind[GW_RL_KIND_NIMBLE].v.bytes_per_s = 1000;
    c.rl_kind[GW_RL_KIND_NIMBLE].v.frames_burst = 999; /* not set: ignored */
    c.rl_kind[GW_RL_KIND_WOWZA].set = GW_RL_SET_FRAMES_BURST;
    c.rl_kind[GW_RL_KIND_WOWZA].v.frames_burst = 3;
    /* server over kind */
    add_server(&c, "edge-1", GW_RL_SET_FRAMES_PER_S, 70, 0);
    add_server(&c, "edge-2", GW_RL_SET_BYTES_BURST, 0, 64u << 20);

    gw_rl_resolve(rlc(&c), "edge-1", "nimble", &l);
    assert_int_equal(l.frames_per_s, 70);      /* server */
    assert_int_equal(l.frames_burst, 50);      /* default */
    assert_int_equal(l.bytes_per_s, 1000);     /* kind */
    assert_int_equal(l.bytes_burst, 32u << 20); /* default */

    gw_rl_resolve(rlc(&c), "edge-2", "nimble", &l);
    assert_int_equal(l.frames_per_s, 7);
    assert_int_equal(l.bytes_burst, 64u << 20);

    gw_rl_resolve(rlc(&c), "edge-3", "wowza", &l);
    assert_int_equal(l.frames_per_s, 5);
    assert_int_equal(l.frames_burst, 3);
    assert_int_equal(l.bytes_per_s, 8u << 20);

    /* the server's own section wins whatever its kind */
    gw_rl_resolve(rlc(&c), "edge-1", "wowza", &l);
    assert_int_equal(l.frames_per_s, 70);
    assert_int_equal(l.frames_burst, 3);
    /* an unknown kind, no kind, no name: defaults (and the server's) */
    gw_rl_resolve(rlc(&c), "edge-9", "kaltura", &l);
    assert_int_equal(l.frames_per_s, 5);
    gw_rl_resolve(rlc(&c), "edge-1", NULL, &l);
    assert_int_equal(l.frames_per_s, 70);
    assert_int_equal(l.bytes_per_s, 8u << 20);
    gw_rl_resolve(rlc(&c), NULL, NULL, &l);
    assert_int_equal(l.frames_per_s, 5);
    /* names compare exactly */
    gw_rl_resolve(rlc(&c), "EDGE-1", "nimble", &l);
    assert_int_equal(l.frames_per_s, 7);
    gw_config_cleanup(&c);
}

/* ---- verdicts --------------------------------------------------------------------- */

struct vfx {
    struct gw_config c;
    struct gw_rl_servers *t;
    struct gw_rl_server *e;
    struct gw_bucket global;
};

static int vsetup(void **state)
{
    struct vfx *v = calloc(1, sizeof *v);
    struct gw_rl_limits l;

    if (!v || gw_config_defaults(&v->c) != 0)
        return -1;
    v->c.rl.frames_per_s = 2;
    v->c.rl.frames_burst = 4;
    v->c.rl.bytes_per_s = 1000;
    v->c.rl.bytes_burst = 5000;
    v->c.rl_global_frames_per_s = 1000;
    v->c.rl_global_frames_burst = 1000;
    v->c.rl_abuse_threshold = 5;
    v->c.rl_abuse_window_s = 10;
    v->c.rl_ban_s = 60;
    if (gw_rl_servers_new(&v->t, 64, 7, 8) != 0)
        return -1;
    v->e = gw_rl_servers_get(v->t, 42, true, 0);
    gw_rl_resolve(rlc(&v->c), "edge-1", "nimble", &l);
    gw_rl_server_set_limits(v->e, &l);
    *state = v;
    return 0;
}

static int vteardown(void **state)
{
    struct vfx *v = *state;
    gw_rl_servers_free(v->t);
    gw_config_cleanup(&v->c);
    free(v);
    return 0;
}

static void test_request_frames(void **state)
{
    struct vfx *v = *state;
    struct gw_rl_result res;

    assert_null(gw_rl_servers_get(v->t, 43, false, 0));
    assert_ptr_equal(gw_rl_servers_get(v->t, 42, false, 0), v->e);
    for (int i = 0; i < 4; i++) {
        gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 1000, &res);
        assert_int_equal(res.verdict, GW_RL_OK);
    }
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 1000, &res);
    assert_int_equal(res.verdict, GW_RL_FRAMES);
    assert_int_equal(res.wait_ms, 500);
    assert_int_equal(gw_rl_retry_after_s(res.wait_ms), 1);
    assert_false(res.ban_started);
    /* retrying after the wait succeeds */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 1500, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    /* the global bucket took one token per accepted request (4 at 1000 ms,
     * refilled by 1500 ms, then one more) */
    struct gw_rl_rate g = {1000, 1000};
    assert_int_equal(gw_rl_tokens(&v->global, &g, 1500), 999);
    assert_int_equal(v->e->limited[GW_RL_FRAMES], 1);
    assert_int_equal(v->e->strikes, 1);
}

static void test_request_global(void **state)
{
    struct vfx *v = *state;
    struct gw_rl_result res;

    v->c.rl_global_frames_per_s = 1;
    v->c.rl_global_frames_burst = 2;
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_GLOBAL);
    assert_int_equal(res.wait_ms, 1000);
    /* the server's own token was not spent, and it is no strike */
    struct gw_rl_rate fr = v->e->frames;
    assert_int_equal(gw_rl_tokens(&v->e->fb, &fr, 0), 2);
    assert_int_equal(v->e->strikes, 0);
    assert_int_equal(v->e->limited[GW_RL_GLOBAL], 1);
    /* over both: the longer wait */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res); /* global still empty */
    v->c.rl_global_frames_per_s = 0; /* unlimited */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_FRAMES);
    assert_int_equal(res.wait_ms, 500);
    v->c.rl_global_frames_per_s = 1;
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_FRAMES);
    assert_int_equal(res.wait_ms, 1000);
    /* no global bucket at all */
    gw_rl_request(v->e, NULL, rlc(&v->c), -1, 500, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
}

static void test_request_bytes(void **state)
{
    struct vfx *v = *state;
    struct gw_rl_result res;

    /* a declared length the bucket cannot hold now: 429 at the headers */
    gw_rl_body(v->e, rlc(&v->c), 4500, 0, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    gw_rl_request(v->e, &v->global, rlc(&v->c), 1000, 0, &res);
    assert_int_equal(res.verdict, GW_RL_BYTES);
    assert_int_equal(res.wait_ms, 500);
    /* nothing was taken for it: no frame token either */
    struct gw_rl_rate fr = v->e->frames;
    assert_int_equal(gw_rl_tokens(&v->e->fb, &fr, 0), 4);
    /* a declared length over the burst is left to the 413 */
    gw_rl_request(v->e, &v->global, rlc(&v->c), 5001, 0, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    /* no length: checked when the body is complete */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, 0, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    gw_rl_body(v->e, rlc(&v->c), 1000, 0, &res);
    assert_int_equal(res.verdict, GW_RL_BYTES);
    assert_int_equal(res.wait_ms, 500);
    gw_rl_body(v->e, rlc(&v->c), 1000, 500, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    assert_int_equal(v->e->limited[GW_RL_BYTES], 2);
    assert_int_equal(v->e->strikes, 2);
    /* unlimited bytes */
    v->e->bytes.per_s = 0;
    gw_rl_body(v->e, rlc(&v->c), 1u << 30, 500, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
}

static void test_escalation(void **state)
{
    struct vfx *v = *state;
    struct gw_rl_result res;
    int64_t t = 100000;

    /* 4 strikes, then the window passes: the count starts again */
    for (int i = 0; i < 8; i++)
        gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t, &res);
    assert_int_equal(v->e->strikes, 4);
    t += 10000;
    for (int i = 0; i < 4; i++) /* 4 tokens were refilled meanwhile */
        gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t, &res);
    for (int i = 0; i < 4; i++) {
        gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t, &res);
        assert_int_equal(res.verdict, GW_RL_FRAMES);
        assert_false(res.ban_started);
    }
    assert_int_equal(v->e->strikes, 4);
    assert_int_equal(gw_rl_banned_ms(v->e, t), 0);
    /* the 5th within the window starts the ban */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t + 400, &res);
    assert_int_equal(res.verdict, GW_RL_FRAMES);
    assert_int_equal(res.wait_ms, 100);
    assert_true(res.ban_started);
    t += 400;
    assert_int_equal(gw_rl_banned_ms(v->e, t), 60000);
    /* while banned: BANNED with the rest of the ban, no new ban, tokens kept */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t + 30000, &res);
    assert_int_equal(res.verdict, GW_RL_BANNED);
    assert_int_equal(res.wait_ms, 30000);
    assert_false(res.ban_started);
    gw_rl_body(v->e, rlc(&v->c), 10, t + 59999, &res);
    assert_int_equal(res.verdict, GW_RL_BANNED);
    assert_int_equal(res.wait_ms, 1);
    assert_int_equal(v->e->limited[GW_RL_BANNED], 2);
    /* the ban ends exactly ban_s later */
    gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t + 60000, &res);
    assert_int_equal(res.verdict, GW_RL_OK);
    assert_int_equal(gw_rl_banned_ms(v->e, t + 60000), 0);
    assert_int_equal(v->e->strikes, 0);

    /* abuse_threshold 0: never banned */
    v->c.rl_abuse_threshold = 0;
    for (int i = 0; i < 1000; i++)
        gw_rl_request(v->e, &v->global, rlc(&v->c), -1, t + 70000, &res);
    assert_int_equal(res.verdict, GW_RL_FRAMES);
    assert_int_equal(gw_rl_banned_ms(v->e, t + 70000), 0);
    assert_string_equal(gw_rl_verdict_name(GW_RL_BANNED), "banned");
    assert_string_equal(gw_rl_verdict_name(GW_RL_OK), "ok");
}

static void count_used(struct gw_rl_server *e, void *ud)
{
    (void)e;
    (*(unsigned *)ud)++;
}

/* The server table keeps its size; a banned server is never the one
 * evicted while another can be. */
static void test_server_table(void **state)
{
    struct gw_rl_servers *t;
    struct gw_rl_server *e;
    (void)state;

    assert_int_equal(gw_rl_servers_new(&t, 8, 1, 1), 0); /* one set of 8 */
    assert_int_equal(gw_rl_servers_capacity(t), 8);
    assert_null(gw_rl_servers_get(t, 0, true, 0)); /* 0 is no server */
    e = gw_rl_servers_get(t, 1, true, 0);
    e->banned_until_ms = 1000000;
    e = gw_rl_servers_get(t, 2, true, 0);
    e->limited[GW_RL_FRAMES] = 1; /* not flushed yet */
    for (int64_t id = 3; id < 10000; id++) {
        e = gw_rl_servers_get(t, id, true, id);
        assert_non_null(e);
        assert_int_equal(e->id, id);
        assert_int_equal(e->gen, 0);
    }
    assert_int_equal(gw_rl_servers_used(t), 8);
    assert_non_null(gw_rl_servers_get(t, 1, false, 10000));
    assert_non_null(gw_rl_servers_get(t, 2, false, 10000));
    assert_non_null(gw_rl_servers_get(t, 9999, false, 10000));
    unsigned n = 0;
    gw_rl_servers_each(t, count_used, &n);
    assert_int_equal(n, 8);

    struct gw_rl_servers *big;
    assert_int_equal(gw_rl_servers_new(&big, 1000, 2, 2), 0);
    gw_rl_servers_move(big, t, 10000);
    e = gw_rl_servers_get(big, 1, false, 10000);
    assert_non_null(e);
    assert_int_equal(e->banned_until_ms, 1000000);
    assert_int_equal(gw_rl_servers_used(big), 8);
    gw_rl_servers_free(big);
    gw_rl_servers_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_exact_wait),
        cmocka_unit_test(test_fractional_refill),
        cmocka_unit_test(test_unlimited_and_never),
        cmocka_unit_test(test_overflow_safe),
        cmocka_unit_test(test_burst_lowered),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_addr_keys),
        cmocka_unit_test(test_addr_limit),
        cmocka_unit_test(test_addr_flood),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test_setup_teardown(test_request_frames, vsetup, vteardown),
        cmocka_unit_test_setup_teardown(test_request_global, vsetup, vteardown),
        cmocka_unit_test_setup_teardown(test_request_bytes, vsetup, vteardown),
        cmocka_unit_test_setup_teardown(test_escalation, vsetup, vteardown),
        cmocka_unit_test(test_server_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
