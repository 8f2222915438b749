/*
 * panelagent_jni.c - the JNI glue of org.panelgate.agent.Native
 * (libpanelagent_jni.so, which links the shared libpanelagent).
 *
 * Conventions:
 * - Strings arrive as UTF-8 byte arrays (String.getBytes(UTF_8) in Java,
 *   checked there for NUL) and are copied into NUL-terminated buffers; the
 *   JVM's modified UTF-8 is never used, so non-BMP characters survive.
 *   Strings going to Java (frame errors, callback details, log lines) are
 *   byte arrays that Java decodes.
 * - Handles are the C pointers as jlong.  Results are PANELAGENT_E* codes;
 *   Java makes the exceptions.  The only exception raised here is the
 *   JVM's own OutOfMemoryError when an array cannot be made.
 * - Callbacks run on the library's I/O thread.  It is attached to the JVM
 *   as a daemon thread on its first callback (AttachCurrentThreadAsDaemon)
 *   and stays attached; a pthread key's destructor detaches it when the
 *   thread exits (the client's close joins it).  A thread that was already
 *   attached (a Java thread in close() receiving EUNDELIVERED reports) is
 *   used as it is and never detached here.
 * - A Java exception never propagates into C: after every upcall a pending
 *   exception is described to the log callback when possible, and cleared.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jni.h>

#include "org_panelgate_agent_Native.h"
#include "panelagent.h"

#define PJ_ERRLEN 512

static JavaVM *g_vm;
static pthread_key_t g_attached; /* non-NULL value: we attached this thread */
static jclass g_dispatcher;      /* global ref to PanelAgent$Dispatcher */
static jmethodID g_ack, g_error, g_log;

/* One client: the C client and the Java dispatcher it calls. */
struct pj_client {
    panelagent_client *cl;
    jobject dispatcher; /* global ref; NULL when there is no listener */
    int log_max;
};

/* ---- helpers --------------------------------------------------------------------- */

static void *ptr(jlong h)
{
    return (void *)(intptr_t)h;
}

static jlong handle(const void *p)
{
    return (jlong)(intptr_t)p;
}

/* A NUL-terminated copy of a byte array; *out NULL for a null array.
 * PANELAGENT_ENOMEM when out of memory. */
static int cstr(JNIEnv *env, jbyteArray a, char **out)
{
    *out = NULL;
    if (a == NULL)
        return PANELAGENT_OK;
    jsize n = (*env)->GetArrayLength(env, a);
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return PANELAGENT_ENOMEM;
    (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
    s[n] = '\0';
    *out = s;
    return PANELAGENT_OK;
}

/* A byte array of |len| bytes at |p|; NULL (with OutOfMemoryError pending)
 * when the JVM cannot make one. */
static jbyteArray bytes(JNIEnv *env, const void *p, size_t len)
{
    if (len > INT32_MAX)
        return NULL;
    jbyteArray a = (*env)->NewByteArray(env, (jsize)len);
    if (a != NULL && len > 0)
        (*env)->SetByteArrayRegion(env, a, 0, (jsize)len, (const jbyte *)p);
    return a;
}

static jbyteArray text(JNIEnv *env, const char *s)
{
    return bytes(env, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* Stores |s| in out[0] (a byte[][] of length >= 1) when both exist. */
static void put_text(JNIEnv *env, jobjectArray out, const char *s)
{
    if (out == NULL || (*env)->GetArrayLength(env, out) < 1)
        return;
    jbyteArray a = text(env, s);
    if (a == NULL) {
        (*env)->ExceptionClear(env);
        return;
    }
    (*env)->SetObjectArrayElement(env, out, 0, a);
    (*env)->DeleteLocalRef(env, a);
}

static void put_long(JNIEnv *env, jlongArray out, uint64_t v)
{
    jlong j = (jlong)v;
    (*env)->SetLongArrayRegion(env, out, 0, 1, &j);
}

/* ---- threads and upcalls ------------------------------------------------------------ */

static void detach_at_exit(void *marker)
{
    (void)marker;
    if (g_vm != NULL)
        (*g_vm)->DetachCurrentThread(g_vm);
}

/* The JNIEnv of the calling thread, attaching it (as a daemon) when the JVM
 * does not know it yet.  NULL when that fails. */
static JNIEnv *thread_env(void)
{
    JNIEnv *env = NULL;
    jint rv = (*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8);
    if (rv == JNI_OK)
        return env;
    if (rv != JNI_EDETACHED)
        return NULL;
    JavaVMAttachArgs args;
    args.version = JNI_VERSION_1_8;
    args.name = (char *)"panelagent-io";
    args.group = NULL;
    if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)&env, &args) != JNI_OK)
        return NULL;
    /* any non-NULL value: the destructor runs at thread exit */
    if (pthread_setspecific(g_attached, &g_attached) != 0) {
        (*g_vm)->DetachCurrentThread(g_vm);
        return NULL;
    }
    return env;
}

/* Clears a pending Java exception after an upcall, telling the client's
 * log about it when that is still possible. */
static void after_upcall(JNIEnv *env, struct pj_client *pc, const char *where)
{
    if (!(*env)->ExceptionCheck(env))
        return;
    (*env)->ExceptionClear(env);
    if (pc->dispatcher == NULL || g_log == NULL)
        return;
    char msg[128];
    snprintf(msg, sizeof msg, "panelagent_jni: a Java exception escaped the %s callback (cleared)",
             where);
    jbyteArray a = text(env, msg);
    if (a != NULL) {
        (*env)->CallVoidMethod(env, pc->dispatcher, g_log, (jint)PANELAGENT_LOG_ERROR, a);
        (*env)->DeleteLocalRef(env, a);
    }
    if ((*env)->ExceptionCheck(env))
        (*env)->ExceptionClear(env);
}

static void on_ack(uint64_t seq, void *ud)
{
    struct pj_client *pc = ud;
    JNIEnv *env = thread_env();
    if (env == NULL)
        return;
    (*env)->CallVoidMethod(env, pc->dispatcher, g_ack, (jlong)seq);
    after_upcall(env, pc, "ack");
}

static void on_error(int err, uint64_t seq, const char *detail, void *ud)
{
    struct pj_client *pc = ud;
    JNIEnv *env = thread_env();
    if (env == NULL)
        return;
    if ((*env)->PushLocalFrame(env, 4) != 0) {
        (*env)->ExceptionClear(env);
        return;
    }
    jbyteArray d = text(env, detail);
    if (d != NULL)
        (*env)->CallVoidMethod(env, pc->dispatcher, g_error, (jint)err, (jlong)seq, d);
    after_upcall(env, pc, "error");
    (*env)->PopLocalFrame(env, NULL);
}

static void on_log(int level, const char *msg, void *ud)
{
    struct pj_client *pc = ud;
    if (level > pc->log_max)
        return;
    JNIEnv *env = thread_env();
    if (env == NULL)
        return;
    if ((*env)->PushLocalFrame(env, 4) != 0) {
        (*env)->ExceptionClear(env);
        return;
    }
    jbyteArray m = text(env, msg);
    if (m != NULL)
        (*env)->CallVoidMethod(env, pc->dispatcher, g_log, (jint)level, m);
    if ((*env)->ExceptionCheck(env))
        (*env)->ExceptionClear(env); /* a failing log cannot log */
    (*env)->PopLocalFrame(env, NULL);
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved)
{
    (void)reserved;
    JNIEnv *env = NULL;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK)
        return JNI_ERR;
    if (pthread_key_create(&g_attached, detach_at_exit) != 0)
        return JNI_ERR;
    jclass c = (*env)->FindClass(env, "org/panelgate/agent/PanelAgent$Dispatcher");
    if (c == NULL)
        return JNI_ERR;
    g_ack = (*env)->GetMethodID(env, c, "ack", "(J)V");
    g_error = (*env)->GetMethodID(env, c, "error", "(IJ[B)V");
    g_log = (*env)->GetMethodID(env, c, "log", "(I[B)V");
    if (g_ack == NULL || g_error == NULL || g_log == NULL)
        return JNI_ERR;
    g_dispatcher = (*env)->NewGlobalRef(env, c);
    (*env)->DeleteLocalRef(env, c);
    if (g_dispatcher == NULL)
        return JNI_ERR;
    g_vm = vm;
    return JNI_VERSION_1_8;
}

/* ---- library ------------------------------------------------------------------------ */

JNIEXPORT jbyteArray JNICALL Java_org_panelgate_agent_Native_version(JNIEnv *env, jclass cls)
{
    (void)cls;
    const panelagent_info *i = panelagent_version(PANELAGENT_INFO_AGE);
    return text(env, i != NULL ? i->version : "unknown");
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_protocol(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    const panelagent_info *i = panelagent_version(PANELAGENT_INFO_AGE);
    return i != NULL ? i->protocol : 0;
}

JNIEXPORT jbyteArray JNICALL Java_org_panelgate_agent_Native_strerror(JNIEnv *env, jclass cls,
                                                                      jint code)
{
    (void)cls;
    return text(env, panelagent_strerror(code));
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_keygen(JNIEnv *env, jclass cls,
                                                              jbyteArray key, jbyteArray csr,
                                                              jbyteArray cn, jobjectArray err)
{
    (void)cls;
    char *k = NULL, *c = NULL, *n = NULL, e[PJ_ERRLEN] = "";
    int rv = PANELAGENT_ENOMEM;
    if (cstr(env, key, &k) != 0 || cstr(env, csr, &c) != 0 || cstr(env, cn, &n) != 0)
        goto out;
    rv = panelagent_keygen(k, c, n, e, sizeof e);
    if (rv != PANELAGENT_OK)
        put_text(env, err, e);
out:
    free(k);
    free(c);
    free(n);
    return rv;
}

/* ---- config ------------------------------------------------------------------------- */

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_configCheckStr(JNIEnv *env, jclass cls,
                                                                      jint id, jbyteArray v)
{
    (void)cls;
    panelagent_config *c = NULL;
    char *s = NULL;
    int rv = panelagent_config_new(&c);
    if (rv == PANELAGENT_OK)
        rv = cstr(env, v, &s);
    if (rv == PANELAGENT_OK)
        rv = panelagent_config_set_str(c, (panelagent_opt)id, s);
    free(s);
    panelagent_config_free(c);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_configCheckI64(JNIEnv *env, jclass cls,
                                                                      jint id, jlong v)
{
    (void)env;
    (void)cls;
    panelagent_config *c = NULL;
    int rv = panelagent_config_new(&c);
    if (rv == PANELAGENT_OK)
        rv = panelagent_config_set_i64(c, (panelagent_opt)id, v);
    panelagent_config_free(c);
    return rv;
}

/* ---- client ------------------------------------------------------------------------- */

static void pj_client_free(JNIEnv *env, struct pj_client *pc)
{
    if (pc == NULL)
        return;
    if (pc->dispatcher != NULL)
        (*env)->DeleteGlobalRef(env, pc->dispatcher);
    free(pc);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_clientNew(
    JNIEnv *env, jclass cls, jintArray sIds, jobjectArray sVals, jintArray iIds, jlongArray iVals,
    jobject dispatcher, jint logMax, jlongArray out, jobjectArray err)
{
    (void)cls;
    int rv = PANELAGENT_EINTERNAL;
    char e[PJ_ERRLEN] = "";
    panelagent_config *c = NULL;
    struct pj_client *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        rv = PANELAGENT_ENOMEM;
        goto out;
    }
    pc->log_max = logMax;
    rv = panelagent_config_new(&c);
    if (rv != PANELAGENT_OK)
        goto out;

    jsize ns = (*env)->GetArrayLength(env, sIds);
    for (jsize i = 0; i < ns; i++) {
        jint id;
        (*env)->GetIntArrayRegion(env, sIds, i, 1, &id);
        jbyteArray a = (*env)->GetObjectArrayElement(env, sVals, i);
        char *s = NULL;
        rv = cstr(env, a, &s);
        (*env)->DeleteLocalRef(env, a);
        if (rv == PANELAGENT_OK)
            rv = panelagent_config_set_str(c, (panelagent_opt)id, s);
        free(s);
        if (rv != PANELAGENT_OK) {
            snprintf(e, sizeof e, "string option %d refused", (int)id);
            goto out;
        }
    }
    jsize ni = (*env)->GetArrayLength(env, iIds);
    for (jsize i = 0; i < ni; i++) {
        jint id;
        jlong v;
        (*env)->GetIntArrayRegion(env, iIds, i, 1, &id);
        (*env)->GetLongArrayRegion(env, iVals, i, 1, &v);
        rv = panelagent_config_set_i64(c, (panelagent_opt)id, v);
        if (rv != PANELAGENT_OK) {
            snprintf(e, sizeof e, "integer option %d = %lld refused", (int)id, (long long)v);
            goto out;
        }
    }
    if (dispatcher != NULL) {
        pc->dispatcher = (*env)->NewGlobalRef(env, dispatcher);
        if (pc->dispatcher == NULL) {
            rv = PANELAGENT_ENOMEM;
            goto out;
        }
        if ((rv = panelagent_config_set_ack(c, on_ack, pc)) != PANELAGENT_OK ||
            (rv = panelagent_config_set_error(c, on_error, pc)) != PANELAGENT_OK ||
            (rv = panelagent_config_set_log(c, on_log, pc)) != PANELAGENT_OK)
            goto out;
    }
    rv = panelagent_client_new(&pc->cl, c, e, sizeof e);
    if (rv != PANELAGENT_OK)
        goto out;
    put_long(env, out, (uint64_t)handle(pc));
    pc = NULL;
out:
    if (rv != PANELAGENT_OK)
        put_text(env, err, e);
    panelagent_config_free(c);
    pj_client_free(env, pc);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_clientSubmit(JNIEnv *env, jclass cls,
                                                                    jlong client, jlong frame,
                                                                    jlongArray seqOut,
                                                                    jobjectArray err)
{
    (void)cls;
    struct pj_client *pc = ptr(client);
    uint64_t seq = 0;
    char e[PJ_ERRLEN] = "";
    int rv = panelagent_client_submit_take(pc->cl, ptr(frame), &seq, e, sizeof e);
    if (rv == PANELAGENT_OK)
        put_long(env, seqOut, seq);
    else
        put_text(env, err, e);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_clientFlush(JNIEnv *env, jclass cls,
                                                                   jlong client, jint ms)
{
    (void)env;
    (void)cls;
    struct pj_client *pc = ptr(client);
    return panelagent_client_flush(pc->cl, ms);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_clientStat(JNIEnv *env, jclass cls,
                                                                  jlong client, jint id,
                                                                  jlongArray out)
{
    (void)cls;
    struct pj_client *pc = ptr(client);
    uint64_t v = 0;
    int rv = panelagent_client_stat(pc->cl, (panelagent_stat)id, &v);
    if (rv == PANELAGENT_OK)
        put_long(env, out, v);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_clientClose(JNIEnv *env, jclass cls,
                                                                   jlong client, jint ms)
{
    (void)cls;
    struct pj_client *pc = ptr(client);
    int rv = panelagent_client_close(pc->cl, ms);
    if (rv == PANELAGENT_EBUSY)
        return rv; /* from a callback: nothing was freed */
    /* the I/O thread is gone: no callback can use the dispatcher now */
    pj_client_free(env, pc);
    return rv;
}

/* ---- frames ------------------------------------------------------------------------- */

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameNew(JNIEnv *env, jclass cls,
                                                                jlongArray out)
{
    (void)cls;
    panelagent_frame *f = NULL;
    int rv = panelagent_frame_new(&f);
    if (rv == PANELAGENT_OK)
        put_long(env, out, (uint64_t)handle(f));
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameNewMsgpack(JNIEnv *env, jclass cls,
                                                                       jbyteArray buf,
                                                                       jlongArray out,
                                                                       jobjectArray err)
{
    (void)cls;
    if (buf == NULL)
        return PANELAGENT_EINVAL;
    jsize n = (*env)->GetArrayLength(env, buf);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b == NULL)
        return PANELAGENT_ENOMEM;
    (*env)->GetByteArrayRegion(env, buf, 0, n, (jbyte *)b);
    panelagent_frame *f = NULL;
    char e[PJ_ERRLEN] = "";
    int rv = panelagent_frame_new_msgpack(&f, b, (size_t)n, e, sizeof e);
    free(b);
    if (rv == PANELAGENT_OK)
        put_long(env, out, (uint64_t)handle(f));
    else
        put_text(env, err, e);
    return rv;
}

JNIEXPORT void JNICALL Java_org_panelgate_agent_Native_frameFree(JNIEnv *env, jclass cls, jlong f)
{
    (void)env;
    (void)cls;
    panelagent_frame_free(ptr(f));
}

JNIEXPORT jbyteArray JNICALL Java_org_panelgate_agent_Native_frameError(JNIEnv *env, jclass cls,
                                                                        jlong f)
{
    (void)cls;
    return text(env, panelagent_frame_error(ptr(f)));
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameSetServer(JNIEnv *env, jclass cls,
                                                                      jlong f, jbyteArray name,
                                                                      jint kind,
                                                                      jbyteArray version)
{
    (void)cls;
    char *n = NULL, *v = NULL;
    int rv = cstr(env, name, &n);
    if (rv == PANELAGENT_OK)
        rv = cstr(env, version, &v);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_set_server(ptr(f), n, kind, v);
    free(n);
    free(v);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameAddServerIp(JNIEnv *env, jclass cls,
                                                                        jlong f, jbyteArray ip)
{
    (void)cls;
    char *s = NULL;
    int rv = cstr(env, ip, &s);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_add_server_ip(ptr(f), s);
    free(s);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameSetTime(JNIEnv *env, jclass cls,
                                                                    jlong f, jlong ts)
{
    (void)env;
    (void)cls;
    return panelagent_frame_set_time(ptr(f), (uint64_t)ts);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameSetLoad(JNIEnv *env, jclass cls,
                                                                    jlong f, jdouble cpu,
                                                                    jlong used, jlong total)
{
    (void)env;
    (void)cls;
    return panelagent_frame_set_load(ptr(f), cpu, (uint64_t)used, (uint64_t)total);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameSetTraffic(JNIEnv *env, jclass cls,
                                                                       jlong f, jlong in,
                                                                       jlong out, jlong period)
{
    (void)env;
    (void)cls;
    return panelagent_frame_set_traffic(ptr(f), (uint64_t)in, (uint64_t)out, (uint64_t)period);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameAddStream(
    JNIEnv *env, jclass cls, jlong f, jbyteArray vhost, jbyteArray app, jbyteArray instance,
    jbyteArray stream, jlong viewers, jlong bitrate, jlong in, jlong out)
{
    (void)cls;
    char *v = NULL, *a = NULL, *i = NULL, *s = NULL;
    int rv = cstr(env, vhost, &v);
    if (rv == PANELAGENT_OK)
        rv = cstr(env, app, &a);
    if (rv == PANELAGENT_OK)
        rv = cstr(env, instance, &i);
    if (rv == PANELAGENT_OK)
        rv = cstr(env, stream, &s);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_add_stream(ptr(f), v, a, i, s, (uint64_t)viewers, (uint64_t)bitrate,
                                         (uint64_t)in, (uint64_t)out);
    free(v);
    free(a);
    free(i);
    free(s);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameAddConn(JNIEnv *env, jclass cls,
                                                                    jlong f, jbyteArray ip,
                                                                    jlong in, jlong out)
{
    (void)cls;
    char *s = NULL;
    int rv = cstr(env, ip, &s);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_add_conn(ptr(f), s, (uint64_t)in, (uint64_t)out);
    free(s);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameAddConnRaw(JNIEnv *env, jclass cls,
                                                                       jlong f, jbyteArray addr,
                                                                       jlong in, jlong out)
{
    (void)cls;
    uint8_t a[16];
    if (addr == NULL)
        return PANELAGENT_EINVAL;
    jsize n = (*env)->GetArrayLength(env, addr);
    if (n < 0 || (size_t)n > sizeof a) {
        /* let the library name the problem with a length it refuses */
        uint8_t none[17] = {0};
        return panelagent_frame_add_conn_raw(ptr(f), none, sizeof none, (uint64_t)in,
                                             (uint64_t)out);
    }
    (*env)->GetByteArrayRegion(env, addr, 0, n, (jbyte *)a);
    return panelagent_frame_add_conn_raw(ptr(f), a, (size_t)n, (uint64_t)in, (uint64_t)out);
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigStr(JNIEnv *env, jclass cls,
                                                                      jlong f, jbyteArray key,
                                                                      jbyteArray v)
{
    (void)cls;
    char *k = NULL, *s = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = v == NULL ? PANELAGENT_EINVAL : cstr(env, v, &s);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_str(ptr(f), k, s);
    free(k);
    free(s);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigI64(JNIEnv *env, jclass cls,
                                                                      jlong f, jbyteArray key,
                                                                      jlong v)
{
    (void)cls;
    char *k = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_i64(ptr(f), k, v);
    free(k);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigF64(JNIEnv *env, jclass cls,
                                                                      jlong f, jbyteArray key,
                                                                      jdouble v)
{
    (void)cls;
    char *k = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_f64(ptr(f), k, v);
    free(k);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigBool(JNIEnv *env, jclass cls,
                                                                       jlong f, jbyteArray key,
                                                                       jboolean v)
{
    (void)cls;
    char *k = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_bool(ptr(f), k, v ? 1 : 0);
    free(k);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigBeginMap(JNIEnv *env,
                                                                           jclass cls, jlong f,
                                                                           jbyteArray key)
{
    (void)cls;
    char *k = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_begin_map(ptr(f), k);
    free(k);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigBeginArray(JNIEnv *env,
                                                                             jclass cls, jlong f,
                                                                             jbyteArray key)
{
    (void)cls;
    char *k = NULL;
    int rv = cstr(env, key, &k);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_begin_array(ptr(f), k);
    free(k);
    return rv;
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameConfigEnd(JNIEnv *env, jclass cls,
                                                                      jlong f)
{
    (void)env;
    (void)cls;
    return panelagent_frame_config_end(ptr(f));
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameCheck(JNIEnv *env, jclass cls,
                                                                  jlong f)
{
    (void)env;
    (void)cls;
    return panelagent_frame_check(ptr(f));
}

JNIEXPORT jint JNICALL Java_org_panelgate_agent_Native_frameEncode(JNIEnv *env, jclass cls,
                                                                   jlong f, jlong seq,
                                                                   jobjectArray out)
{
    (void)cls;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rv = panelagent_frame_encode(ptr(f), (uint64_t)seq, &buf, &len);
    if (rv != PANELAGENT_OK)
        return rv;
    jbyteArray a = bytes(env, buf, len);
    panelagent_free(buf);
    if (a == NULL) {
        (*env)->ExceptionClear(env);
        return PANELAGENT_ENOMEM;
    }
    (*env)->SetObjectArrayElement(env, out, 0, a);
    (*env)->DeleteLocalRef(env, a);
    return PANELAGENT_OK;
}
