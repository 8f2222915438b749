/*
 * js.c - the connection to NATS JetStream and "ensure the stream".
 *
 * One natsConnection per struct gw_js, with every URL of [jetstream]
 * servers, TLS and credentials from the config, reconnecting forever.  The
 * connection callbacks run on libnats' own thread: they only update
 * atomics, pass the event on, and (closed) wake gw_js_free, which waits for
 * that last callback before the struct goes away.
 */
#include "js.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "config.h"

#define RECONNECT_WAIT_MS 250
#define CLOSE_WAIT_MS 5000
#define NS_PER_S ((int64_t)1000000000)

struct gw_js {
    natsConnection *nc;
    jsCtx *js;
    gw_js_event_fn fn;
    void *ud;
    atomic_bool connected;
    atomic_uint_fast64_t disconnects;
    atomic_uint_fast64_t reconnects;
    pthread_mutex_t mu; /* closed */
    pthread_cond_t cv;
    bool closed;
    bool tls; /* TLS was switched on (the URLs or the TLS keys) */
};

int gw_js_error(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_NO_MEMORY:
        return GW_ENOMEM;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NO_RESPONDERS:
    case NATS_TIMEOUT:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_ERR:
    case NATS_PROTOCOL_ERROR:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_SSL_ERROR:
    case NATS_MAX_PAYLOAD:
    case NATS_SLOW_CONSUMER:
    case NATS_MISMATCH:
    case NATS_NOT_FOUND:
        return GW_ESTORAGE;
    default:
        return GW_EINTERNAL;
    }
}

/* ------------------------------------------------------------ callbacks */

static void event(struct gw_js *j, enum gw_js_event ev, natsConnection *nc)
{
    char url[256] = "";
    if (j->fn == NULL)
        return;
    if (ev == GW_JS_RECONNECTED && natsConnection_GetConnectedUrl(nc, url, sizeof url) != NATS_OK)
        url[0] = '\0';
    j->fn(ev, url, j->ud);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct gw_js *j = closure;
    atomic_store(&j->connected, false);
    atomic_fetch_add(&j->disconnects, 1);
    event(j, GW_JS_DISCONNECTED, nc);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct gw_js *j = closure;
    atomic_store(&j->connected, true);
    atomic_fetch_add(&j->reconnects, 1);
    event(j, GW_JS_RECONNECTED, nc);
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct gw_js *j = closure;
    atomic_store(&j->connected, false);
    event(j, GW_JS_CLOSED, nc);
    pthread_mutex_lock(&j->mu);
    j->closed = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ------------------------------------------------------------ connect */

static bool is_set(const char *s)
{
    return s != NULL && *s != '\0';
}

/* A .creds file must start with the user's JWT block: libnats takes the
 * file's first "-----BEGIN" block as the JWT, whatever it is, and sends it
 * in CONNECT, so a file holding only the nkey seed would send the seed (a
 * private key) to the server, in clear text over nats://.  Reads up to the
 * first such line; the buffer is wiped. */
static int check_creds_file(const char *path, char *err, size_t errlen)
{
    char line[256];
    bool at_start = true, found = false, jwt = false;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: [jetstream] creds_file %s: %s", path,
                       strerror(errno));
    while (!found && fgets(line, sizeof line, f) != NULL) {
        if (at_start && strncmp(line, "-----BEGIN", 10) == 0) {
            found = true;
            jwt = strstr(line, "USER JWT") != NULL;
        }
        at_start = strchr(line, '\n') != NULL;
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    if (!jwt)
        return gw_fail(GW_ECONFIG, err, errlen,
                       "jetstream: [jetstream] creds_file %s: does not start with a user JWT "
                       "(-----BEGIN NATS USER JWT-----, as nsc writes it); its first block "
                       "would be sent to the server as the JWT",
                       path);
    return 0;
}

/* Every option from |cfg|.  A failure names the setting libnats refused. */
static int set_options(natsOptions *o, struct gw_js *j, const struct gw_config *cfg,
                       const char *name, char *err, size_t errlen)
{
    struct gw_js_urls urls;
    char why[256];
    int rv = GW_EINTERNAL;
    natsStatus s;

    if ((rv = gw_config_js_urls(cfg->js_servers, &urls, why, sizeof why)) != 0) {
        gw_seterr(err, errlen, "jetstream: %s", why);
        goto out;
    }
    s = natsOptions_SetServers(o, urls.url, (int)urls.n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, cfg->js_connect_timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1); /* forever */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetFailRequestsOnDisconnect(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, j);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, j);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, j);
    if (s != NATS_OK) {
        rv = gw_js_error(s);
        gw_seterr(err, errlen, "jetstream: options: %s", natsStatus_GetText(s));
        goto out;
    }

    rv = GW_ECONFIG;
    j->tls = urls.tls || is_set(cfg->js_tls_ca_file) || is_set(cfg->js_tls_cert_file);
    if (j->tls) {
        if (natsOptions_SetSecure(o, true) != NATS_OK) {
            gw_seterr(err, errlen, "jetstream: TLS: this libnats has no TLS support");
            goto out;
        }
    }
    if (is_set(cfg->js_tls_ca_file) &&
        (s = natsOptions_LoadCATrustedCertificates(o, cfg->js_tls_ca_file)) != NATS_OK) {
        gw_seterr(err, errlen, "jetstream: [jetstream] tls_ca_file %s: %s", cfg->js_tls_ca_file,
                  natsStatus_GetText(s));
        goto out;
    }
    if (is_set(cfg->js_tls_cert_file) &&
        (s = natsOptions_LoadCertificatesChain(o, cfg->js_tls_cert_file, cfg->js_tls_key_file)) !=
            NATS_OK) {
        gw_seterr(err, errlen, "jetstream: [jetstream] tls_cert_file %s / tls_key_file %s: %s",
                  cfg->js_tls_cert_file, cfg->js_tls_key_file ? cfg->js_tls_key_file : "",
                  natsStatus_GetText(s));
        goto out;
    }
    if (is_set(cfg->js_user) && natsOptions_SetUserInfo(o, cfg->js_user, cfg->js_password) !=
                                    NATS_OK) {
        gw_seterr(err, errlen, "jetstream: [jetstream] user: refused by libnats");
        goto out;
    }
    if (is_set(cfg->js_token) && natsOptions_SetToken(o, cfg->js_token) != NATS_OK) {
        gw_seterr(err, errlen, "jetstream: [jetstream] token: refused by libnats");
        goto out;
    }
    if (is_set(cfg->js_creds_file) &&
        (rv = check_creds_file(cfg->js_creds_file, err, errlen)) != 0)
        goto out;
    rv = GW_ECONFIG;
    if (is_set(cfg->js_creds_file) &&
        (s = natsOptions_SetUserCredentialsFromFiles(o, cfg->js_creds_file, NULL)) != NATS_OK) {
        gw_seterr(err, errlen, "jetstream: [jetstream] creds_file %s: %s", cfg->js_creds_file,
                  natsStatus_GetText(s));
        goto out;
    }
    rv = 0;
out:
    gw_config_js_urls_cleanup(&urls);
    return rv;
}

/* The credentials [jetstream] sets, for an error message (never their
 * values). */
static const char *cred_keys(const struct gw_config *cfg)
{
    if (is_set(cfg->js_user))
        return "user/password";
    if (is_set(cfg->js_token))
        return "token";
    if (is_set(cfg->js_creds_file))
        return "creds_file";
    return NULL;
}

/* Why natsConnection_Connect failed with |s|, naming what to check.  The
 * detail is libnats' last error (the TLS verification result, the server's
 * -ERR text), which never holds the credentials; its "(file.c:N): "
 * prefix is dropped. */
static int connect_failed(natsStatus s, const struct gw_config *cfg, bool tls, char *err,
                          size_t errlen)
{
    natsStatus ls;
    const char *d = nats_GetLastError(&ls), *creds = cred_keys(cfg);
    const char *p;

    if (d == NULL || *d == '\0')
        d = natsStatus_GetText(s);
    else if (d[0] == '(' && (p = strstr(d, "): ")) != NULL)
        d = p + 3;
    switch (s) {
    case NATS_NO_MEMORY:
        return gw_fail(GW_ENOMEM, err, errlen, "jetstream: out of memory");
    case NATS_SSL_ERROR:
        return gw_fail(GW_ESTORAGE, err, errlen,
                       "jetstream: TLS to the NATS server failed: %s (its certificate must "
                       "chain to [jetstream] tls_ca_file, else to the system's CAs, and name "
                       "the host of its URL)",
                       d);
    case NATS_CONNECTION_AUTH_FAILED:
        if (creds == NULL)
            return gw_fail(GW_ESTORAGE, err, errlen,
                           "jetstream: the NATS server requires credentials (%s): none is set "
                           "([jetstream] user/password, token or creds_file)",
                           d);
        return gw_fail(GW_ESTORAGE, err, errlen,
                       "jetstream: the NATS server refused the credentials (%s): check "
                       "[jetstream] %s",
                       d, creds);
    case NATS_PROTOCOL_ERROR:
    case NATS_IO_ERROR:
        /* a server that verifies client certificates closes the connection
         * once the TLS 1.3 handshake is over, before its first reply: the
         * client sees it on its first read (protocol error: no PONG) or
         * write (I/O error), whichever comes first */
        if (tls)
            return gw_fail(GW_ESTORAGE, err, errlen,
                           "jetstream: the NATS server closed the TLS connection before "
                           "answering (%s): it does so when it requires a client certificate "
                           "and %s",
                           d,
                           is_set(cfg->js_tls_cert_file)
                               ? "refuses [jetstream] tls_cert_file (not of its CA?)"
                               : "none is set ([jetstream] tls_cert_file, tls_key_file)");
        break;
    default:
        break;
    }
    if (strcmp(d, natsStatus_GetText(s)) == 0)
        return gw_fail(GW_ESTORAGE, err, errlen,
                       "jetstream: no server of [jetstream] servers answered (%s)", d);
    return gw_fail(GW_ESTORAGE, err, errlen,
                   "jetstream: no server of [jetstream] servers answered (%s: %s)",
                   natsStatus_GetText(s), d);
}

static void js_destroy(struct gw_js *j)
{
    jsCtx_Destroy(j->js);
    natsConnection_Destroy(j->nc);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    gw_free(j);
}

int gw_js_connect(struct gw_js **out, const struct gw_config *cfg, const char *name,
                  gw_js_event_fn fn, void *ud, char *err, size_t errlen)
{
    struct gw_js *j = NULL;
    natsOptions *o = NULL;
    jsOptions jo;
    natsStatus s;
    int rv = GW_ENOMEM;

    *out = NULL;
    j = gw_calloc(1, sizeof *j);
    if (j == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "jetstream: out of memory");
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->fn = fn;
    j->ud = ud;
    atomic_init(&j->connected, false);
    atomic_init(&j->disconnects, 0);
    atomic_init(&j->reconnects, 0);

    if ((s = natsOptions_Create(&o)) != NATS_OK) {
        rv = gw_js_error(s);
        gw_seterr(err, errlen, "jetstream: %s", natsStatus_GetText(s));
        goto fail;
    }
    if ((rv = set_options(o, j, cfg, name, err, errlen)) != 0)
        goto fail;
    s = natsConnection_Connect(&j->nc, o);
    if (s == NATS_CONNECTION_AUTH_FAILED && is_set(cfg->js_creds_file)) {
        /* Once in about 30 starts under load, a second connection of the
         * process with a creds file sent its CONNECT with the JWT but no
         * signature of the nonce (nats-server: "Signature missing"; seen on
         * the wire, cause not found in libnats 3.4.1).  Wrong credentials
         * fail again; that glitch does not. */
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
        s = natsConnection_Connect(&j->nc, o);
    }
    if (s != NATS_OK) {
        rv = connect_failed(s, cfg, j->tls, err, errlen);
        j->closed = true; /* no connection, no callbacks */
        goto fail;
    }
    atomic_store(&j->connected, true);
    jsOptions_Init(&jo);
    jo.Wait = cfg->js_connect_timeout_ms;
    if ((s = natsConnection_JetStream(&j->js, j->nc, &jo)) != NATS_OK) {
        rv = gw_js_error(s);
        gw_seterr(err, errlen, "jetstream: context: %s", natsStatus_GetText(s));
        goto fail;
    }
    natsOptions_Destroy(o);
    *out = j;
    return 0;
fail:
    natsOptions_Destroy(o);
    if (j->nc != NULL) {
        gw_js_free(j);
        return rv;
    }
    js_destroy(j);
    return rv;
}

natsConnection *gw_js_nc(struct gw_js *j)
{
    return j->nc;
}

jsCtx *gw_js_ctx(struct gw_js *j)
{
    return j->js;
}

bool gw_js_connected(struct gw_js *j)
{
    return atomic_load(&j->connected);
}

void gw_js_get_stats(struct gw_js *j, struct gw_js_stats *out)
{
    out->connected = atomic_load(&j->connected);
    out->disconnects = atomic_load(&j->disconnects);
    out->reconnects = atomic_load(&j->reconnects);
}

int gw_js_subject(const struct gw_config *cfg, int64_t server_id, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s.%" PRId64, cfg->js_subject_prefix, server_id);
    return w < 0 || (size_t)w >= n ? GW_EINVAL : 0;
}

void gw_js_free(struct gw_js *j)
{
    if (j == NULL)
        return;
    if (j->nc != NULL) {
        struct timespec ts;
        natsConnection_Close(j->nc);
        /* the closed callback is libnats' last use of j */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += CLOSE_WAIT_MS / 1000;
        pthread_mutex_lock(&j->mu);
        while (!j->closed)
            if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0)
                break;
        bool closed = j->closed;
        pthread_mutex_unlock(&j->mu);
        if (!closed) {
            /* never seen: better a small leak than a use after free */
            jsCtx_Destroy(j->js);
            natsConnection_Destroy(j->nc);
            return;
        }
    }
    js_destroy(j);
}

/* ------------------------------------------------------------ the stream */

static void add(char *buf, size_t n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Appends "; "-separated text to buf (truncated when full). */
static void add(char *buf, size_t n, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    if (len + 3 >= n)
        return;
    if (len > 0) {
        memcpy(buf + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

static int64_t max_age_ns(const struct gw_config *cfg)
{
    return (int64_t)cfg->retention_days * 86400 * NS_PER_S;
}

static const char *storage_name(jsStorageType t)
{
    return t == js_FileStorage ? "file" : "memory";
}

static const char *retention_name(jsRetentionPolicy r)
{
    return r == js_LimitsPolicy ? "limits" : r == js_InterestPolicy ? "interest" : "workqueue";
}

/* What an existing stream's config |sc| differs in from |cfg|: errors into
 * e, warnings into w (docs/OPERATIONS.md, [jetstream]). */
static void compare(const jsStreamConfig *sc, const struct gw_config *cfg, const char *subject,
                    char *e, size_t en, char *w, size_t wn)
{
    bool ours = false;
    int others = 0;

    if (sc->Replicas != (int64_t)cfg->js_replicas)
        add(e, en, "replicas: configured %" PRIu32 ", stream has %" PRId64, cfg->js_replicas,
            sc->Replicas);
    for (int i = 0; i < sc->SubjectsLen; i++) {
        if (sc->Subjects[i] != NULL && strcmp(sc->Subjects[i], subject) == 0)
            ours = true;
        else
            others++;
    }
    if (!ours) {
        char have[256] = "";
        for (int i = 0; i < sc->SubjectsLen && sc->Subjects[i] != NULL; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? "," : "",
                     sc->Subjects[i]);
        add(e, en, "subjects: configured %s, stream has %s", subject, *have ? have : "none");
    }
    if (sc->Storage != js_FileStorage)
        add(e, en, "storage: configured file, stream has %s", storage_name(sc->Storage));
    if (sc->Duplicates < (int64_t)cfg->js_duplicate_window_s * NS_PER_S)
        add(e, en,
            "duplicate window: configured %" PRIu32 " s, stream has %" PRId64
            " s (shorter: resends within the configured window could be stored twice)",
            cfg->js_duplicate_window_s, sc->Duplicates / NS_PER_S);
    if (sc->NoAck)
        add(e, en, "no_ack: configured false, stream has true (publishes are never acknowledged)");

    if (sc->Duplicates > (int64_t)cfg->js_duplicate_window_s * NS_PER_S)
        add(w, wn, "duplicate window: configured %" PRIu32 " s, stream has %" PRId64 " s",
            cfg->js_duplicate_window_s, sc->Duplicates / NS_PER_S);
    if (sc->MaxAge != max_age_ns(cfg))
        add(w, wn,
            "max age: configured %" PRIu32 " days ([storage] retention_days), stream has %" PRId64
            " s",
            cfg->retention_days, sc->MaxAge / NS_PER_S);
    if (others > 0)
        add(w, wn, "subjects: the stream takes %d subject(s) besides %s", others, subject);
    if (sc->MaxMsgs > 0 || sc->MaxBytes > 0 || sc->MaxMsgsPerSubject > 0)
        add(w, wn,
            "limits: the stream has max_msgs %" PRId64 ", max_bytes %" PRId64
            ", max_msgs_per_subject %" PRId64 " (frames may go before a consumer read them)",
            sc->MaxMsgs, sc->MaxBytes, sc->MaxMsgsPerSubject);
    if (sc->Retention != js_LimitsPolicy)
        add(w, wn, "retention: configured limits, stream has %s", retention_name(sc->Retention));
}

int gw_js_ensure_stream(struct gw_js *j, const struct gw_config *cfg, char *warn,
                        size_t warnlen, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsStreamConfig sc;
    jsErrCode jerr = 0;
    char subject[256], errs[1024] = "", dummy[1];
    const char *subjects[1];
    natsStatus s;
    int rv = GW_EINTERNAL;

    if (warn == NULL || warnlen == 0) {
        warn = dummy;
        warnlen = sizeof dummy;
    }
    warn[0] = '\0';
    if (snprintf(subject, sizeof subject, "%s.>", cfg->js_subject_prefix) >= (int)sizeof subject)
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: subject_prefix too long");

    s = js_GetStreamInfo(&si, j->js, cfg->js_stream, NULL, &jerr);
    if (s == NATS_OK) {
        compare(si->Config, cfg, subject, errs, sizeof errs, warn, warnlen);
        jsStreamInfo_Destroy(si);
        if (errs[0] != '\0')
            return gw_fail(GW_ECONFIG, err, errlen, "jetstream: stream %s: %s", cfg->js_stream,
                           errs);
        return 0;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        rv = gw_js_error(s);
        return gw_fail(rv == GW_ENOMEM ? rv : GW_ESTORAGE, err, errlen,
                       "jetstream: stream %s: info: %s (JetStream error %d)", cfg->js_stream,
                       natsStatus_GetText(s), (int)jerr);
    }

    jsStreamConfig_Init(&sc);
    subjects[0] = subject;
    sc.Name = cfg->js_stream;
    sc.Description = "panelgate frames (docs/STORAGE.md)";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.Replicas = cfg->js_replicas;
    sc.MaxAge = max_age_ns(cfg);
    sc.Duplicates = (int64_t)cfg->js_duplicate_window_s * NS_PER_S;
    jerr = 0;
    s = js_AddStream(&si, j->js, &sc, NULL, &jerr);
    if (s != NATS_OK) {
        rv = gw_js_error(s);
        return gw_fail(rv == GW_ENOMEM ? rv : GW_ESTORAGE, err, errlen,
                       "jetstream: stream %s: create (replicas %" PRIu32 "): %s (JetStream "
                       "error %d)",
                       cfg->js_stream, cfg->js_replicas, natsStatus_GetText(s), (int)jerr);
    }
    /* a concurrent creator may have won with other settings */
    compare(si->Config, cfg, subject, errs, sizeof errs, warn, warnlen);
    jsStreamInfo_Destroy(si);
    if (errs[0] != '\0')
        return gw_fail(GW_ECONFIG, err, errlen, "jetstream: stream %s: %s", cfg->js_stream, errs);
    return 0;
}
