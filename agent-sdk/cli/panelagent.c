/*
 * panelagent.c - the panelagent command line: a stats frame between its
 * JSON form and the msgpack wire form, checked exactly as the gateway would;
 * frames sent to a gateway and a key + CSR made, both through the public
 * libpanelagent API (panelagent.h) only.
 *
 * Each subcommand is one entry of |commands|.  Exit codes: 0 ok, 1 I/O,
 * delivery or internal error, 2 invalid frame, 64 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef PANELAGENT_CLI_SDK
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "panelagent.h"
#endif

#include <panelproto/frame.h>
#include <panelproto/frame_json.h>

#define PANELAGENT_VERSION "0.1.0"

enum { RC_OK = 0, RC_ERR = 1, RC_FRAME = 2, RC_USAGE = 64 };

/* JSON is larger than msgpack (a full 100000-connection frame is ~6 MB of
 * JSON); this bounds what encode reads, and so what cJSON allocates. */
#define JSON_MAX_FACTOR 4

struct command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(const char *name, int argc, char **argv);
};

static int cmd_encode(const char *name, int argc, char **argv);
static int cmd_decode(const char *name, int argc, char **argv);
#ifdef PANELAGENT_CLI_SDK
static int cmd_send(const char *name, int argc, char **argv);
static int cmd_keygen(const char *name, int argc, char **argv);
#endif

static const struct command commands[] = {
    {"encode", "[--limits-defaults] [--force]",
     "Read a JSON frame on stdin, check it as the gateway would (with the\n"
     "        default limits; --limits-defaults says so explicitly) and write\n"
     "        canonical msgpack to stdout.  Refuses to write to a terminal\n"
     "        unless --force.",
     cmd_encode},
    {"decode", "[--pretty]",
     "Read a msgpack frame on stdin, validate it and write its JSON form to\n"
     "        stdout (--pretty: indented).",
     cmd_decode},
#ifdef PANELAGENT_CLI_SDK
    {"send",
     "--gateway HOST[:PORT] ... --ca FILE --cert FILE --key FILE [--name SNI]\n"
     "        [--pin HEX] [--seq-file FILE] [--every SECONDS] [--count N]\n"
     "        [--timeout SECONDS] [--verbose] [FILE.json|FILE.msgpack ... | -]",
     "Send frames (JSON or msgpack, told apart by content; none or '-' =\n"
     "        stdin) to the gateway over mutual TLS with libpanelagent.  Each is\n"
     "        checked first (exit 2 if one is invalid) and sent with a fresh seq\n"
     "        and the current time; --every resends them all every SECONDS,\n"
     "        --count times (default 1; with --every, until SIGINT/SIGTERM).\n"
     "        Prints 'ack seq=N' for each acknowledged frame and\n"
     "        'error <code> seq=N: detail' for each reported error (seq=0: the\n"
     "        connection), then waits up to --timeout (30) seconds for the\n"
     "        rest.  PORT defaults to 8443 ([v6addr]:PORT for IPv6).  Several\n"
     "        --gateway (or one with a comma-separated list) are tried in turn:\n"
     "        when one fails the frames not yet acknowledged go to the next.\n"
     "        --name is the gateways' certificate name if not HOST; --pin its SPKI\n"
     "        SHA-256 (64 hex digits); --seq-file keeps seq across runs.\n"
     "        Exit 0 only if every frame was acknowledged.",
     cmd_send},
    {"keygen", "--key FILE --csr FILE --cn NAME",
     "Make a P-256 private key (FILE must not exist; written 0600) and a\n"
     "        certificate signing request for it with CN=NAME, for\n"
     "        `panelgatectl register NAME --kind nimble|wowza --csr FILE`.\n"
     "        NAME: 1..64 letters, digits, '.', '_', '-', inner spaces.",
     cmd_keygen},
#endif
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: panelagent <command> [options] [files]\n"
                 "       panelagent --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %s %s\n        %s\n", commands[i].name, commands[i].args,
                commands[i].help);
    fprintf(out, "\nexit status:\n"
                 "  0   success (send: every frame acknowledged)\n"
                 "  1   I/O, delivery or internal error (send: a frame was not\n"
                 "      acknowledged, or the client could not start)\n"
                 "  2   invalid frame (the message names the field, e.g.\n"
                 "      \"conns[17].out: negative\")\n"
                 "  64  usage error\n");
}

/* "panelagent: <what> '<arg>'" and the usage, on stderr. */
static int usage_error(const char *what, const char *arg)
{
    if (arg)
        fprintf(stderr, "panelagent: %s '%s'\n", what, arg);
    else
        fprintf(stderr, "panelagent: %s\n", what);
    usage(stderr);
    return RC_USAGE;
}

/* Reads fd to EOF, or until |cap| bytes are in |b| (then stops: the caller
 * learns that the input is too big without it all being read). */
static int read_all(int fd, size_t cap, struct pa_buf *b)
{
    while (b->len < cap) {
        size_t want = cap - b->len < 65536 ? cap - b->len : 65536;
        if (pa_buf_reserve(b, want) != 0) {
            errno = ENOMEM;
            return -1;
        }
        ssize_t n = read(fd, b->data + b->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        b->len += (size_t)n;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int io_error(const char *cmd, const char *what)
{
    fprintf(stderr, "panelagent: %s: %s: %s\n", cmd, what, strerror(errno));
    return RC_ERR;
}

static int frame_error(const char *cmd, const struct pa_frame_error *e, bool offset)
{
    char text[sizeof e->path + sizeof e->msg + 8];

    pa_frame_error_format(e, text, sizeof text);
    if (offset)
        fprintf(stderr, "panelagent: %s: %s (%s, offset %zu)\n", cmd, text,
                pa_frame_errname(e->code), e->offset);
    else
        fprintf(stderr, "panelagent: %s: %s (%s)\n", cmd, text, pa_frame_errname(e->code));
    return e->code == PA_FE_ARG ? RC_ERR : RC_FRAME;
}

static int cmd_encode(const char *name, int argc, char **argv)
{
    struct pa_frame_limits lim;
    struct pa_frame_error err = {0};
    struct pa_buf in, out;
    struct pa_arena a;
    struct pa_frame *f = NULL;
    bool force = false;
    size_t cap;
    int rc = RC_ERR, rv;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (strcmp(argv[i], "--limits-defaults") != 0)
            return usage_error("encode: unknown option", argv[i]);
    }
    if (!force && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "panelagent: %s: refusing to write binary to a terminal "
                        "(redirect stdout or use --force)\n", name);
        return RC_ERR;
    }

    pa_frame_limits_default(&lim);
    cap = lim.max_frame_bytes * JSON_MAX_FACTOR;
    pa_buf_init(&in, NULL);
    pa_buf_init(&out, NULL);
    pa_arena_init(&a, lim.max_arena_bytes, NULL);
    if (read_all(STDIN_FILENO, cap + 1, &in) != 0) {
        rc = io_error(name, "reading stdin");
        goto out;
    }
    if (in.len > cap) {
        fprintf(stderr, "panelagent: %s: input larger than %zu bytes (too_big)\n", name, cap);
        rc = RC_FRAME;
        goto out;
    }
    if ((rv = pa_frame_from_json((const char *)in.data, in.len, &a, &f, &err)) != 0) {
        /* offsets of JSON-level errors (no path) point into the input */
        rc = frame_error(name, &err, err.path[0] == '\0');
        goto out;
    }
    if ((rv = pa_frame_encode_checked(f, &lim, &out, &err)) != 0) {
        rc = frame_error(name, &err, false);
        goto out;
    }
    if (write_all(STDOUT_FILENO, out.data, out.len) != 0) {
        rc = io_error(name, "writing stdout");
        goto out;
    }
    rc = RC_OK;
out:
    pa_arena_cleanup(&a);
    pa_buf_cleanup(&out);
    pa_buf_cleanup(&in);
    return rc;
}

static int cmd_decode(const char *name, int argc, char **argv)
{
    struct pa_frame_limits lim;
    struct pa_frame_error err = {0};
    struct pa_buf in, out;
    struct pa_arena a;
    struct pa_frame *f = NULL;
    int flags = 0, rc = RC_ERR, rv;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--pretty") == 0)
            flags |= PA_JSON_PRETTY;
        else
            return usage_error("decode: unknown option", argv[i]);
    }

    pa_frame_limits_default(&lim);
    pa_buf_init(&in, NULL);
    pa_buf_init(&out, NULL);
    pa_arena_init(&a, lim.max_arena_bytes, NULL);
    /* one byte more than allowed, so the decoder reports too_big */
    if (read_all(STDIN_FILENO, lim.max_frame_bytes + 1, &in) != 0) {
        rc = io_error(name, "reading stdin");
        goto out;
    }
    if ((rv = pa_frame_decode(in.data, in.len, &lim, &a, &f, &err)) != 0) {
        rc = frame_error(name, &err, true);
        goto out;
    }
    if ((rv = pa_frame_to_json(f, &out, flags)) != 0 || pa_buf_append(&out, "\n", 1) != 0) {
        fprintf(stderr, "panelagent: %s: %s\n", name, pa_frame_strerror(rv ? rv : PA_FE_NOMEM));
        goto out;
    }
    if (write_all(STDOUT_FILENO, out.data, out.len) != 0) {
        rc = io_error(name, "writing stdout");
        goto out;
    }
    rc = RC_OK;
out:
    pa_arena_cleanup(&a);
    pa_buf_cleanup(&out);
    pa_buf_cleanup(&in);
    return rc;
}

#ifdef PANELAGENT_CLI_SDK
/* ---- send ------------------------------------------------------------------ */

/* The name of a reported (or returned) code, as printed in "error <name>". */
static const char *code_name(int err)
{
    switch (err) {
    case PANELAGENT_OK: return "ok";
    case PANELAGENT_EINVAL: return "invalid";
    case PANELAGENT_ENOMEM: return "nomem";
    case PANELAGENT_EAGAIN: return "queue_full";
    case PANELAGENT_ETIMEDOUT: return "timed_out";
    case PANELAGENT_ECLOSED: return "closed";
    case PANELAGENT_ELIMIT: return "limit";
    case PANELAGENT_EFRAME: return "frame";
    case PANELAGENT_EIO: return "io";
    case PANELAGENT_ECONFIG: return "config";
    case PANELAGENT_ECONNECT: return "connect";
    case PANELAGENT_ETLS: return "tls";
    case PANELAGENT_EPROTOCOL: return "protocol";
    case PANELAGENT_EGATEWAY_CERT: return "gateway_cert";
    case PANELAGENT_EGATEWAY_PIN: return "gateway_pin";
    case PANELAGENT_ENOT_REGISTERED: return "not_registered";
    case PANELAGENT_EREVOKED: return "revoked";
    case PANELAGENT_ECERT_REJECTED: return "cert_rejected";
    case PANELAGENT_ERATE_LIMITED: return "rate_limited";
    case PANELAGENT_EREJECTED: return "rejected";
    case PANELAGENT_EDROPPED: return "dropped";
    case PANELAGENT_EUNDELIVERED: return "undelivered";
    case PANELAGENT_EBUSY: return "busy";
    case PANELAGENT_EINTERNAL: return "internal";
    }
    return "unknown";
}

/* What the callbacks (on the client's I/O thread) share with main. */
struct tally {
    pthread_mutex_t mu;
    uint64_t acked;
};

static void on_ack(uint64_t seq, void *ud)
{
    struct tally *t = ud;
    pthread_mutex_lock(&t->mu);
    t->acked++;
    printf("ack seq=%" PRIu64 "\n", seq);
    fflush(stdout);
    pthread_mutex_unlock(&t->mu);
}

static void on_error(int err, uint64_t seq, const char *detail, void *ud)
{
    struct tally *t = ud;
    pthread_mutex_lock(&t->mu);
    printf("error %s seq=%" PRIu64 ": %s\n", code_name(err), seq,
           detail && detail[0] ? detail : panelagent_strerror(err));
    fflush(stdout);
    pthread_mutex_unlock(&t->mu);
}

static void on_log(int level, const char *msg, void *ud)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    (void)ud;
    fprintf(stderr, "panelagent: [%s] %s\n", level >= 0 && level <= 3 ? lv[level] : "?", msg);
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* "--opt VALUE" or "--opt=VALUE": 1 when argv[*i] is |opt| (its value in
 * *val, *i advanced), 0 when it is not, -1 when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *opt, const char **val)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

/* A decimal number of seconds in [min, max] as milliseconds. */
static int parse_seconds(const char *s, double min, double max, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
        return -1;
    *ms = (int64_t)(v * 1000.0 + 0.5);
    return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* HOST, HOST:PORT, [V6]:PORT, [V6] or a bare IPv6 address (several ':').
 * Writes the host into |host| (n bytes). */
static int parse_gateway(const char *s, char *host, size_t n, uint64_t *port)
{
    const char *h = s, *p = NULL;
    size_t hl;

    *port = 8443;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        if (close[1] == ':')
            p = close + 2;
    } else {
        const char *c = strchr(s, ':');
        if (c != NULL && strchr(c + 1, ':') == NULL) {
            hl = (size_t)(c - s);
            p = c + 1;
        } else {
            hl = strlen(s);
        }
    }
    if (hl == 0 || hl >= n)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (p != NULL && parse_u64(p, 1, 65535, port) != 0)
        return -1;
    return 0;
}

/* The --gateway values (each one gateway or a comma-separated list): one
 * gateway in |host| and *port with *list NULL, or several in *list (a
 * PANELAGENT_OPT_GATEWAYS value the caller frees).  -1 with *bad the
 * value that is not a gateway (NULL: out of memory). */
static int gateway_list(const char **vals, size_t n, char *host, size_t hostlen, uint64_t *port,
                        char **list, const char **bad)
{
    size_t cap = 1, len = 0, count = 0;
    char *out;

    *list = NULL;
    for (size_t i = 0; i < n; i++)
        cap += strlen(vals[i]) + 16; /* each entry gains at most "[", "]:65535" */
    if ((out = malloc(cap + 16 * n)) == NULL)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        for (const char *s = vals[i];;) {
            const char *comma = strchr(s, ',');
            char one[300];
            size_t l = comma ? (size_t)(comma - s) : strlen(s);
            if (l >= sizeof one || (memcpy(one, s, l), one[l] = '\0',
                                    parse_gateway(one, host, hostlen, port) != 0)) {
                free(out);
                *bad = vals[i];
                return -1;
            }
            int v6 = strchr(host, ':') != NULL;
            len += (size_t)snprintf(out + len, cap + 16 * n - len, "%s%s%s%s:%" PRIu64,
                                    count ? "," : "", v6 ? "[" : "", host, v6 ? "]" : "",
                                    *port);
            count++;
            if (comma == NULL)
                break;
            s = comma + 1;
        }
    }
    if (count == 1)
        free(out); /* host and port hold it */
    else
        *list = out;
    return 0;
}

/* One input: its name and its checked msgpack form. */
struct input {
    const char *name;
    struct pa_buf mp;
};

/* Reads |path| ("-": stdin) and turns it into a checked msgpack frame in
 * in->mp.  JSON when the first non-blank byte is '{' (a msgpack frame
 * starts with a map header, never with that byte).  RC_OK, RC_ERR (I/O) or
 * RC_FRAME, with the message printed. */
static int load_input(const char *cmd, const char *path, struct input *in)
{
    struct pa_frame_limits lim;
    struct pa_frame_error fe = {0};
    struct pa_buf raw;
    struct pa_arena a;
    struct pa_frame *f = NULL;
    char err[256] = "";
    int fd = STDIN_FILENO, rc = RC_ERR;

    pa_frame_limits_default(&lim);
    pa_buf_init(&raw, NULL);
    pa_buf_init(&in->mp, NULL);
    pa_arena_init(&a, lim.max_arena_bytes, NULL);
    in->name = strcmp(path, "-") == 0 ? "stdin" : path;
    if (strcmp(path, "-") != 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "panelagent: %s: %s: %s\n", cmd, path, strerror(errno));
        goto out;
    }
    size_t cap = lim.max_frame_bytes * JSON_MAX_FACTOR;
    int r = read_all(fd, cap + 1, &raw);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r != 0) {
        fprintf(stderr, "panelagent: %s: %s: %s\n", cmd, in->name, strerror(errno));
        goto out;
    }
    size_t k = 0;
    while (k < raw.len && strchr(" \t\r\n", raw.data[k]) != NULL)
        k++;
    if (k < raw.len && raw.data[k] == '{') {
        if (raw.len > cap) {
            fprintf(stderr, "panelagent: %s: %s: input larger than %zu bytes (too_big)\n", cmd,
                    in->name, cap);
            rc = RC_FRAME;
            goto out;
        }
        if (pa_frame_from_json((const char *)raw.data, raw.len, &a, &f, &fe) != 0 ||
            pa_frame_encode_checked(f, &lim, &in->mp, &fe) != 0) {
            pa_frame_error_format(&fe, err, sizeof err);
            fprintf(stderr, "panelagent: %s: %s: %s (%s)\n", cmd, in->name, err,
                    pa_frame_errname(fe.code));
            rc = fe.code == PA_FE_NOMEM ? RC_ERR : RC_FRAME;
            goto out;
        }
    } else if (pa_buf_append(&in->mp, raw.data, raw.len) != 0) {
        fprintf(stderr, "panelagent: %s: %s: out of memory\n", cmd, in->name);
        goto out;
    }
    /* what the library will take: the same check the gateway makes */
    panelagent_frame *pf = NULL;
    int rv = panelagent_frame_new_msgpack(&pf, in->mp.data, in->mp.len, err, sizeof err);
    panelagent_frame_free(pf);
    if (rv != PANELAGENT_OK) {
        fprintf(stderr, "panelagent: %s: %s: %s\n", cmd, in->name,
                err[0] ? err : panelagent_strerror(rv));
        rc = rv == PANELAGENT_EFRAME ? RC_FRAME : RC_ERR;
        goto out;
    }
    rc = RC_OK;
out:
    pa_arena_cleanup(&a);
    pa_buf_cleanup(&raw);
    return rc;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct send_opts {
    const char *ca, *cert, *key, *name, *pin, *seq_file;
    int64_t every_ms, timeout_ms;
    uint64_t count;
    bool verbose;
};

static int cmd_send(const char *cmd, int argc, char **argv)
{
    struct send_opts o = {.timeout_ms = 30000, .count = 0};
    struct tally tally = {.acked = 0};
    struct input *inputs = NULL;
    const char **files = NULL;
    panelagent_config *cfg = NULL;
    panelagent_client *cl = NULL;
    char host[256], err[512] = "", *list = NULL;
    uint64_t port, submitted = 0;
    size_t n_files = 0, n_inputs = 0, n_gws = 0;
    const char **gws = NULL;
    int rc = RC_ERR, rv;
    bool submit_failed = false;
    const char *v;

    files = calloc((size_t)argc + 1, sizeof *files);
    gws = calloc((size_t)argc + 1, sizeof *gws);
    if (files == NULL || gws == NULL) {
        fprintf(stderr, "panelagent: %s: out of memory\n", cmd);
        free(files);
        free(gws);
        return RC_ERR;
    }
    for (int i = 0; i < argc; i++) {
        static const struct {
            const char *opt;
            size_t off;
        } str_opts[] = {
            {"--ca", offsetof(struct send_opts, ca)},
            {"--cert", offsetof(struct send_opts, cert)},
            {"--key", offsetof(struct send_opts, key)},
            {"--name", offsetof(struct send_opts, name)},
            {"--pin", offsetof(struct send_opts, pin)},
            {"--seq-file", offsetof(struct send_opts, seq_file)},
        };
        int m = opt_value(argc, argv, &i, "--gateway", &v);
        if (m == 1)
            gws[n_gws++] = v;
        for (size_t k = 0; k < sizeof str_opts / sizeof str_opts[0] && m == 0; k++)
            if ((m = opt_value(argc, argv, &i, str_opts[k].opt, &v)) == 1)
                memcpy((char *)&o + str_opts[k].off, &v, sizeof v);
        if (m == 0 && (m = opt_value(argc, argv, &i, "--every", &v)) == 1 &&
            parse_seconds(v, 0.001, 86400, &o.every_ms) != 0) {
            free(files);
            free(gws);
            return usage_error("send: --every wants seconds (0.001..86400), not", v);
        }
        if (m == 0 && (m = opt_value(argc, argv, &i, "--count", &v)) == 1 &&
            parse_u64(v, 1, 1000000000, &o.count) != 0) {
            free(files);
            free(gws);
            return usage_error("send: --count wants a number (1..1000000000), not", v);
        }
        if (m == 0 && (m = opt_value(argc, argv, &i, "--timeout", &v)) == 1 &&
            parse_seconds(v, 0, 86400, &o.timeout_ms) != 0) {
            free(files);
            free(gws);
            return usage_error("send: --timeout wants seconds (0..86400), not", v);
        }
        if (m == 0 && (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)) {
            o.verbose = true;
            m = 1;
        }
        if (m < 0) {
            free(files);
            free(gws);
            return usage_error("send: missing value after", argv[i]);
        }
        if (m == 0) {
            if (argv[i][0] == '-' && argv[i][1] != '\0') {
                free(files);
                free(gws);
                return usage_error("send: unknown option", argv[i]);
            }
            files[n_files++] = argv[i];
        }
    }
    const char *missing = !n_gws ? "--gateway" : !o.ca ? "--ca" : !o.cert ? "--cert"
                        : !o.key     ? "--key"
                                     : NULL;
    if (missing) {
        free(files);
        free(gws);
        return usage_error("send: missing required option", missing);
    }
    const char *bad = NULL;
    rv = gateway_list(gws, n_gws, host, sizeof host, &port, &list, &bad);
    free(gws);
    if (rv != 0) {
        free(files);
        if (bad == NULL) {
            fprintf(stderr, "panelagent: %s: out of memory\n", cmd);
            return RC_ERR;
        }
        return usage_error("send: --gateway wants HOST[:PORT] or [IPv6]:PORT, not", bad);
    }
    if (!o.count)
        o.count = o.every_ms ? 0 : 1; /* 0: until a signal */
    if (n_files == 0)
        files[n_files++] = "-";
    for (size_t i = 0, dash = 0; i < n_files; i++)
        if (strcmp(files[i], "-") == 0 && ++dash > 1) {
            free(files);
            return usage_error("send: stdin ('-') given twice", NULL);
        }

    /* every frame checked before anything is sent */
    inputs = calloc(n_files, sizeof *inputs);
    if (inputs == NULL) {
        fprintf(stderr, "panelagent: %s: out of memory\n", cmd);
        goto out;
    }
    for (; n_inputs < n_files; n_inputs++)
        if ((rc = load_input(cmd, files[n_inputs], &inputs[n_inputs])) != RC_OK) {
            n_inputs++;
            goto out;
        }
    rc = RC_ERR;

    pthread_mutex_init(&tally.mu, NULL);
    if ((rv = panelagent_config_new(&cfg)) != 0) {
        fprintf(stderr, "panelagent: %s: %s\n", cmd, panelagent_strerror(rv));
        goto out_mu;
    }
    struct {
        panelagent_opt id;
        const char *v, *opt;
    } sets[] = {
        {PANELAGENT_OPT_GATEWAY_HOST, list ? NULL : host, "--gateway"},
        {PANELAGENT_OPT_GATEWAYS, list, "--gateway"},
        {PANELAGENT_OPT_CA_FILE, o.ca, "--ca"},
        {PANELAGENT_OPT_CERT_FILE, o.cert, "--cert"},
        {PANELAGENT_OPT_KEY_FILE, o.key, "--key"},
        {PANELAGENT_OPT_GATEWAY_NAME, o.name, "--name"},
        {PANELAGENT_OPT_GATEWAY_PIN, o.pin, "--pin"},
        {PANELAGENT_OPT_SEQ_FILE, o.seq_file, "--seq-file"},
    };
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        if (sets[k].v == NULL)
            continue;
        if ((rv = panelagent_config_set_str(cfg, sets[k].id, sets[k].v)) != 0) {
            rc = rv == PANELAGENT_EINVAL ? usage_error("send: invalid value of", sets[k].opt)
                                         : RC_ERR;
            goto out_mu;
        }
    }
    if ((rv = panelagent_config_set_i64(cfg, PANELAGENT_OPT_GATEWAY_PORT, (int64_t)port)) != 0 ||
        (rv = panelagent_config_set_ack(cfg, on_ack, &tally)) != 0 ||
        (rv = panelagent_config_set_error(cfg, on_error, &tally)) != 0 ||
        (o.verbose && (rv = panelagent_config_set_log(cfg, on_log, NULL)) != 0)) {
        fprintf(stderr, "panelagent: %s: configuration: %s\n", cmd, panelagent_strerror(rv));
        goto out_mu;
    }
    if ((rv = panelagent_client_new(&cl, cfg, err, sizeof err)) != 0) {
        fprintf(stderr, "panelagent: %s: %s\n", cmd, err[0] ? err : panelagent_strerror(rv));
        goto out_mu;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    for (uint64_t round = 0; !stop_requested && (o.count == 0 || round < o.count); round++) {
        if (round > 0)
            sleep_ms(o.every_ms);
        if (stop_requested)
            break;
        for (size_t i = 0; i < n_inputs; i++) {
            panelagent_frame *f = NULL;
            uint64_t seq = 0;
            err[0] = '\0';
            rv = panelagent_frame_new_msgpack(&f, inputs[i].mp.data, inputs[i].mp.len, err,
                                              sizeof err);
            /* a fresh time for every send (seq is the client's) */
            if (rv == 0)
                rv = panelagent_frame_set_time(f, 0);
            if (rv == 0)
                rv = panelagent_client_submit_take(cl, f, &seq, err, sizeof err);
            else
                panelagent_frame_free(f);
            if (rv != 0) {
                fprintf(stderr, "panelagent: %s: %s: not queued: %s\n", cmd, inputs[i].name,
                        err[0] ? err : panelagent_strerror(rv));
                submit_failed = true;
                continue;
            }
            submitted++;
        }
    }

    rv = panelagent_client_flush(cl, (int)o.timeout_ms);
    if (rv == PANELAGENT_ETIMEDOUT)
        fprintf(stderr, "panelagent: %s: timed out after %.3g s waiting for the gateway\n", cmd,
                (double)o.timeout_ms / 1000.0);
    rv = panelagent_client_close(cl, 0);
    cl = NULL;
    pthread_mutex_lock(&tally.mu);
    uint64_t acked = tally.acked;
    pthread_mutex_unlock(&tally.mu);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "panelagent: %s: writing stdout: %s\n", cmd, strerror(errno));
        goto out_mu;
    }
    rc = !submit_failed && submitted > 0 && acked == submitted ? RC_OK : RC_ERR;
    if (rc != RC_OK)
        fprintf(stderr, "panelagent: %s: %" PRIu64 " of %" PRIu64 " frames acknowledged\n", cmd,
                acked, submitted);
out_mu:
    panelagent_client_free(cl);
    panelagent_config_free(cfg);
    pthread_mutex_destroy(&tally.mu);
out:
    for (size_t i = 0; i < n_inputs; i++)
        pa_buf_cleanup(&inputs[i].mp);
    free(inputs);
    free(files);
    free(list);
    return rc;
}

/* ---- keygen ------------------------------------------------------------------ */

static int cmd_keygen(const char *cmd, int argc, char **argv)
{
    const char *key = NULL, *csr = NULL, *cn = NULL, *v;
    char err[512] = "";

    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = opt_value(argc, argv, &i, "--key", &v)) == 1)
            key = v;
        else if (m == 0 && (m = opt_value(argc, argv, &i, "--csr", &v)) == 1)
            csr = v;
        else if (m == 0 && (m = opt_value(argc, argv, &i, "--cn", &v)) == 1)
            cn = v;
        if (m < 0)
            return usage_error("keygen: missing value after", argv[i]);
        if (m == 0)
            return usage_error("keygen: unknown argument", argv[i]);
    }
    if (!key || !csr || !cn)
        return usage_error("keygen: --key, --csr and --cn are required", NULL);
    int rv = panelagent_keygen(key, csr, cn, err, sizeof err);
    if (rv == PANELAGENT_EINVAL) {
        fprintf(stderr, "panelagent: %s: %s\n", cmd, err[0] ? err : panelagent_strerror(rv));
        return RC_USAGE;
    }
    if (rv != PANELAGENT_OK) {
        fprintf(stderr, "panelagent: %s: %s\n", cmd, err[0] ? err : panelagent_strerror(rv));
        return RC_ERR;
    }
    printf("key %s (0600, keep it on this host)\ncsr %s (CN=%s)\n"
           "next: panelgatectl register %s --kind nimble|wowza --csr %s\n",
           key, csr, cn, cn, csr);
    return fflush(stdout) == 0 ? RC_OK : RC_ERR;
}
#endif /* PANELAGENT_CLI_SDK */

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd)
        return usage_error("no command given", NULL);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return fflush(stdout) == 0 ? RC_OK : RC_ERR;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("panelagent %s (protocol v%d)\n", PANELAGENT_VERSION, PA_PROTOCOL_VERSION);
        return fflush(stdout) == 0 ? RC_OK : RC_ERR;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(commands[i].name, argc - 2, argv + 2);
    if (cmd[0] == '-')
        return usage_error("unknown option", cmd);
    return usage_error("unknown command", cmd);
}
