/*
 * log.c - JSON-lines logs on stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The level is set once at start and at reload, on the loop thread; other
 * threads only read it. */
static volatile int log_level = GW_LOG_INFO;

void gw_log_set_level(enum gw_log_level level)
{
    log_level = (int)level;
}

enum gw_log_level gw_log_get_level(void)
{
    return (enum gw_log_level)log_level;
}

static const char *level_name(enum gw_log_level l)
{
    switch (l) {
    case GW_LOG_DEBUG:
        return "debug";
    case GW_LOG_INFO:
        return "info";
    case GW_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

/* Appends s as the inside of a JSON string; returns the new length. */
static size_t put_json(char *buf, size_t n, size_t off, const char *s)
{
    for (; *s && off + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[off++] = '\\';
            buf[off++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            off += (size_t)snprintf(buf + off, n - off, "\\u%04x", c);
        } else {
            buf[off++] = (char)c;
        }
    }
    return off;
}

static size_t put_raw(char *buf, size_t n, size_t off, const char *s)
{
    size_t len = strlen(s);
    if (off + len >= n)
        len = off < n ? n - off - 1 : 0;
    memcpy(buf + off, s, len);
    return off + len;
}

void gw_log(enum gw_log_level level, const struct gw_log_ctx *ctx, const char *event,
            const char *fmt, ...)
{
    char line[8192], msg[1024], ts[40], tmp[48];
    struct timespec now;
    struct tm tm;
    size_t off = 0;
    va_list ap;

    if ((int)level < log_level)
        return;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tmp, sizeof tmp, ".%03ldZ", now.tv_nsec / 1000000L);

    off = put_raw(line, sizeof line, off, "{\"ts\":\"");
    off = put_raw(line, sizeof line, off, ts);
    off = put_raw(line, sizeof line, off, tmp);
    off = put_raw(line, sizeof line, off, "\",\"level\":\"");
    off = put_raw(line, sizeof line, off, level_name(level));
    off = put_raw(line, sizeof line, off, "\",\"event\":\"");
    off = put_json(line, sizeof line, off, event ? event : "log");
    off = put_raw(line, sizeof line, off, "\"");
    if (ctx && ctx->conn_id) {
        snprintf(tmp, sizeof tmp, ",\"conn\":%llu", (unsigned long long)ctx->conn_id);
        off = put_raw(line, sizeof line, off, tmp);
    }
    if (ctx && ctx->server) {
        off = put_raw(line, sizeof line, off, ",\"server\":\"");
        off = put_json(line, sizeof line, off, ctx->server);
        off = put_raw(line, sizeof line, off, "\"");
    }
    off = put_raw(line, sizeof line, off, ",\"msg\":\"");
    off = put_json(line, sizeof line, off, msg);
    off = put_raw(line, sizeof line, off, "\"}\n");
    /* one write per line so concurrent threads do not interleave */
    fwrite(line, 1, off, stderr);
    fflush(stderr);
}
