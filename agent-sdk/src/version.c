/*
 * version.c - panelagent_version, panelagent_strerror, panelagent_free and
 * the small helpers every part of the library shares.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <mbedtls/version.h>
#include <nghttp2/nghttp2.h>

#include <panelproto/frame.h>
#include "internal.h"

/* Filled once (pthread_once): the versions of the libraries this process
 * actually runs with.  Read-only afterwards. */
static char mbedtls_ver[32];
static panelagent_info info;
static pthread_once_t info_once = PTHREAD_ONCE_INIT;

static void info_init(void)
{
    mbedtls_version_get_string(mbedtls_ver);
    nghttp2_info *ng = nghttp2_version(0);
    info.age = PANELAGENT_INFO_AGE;
    info.version_num = PANELAGENT_VERSION_NUM;
    info.version = PANELAGENT_VERSION_STRING;
    info.protocol = PA_PROTOCOL_VERSION;
    info.mbedtls_version = mbedtls_ver;
    info.nghttp2_version = ng ? ng->version_str : "unknown";
}

const panelagent_info *panelagent_version(int min_age)
{
    if (min_age > PANELAGENT_INFO_AGE)
        return NULL;
    if (pthread_once(&info_once, info_init) != 0)
        return NULL;
    return &info;
}

const char *panelagent_strerror(int err)
{
    switch ((panelagent_err)err) {
    case PANELAGENT_OK: return "success";
    case PANELAGENT_EINVAL: return "invalid argument";
    case PANELAGENT_ENOMEM: return "out of memory";
    case PANELAGENT_EAGAIN: return "queue full: frame not queued";
    case PANELAGENT_ETIMEDOUT: return "timed out";
    case PANELAGENT_ECLOSED: return "client is closing";
    case PANELAGENT_ELIMIT: return "protocol limit exceeded";
    case PANELAGENT_EFRAME: return "invalid frame";
    case PANELAGENT_EIO: return "file I/O error";
    case PANELAGENT_ECONFIG: return "configuration incomplete or unusable";
    case PANELAGENT_ECONNECT: return "cannot connect to the gateway";
    case PANELAGENT_ETLS: return "TLS error";
    case PANELAGENT_EPROTOCOL: return "unexpected answer from the gateway";
    case PANELAGENT_EGATEWAY_CERT: return "gateway certificate not trusted";
    case PANELAGENT_EGATEWAY_PIN: return "gateway key does not match the pin";
    case PANELAGENT_ENOT_REGISTERED: return "refused by the gateway: not registered";
    case PANELAGENT_EREVOKED: return "refused by the gateway: certificate revoked";
    case PANELAGENT_ECERT_REJECTED: return "refused by the gateway: certificate not accepted";
    case PANELAGENT_ERATE_LIMITED: return "banned by the gateway for exceeding rate limits";
    case PANELAGENT_EREJECTED: return "frame rejected by the gateway";
    case PANELAGENT_EDROPPED: return "frame dropped: queue full";
    case PANELAGENT_EUNDELIVERED: return "frame not delivered before close";
    case PANELAGENT_EBUSY: return "not allowed from a callback";
    case PANELAGENT_EINTERNAL: return "internal error";
    }
    return "unknown error";
}

void panelagent_free(void *p)
{
    free(p);
}

void pa_seterr(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || n == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(err, n, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
}
