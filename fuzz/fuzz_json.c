/*
 * fuzz_json.c - libFuzzer target for the JSON form of a frame
 * (pa_frame_from_json, what `panelagent send/encode FILE.json` reads).
 *
 * A rejection must carry a PA_FE_* code equal to err.code, a message and
 * an offset inside the input, and leave *out NULL.  An accepted text that
 * also passes the wire checks (pa_frame_encode_checked, as the CLI runs
 * it) must round-trip: the decoded wire frame, written as JSON (compact
 * and pretty), must read back to a frame equal to it (testutil.h's deep
 * equality, floats bitwise) that encodes to the same wire bytes, and the
 * JSON written from the parsed frame and from the decoded one must be the
 * same text.  The property holds because the reader only makes config
 * integers within +-2^53 (the writer's one lossy corner is beyond that).
 *
 * Seeds: fuzz/corpus/json/ (tests/data/nimble.json, wowza.json and
 * variants), dictionary fuzz/json.dict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <panelproto/frame_json.h>

#define TU_NO_MSGPACK /* only the equality helper is needed */
#include "../tests/unit/testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void check_error(int rv, const struct pa_frame_error *err, const struct pa_frame *f,
                        size_t size)
{
    if (rv >= 0 || rv <= PA_FE_ARG || err->code != rv || f != NULL)
        die("bad return code", pa_frame_errname(rv));
    if (err->msg[0] == '\0' || memchr(err->path, '\0', sizeof err->path) == NULL ||
        memchr(err->msg, '\0', sizeof err->msg) == NULL || err->offset > size)
        die("bad error report", pa_frame_errname(rv));
}

/* Reads |json| back and checks it is |g| again, with the same wire bytes. */
static void read_back(const struct pa_buf *json, const struct pa_frame *g,
                      const struct pa_buf *wire)
{
    struct pa_arena a;
    struct pa_buf b;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    char why[256];

    pa_arena_init(&a, 0, NULL);
    pa_buf_init(&b, NULL);
    int rv = pa_frame_from_json((const char *)json->data, json->len, &a, &f, &err);
    if (rv != 0) {
        fprintf(stderr, "fuzz_json: %s at \"%s\": %s\n%.*s\n", pa_frame_errname(rv), err.path,
                err.msg, (int)json->len, (const char *)json->data);
        die("JSON written from a valid frame does not read back", NULL);
    }
    if (!tu_frame_eq(g, f, 0, why, sizeof why))
        die("from_json(to_json(g)) != g", why);
    if (pa_frame_encode(f, &b) != 0)
        die("encode failed", NULL);
    if (b.len != wire->len || memcmp(b.data, wire->data, b.len) != 0)
        die("the JSON round trip changed the wire bytes", NULL);
    pa_buf_cleanup(&b);
    pa_arena_cleanup(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pa_arena a1, a2;
    struct pa_buf wire, j0, j1, jp;
    struct pa_frame *f = NULL, *g = NULL;
    struct pa_frame_error err;
    char why[256];

    pa_arena_init(&a1, 0, NULL);
    pa_arena_init(&a2, 0, NULL);
    pa_buf_init(&wire, NULL);
    pa_buf_init(&j0, NULL);
    pa_buf_init(&j1, NULL);
    pa_buf_init(&jp, NULL);

    int rv = pa_frame_from_json((const char *)data, size, &a1, &f, &err);
    if (rv != 0) {
        check_error(rv, &err, f, size);
        goto out;
    }
    if (f == NULL)
        die("success without a frame", NULL);
    /* the JSON reader leaves the semantic checks to the wire decoder */
    rv = pa_frame_encode_checked(f, NULL, &wire, &err);
    if (rv != 0) {
        if (rv > 0 || rv < PA_FE_ARG || err.code != rv || err.msg[0] == '\0' || wire.len != 0)
            die("bad error from encode_checked", pa_frame_errname(rv));
        goto out;
    }
    if ((rv = pa_frame_decode(wire.data, wire.len, NULL, &a2, &g, &err)) != 0)
        die("encode_checked passed a frame the decoder rejects", pa_frame_errname(rv));
    if (!tu_frame_eq(f, g, 0, why, sizeof why))
        die("decode(encode(from_json(x))) != from_json(x)", why);
    if (pa_frame_to_json(f, &j0, 0) != 0 || pa_frame_to_json(g, &j1, 0) != 0 ||
        pa_frame_to_json(g, &jp, PA_JSON_PRETTY) != 0)
        die("to_json failed", NULL);
    if (j0.len != j1.len || memcmp(j0.data, j1.data, j0.len) != 0)
        die("to_json differs between the parsed and the decoded frame", NULL);
    read_back(&j1, g, &wire);
    read_back(&jp, g, &wire);
out:
    pa_buf_cleanup(&wire);
    pa_buf_cleanup(&j0);
    pa_buf_cleanup(&j1);
    pa_buf_cleanup(&jp);
    pa_arena_cleanup(&a1);
    pa_arena_cleanup(&a2);
    return 0;
}
