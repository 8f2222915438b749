package org.panelgate.agent;

import java.nio.charset.StandardCharsets;

/**
 * The JNI entry points (libpanelagent_jni.so, panelagent_jni.c). Strings
 * cross as UTF-8 byte arrays (never modified UTF-8), handles as longs,
 * results as PANELAGENT_E* codes; the public classes turn them into
 * objects and exceptions.
 *
 * Loading: System.load of the system property "panelagent.jni.library"
 * (a path) when set, else System.loadLibrary("panelagent_jni") (through
 * -Djava.library.path). libpanelagent_jni.so finds libpanelagent.so by
 * its RUNPATH in the build tree, else through the system's library path.
 */
final class Native {
    private Native() {}

    static {
        String path = System.getProperty("panelagent.jni.library");
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            System.loadLibrary("panelagent_jni");
        }
    }

    static void load() {}

    static byte[] bytes(String what, String s) {
        if (s == null) {
            return null;
        }
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        for (byte x : b) {
            if (x == 0) {
                throw new PanelAgentException(ErrorCode.EINVAL, what + ": contains a NUL character");
            }
        }
        return b;
    }

    static String utf8(byte[] b) {
        return b == null ? "" : new String(b, StandardCharsets.UTF_8);
    }

    /* library */
    static native byte[] version();
    static native int protocol();
    static native byte[] strerror(int code);
    static native int keygen(byte[] keyPath, byte[] csrPath, byte[] cn, byte[][] err);

    /* config: checks one option on a scratch config (null = reset) */
    static native int configCheckStr(int id, byte[] v);
    static native int configCheckI64(int id, long v);

    /* client */
    static native int clientNew(int[] strIds, byte[][] strVals, int[] intIds, long[] intVals,
                                Object dispatcher, int logMax, long[] out, byte[][] err);
    static native int clientSubmit(long client, long frame, long[] seqOut, byte[][] err);
    static native int clientFlush(long client, int timeoutMs);
    static native int clientStat(long client, int id, long[] out);
    static native int clientClose(long client, int timeoutMs);

    /* frame */
    static native int frameNew(long[] out);
    static native int frameNewMsgpack(byte[] buf, long[] out, byte[][] err);
    static native void frameFree(long f);
    static native byte[] frameError(long f);
    static native int frameSetServer(long f, byte[] name, int kind, byte[] version);
    static native int frameAddServerIp(long f, byte[] ip);
    static native int frameSetTime(long f, long tsMs);
    static native int frameSetLoad(long f, double cpu, long ramUsed, long ramTotal);
    static native int frameSetTraffic(long f, long in, long out, long periodMs);
    static native int frameAddStream(long f, byte[] vhost, byte[] app, byte[] instance, byte[] stream,
                                     long viewers, long bitrate, long in, long out);
    static native int frameAddConn(long f, byte[] ip, long in, long out);
    static native int frameAddConnRaw(long f, byte[] addr, long in, long out);
    static native int frameConfigStr(long f, byte[] key, byte[] v);
    static native int frameConfigI64(long f, byte[] key, long v);
    static native int frameConfigF64(long f, byte[] key, double v);
    static native int frameConfigBool(long f, byte[] key, boolean v);
    static native int frameConfigBeginMap(long f, byte[] key);
    static native int frameConfigBeginArray(long f, byte[] key);
    static native int frameConfigEnd(long f);
    static native int frameCheck(long f);
    static native int frameEncode(long f, long seq, byte[][] out);
}
