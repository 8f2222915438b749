package org.panelgate.agent;

import java.net.InetAddress;

/**
 * One stats frame under construction (panelagent_frame_*). Every setter
 * checks its value and the protocol's limits at once and throws
 * {@link PanelAgentException} (EINVAL, ELIMIT; the message names the
 * field) leaving the frame as it was; setters return {@code this}.
 * {@link PanelAgent#submit} consumes the frame; {@link #close()} frees one
 * that was never submitted (and is harmless after submit). Not
 * thread-safe. Counters (bytes, viewers, bitrate, times) are unsigned
 * 64-bit on the wire: negative values are refused (EINVAL).
 */
public final class Frame implements AutoCloseable {
    private long ptr;

    public Frame() {
        Native.load();
        long[] out = new long[1];
        int rc = Native.frameNew(out);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "frame", null);
        }
        ptr = out[0];
    }

    private Frame(long p) {
        ptr = p;
    }

    /** A frame from an encoded v1 frame (msgpack); EFRAME with the reason when invalid. */
    public static Frame fromMsgpack(byte[] encoded) {
        Native.load();
        long[] out = new long[1];
        byte[][] err = new byte[1][];
        int rc = Native.frameNewMsgpack(encoded, out, err);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "frame from msgpack", Native.utf8(err[0]));
        }
        return new Frame(out[0]);
    }

    public Frame setServer(String name, int kind, String agentVersion) {
        return ok(Native.frameSetServer(p(), Native.bytes("server.name", name), kind,
                                        Native.bytes("server.version", agentVersion)), "server");
    }

    public Frame addServerIp(String ip) {
        return ok(Native.frameAddServerIp(p(), Native.bytes("server.ips", ip)), "server.ips");
    }

    /** Unix time of the sample in ms; 0 (default) = the time of submit. */
    public Frame setTime(long tsMs) {
        return ok(Native.frameSetTime(p(), nonNegative("ts", tsMs)), "ts");
    }

    public Frame setLoad(double cpuPercent, long ramUsed, long ramTotal) {
        return ok(Native.frameSetLoad(p(), cpuPercent, nonNegative("load.ram_used", ramUsed),
                                      nonNegative("load.ram_total", ramTotal)), "load");
    }

    public Frame setTraffic(long bytesIn, long bytesOut, long periodMs) {
        return ok(Native.frameSetTraffic(p(), nonNegative("traffic.in", bytesIn),
                                         nonNegative("traffic.out", bytesOut),
                                         nonNegative("traffic.period_ms", periodMs)), "traffic");
    }

    /** One stream at vhost / application / application instance / stream. */
    public Frame addStream(String vhost, String app, String instance, String stream, long viewers,
                           long bitrateBps, long bytesIn, long bytesOut) {
        return ok(Native.frameAddStream(p(), Native.bytes("vhost", vhost), Native.bytes("app", app),
                                        Native.bytes("instance", instance),
                                        Native.bytes("stream", stream),
                                        nonNegative("stream.viewers", viewers),
                                        nonNegative("stream.bitrate", bitrateBps),
                                        nonNegative("stream.in", bytesIn),
                                        nonNegative("stream.out", bytesOut)), "stream");
    }

    /** One viewer connection by address text (IPv4 or IPv6). */
    public Frame addConn(String ip, long bytesIn, long bytesOut) {
        return ok(Native.frameAddConn(p(), Native.bytes("conns.ip", ip), nonNegative("conns.in", bytesIn),
                                      nonNegative("conns.out", bytesOut)), "conns");
    }

    /** One viewer connection by binary address (4 or 16 bytes, network order). */
    public Frame addConn(byte[] addr, long bytesIn, long bytesOut) {
        if (addr == null) {
            throw new PanelAgentException(ErrorCode.EINVAL, "conns.ip: null");
        }
        return ok(Native.frameAddConnRaw(p(), addr, nonNegative("conns.in", bytesIn),
                                         nonNegative("conns.out", bytesOut)), "conns");
    }

    /** One viewer connection by InetAddress (no name lookup is made). */
    public Frame addConn(InetAddress addr, long bytesIn, long bytesOut) {
        if (addr == null) {
            throw new PanelAgentException(ErrorCode.EINVAL, "conns.ip: null");
        }
        return addConn(addr.getAddress(), bytesIn, bytesOut);
    }

    /* The configuration map; key is null inside an array. */
    public Frame configStr(String key, String v) {
        return ok(Native.frameConfigStr(p(), Native.bytes("config key", key), Native.bytes("config", v)),
                  "config");
    }

    public Frame configLong(String key, long v) {
        return ok(Native.frameConfigI64(p(), Native.bytes("config key", key), v), "config");
    }

    public Frame configDouble(String key, double v) {
        return ok(Native.frameConfigF64(p(), Native.bytes("config key", key), v), "config");
    }

    public Frame configBool(String key, boolean v) {
        return ok(Native.frameConfigBool(p(), Native.bytes("config key", key), v), "config");
    }

    public Frame configBeginMap(String key) {
        return ok(Native.frameConfigBeginMap(p(), Native.bytes("config key", key)), "config");
    }

    public Frame configBeginArray(String key) {
        return ok(Native.frameConfigBeginArray(p(), Native.bytes("config key", key)), "config");
    }

    public Frame configEnd() {
        return ok(Native.frameConfigEnd(p()), "config");
    }

    /** Validates the whole frame as the gateway will; EFRAME with the reason otherwise. */
    public void check() {
        ok(Native.frameCheck(p()), "frame");
    }

    /** The frame encoded with {@code seq} (msgpack), for tools and tests. */
    public byte[] encode(long seq) {
        byte[][] out = new byte[1][];
        ok(Native.frameEncode(p(), seq, out), "encode");
        return out[0];
    }

    /** The reason of the last failed call, "" when none. */
    public String lastError() {
        return ptr == 0 ? "" : Native.utf8(Native.frameError(ptr));
    }

    /** False once submitted or closed. */
    public boolean isOpen() {
        return ptr != 0;
    }

    @Override
    public void close() {
        long p = ptr;
        ptr = 0;
        if (p != 0) {
            Native.frameFree(p);
        }
    }

    /** Gives the native frame away (submit); the Frame is empty afterwards. */
    long take() {
        long p = p();
        ptr = 0;
        return p;
    }

    private long p() {
        if (ptr == 0) {
            throw new PanelAgentException(ErrorCode.EINVAL, "frame already submitted or closed");
        }
        return ptr;
    }

    private static long nonNegative(String field, long v) {
        if (v < 0) {
            throw new PanelAgentException(ErrorCode.EINVAL, field + ": negative (" + v + ")");
        }
        return v;
    }

    private Frame ok(int rc, String what) {
        if (rc != ErrorCode.OK) {
            String detail = lastError();
            throw PanelAgentException.of(rc, what, detail);
        }
        return this;
    }
}
