package org.panelgate.agent;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Unit-style checks of the Java binding against the real libpanelagent
 * (no JUnit): run by tests/integration/test_sdk_examples.sh through
 * bin/panelagent-java-check.
 *
 *   BindingCheck --ca CA --cert CRT --key KEY --dead-port PORT [--gateway HOST:PORT [--gateway-name NAME]]
 *
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 when a check failed.
 */
public final class BindingCheck {
    private static int failures;

    private static void check(boolean cond, String what, Object extra) {
        System.out.println((cond ? "ok - " : "not ok - ") + what + (extra == null ? "" : ": " + extra));
        if (!cond) {
            failures++;
        }
    }

    private static void check(boolean cond, String what) {
        check(cond, what, null);
    }

    interface Body {
        void run() throws Exception;
    }

    /** body must throw PanelAgentException with code (and a message mentioning {@code mention}). */
    private static void expect(String what, int code, String mention, Body body) {
        try {
            body.run();
            check(false, what, "no exception");
        } catch (PanelAgentException e) {
            boolean m = mention == null || e.getMessage().contains(mention);
            check(e.getCode() == code && m && e.getName().equals(ErrorCode.name(code)), what,
                  e.getClass().getSimpleName() + " " + e.getName() + " \"" + e.getMessage() + "\"");
        } catch (Throwable t) {
            check(false, what, "other exception " + t);
        }
    }

    private static Frame valid(String ip) {
        return new Frame().setServer("java-check", Kind.WOWZA, "binding-check/1")
            .setLoad(10.5, 1L << 30, 4L << 30).setTraffic(1000, 2000, 5000)
            .addStream("_defaultVHost_", "live", "_definst_", "myStream", 1, 2_500_000, 100, 200)
            .addConn(ip, 10, 20);
    }

    private static boolean waitFor(java.util.function.BooleanSupplier c, int ms) throws InterruptedException {
        long end = System.currentTimeMillis() + ms;
        while (!c.getAsBoolean()) {
            if (System.currentTimeMillis() > end) {
                return false;
            }
            Thread.sleep(20);
        }
        return true;
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    public static void main(String[] args) throws Exception {
        String ca = null, cert = null, key = null, gwHost = null, gwName = null;
        int deadPort = 0, gwPort = 0;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
            case "--ca": ca = args[i + 1]; break;
            case "--cert": cert = args[i + 1]; break;
            case "--key": key = args[i + 1]; break;
            case "--gateway-name": gwName = args[i + 1]; break;
            case "--dead-port": deadPort = Integer.parseInt(args[i + 1]); break;
            case "--gateway": {
                String g = args[i + 1];
                int c = g.lastIndexOf(':');
                gwHost = g.substring(0, c);
                gwPort = Integer.parseInt(g.substring(c + 1));
                break;
            }
            default: throw new IllegalArgumentException(args[i]);
            }
        }
        if (ca == null || cert == null || key == null || deadPort == 0) {
            System.err.println("usage: BindingCheck --ca F --cert F --key F --dead-port P [--gateway H:P]");
            System.exit(64);
        }
        final String fca = ca, fcert = cert, fkey = key;
        final int fdead = deadPort;

        check(PanelAgent.version().matches("\\d+\\.\\d+\\.\\d+"), "version()", PanelAgent.version());
        check(PanelAgent.protocol() == 1, "protocol() is 1");
        check(ErrorCode.name(ErrorCode.EUNDELIVERED).equals("EUNDELIVERED") && ErrorCode.EUNDELIVERED == -21,
              "ErrorCode mirrors panelagent.h");

        /* ---- keygen ------------------------------------------------------------- */
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("java-check");
        String kp = dir.resolve("agent.key").toString(), cp = dir.resolve("agent.csr").toString();
        PanelAgent.keygen(kp, cp, "java-check-01");
        check(java.nio.file.Files.getPosixFilePermissions(dir.resolve("agent.key"))
                  .equals(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"))
              && java.nio.file.Files.size(dir.resolve("agent.csr")) > 100,
              "keygen() writes a 0600 key and a CSR");
        expect("keygen() over an existing key -> EIO with the reason", ErrorCode.EIO, "agent.key",
               () -> PanelAgent.keygen(kp, cp + "2", "java-check-01"));
        for (String f : new String[] {kp, cp}) {
            java.nio.file.Files.deleteIfExists(java.nio.file.Paths.get(f));
        }
        java.nio.file.Files.deleteIfExists(dir);

        /* ---- frame setters ------------------------------------------------------ */
        expect("setLoad(150 %) -> EINVAL naming the field", ErrorCode.EINVAL, "cpu",
               () -> { try (Frame f = new Frame()) { f.setLoad(150, 1, 2); } });
        expect("setLoad(used > total) -> EINVAL", ErrorCode.EINVAL, null,
               () -> { try (Frame f = new Frame()) { f.setLoad(1, 3, 2); } });
        expect("setServer(kind 7) -> EINVAL", ErrorCode.EINVAL, null,
               () -> { try (Frame f = new Frame()) { f.setServer("x", 7, "1"); } });
        expect("setServer(256-byte name) -> ELIMIT", ErrorCode.ELIMIT, null,
               () -> { try (Frame f = new Frame()) { f.setServer(String.join("", Collections.nCopies(256, "n")), Kind.WOWZA, "1"); } });
        expect("setServer(128 x 2-byte chars = 256 bytes) -> ELIMIT (limits are in UTF-8 bytes)",
               ErrorCode.ELIMIT, null,
               () -> { try (Frame f = new Frame()) { f.setServer(String.join("", Collections.nCopies(128, "\u00e9")), Kind.WOWZA, "1"); } });
        expect("addConn(\"not-an-ip\") -> EINVAL", ErrorCode.EINVAL, null,
               () -> { try (Frame f = new Frame()) { f.addConn("not-an-ip", 1, 2); } });
        expect("addConn(5-byte address) -> EINVAL", ErrorCode.EINVAL, null,
               () -> { try (Frame f = new Frame()) { f.addConn(new byte[5], 1, 2); } });
        expect("addConn(20-byte address) -> EINVAL", ErrorCode.EINVAL, null,
               () -> { try (Frame f = new Frame()) { f.addConn(new byte[20], 1, 2); } });
        expect("a string with NUL -> EINVAL", ErrorCode.EINVAL, "NUL",
               () -> { try (Frame f = new Frame()) { f.setServer("a\0b", Kind.WOWZA, "1"); } });
        expect("a negative byte count -> EINVAL", ErrorCode.EINVAL, "negative",
               () -> { try (Frame f = new Frame()) { f.setTraffic(-1, 0, 0); } });
        expect("the same stream twice -> EINVAL", ErrorCode.EINVAL, null, () -> {
            try (Frame f = new Frame()) {
                f.addStream("v", "a", "i", "s", 1, 1, 1, 1).addStream("v", "a", "i", "s", 1, 1, 1, 1);
            }
        });
        expect("check() of an empty frame -> EFRAME", ErrorCode.EFRAME, null,
               () -> { try (Frame f = new Frame()) { f.check(); } });
        expect("fromMsgpack(garbage) -> EFRAME", ErrorCode.EFRAME, null,
               () -> Frame.fromMsgpack(new byte[] {(byte) 0x81, (byte) 0xa1, 0x76}).close());
        try (Frame f = valid("203.0.113.5")) {
            try {
                f.setLoad(-5, 1, 2);
            } catch (PanelAgentException e) {
                check(!f.lastError().isEmpty(), "a failed setter leaves the reason in lastError()", f.lastError());
            }
            f.check();
            check(true, "... and the frame valid as it was");
        }
        try (Frame f = valid("2001:db8::7")) {
            String name = "tv-\uD83D\uDCFA-caf\u00e9"; /* U+1F4FA: outside the BMP */
            f.setServer(name, Kind.WOWZA, "1").configStr("title", "\uD83C\uDFAC live");
            byte[] enc = f.encode(7);
            check(indexOf(enc, name.getBytes(StandardCharsets.UTF_8)) >= 0,
                  "a non-BMP server name is encoded as standard UTF-8 (F0 9F 93 BA)");
            check(indexOf(enc, new byte[] {(byte) 0xed, (byte) 0xa0, (byte) 0xbd}) < 0,
                  "... never as modified-UTF-8 surrogates (ED A0 BD)");
            try (Frame g = Frame.fromMsgpack(enc)) {
                g.check();
                check(true, "fromMsgpack(encode()) is a valid frame");
            }
        }

        /* ---- config ------------------------------------------------------------- */
        expect("gatewayPin(\"abc\") -> EINVAL", ErrorCode.EINVAL, null, () -> new Config().gatewayPin("abc"));
        expect("an unknown option -> EINVAL", ErrorCode.EINVAL, null, () -> new Config().set(999, "x"));
        expect("port 0 -> EINVAL", ErrorCode.EINVAL, null, () -> new Config().set(Option.GATEWAY_PORT, 0));
        expect("gateways(\"a:0\") -> EINVAL", ErrorCode.EINVAL, null, () -> new Config().gateways("a:0"));
        expect("gateway() and gateways() -> ECONFIG naming both", ErrorCode.ECONFIG, "GATEWAYS",
               () -> new PanelAgent(new Config().gateway("127.0.0.1", fdead).gateways("127.0.0.1:1", "[::1]:1")
                   .caFile(fca).certFile(fcert).keyFile(fkey)).close());
        expect("a client without a gateway host -> ECONFIG", ErrorCode.ECONFIG, null,
               () -> new PanelAgent(new Config().caFile(fca).certFile(fcert).keyFile(fkey)).close());

        /* ---- an unreachable gateway ---------------------------------------------- */
        final Set<Long> undelivered = Collections.synchronizedSet(new TreeSet<>());
        final List<String> logs = Collections.synchronizedList(new ArrayList<>());
        final AtomicReference<String> ioThread = new AtomicReference<>();
        final AtomicInteger busy = new AtomicInteger();
        final AtomicReference<PanelAgent> self = new AtomicReference<>();
        Config cfg = new Config().gateway("127.0.0.1", fdead).caFile(ca).certFile(cert).keyFile(key)
            .queue(2, Option.QUEUE_REJECT_NEW)
            .set(Option.CONNECT_TIMEOUT_MS, 500).set(Option.BACKOFF_INITIAL_MS, 50)
            .set(Option.BACKOFF_MAX_MS, 200)
            .logLevel(LogLevel.ERROR)
            .listener(new PanelAgentListener() {
                @Override
                public void onError(int code, long seq, String detail) {
                    if (code == ErrorCode.EUNDELIVERED) {
                        undelivered.add(seq);
                        return;
                    }
                    Thread t = Thread.currentThread();
                    ioThread.compareAndSet(null, t.getName() + (t.isDaemon() ? " (daemon)" : ""));
                    PanelAgent a = self.get();
                    if (a != null) {
                        try {
                            a.flush(0);
                        } catch (PanelAgentException e) {
                            if (e.getCode() == ErrorCode.EBUSY) {
                                busy.incrementAndGet();
                            }
                        }
                    }
                    throw new IllegalStateException("thrown by onError");
                }

                @Override
                public void onLog(int level, String message) {
                    logs.add(level + " " + message);
                }
            });
        PanelAgent agent = new PanelAgent(cfg);
        self.set(agent);
        expect("submitting an invalid frame -> EFRAME with the reason", ErrorCode.EFRAME, "server",
               () -> agent.submit(new Frame()));
        long s1 = agent.submit(valid("203.0.113.5"));
        long s2 = agent.submit(valid("2001:db8::5"));
        check(s1 >= 1 && s2 > s1, "submit returns increasing seqs", s1 + ", " + s2);
        Frame third = valid("198.51.100.5");
        try {
            agent.submit(third);
            check(false, "submit to a full queue -> QueueFullException", "no exception");
        } catch (QueueFullException e) {
            check(e.getCode() == ErrorCode.EAGAIN && e.getName().equals("EAGAIN"),
                  "submit to a full queue (2 frames) -> QueueFullException (EAGAIN)", e.getMessage());
        }
        check(!third.isOpen(), "the refused frame was consumed all the same");
        check(agent.stat(Stat.REJECTED_FULL) == 1 && agent.stat(Stat.QUEUED) == 2,
              "stats: REJECTED_FULL 1, QUEUED 2");
        check(waitFor(() -> ioThread.get() != null, 10000), "a connection error reaches onError",
              ioThread.get());
        check(ioThread.get() != null && ioThread.get().startsWith("panelagent-io") && ioThread.get().endsWith("(daemon)"),
              "callbacks run on the I/O thread, attached as daemon \"panelagent-io\"", ioThread.get());
        check(waitFor(() -> busy.get() > 0, 5000), "flush() from a callback -> EBUSY");
        check(waitFor(() -> { synchronized (logs) { return logs.stream().anyMatch(l -> l.contains("thrown by onError")); } }, 5000),
              "an exception thrown by onError is caught and logged (level ERROR)");
        check(!agent.flush(200), "flush(200 ms) with nobody listening -> false");
        long t0 = System.nanoTime();
        int n = agent.close(300);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        check(n == 2, "close(300 ms) returns the undelivered count 2", n);
        check(ms < 5000, "close(300 ms) returns in time", ms + " ms");
        Set<Long> want = new TreeSet<>();
        want.add(s1);
        want.add(s2);
        check(undelivered.equals(want), "the listener saw EUNDELIVERED for each queued seq", undelivered);
        check(agent.close(0) == 2 && agent.isClosed(), "a second close returns the same count");
        expect("submit after close -> ECLOSED", ErrorCode.ECLOSED, null, () -> agent.submit(valid("203.0.113.9")));

        /* clients come and go: the I/O threads attach and detach */
        for (int i = 0; i < 5; i++) {
            final AtomicInteger errs = new AtomicInteger();
            try (PanelAgent a = new PanelAgent(new Config().gateway("127.0.0.1", fdead).caFile(ca)
                     .certFile(cert).keyFile(key).set(Option.CONNECT_TIMEOUT_MS, 200)
                     .listener(new PanelAgentListener() {
                         @Override
                         public void onError(int code, long seq, String detail) {
                             errs.incrementAndGet();
                         }
                     }))) {
                a.submit(valid("203.0.113.5"));
                waitFor(() -> errs.get() > 0, 2000);
                check(a.close(50) == 1, "client " + i + ": closed with 1 undelivered");
            }
        }

        /* ---- a real gateway ------------------------------------------------------ */
        if (gwHost != null) {
            final AtomicInteger acks = new AtomicInteger();
            /* a dead gateway first: the client fails over to the real one */
            String real = (gwHost.indexOf(':') >= 0 ? "[" + gwHost + "]" : gwHost) + ":" + gwPort;
            Config gc = new Config().gateways("127.0.0.1:" + fdead, real)
                .caFile(ca).certFile(cert).keyFile(key);
            if (gwName != null) {
                gc.gatewayName(gwName);
            }
            try (PanelAgent a = new PanelAgent(gc.listener(new PanelAgentListener() {
                         @Override
                         public void onAck(long seq) {
                             acks.incrementAndGet();
                         }
                     }))) {
                for (int i = 0; i < 3; i++) {
                    a.submit(valid("203.0.113." + (20 + i)));
                }
                check(a.flush(20000), "gateway: flush(20 s) -> every frame answered");
                check(a.stat(Stat.ACKED) == 3 && a.stat(Stat.QUEUED) == 0, "gateway: ACKED 3, QUEUED 0",
                      a.stat(Stat.ACKED) + "/" + a.stat(Stat.QUEUED));
                check(waitFor(() -> acks.get() == 3, 5000), "gateway: the listener saw 3 acks", acks.get());
                check(a.close(5000) == 0, "gateway: close -> 0 undelivered");
            }
        }
        System.out.println(failures + " failed");
        System.exit(failures == 0 ? 0 : 1);
    }
}
