/*
 * err.h - writing an error reason into a caller's buffer.
 *
 * The gateway's modules return 0 or -1 and explain a failure in a
 * caller-supplied (err, errlen) buffer; this is the one helper that fills it.
 */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stddef.h>

/* snprintf into err; does nothing when err is NULL or errlen is 0. */
void gw_seterr(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* GW_ERR_H */
