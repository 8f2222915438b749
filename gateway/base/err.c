/*
 * err.c - see err.h.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *gw_strerror(int code)
{
    switch (code) {
    case GW_OK:
        return "success";
    case GW_EINVAL:
        return "invalid argument";
    case GW_ENOTFOUND:
        return "not found";
    case GW_EEXIST:
        return "already exists";
    case GW_EPINNED:
        return "public key already pinned";
    case GW_EFULL:
        return "queue or table full";
    case GW_ESTORAGE:
        return "storage failed";
    case GW_EREJECTED:
        return "storage rejected the item";
    case GW_ECONFIG:
        return "invalid configuration";
    case GW_EIO:
        return "file I/O failed";
    case GW_ETLS:
        return "TLS library error";
    case GW_EPROTO:
        return "protocol error";
    case GW_ECLOSED:
        return "connection closed";
    case GW_EREVOKED:
        return "server revoked";
    case GW_ENOMEM:
        return "out of memory";
    case GW_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

void gw_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int gw_fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
