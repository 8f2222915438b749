package org.panelgate.examples.wowza;

import java.io.BufferedReader;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.panelgate.agent.Config;
import org.panelgate.agent.ErrorCode;
import org.panelgate.agent.Frame;
import org.panelgate.agent.Kind;
import org.panelgate.agent.LogLevel;
import org.panelgate.agent.PanelAgent;
import org.panelgate.agent.PanelAgentException;
import org.panelgate.agent.PanelAgentListener;
import org.panelgate.agent.QueueFullException;

/**
 * wowza-agent - a Wowza Streaming Engine-style agent on the Java binding.
 *
 * It models what a Wowza server module sees: virtual hosts, applications,
 * application instances and streams (_defaultVHost_ / live / _definst_ /
 * myStream), each instance with its client sessions (RTMP, HLS, WebRTC:
 * an address and the bytes it moved), simulates viewers coming and going,
 * and reports the tree every --interval seconds through
 * {@link PanelAgent}. Same options, output and exit codes as nimble-agent:
 *
 *   wowza-agent --gateway HOST:PORT --ca CA --cert CRT --key KEY [--name SNI]
 *               [--pin HEX] [--seq-file FILE] [--interval S] [--count N]
 *               [--streams N] [--viewers N] [--server-name NAME]
 *               [--viewer-ips FILE] [--close-timeout S] [--verbose]
 *
 * One line per acknowledgement ("ack seq=N") and per error ("error seq=N
 * code=NAME: detail"); never a viewer address. Exit 0 when every frame
 * built was acknowledged by the end, 1 otherwise, 64 on bad usage.
 * SIGINT/SIGTERM: no new frames, then the same close (a shutdown hook waits
 * for it and sets the exit status).
 */
public final class WowzaAgent {
    /** server.version: this agent with the library it runs on, and the simulated server. */
    static String agentVersion() {
        return "wowza-agent/" + PanelAgent.version() + " (Wowza Streaming Engine 4.8.27)";
    }

    /* ---- options ------------------------------------------------------------------- */

    static final class Options {
        String host;
        int port;
        String ca, cert, key, sni, pin, seqFile, serverName, viewerIps;
        double intervalS = 5.0;
        long count;
        int streams = 4;
        int viewers = 40;
        double closeTimeoutS = 10.0;
        boolean verbose;
    }

    static final String USAGE =
        "usage: wowza-agent --gateway HOST:PORT --ca FILE --cert FILE --key FILE\n"
        + "         [--name SNI] [--pin HEX] [--seq-file FILE] [--interval S] [--count N]\n"
        + "         [--streams N] [--viewers N] [--server-name NAME] [--viewer-ips FILE]\n"
        + "         [--close-timeout S] [--verbose]\n";

    static final String HELP =
        "\nSimulates a Wowza Streaming Engine server as a module sees it (virtual hosts,\n"
        + "applications, application instances, streams, viewer sessions) and reports it\n"
        + "to the panel through libpanelagent's Java binding.\n\n"
        + "Options:\n"
        + "  --gateway HOST:PORT   the panelgate gateway ([ADDR]:PORT for IPv6)\n"
        + "  --ca FILE             the panel CA (PEM); the gateway must chain to it\n"
        + "  --cert FILE           this agent's certificate (PEM), registered with panelgatectl\n"
        + "  --key FILE            its private key (PEM)\n"
        + "  --name SNI            name sent as SNI and checked in the gateway certificate\n"
        + "                        (default: HOST)\n"
        + "  --pin HEX             SHA-256 of the gateway's public key (64 hex digits)\n"
        + "  --seq-file FILE       keeps seq increasing across restarts\n"
        + "  --interval S          seconds between frames (default 5)\n"
        + "  --count N             frames to send, then exit (default 0: until SIGINT/SIGTERM)\n"
        + "  --streams N           simulated streams (default 4)\n"
        + "  --viewers N           simulated viewer connections (default 40)\n"
        + "  --server-name NAME    server.name reported in each frame (default: the host name)\n"
        + "  --viewer-ips FILE     viewer addresses to use, one per line (default: random\n"
        + "                        documentation addresses)\n"
        + "  --close-timeout S     how long to wait for acknowledgements at exit (default 10)\n"
        + "  --verbose             the library's log lines on stderr\n"
        + "  --help                this text\n"
        + "\n"
        + "Prints \"ack seq=N\" per acknowledged frame and \"error seq=N code=NAME: detail\"\n"
        + "per reported error (never a viewer address). Exit status: 0 when every frame\n"
        + "was acknowledged, 1 otherwise, 64 on bad usage.\n";

    /** msg null: --help (stdout, exit 0); otherwise a usage error (stderr, 64). */
    static void usage(String msg) {
        if (msg == null) {
            System.out.print(USAGE + HELP);
            System.out.flush();
            System.exit(0);
        }
        System.err.println("wowza-agent: " + msg);
        System.err.print(USAGE);
        System.exit(64);
    }

    static long num(String v, long lo, long hi, String what) {
        try {
            long n = Long.parseLong(v);
            if (n >= lo && n <= hi) {
                return n;
            }
        } catch (NumberFormatException e) {
            // below
        }
        usage("bad " + what + " '" + v + "'");
        return 0;
    }

    static double seconds(String v, String what) {
        try {
            double d = Double.parseDouble(v);
            if (d >= 0.01 && d <= 86400) {
                return d;
            }
        } catch (NumberFormatException e) {
            // below
        }
        usage("bad " + what + " '" + v + "' (seconds, 0.01 to 86400)");
        return 0;
    }

    static Options parse(String[] args) {
        Options o = new Options();
        String gw = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--verbose")) {
                o.verbose = true;
                continue;
            }
            if (a.equals("--help")) {
                usage(null);
            }
            if (i + 1 >= args.length) {
                usage("unknown option or missing value: " + a);
            }
            String v = args[++i];
            switch (a) {
            case "--gateway": gw = v; break;
            case "--ca": o.ca = v; break;
            case "--cert": o.cert = v; break;
            case "--key": o.key = v; break;
            case "--name": o.sni = v; break;
            case "--pin": o.pin = v; break;
            case "--seq-file": o.seqFile = v; break;
            case "--interval": o.intervalS = seconds(v, "--interval"); break;
            case "--count": o.count = num(v, 0, 1_000_000_000L, "--count"); break;
            case "--streams": o.streams = (int) num(v, 1, 10000, "--streams"); break;
            case "--viewers": o.viewers = (int) num(v, 0, 100000, "--viewers"); break;
            case "--server-name": o.serverName = v; break;
            case "--viewer-ips": o.viewerIps = v; break;
            case "--close-timeout": o.closeTimeoutS = seconds(v, "--close-timeout"); break;
            default: usage("unknown option: " + a);
            }
        }
        if (gw == null || o.ca == null || o.cert == null || o.key == null) {
            usage("--gateway, --ca, --cert and --key are required");
        }
        String port;
        if (gw.startsWith("[")) {
            int c = gw.indexOf("]:");
            if (c < 0) {
                usage("bad --gateway: [ADDR]:PORT");
            }
            o.host = gw.substring(1, c);
            port = gw.substring(c + 2);
        } else {
            int c = gw.lastIndexOf(':');
            if (c <= 0) {
                usage("bad --gateway: HOST:PORT");
            }
            o.host = gw.substring(0, c);
            port = gw.substring(c + 1);
        }
        o.port = (int) num(port, 1, 65535, "--gateway port");
        if (o.serverName == null) {
            try {
                o.serverName = InetAddress.getLocalHost().getHostName();
            } catch (IOException e) {
                o.serverName = "wowza-sim";
            }
        }
        return o;
    }

    /* ---- the server model (what a Wowza module walks) --------------------------------- */

    /** A client session of an application instance (RTMP, HLS/HTTP, WebRTC). */
    static final class Session {
        final String ip;
        final String protocol;
        final MediaStream stream;

        Session(String ip, String protocol, MediaStream stream) {
            this.ip = ip;
            this.protocol = protocol;
            this.stream = stream;
        }
    }

    static final class MediaStream {
        final String name;
        final long nominalBps;
        long bitrateBps;
        int viewers;

        MediaStream(String name, long nominalBps) {
            this.name = name;
            this.nominalBps = nominalBps;
            this.bitrateBps = nominalBps;
        }
    }

    static final class AppInstance {
        final String name;
        final List<MediaStream> streams = new ArrayList<>();
        List<Session> sessions = new ArrayList<>();

        AppInstance(String name) {
            this.name = name;
        }
    }

    static final class Application {
        final String name;
        final List<AppInstance> instances = new ArrayList<>();

        Application(String name) {
            this.name = name;
        }
    }

    static final class VHost {
        final String name;
        final List<Application> applications = new ArrayList<>();

        VHost(String name) {
            this.name = name;
        }
    }

    static final class Server {
        final List<VHost> vhosts = new ArrayList<>();
        final Random rng = new Random();
        final List<String> pool = new ArrayList<>();
        final int maxViewers;

        Server(Options o) throws IOException {
            maxViewers = o.viewers;
            VHost vh = new VHost("_defaultVHost_");
            vhosts.add(vh);
            Application live = new Application("live");
            Application vod = new Application("vod");
            vh.applications.add(live);
            vh.applications.add(vod);
            AppInstance definst = new AppInstance("_definst_");
            AppInstance studio = new AppInstance("studio");
            live.instances.add(definst);
            live.instances.add(studio);
            AppInstance vodInst = new AppInstance("_definst_");
            vod.instances.add(vodInst);
            String[] names = {"myStream", "myStream_720p", "myStream_480p", "interview", "mp4:sample.mp4"};
            long[] rates = {3_500_000, 2_500_000, 1_200_000, 3_000_000, 1_800_000};
            for (int i = 0; i < o.streams; i++) {
                String n = names[i % names.length] + (i < names.length ? "" : "_" + i);
                AppInstance where = i % names.length == 3 ? studio : i % names.length == 4 ? vodInst : definst;
                where.streams.add(new MediaStream(n, rates[i % rates.length]));
            }
            if (o.viewerIps != null) {
                try (BufferedReader r = Files.newBufferedReader(Paths.get(o.viewerIps), StandardCharsets.UTF_8)) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        line = line.trim();
                        if (!line.isEmpty() && !line.startsWith("#")) {
                            pool.add(line);
                        }
                    }
                }
                if (pool.isEmpty()) {
                    throw new IOException("--viewer-ips " + o.viewerIps + ": no address");
                }
            }
        }

        List<AppInstance> instances() {
            List<AppInstance> all = new ArrayList<>();
            for (VHost v : vhosts) {
                for (Application a : v.applications) {
                    all.addAll(a.instances);
                }
            }
            return all;
        }

        String newIp() {
            if (!pool.isEmpty()) {
                return pool.get(rng.nextInt(pool.size()));
            }
            switch (rng.nextInt(3)) {
            case 0: return "198.51.100." + (1 + rng.nextInt(254));
            case 1: return "203.0.113." + (1 + rng.nextInt(254));
            default:
                return String.format("2001:db8:%x:%x:%x:%x:%x:%x", rng.nextInt(0x10000), rng.nextInt(0x10000),
                                     rng.nextInt(0x10000), rng.nextInt(0x10000), rng.nextInt(0x10000),
                                     1 + rng.nextInt(0xfffe));
            }
        }

        /** Viewers come and go, bitrates wander, sessions follow. */
        void step() {
            int total = 0;
            List<MediaStream> all = new ArrayList<>();
            for (AppInstance ai : instances()) {
                for (MediaStream s : ai.streams) {
                    s.viewers = Math.max(0, s.viewers + rng.nextInt(8) - 3);
                    s.bitrateBps = (long) (s.nominalBps * (0.93 + 0.14 * rng.nextDouble()));
                    total += s.viewers;
                    all.add(s);
                }
            }
            while (total > maxViewers) {
                MediaStream busiest = Collections.max(all, (a, b) -> Integer.compare(a.viewers, b.viewers));
                busiest.viewers--;
                total--;
            }
            String[] protocols = {"rtmp", "cupertino", "webrtc"};
            for (AppInstance ai : instances()) {
                Collections.shuffle(ai.sessions, rng);
                List<Session> kept = new ArrayList<>();
                for (MediaStream s : ai.streams) {
                    int have = 0;
                    for (Session se : ai.sessions) {
                        if (se.stream == s && have < s.viewers) {
                            kept.add(se);
                            have++;
                        }
                    }
                    for (; have < s.viewers; have++) {
                        kept.add(new Session(newIp(), protocols[rng.nextInt(protocols.length)], s));
                    }
                }
                ai.sessions = kept;
            }
        }

        int sessions() {
            int n = 0;
            for (AppInstance ai : instances()) {
                n += ai.sessions.size();
            }
            return n;
        }

        final String version = agentVersion();

        Frame frame(Options o, HostLoad host, long periodMs) {
            Frame f = new Frame();
            try {
                f.setServer(o.serverName, Kind.WOWZA, version).addServerIp("192.0.2.20")
                    .addServerIp("2001:db8:ffff::20");
                long[] ram = host.ram(rng);
                f.setLoad(host.cpu(rng), ram[0], ram[1]);
                double secs = periodMs / 1000.0;
                long tin = 0, tout = 0;
                for (VHost vh : vhosts) {
                    for (Application app : vh.applications) {
                        for (AppInstance ai : app.instances) {
                            java.util.Map<MediaStream, Long> out = new java.util.HashMap<>();
                            for (Session se : ai.sessions) {
                                long b = (long) (se.stream.bitrateBps / 8.0 * secs * (0.85 + 0.3 * rng.nextDouble()));
                                long in = b / 200 + 300;
                                f.addConn(se.ip, in, b);
                                out.merge(se.stream, b, Long::sum);
                                tin += in;
                            }
                            for (MediaStream s : ai.streams) {
                                long in = (long) (s.bitrateBps / 8.0 * secs);
                                long so = out.getOrDefault(s, 0L);
                                f.addStream(vh.name, app.name, ai.name, s.name, s.viewers, s.bitrateBps, in, so);
                                tin += in;
                                tout += so;
                            }
                        }
                    }
                }
                f.setTraffic(tin, tout, periodMs);
                f.configStr("product", "Wowza Streaming Engine").configLong("max_connections", 5000)
                    .configBeginMap("vhosts");
                for (VHost vh : vhosts) {
                    f.configBeginMap(vh.name).configBeginArray("applications");
                    for (Application app : vh.applications) {
                        f.configStr(null, app.name);
                    }
                    f.configEnd().configBeginArray("host_ports").configLong(null, 1935).configLong(null, 443)
                        .configLong(null, 8086).configEnd().configEnd();
                }
                f.configEnd().configBeginMap("transcoder").configBool("enabled", true).configEnd();
                return f;
            } catch (RuntimeException e) {
                f.close();
                throw e;
            }
        }
    }

    /** CPU from /proc/stat deltas, RAM from /proc/meminfo; plausible values otherwise. */
    static final class HostLoad {
        long prevBusy, prevTotal;

        HostLoad() {
            long[] c = readCpu();
            if (c != null) {
                prevBusy = c[0];
                prevTotal = c[1];
            }
        }

        static long[] readCpu() {
            try {
                String first = Files.readAllLines(Paths.get("/proc/stat"), StandardCharsets.UTF_8).get(0);
                String[] p = first.trim().split("\\s+");
                if (!p[0].equals("cpu") || p.length < 5) {
                    return null;
                }
                long total = 0;
                for (int i = 1; i < p.length; i++) {
                    total += Long.parseLong(p[i]);
                }
                long idle = Long.parseLong(p[4]) + (p.length > 5 ? Long.parseLong(p[5]) : 0);
                return new long[] {total - idle, total};
            } catch (IOException | RuntimeException e) {
                return null;
            }
        }

        double cpu(Random rng) {
            long[] c = readCpu();
            if (c != null && c[1] > prevTotal) {
                double pct = 100.0 * (c[0] - prevBusy) / (c[1] - prevTotal);
                prevBusy = c[0];
                prevTotal = c[1];
                return Math.max(0, Math.min(100, pct));
            }
            return 8 + 27 * rng.nextDouble();
        }

        long[] ram(Random rng) {
            long total = 0, avail = -1;
            try {
                for (String l : Files.readAllLines(Paths.get("/proc/meminfo"), StandardCharsets.UTF_8)) {
                    String[] p = l.split("\\s+");
                    if (p[0].equals("MemTotal:")) {
                        total = Long.parseLong(p[1]) * 1024;
                    } else if (p[0].equals("MemAvailable:")) {
                        avail = Long.parseLong(p[1]) * 1024;
                    }
                }
            } catch (IOException | RuntimeException e) {
                total = 0;
            }
            if (total > 0 && avail >= 0 && avail <= total) {
                return new long[] {total - avail, total};
            }
            total = 16L << 30;
            return new long[] {(4L << 30) + (long) (rng.nextDouble() * (4L << 30)), total};
        }
    }

    /* ---- main ---------------------------------------------------------------------------- */

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        Options o = parse(args);
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        int[] rc = {1};
        Thread hook = new Thread(() -> {
            /* SIGINT/SIGTERM (or System.exit): let main close the client and
             * choose the status, then end the JVM with it */
            stop.countDown();
            try {
                if (done.await((long) (o.closeTimeoutS * 1000) + 5000, TimeUnit.MILLISECONDS)) {
                    Runtime.getRuntime().halt(rc[0]);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "wowza-agent-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            rc[0] = run(o, stop);
        } catch (PanelAgentException e) {
            System.err.println("wowza-agent: " + e.getMessage());
            rc[0] = 1;
        } catch (IOException e) {
            System.err.println("wowza-agent: " + e.getMessage());
            rc[0] = 1;
        } finally {
            done.countDown();
        }
        if (stop.getCount() == 0) {
            return; /* the hook ends the JVM with rc */
        }
        Runtime.getRuntime().removeShutdownHook(hook);
        System.exit(rc[0]);
    }

    static int run(Options o, CountDownLatch stop) throws IOException, InterruptedException {
        Server server = new Server(o);
        HostLoad host = new HostLoad();
        AtomicLong acks = new AtomicLong(), lost = new AtomicLong();
        Config cfg = new Config().gateway(o.host, o.port).caFile(o.ca).certFile(o.cert).keyFile(o.key)
            .logLevel(o.verbose ? LogLevel.DEBUG : LogLevel.WARN)
            .listener(new PanelAgentListener() {
                @Override
                public void onAck(long seq) {
                    acks.incrementAndGet();
                    say("ack seq=" + Long.toUnsignedString(seq));
                }

                @Override
                public void onError(int code, long seq, String detail) {
                    if (code == ErrorCode.EREJECTED || code == ErrorCode.EDROPPED || code == ErrorCode.EUNDELIVERED) {
                        lost.incrementAndGet();
                    }
                    say("error seq=" + Long.toUnsignedString(seq) + " code=PANELAGENT_" + ErrorCode.name(code)
                        + ": " + detail);
                }

                @Override
                public void onLog(int level, String message) {
                    if (o.verbose) {
                        System.err.println("wowza-agent: " + LogLevel.name(level) + ": " + message);
                    }
                }
            });
        if (o.sni != null) {
            cfg.gatewayName(o.sni);
        }
        if (o.pin != null) {
            cfg.gatewayPin(o.pin);
        }
        if (o.seqFile != null) {
            cfg.seqFile(o.seqFile);
        }
        long built = 0, failed = 0;
        int undelivered;
        PanelAgent agent = new PanelAgent(cfg);
        try {
            if (o.verbose) {
                System.err.println("wowza-agent: libpanelagent " + PanelAgent.version() + ", reporting "
                    + o.serverName + " to " + o.host + ":" + o.port);
            }
            long intervalMs = Math.round(o.intervalS * 1000);
            long last = System.nanoTime();
            long period = 0; /* the first frame covers no period (PROTOCOL 5.4) */
            boolean stopped = false;
            while (true) {
                server.step();
                built++;
                try {
                    long seq = agent.submit(server.frame(o, host, period));
                    if (o.verbose) {
                        say("submit seq=" + Long.toUnsignedString(seq) + " viewers=" + server.sessions());
                    }
                } catch (QueueFullException e) {
                    failed++;
                    say("queue full: frame dropped: " + e.getMessage());
                } catch (PanelAgentException e) {
                    failed++;
                    say("submit failed: " + e.getMessage());
                }
                if (o.count > 0 && built >= o.count) {
                    break;
                }
                if (stop.await(intervalMs, TimeUnit.MILLISECONDS)) {
                    stopped = true;
                    break;
                }
                long now = System.nanoTime();
                period = (now - last) / 1_000_000;
                last = now;
            }
            if (stopped) {
                say("signal: stopping");
            }
        } finally {
            undelivered = agent.close((int) (o.closeTimeoutS * 1000));
        }
        say("done: built=" + built + " acked=" + acks.get() + " undelivered=" + undelivered + " failed="
            + (failed + lost.get()));
        return failed == 0 && undelivered == 0 && lost.get() == 0 && acks.get() == built ? 0 : 1;
    }
}
