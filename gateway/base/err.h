/*
 * err.h - the gateway's one error convention.
 *
 * Every gateway function that can fail returns 0 or a negative GW_E* code
 * (nghttp2's scheme): callers test `rv != 0` (or `rv < 0`) and pass the code
 * up unchanged.  Codes above GW_E_FATAL reject one thing - a frame, a
 * stream, a storage item, a command - and whoever owns it goes on; codes
 * below it end the connection (on the loop) or the start-up (in main).
 *
 * Library codes are translated where the library is called and nowhere
 * else: SQLite with gw_sqlite_error() (storage-class errors are
 * GW_ESTORAGE, a bad row GW_EREJECTED), mbedTLS as GW_ETLS, nghttp2's
 * NGHTTP2_ERR_NOMEM as GW_ENOMEM and its other codes as GW_EPROTO; the
 * original code or message goes into the log line or the reason.
 *
 * Where an operator reads the failure (the configuration, certificates,
 * the registry, panelgatectl), a function also takes (err, errlen) and
 * writes the reason there with gw_seterr(); the code says what kind of
 * failure it is, the text says which file, key or row.
 */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stdbool.h>
#include <stddef.h>

enum gw_error {
    GW_OK = 0,
    /* one thing fails; the connection or the process goes on */
    GW_EINVAL = -1,     /* a bad argument, name or value */
    GW_ENOTFOUND = -2,  /* no such server or row */
    GW_EEXIST = -3,     /* it exists already (a server of that name) */
    GW_EPINNED = -4,    /* that public key is pinned to a server already */
    GW_EFULL = -5,      /* a bounded queue or table is full: retry later */
    GW_ESTORAGE = -6,   /* storage failed (busy, full, I/O, read-only,
                           corrupt): retry later */
    GW_EREJECTED = -7,  /* storage refused this item itself: a retry fails
                           the same way */
    GW_ECONFIG = -8,    /* the configuration is not valid */
    GW_EIO = -9,        /* a file or socket cannot be opened, read or
                           written (or a listener bound) */
    GW_ETLS = -10,      /* mbedTLS refused a key, certificate or setting */
    GW_EPROTO = -11,    /* the peer broke HTTP/2 or the frame protocol */
    GW_ECLOSED = -12,   /* the connection was closed (and freed) on the
                           way: its caller must not touch it again */
    GW_EREVOKED = -13,  /* the server is revoked: nothing more of it is
                           taken */

    GW_E_FATAL = -900,  /* the codes below end the connection or the start */
    GW_ENOMEM = -901,   /* an allocation failed */
    GW_EINTERNAL = -902 /* a library call that cannot fail did, or a state
                           that cannot happen did: a bug */
};

/* A short, stable text for |code| ("out of memory"); "unknown error" for
 * a code that is not a GW_E*. */
const char *gw_strerror(int code);

/* True for the codes that end the connection (or the start-up). */
static inline bool gw_is_fatal(int code)
{
    return code <= GW_E_FATAL;
}

/* snprintf into err; does nothing when err is NULL or errlen is 0. */
void gw_seterr(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* seterr's companion for a failure with a code: writes the reason and
 * returns |code|, so `return gw_fail(GW_EIO, err, errlen, "...")` reads as
 * one step. */
int gw_fail(int code, char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif /* GW_ERR_H */
