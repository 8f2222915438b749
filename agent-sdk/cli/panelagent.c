/*
 * panelagent.c - the panelagent command line: a stats frame between its
 * JSON form and the msgpack wire form, checked exactly as the gateway would.
 *
 * Each subcommand is one entry of |commands|; `send` (frames to a gateway)
 * is meant to join them.  Exit codes: 0 ok, 1 I/O or internal error,
 * 2 invalid frame, 64 usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "frame_json.h"

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
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: panelagent <command> [options] < input > output\n"
                 "       panelagent --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %s %s\n        %s\n", commands[i].name, commands[i].args,
                commands[i].help);
    fprintf(out, "\nexit status:\n"
                 "  0   success\n"
                 "  1   I/O or internal error\n"
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
