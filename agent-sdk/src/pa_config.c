/*
 * pa_config.c - panelagent_config: every option of panelagent_opt with its
 * default and range (panelagent.h), and the three callbacks.  A client
 * copies what it needs (pa_opts_copy), so a config can be freed or reused
 * as soon as panelagent_client_new returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define N_STR 9 /* string ids 1..8 */
#define I64_FIRST PANELAGENT_OPT_GATEWAY_PORT
#define I64_LAST PANELAGENT_OPT_IDLE_TIMEOUT_MS
#define N_I64 (I64_LAST - I64_FIRST + 1)

struct panelagent_config {
    char *str[N_STR];
    int has_pin;
    uint8_t pin[PA_PIN_LEN];
    int64_t i64[N_I64];
    panelagent_ack_fn ack_fn;
    void *ack_ud;
    panelagent_error_fn error_fn;
    void *error_ud;
    panelagent_log_fn log_fn;
    void *log_ud;
};

struct i64_opt {
    int64_t def, min, max;
};

/* Indexed by id - I64_FIRST; the values documented in panelagent.h. */
static const struct i64_opt i64_opts[N_I64] = {
    [PANELAGENT_OPT_GATEWAY_PORT - I64_FIRST] = {8443, 1, 65535},
    [PANELAGENT_OPT_QUEUE_MAX_FRAMES - I64_FIRST] = {1000, 1, 1000000},
    [PANELAGENT_OPT_QUEUE_MAX_BYTES - I64_FIRST] = {64LL << 20, 4096, 4LL << 30},
    [PANELAGENT_OPT_QUEUE_POLICY - I64_FIRST] = {PANELAGENT_QUEUE_REJECT_NEW,
                                                 PANELAGENT_QUEUE_REJECT_NEW,
                                                 PANELAGENT_QUEUE_DROP_OLDEST},
    [PANELAGENT_OPT_MAX_IN_FLIGHT - I64_FIRST] = {8, 1, 100},
    [PANELAGENT_OPT_CONNECT_TIMEOUT_MS - I64_FIRST] = {10000, 100, 600000},
    [PANELAGENT_OPT_REQUEST_TIMEOUT_MS - I64_FIRST] = {30000, 100, 600000},
    [PANELAGENT_OPT_BACKOFF_INITIAL_MS - I64_FIRST] = {500, 10, 600000},
    [PANELAGENT_OPT_BACKOFF_MAX_MS - I64_FIRST] = {30000, 10, 3600000},
    [PANELAGENT_OPT_REFUSED_BACKOFF_MS - I64_FIRST] = {60000, 10, 3600000},
    [PANELAGENT_OPT_IDLE_TIMEOUT_MS - I64_FIRST] = {60000, 0, 86400000},
};

static int is_str_opt(int id)
{
    return id >= PANELAGENT_OPT_GATEWAY_HOST && id <= PANELAGENT_OPT_GATEWAYS;
}

static int is_i64_opt(int id)
{
    return id >= I64_FIRST && id <= I64_LAST;
}

int panelagent_config_new(panelagent_config **out)
{
    panelagent_config *c;

    if (out == NULL)
        return PANELAGENT_EINVAL;
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return PANELAGENT_ENOMEM;
    for (int i = 0; i < N_I64; i++)
        c->i64[i] = i64_opts[i].def;
    *out = c;
    return PANELAGENT_OK;
}

void panelagent_config_free(panelagent_config *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < N_STR; i++)
        free(c->str[i]);
    free(c);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* 64 hex digits -> 32 bytes; -1 when it is anything else. */
static int parse_pin(const char *v, uint8_t pin[PA_PIN_LEN])
{
    if (strlen(v) != 2 * PA_PIN_LEN)
        return -1;
    for (size_t i = 0; i < PA_PIN_LEN; i++) {
        int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        pin[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* ---- the gateway list (PANELAGENT_OPT_GATEWAYS) ----------------------------------- */

static int parse_port(const char *s, size_t n, int64_t *port)
{
    int64_t v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* One entry |s|..|s|+|n| (spaces trimmed): host, host:port, [v6], [v6]:port.
 * The host goes to *host (a new string) when host is not NULL. */
static int parse_gw(const char *s, size_t n, int64_t def_port, char **host, int64_t *port)
{
    const char *h = s, *p = NULL;
    size_t hn = n, pn = 0;

    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return -1;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (end == NULL)
            return -1;
        h = s + 1;
        hn = (size_t)(end - h);
        size_t rest = n - (size_t)(end + 1 - s);
        if (rest > 0) {
            if (end[1] != ':')
                return -1;
            p = end + 2;
            pn = rest - 1;
        }
        if (memchr(h, ':', hn) == NULL) /* brackets are for IPv6 only */
            return -1;
    } else {
        const char *colon = memchr(s, ':', n);
        h = s;
        hn = n;
        if (colon != NULL) {
            hn = (size_t)(colon - s);
            p = colon + 1;
            pn = n - hn - 1;
            if (memchr(p, ':', pn) != NULL) /* an IPv6 address needs [ ] */
                return -1;
        }
    }
    if (hn == 0 || hn > 255 || memchr(h, ' ', hn) != NULL)
        return -1;
    *port = def_port;
    if (p != NULL && parse_port(p, pn, port) != 0)
        return -1;
    if (host != NULL) {
        if ((*host = malloc(hn + 1)) == NULL)
            return -2;
        memcpy(*host, h, hn);
        (*host)[hn] = '\0';
    }
    return 0;
}

/* Parses "a[:port],b[:port],[v6]:port".  With |out| NULL it only checks:
 * 0, or -1 for a malformed list, -2 out of memory (|out| set). */
static int parse_gateways(const char *v, int64_t def_port, struct pa_gw **out, size_t *n_out)
{
    struct pa_gw *gws = NULL;
    size_t n = 0;

    if (out != NULL && (gws = calloc(PA_MAX_GATEWAYS, sizeof *gws)) == NULL)
        return -2;
    for (const char *s = v;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        int64_t port;
        int rv = n == PA_MAX_GATEWAYS
                     ? -1
                     : parse_gw(s, len, def_port, gws ? &gws[n].host : NULL, &port);
        if (rv != 0) {
            pa_gateways_free(gws, n);
            return rv;
        }
        if (gws != NULL)
            gws[n].port = port;
        n++;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    if (out != NULL) {
        *out = gws;
        *n_out = n;
    }
    return 0;
}

void pa_gateways_free(struct pa_gw *gws, size_t n)
{
    if (gws == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(gws[i].host);
    free(gws);
}

int panelagent_config_set_str(panelagent_config *c, panelagent_opt id, const char *v)
{
    char *copy = NULL;
    uint8_t pin[PA_PIN_LEN];

    if (c == NULL || !is_str_opt((int)id))
        return PANELAGENT_EINVAL;
    if (v != NULL) {
        size_t n = strlen(v);
        /* "" is meaningful only for the name (no name check) */
        if (n == 0 && id != PANELAGENT_OPT_GATEWAY_NAME)
            return PANELAGENT_EINVAL;
        if (n > 4096)
            return PANELAGENT_EINVAL;
        if (id == PANELAGENT_OPT_GATEWAY_PIN && parse_pin(v, pin) != 0)
            return PANELAGENT_EINVAL;
        if (id == PANELAGENT_OPT_GATEWAYS && parse_gateways(v, 1, NULL, NULL) != 0)
            return PANELAGENT_EINVAL;
        copy = malloc(n + 1);
        if (copy == NULL)
            return PANELAGENT_ENOMEM;
        memcpy(copy, v, n + 1);
    }
    free(c->str[id]);
    c->str[id] = copy;
    if (id == PANELAGENT_OPT_GATEWAY_PIN) {
        c->has_pin = v != NULL;
        if (v != NULL)
            memcpy(c->pin, pin, sizeof pin);
        else
            memset(c->pin, 0, sizeof c->pin);
    }
    return PANELAGENT_OK;
}

int panelagent_config_set_i64(panelagent_config *c, panelagent_opt id, int64_t v)
{
    if (c == NULL || !is_i64_opt((int)id))
        return PANELAGENT_EINVAL;
    const struct i64_opt *o = &i64_opts[id - I64_FIRST];
    if (v < o->min || v > o->max)
        return PANELAGENT_EINVAL;
    c->i64[id - I64_FIRST] = v;
    return PANELAGENT_OK;
}

int panelagent_config_set_ack(panelagent_config *c, panelagent_ack_fn fn, void *ud)
{
    if (c == NULL)
        return PANELAGENT_EINVAL;
    c->ack_fn = fn;
    c->ack_ud = fn ? ud : NULL;
    return PANELAGENT_OK;
}

int panelagent_config_set_error(panelagent_config *c, panelagent_error_fn fn, void *ud)
{
    if (c == NULL)
        return PANELAGENT_EINVAL;
    c->error_fn = fn;
    c->error_ud = fn ? ud : NULL;
    return PANELAGENT_OK;
}

int panelagent_config_set_log(panelagent_config *c, panelagent_log_fn fn, void *ud)
{
    if (c == NULL)
        return PANELAGENT_EINVAL;
    c->log_fn = fn;
    c->log_ud = fn ? ud : NULL;
    return PANELAGENT_OK;
}

/* ---- the client's copy ---------------------------------------------------------- */

static int dup_opt(char **dst, const char *src)
{
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

int pa_opts_copy(struct pa_opts *o, const panelagent_config *c)
{
    memset(o, 0, sizeof *o);
    if (dup_opt(&o->host, c->str[PANELAGENT_OPT_GATEWAY_HOST]) != 0 ||
        dup_opt(&o->name, c->str[PANELAGENT_OPT_GATEWAY_NAME]) != 0 ||
        dup_opt(&o->ca_file, c->str[PANELAGENT_OPT_CA_FILE]) != 0 ||
        dup_opt(&o->cert_file, c->str[PANELAGENT_OPT_CERT_FILE]) != 0 ||
        dup_opt(&o->key_file, c->str[PANELAGENT_OPT_KEY_FILE]) != 0 ||
        dup_opt(&o->seq_file, c->str[PANELAGENT_OPT_SEQ_FILE]) != 0) {
        pa_opts_cleanup(o);
        return PANELAGENT_ENOMEM;
    }
    o->has_pin = c->has_pin;
    memcpy(o->pin, c->pin, sizeof o->pin);
#define I(id) c->i64[(id) - I64_FIRST]
    o->port = I(PANELAGENT_OPT_GATEWAY_PORT);
    o->queue_max_frames = I(PANELAGENT_OPT_QUEUE_MAX_FRAMES);
    o->queue_max_bytes = I(PANELAGENT_OPT_QUEUE_MAX_BYTES);
    o->queue_policy = I(PANELAGENT_OPT_QUEUE_POLICY);
    o->max_in_flight = I(PANELAGENT_OPT_MAX_IN_FLIGHT);
    o->connect_timeout_ms = I(PANELAGENT_OPT_CONNECT_TIMEOUT_MS);
    o->request_timeout_ms = I(PANELAGENT_OPT_REQUEST_TIMEOUT_MS);
    o->backoff_initial_ms = I(PANELAGENT_OPT_BACKOFF_INITIAL_MS);
    o->backoff_max_ms = I(PANELAGENT_OPT_BACKOFF_MAX_MS);
    o->refused_backoff_ms = I(PANELAGENT_OPT_REFUSED_BACKOFF_MS);
    o->idle_timeout_ms = I(PANELAGENT_OPT_IDLE_TIMEOUT_MS);
#undef I
    /* the candidates: the list, else the one host (none: check_opts says so) */
    const char *list = c->str[PANELAGENT_OPT_GATEWAYS];
    o->has_list = list != NULL;
    if (list != NULL) {
        if (parse_gateways(list, o->port, &o->gws, &o->n_gws) != 0) {
            pa_opts_cleanup(o); /* checked when it was set: out of memory */
            return PANELAGENT_ENOMEM;
        }
    } else if (o->host != NULL) {
        if ((o->gws = calloc(1, sizeof *o->gws)) == NULL ||
            (o->gws[0].host = strdup(o->host)) == NULL) {
            pa_opts_cleanup(o);
            return PANELAGENT_ENOMEM;
        }
        o->gws[0].port = o->port;
        o->n_gws = 1;
    }
    o->ack_fn = c->ack_fn;
    o->ack_ud = c->ack_ud;
    o->error_fn = c->error_fn;
    o->error_ud = c->error_ud;
    o->log_fn = c->log_fn;
    o->log_ud = c->log_ud;
    return PANELAGENT_OK;
}

void pa_opts_cleanup(struct pa_opts *o)
{
    if (o == NULL)
        return;
    free(o->host);
    free(o->name);
    free(o->ca_file);
    free(o->cert_file);
    free(o->key_file);
    free(o->seq_file);
    pa_gateways_free(o->gws, o->n_gws);
    memset(o, 0, sizeof *o);
}
