/*
 * problem.h - application/problem+json bodies (RFC 9457) and JSON escaping.
 */
#ifndef GW_PROBLEM_H
#define GW_PROBLEM_H

#include <stddef.h>

#include <panelproto/arena.h>

#include "err.h"

#define GW_PROBLEM_PREFIX "urn:panelgate:problem:"

/* Appends s as the inside of a JSON string (quotes not included).  Bytes
 * below 0x20, '"', '\\' and 0x7f are escaped; other bytes pass through.
 * Returns 0 or GW_ENOMEM. */
int gw_json_escape(struct pa_buf *out, const char *s);

/* Appends {"type":PREFIX+type,"title":...,"status":N,"detail":...,
 * "offset":N}.  |detail| may be NULL; |offset| < 0 leaves it out.
 * Returns 0 or GW_ENOMEM. */
int gw_problem_json(struct pa_buf *out, int status, const char *type, const char *title,
                    const char *detail, long long offset);

#endif /* GW_PROBLEM_H */
