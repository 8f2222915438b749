/*
 * log.h - JSON-lines logs on stderr.
 *
 * One object per line: {"ts":"...Z","level":"info","event":"...",
 * "conn":N,"server":"name","msg":"..."}.  Strings are JSON-escaped and
 * peer-controlled ones are truncated by the caller's format.  Never log
 * keys, raw payloads or viewer IPs.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdint.h>

#include "config.h"

struct gw_log_ctx {
    uint64_t conn_id;    /* 0 = none */
    const char *server;  /* registered name or NULL */
};

void gw_log_set_level(enum gw_log_level level);
enum gw_log_level gw_log_get_level(void);

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void gw_log(enum gw_log_level level, const struct gw_log_ctx *ctx, const char *event,
            const char *fmt, ...);

#endif /* GW_LOG_H */
