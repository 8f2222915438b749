/*
 * frame_json.h - the JSON form of a stats frame (panelagent encode/decode).
 *
 * Same keys and nesting as the msgpack frame (docs/.schema-notes.md), with
 * IPs as text ("203.0.113.7", "2001:db8::1") and uint64 values above 2^53
 * carried as JSON strings of decimal digits so they survive JSON tools that
 * read numbers as doubles.
 *
 * Parsing is strict about shape (unknown keys, wrong JSON types, missing
 * required keys) but leaves the semantic checks (limits, UTF-8, ranges) to
 * the real decoder: callers run pa_frame_encode_checked() on the result.
 * Neither function does I/O or keeps global state.
 *
 * Known lossy corner (config only): JSON has one number type, so a config
 * float with an integral value (50.0) comes back as an integer, and a config
 * integer beyond +-2^53 is printed exactly but read back as a float.
 */
#ifndef PANELPROTO_FRAME_JSON_H
#define PANELPROTO_FRAME_JSON_H

#include <stddef.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest JSON nesting pa_frame_from_json accepts (the top-level object is
 * depth 1); deeper input is refused before it is parsed. */
#define PA_JSON_MAX_DEPTH PA_LIMIT_MAX_DEPTH

/* pa_frame_to_json flags */
#define PA_JSON_PRETTY 1 /* newlines and two-space indent */

/* Parses |len| bytes of JSON text (need not be NUL-terminated) into a frame
 * allocated in arena |a|; strings are copied, |text| is not referenced after
 * return.  Returns 0 and sets *out, or a negative PA_FE_* code with *out NULL
 * and |err| (optional) filled:
 *   PA_FE_EMPTY     no input, or only whitespace
 *   PA_FE_INVALID   bad JSON syntax (path "", msg "invalid JSON", offset is
 *                   where the parser stopped), unknown key, unknown kind
 *   PA_FE_TYPE      wrong JSON type for the field
 *   PA_FE_MISSING   a required key is absent (path names it)
 *   PA_FE_DUPKEY    a schema key given twice in one object
 *   PA_FE_RANGE     negative number, or a number/digit string too big
 *   PA_FE_NONFINITE a number that overflows a double (1e999)
 *   PA_FE_IP        an IP string inet_pton rejects
 *   PA_FE_NUL       "\u0000" inside a string (path "")
 *   PA_FE_TOO_DEEP  nesting deeper than PA_JSON_MAX_DEPTH (path "")
 *   PA_FE_NOMEM     arena cap reached or allocation failed
 *   PA_FE_ARG       NULL text, arena or out
 * Paths use the decoder's syntax ("vhosts[0].apps[1].name", "conns[3].ip");
 * key text taken from the input is escaped and truncated, values never
 * appear. */
int pa_frame_from_json(const char *text, size_t len, struct pa_arena *a,
                       struct pa_frame **out, struct pa_frame_error *err);

/* Appends the JSON form of |f| to |out|: keys in canonical order, optional
 * parts omitted exactly when pa_frame_encode omits them (config is written
 * when it is not an empty map), no trailing newline.
 * Strings are escaped (control characters as \u00XX; invalid UTF-8, which a
 * decoded frame never holds, as U+FFFD); NULL strings and unknown IP
 * families as null; doubles use the shortest "%.*g" form
 * that reads back to the same value, with ".0" added to integral ones.
 * Returns 0, PA_FE_NOMEM (|out| then keeps its previous length), PA_FE_ARG
 * for NULL arguments, or PA_FE_TOO_DEEP for a hand-built config tree deeper
 * than PA_JSON_MAX_DEPTH. */
int pa_frame_to_json(const struct pa_frame *f, struct pa_buf *out, int flags);

#ifdef __cplusplus
}
#endif

#endif /* PANELPROTO_FRAME_JSON_H */
