/*
 * fuzz_frame.c - libFuzzer target for the stats-frame decoder.
 *
 * Each input is decoded twice: with the default limits and with tight ones
 * (small arena, the minimum depth, low counts).  A rejection must carry a
 * PA_FE_* code and a message.  An accepted frame must re-encode, decode
 * again to an equal frame (testutil.h's deep equality, floats bitwise) and
 * re-encode to the same bytes: anything else abort()s.
 *
 * Seeds: fuzz/corpus/frame/ (hash-named), dictionary fuzz/frame.dict:
 *   fuzz_frame -dict=fuzz/frame.dict fuzz/corpus/frame
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TU_NO_MSGPACK /* only the equality helper is needed */
#include "../tests/unit/testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_frame: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void check(const uint8_t *data, size_t size, const struct pa_frame_limits *lim)
{
    struct pa_arena a1, a2;
    struct pa_buf e1, e2;
    struct pa_frame *f = NULL, *g = NULL;
    struct pa_frame_error err;
    char why[256];

    pa_arena_init(&a1, 0, NULL);
    pa_arena_init(&a2, 0, NULL);
    pa_buf_init(&e1, NULL);
    pa_buf_init(&e2, NULL);

    int rv = pa_frame_decode(data, size, lim, &a1, &f, &err);
    if (rv != 0) {
        if (rv > 0 || rv <= PA_FE_ARG || err.code != rv || f != NULL)
            die("bad return code", pa_frame_errname(rv));
        if (err.msg[0] == '\0' || memchr(err.path, '\0', sizeof err.path) == NULL ||
            memchr(err.msg, '\0', sizeof err.msg) == NULL || err.offset > size)
            die("bad error report", pa_frame_errname(rv));
        goto out;
    }
    if (f == NULL)
        die("success without a frame", NULL);
    if (pa_frame_encode(f, &e1) != 0)
        die("re-encode failed", NULL);
    rv = pa_frame_decode(e1.data, e1.len, lim, &a2, &g, &err);
    if (rv != 0) {
        fprintf(stderr, "fuzz_frame: %s at \"%s\": %s\n", pa_frame_errname(rv), err.path,
                err.msg);
        die("re-encoded frame rejected", NULL);
    }
    if (!tu_frame_eq(f, g, TU_EQ_IGNORE_UNKNOWN, why, sizeof why))
        die("decode(encode(decode(x))) != decode(x)", why);
    if (g->n_unknown != 0)
        die("unknown keys survived re-encoding", NULL);
    if (pa_frame_encode(g, &e2) != 0)
        die("second re-encode failed", NULL);
    if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
        die("encoding is not stable", NULL);
out:
    pa_buf_cleanup(&e1);
    pa_buf_cleanup(&e2);
    pa_arena_cleanup(&a1);
    pa_arena_cleanup(&a2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pa_frame_limits tight;

    check(data, size, NULL);

    pa_frame_limits_default(&tight);
    tight.max_arena_bytes = 64 * 1024;
    tight.max_depth = PA_LIMIT_MIN_DEPTH;
    tight.max_name_len = 32;
    tight.max_str_len = 64;
    tight.max_server_ips = 4;
    tight.max_vhosts = 4;
    tight.max_apps = 8;
    tight.max_instances = 8;
    tight.max_streams = 16;
    tight.max_conns = 64;
    tight.max_config_nodes = 64;
    tight.max_unknown_keys = 4;
    check(data, size, &tight);
    return 0;
}
