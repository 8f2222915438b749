/*
 * problem.c - application/problem+json bodies and JSON escaping.
 */
#include "problem.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

int gw_json_escape(struct pa_buf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        int rv;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            rv = pa_buf_append(out, tmp, 2);
        } else if (c < 0x20 || c == 0x7f) {
            int n = snprintf(tmp, sizeof tmp, "\\u%04x", c);
            rv = pa_buf_append(out, tmp, (size_t)n);
        } else {
            rv = pa_buf_append(out, s, 1);
        }
        if (rv != 0)
            return GW_ENOMEM;
    }
    return 0;
}

static int put(struct pa_buf *out, const char *s)
{
    return pa_buf_append(out, s, strlen(s));
}

int gw_problem_json(struct pa_buf *out, int status, const char *type, const char *title,
                    const char *detail, long long offset)
{
    char num[32];
    size_t len0 = out->len;

    snprintf(num, sizeof num, "%d", status);
    if (put(out, "{\"type\":\"" GW_PROBLEM_PREFIX) || gw_json_escape(out, type) ||
        put(out, "\",\"title\":\"") || gw_json_escape(out, title) ||
        put(out, "\",\"status\":") || put(out, num))
        goto fail;
    if (detail && (put(out, ",\"detail\":\"") || gw_json_escape(out, detail) || put(out, "\"")))
        goto fail;
    if (offset >= 0) {
        snprintf(num, sizeof num, "%lld", offset);
        if (put(out, ",\"offset\":") || put(out, num))
            goto fail;
    }
    if (put(out, "}"))
        goto fail;
    return 0;
fail:
    out->len = len0;
    return GW_ENOMEM;
}
