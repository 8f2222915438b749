package org.panelgate.agent;

import java.util.Map;

/**
 * A running libpanelagent client: frames handed to {@link #submit} are
 * delivered to the gateway over HTTP/2 + mutual TLS, retried with the same
 * seq until acknowledged (docs/PROTOCOL.md section 4, docs/SDK.md).
 *
 * <pre>
 * Config cfg = new Config().gateway("panel.example.net", 8443)
 *     .caFile("ca.crt").certFile("wse-01.crt").keyFile("wse-01.key")
 *     .listener(new PanelAgentListener() { ... });
 * try (PanelAgent agent = new PanelAgent(cfg)) {
 *     Frame f = new Frame().setServer("wse-01", Kind.WOWZA, "wowza-agent/1.0") ...;
 *     long seq = agent.submit(f);
 * }
 * </pre>
 *
 * Thread-safe: any thread may submit, flush and read stats. {@link #close}
 * waits for calls in progress on other threads, then closes the native
 * client; calls made after it throw ECLOSED. Listener methods run on the
 * library's I/O thread (see {@link PanelAgentListener}); flush/close from
 * there throw EBUSY. Always close a PanelAgent: the native client (a thread
 * and a socket) lives until then, and so does the listener (a JNI global
 * reference).
 */
public final class PanelAgent implements AutoCloseable {
    /** What {@link #close()} (try-with-resources) waits for unacknowledged frames. */
    public static final int DEFAULT_CLOSE_TIMEOUT_MS = 2000;

    private static final ThreadLocal<Boolean> IN_CALLBACK = new ThreadLocal<>();

    private final Object lock = new Object();
    private long handle;
    private int users;
    private boolean closed;
    private int undelivered;

    /** Starts the client; PanelAgentException (ECONFIG: which option or file) otherwise. */
    public PanelAgent(Config config) {
        Native.load();
        int ns = config.strings.size(), ni = config.integers.size(), k = 0;
        int[] sIds = new int[ns];
        byte[][] sVals = new byte[ns][];
        for (Map.Entry<Integer, byte[]> e : config.strings.entrySet()) {
            sIds[k] = e.getKey();
            sVals[k++] = e.getValue();
        }
        int[] iIds = new int[ni];
        long[] iVals = new long[ni];
        k = 0;
        for (Map.Entry<Integer, Long> e : config.integers.entrySet()) {
            iIds[k] = e.getKey();
            iVals[k++] = e.getValue();
        }
        Dispatcher d = config.listener == null ? null : new Dispatcher(config.listener);
        long[] out = new long[1];
        byte[][] err = new byte[1][];
        int rc = Native.clientNew(sIds, sVals, iIds, iVals, d, config.logLevel, out, err);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "client", Native.utf8(err[0]));
        }
        handle = out[0];
    }

    /**
     * Queues {@code frame} (consumed whatever the result) and returns its
     * seq (unsigned). Throws {@link QueueFullException} when the queue is
     * full, PanelAgentException EFRAME (with the reason) for an invalid
     * frame, ECLOSED once closing.
     */
    public long submit(Frame frame) {
        long f = frame.take();
        long h;
        try {
            h = enter();
        } catch (PanelAgentException e) {
            Native.frameFree(f);
            throw e;
        }
        try {
            long[] seq = new long[1];
            byte[][] err = new byte[1][];
            int rc = Native.clientSubmit(h, f, seq, err);
            if (rc != ErrorCode.OK) {
                throw PanelAgentException.of(rc, "submit", Native.utf8(err[0]));
            }
            return seq[0];
        } finally {
            leave();
        }
    }

    /**
     * Waits until every frame submitted before was acknowledged or finally
     * failed: true, or false when {@code timeoutMs} ran out (&lt; 0: no limit).
     */
    public boolean flush(int timeoutMs) {
        notInCallback("flush");
        long h = enter();
        try {
            int rc = Native.clientFlush(h, timeoutMs);
            if (rc == ErrorCode.ETIMEDOUT) {
                return false;
            }
            if (rc != ErrorCode.OK) {
                throw PanelAgentException.of(rc, "flush", null);
            }
            return true;
        } finally {
            leave();
        }
    }

    /** One counter ({@link Stat}), unsigned. */
    public long stat(int id) {
        long h = enter();
        try {
            long[] out = new long[1];
            int rc = Native.clientStat(h, id, out);
            if (rc != ErrorCode.OK) {
                throw PanelAgentException.of(rc, "stat " + id, null);
            }
            return out[0];
        } finally {
            leave();
        }
    }

    /**
     * Flushes for up to {@code timeoutMs} (&lt; 0: no limit), stops the client,
     * reports each frame still unacknowledged to the listener (EUNDELIVERED
     * with its seq) and returns how many there were. A second close returns
     * the first one's count.
     */
    public int close(int timeoutMs) {
        notInCallback("close");
        long h;
        synchronized (lock) {
            if (closed) {
                return undelivered;
            }
            closed = true;
            boolean interrupted = false;
            while (users > 0) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            h = handle;
            handle = 0;
        }
        int rc = Native.clientClose(h, timeoutMs);
        if (rc < 0) {
            throw PanelAgentException.of(rc, "close", null);
        }
        synchronized (lock) {
            undelivered = rc;
        }
        return rc;
    }

    /** close({@link #DEFAULT_CLOSE_TIMEOUT_MS}). */
    @Override
    public void close() {
        close(DEFAULT_CLOSE_TIMEOUT_MS);
    }

    public boolean isClosed() {
        synchronized (lock) {
            return closed;
        }
    }

    /** The library's version ("0.1.0"). */
    public static String version() {
        Native.load();
        return Native.utf8(Native.version());
    }

    /** The wire protocol version the library speaks. */
    public static int protocol() {
        Native.load();
        return Native.protocol();
    }

    /**
     * A new P-256 key (mode 0600, must not exist) and a CSR for it with
     * CN={@code commonName}, for {@code panelgatectl register NAME --csr}.
     */
    public static void keygen(String keyPath, String csrPath, String commonName) {
        Native.load();
        byte[][] err = new byte[1][];
        int rc = Native.keygen(Native.bytes("key path", keyPath), Native.bytes("csr path", csrPath),
                               Native.bytes("common name", commonName), err);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "keygen", Native.utf8(err[0]));
        }
    }

    private long enter() {
        synchronized (lock) {
            if (closed) {
                throw new PanelAgentException(ErrorCode.ECLOSED, "client closed");
            }
            users++;
            return handle;
        }
    }

    private void leave() {
        synchronized (lock) {
            if (--users == 0) {
                lock.notifyAll();
            }
        }
    }

    private static void notInCallback(String what) {
        if (Boolean.TRUE.equals(IN_CALLBACK.get())) {
            throw new PanelAgentException(ErrorCode.EBUSY, what + ": not allowed from a listener callback");
        }
    }

    /**
     * What the native glue calls (method names and signatures are bound in
     * panelagent_jni.c). Catches everything the listener throws.
     */
    static final class Dispatcher {
        private final PanelAgentListener listener;

        Dispatcher(PanelAgentListener l) {
            listener = l;
        }

        void ack(long seq) {
            IN_CALLBACK.set(Boolean.TRUE);
            try {
                listener.onAck(seq);
            } catch (Throwable t) {
                caught("onAck", t);
            } finally {
                IN_CALLBACK.remove();
            }
        }

        void error(int code, long seq, byte[] detail) {
            IN_CALLBACK.set(Boolean.TRUE);
            try {
                listener.onError(code, seq, Native.utf8(detail));
            } catch (Throwable t) {
                caught("onError", t);
            } finally {
                IN_CALLBACK.remove();
            }
        }

        void log(int level, byte[] msg) {
            IN_CALLBACK.set(Boolean.TRUE);
            try {
                listener.onLog(level, Native.utf8(msg));
            } catch (Throwable t) {
                // a throwing onLog cannot report itself
            } finally {
                IN_CALLBACK.remove();
            }
        }

        private void caught(String where, Throwable t) {
            try {
                listener.onLog(LogLevel.ERROR, "panelagent: listener " + where + " threw " + t);
            } catch (Throwable ignored) {
                // nothing left to tell
            }
        }
    }
}
