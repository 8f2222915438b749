/*
 * nimble-agent - a Nimble Streamer-style agent built on panelagent.hpp.
 *
 * It simulates one Nimble Streamer server: one vhost, a few applications
 * with streams whose viewers come and go, viewer connections from random
 * documentation-range addresses (198.51.100.0/24, 203.0.113.0/24,
 * 2001:db8::/32) or from --viewer-ips FILE, CPU and RAM from /proc when
 * readable, traffic counters - and reports it every --interval seconds.
 *
 *   nimble-agent --gateway HOST:PORT --ca CA --cert CRT --key KEY
 *                [--name SNI] [--pin HEX] [--seq-file FILE] [--interval S]
 *                [--count N] [--streams N] [--viewers N] [--server-name NAME]
 *                [--viewer-ips FILE] [--close-timeout S] [--verbose]
 *
 * Prints one line per acknowledgement ("ack seq=N") and per error
 * ("error seq=N code=NAME: detail"); never a viewer address.  Exits 0 when
 * every frame it built was acknowledged by the end (after closing the
 * client with --close-timeout), 1 otherwise, 64 on bad usage.  SIGINT and
 * SIGTERM stop it: no new frames, then the same close.
 */
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <getopt.h>
#include <pthread.h>
#include <unistd.h>

#include "panelagent.hpp"

namespace {

const char kAgentVersion[] = "nimble-agent/" PANELAGENT_VERSION_STRING " (Nimble Streamer 4.1.2-1)";

struct Options {
    std::string host;
    int port = 0;
    std::string ca, cert, key, sni, pin, seq_file, server_name, viewer_ips;
    bool sni_set = false;
    double interval_s = 5.0;
    long count = 0; /* 0 = until a signal */
    int streams = 4;
    int viewers = 40;
    double close_timeout_s = 10.0;
    bool verbose = false;
};

std::mutex out_mu;

void say(const std::string &line)
{
    std::lock_guard<std::mutex> g(out_mu);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

const char kUsage[] =
    "usage: nimble-agent --gateway HOST:PORT --ca FILE --cert FILE --key FILE\n"
    "         [--name SNI] [--pin HEX] [--seq-file FILE] [--interval S] [--count N]\n"
    "         [--streams N] [--viewers N] [--server-name NAME] [--viewer-ips FILE]\n"
    "         [--close-timeout S] [--verbose]\n";

const char kHelp[] =
    "\nSimulates a Nimble Streamer server (streams whose viewers come and go, viewer\n"
    "connections, CPU and RAM from /proc) and reports it to the panel through\n"
    "libpanelagent's C++ wrapper.\n\n"
    "Options:\n"
    "  --gateway HOST:PORT   the panelgate gateway ([ADDR]:PORT for IPv6)\n"
    "  --ca FILE             the panel CA (PEM); the gateway must chain to it\n"
    "  --cert FILE           this agent's certificate (PEM), registered with panelgatectl\n"
    "  --key FILE            its private key (PEM)\n"
    "  --name SNI            name sent as SNI and checked in the gateway certificate\n"
    "                        (default: HOST)\n"
    "  --pin HEX             SHA-256 of the gateway's public key (64 hex digits)\n"
    "  --seq-file FILE       keeps seq increasing across restarts\n"
    "  --interval S          seconds between frames (default 5)\n"
    "  --count N             frames to send, then exit (default 0: until SIGINT/SIGTERM)\n"
    "  --streams N           simulated streams (default 4)\n"
    "  --viewers N           simulated viewer connections (default 40)\n"
    "  --server-name NAME    server.name reported in each frame (default: the host name)\n"
    "  --viewer-ips FILE     viewer addresses to use, one per line (default: random\n"
    "                        documentation addresses)\n"
    "  --close-timeout S     how long to wait for acknowledgements at exit (default 10)\n"
    "  --verbose             the library's log lines on stderr\n"
    "  --help                this text\n"
    "\n"
    "Prints \"ack seq=N\" per acknowledged frame and \"error seq=N code=NAME: detail\"\n"
    "per reported error (never a viewer address). Exit status: 0 when every frame\n"
    "was acknowledged, 1 otherwise, 64 on bad usage.\n";

/* msg NULL: --help (stdout, exit 0); otherwise a usage error (stderr, 64). */
[[noreturn]] void usage(const char *msg)
{
    if (msg == nullptr) {
        std::fputs(kUsage, stdout);
        std::fputs(kHelp, stdout);
        std::exit(0);
    }
    std::fprintf(stderr, "nimble-agent: %s\n", msg);
    std::fputs(kUsage, stderr);
    std::exit(64);
}

long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage((std::string("bad ") + what + " '" + s + "'").c_str());
    return v;
}

double parse_seconds(const char *s, const char *what)
{
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.01 && v <= 86400.0))
        usage((std::string("bad ") + what + " '" + s + "' (seconds, 0.01 to 86400)").c_str());
    return v;
}

/* HOST:PORT or [V6]:PORT */
void parse_gateway(const std::string &s, Options &o)
{
    std::string port;
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
            usage("bad --gateway: [ADDR]:PORT");
        o.host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        size_t colon = s.rfind(':');
        if (colon == std::string::npos || colon == 0)
            usage("bad --gateway: HOST:PORT");
        o.host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    o.port = static_cast<int>(parse_long(port.c_str(), 1, 65535, "--gateway port"));
}

Options parse_args(int argc, char **argv)
{
    enum { O_GW = 1, O_CA, O_CERT, O_KEY, O_NAME, O_PIN, O_SEQ, O_INTERVAL, O_COUNT, O_STREAMS,
           O_VIEWERS, O_SRVNAME, O_VIPS, O_CLOSE, O_VERBOSE, O_HELP };
    static const struct option longopts[] = {
        {"gateway", required_argument, nullptr, O_GW},
        {"ca", required_argument, nullptr, O_CA},
        {"cert", required_argument, nullptr, O_CERT},
        {"key", required_argument, nullptr, O_KEY},
        {"name", required_argument, nullptr, O_NAME},
        {"pin", required_argument, nullptr, O_PIN},
        {"seq-file", required_argument, nullptr, O_SEQ},
        {"interval", required_argument, nullptr, O_INTERVAL},
        {"count", required_argument, nullptr, O_COUNT},
        {"streams", required_argument, nullptr, O_STREAMS},
        {"viewers", required_argument, nullptr, O_VIEWERS},
        {"server-name", required_argument, nullptr, O_SRVNAME},
        {"viewer-ips", required_argument, nullptr, O_VIPS},
        {"close-timeout", required_argument, nullptr, O_CLOSE},
        {"verbose", no_argument, nullptr, O_VERBOSE},
        {"help", no_argument, nullptr, O_HELP},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    std::string gw;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (c) {
        case O_GW: gw = optarg; break;
        case O_CA: o.ca = optarg; break;
        case O_CERT: o.cert = optarg; break;
        case O_KEY: o.key = optarg; break;
        case O_NAME: o.sni = optarg; o.sni_set = true; break;
        case O_PIN: o.pin = optarg; break;
        case O_SEQ: o.seq_file = optarg; break;
        case O_INTERVAL: o.interval_s = parse_seconds(optarg, "--interval"); break;
        case O_COUNT: o.count = parse_long(optarg, 0, 1000000000L, "--count"); break;
        case O_STREAMS: o.streams = static_cast<int>(parse_long(optarg, 1, 10000, "--streams")); break;
        case O_VIEWERS: o.viewers = static_cast<int>(parse_long(optarg, 0, 100000, "--viewers")); break;
        case O_SRVNAME: o.server_name = optarg; break;
        case O_VIPS: o.viewer_ips = optarg; break;
        case O_CLOSE: o.close_timeout_s = parse_seconds(optarg, "--close-timeout"); break;
        case O_VERBOSE: o.verbose = true; break;
        case O_HELP: usage(nullptr);
        default:
            usage((std::string("unknown option or missing value: ") + argv[optind - 1]).c_str());
        }
    }
    if (optind != argc)
        usage("unexpected argument");
    if (gw.empty() || o.ca.empty() || o.cert.empty() || o.key.empty())
        usage("--gateway, --ca, --cert and --key are required");
    parse_gateway(gw, o);
    if (o.server_name.empty()) {
        char h[256] = "";
        if (gethostname(h, sizeof h - 1) != 0 || h[0] == '\0')
            std::strcpy(h, "nimble-sim");
        o.server_name = h;
    }
    return o;
}

/* ---- the simulated server ---------------------------------------------------- */

/* CPU (whole machine, from /proc/stat deltas) and RAM (/proc/meminfo);
 * plausible random values where /proc is not readable. */
class HostLoad {
public:
    explicit HostLoad(std::mt19937_64 &rng) : rng_(rng) { read_cpu(prev_busy_, prev_total_); }

    double cpu()
    {
        uint64_t busy = 0, total = 0;
        if (read_cpu(busy, total) && total > prev_total_) {
            double pct = 100.0 * static_cast<double>(busy - prev_busy_) /
                         static_cast<double>(total - prev_total_);
            prev_busy_ = busy;
            prev_total_ = total;
            return std::clamp(pct, 0.0, 100.0);
        }
        return std::uniform_real_distribution<double>(8.0, 35.0)(rng_);
    }

    void ram(uint64_t &used, uint64_t &total)
    {
        std::ifstream in("/proc/meminfo");
        std::string k;
        uint64_t v = 0, t = 0, avail = 0;
        std::string unit;
        while (in >> k >> v) {
            std::getline(in, unit);
            if (k == "MemTotal:")
                t = v * 1024;
            else if (k == "MemAvailable:")
                avail = v * 1024;
        }
        if (t > 0 && avail <= t) {
            total = t;
            used = t - avail;
            return;
        }
        total = 16ULL << 30;
        used = std::uniform_int_distribution<uint64_t>(4ULL << 30, 8ULL << 30)(rng_);
    }

private:
    static bool read_cpu(uint64_t &busy, uint64_t &total)
    {
        std::ifstream in("/proc/stat");
        std::string cpu;
        if (!(in >> cpu) || cpu != "cpu")
            return false;
        uint64_t f[10] = {0};
        int n = 0;
        while (n < 10 && in >> f[n])
            n++;
        if (n < 4)
            return false;
        total = 0;
        for (int i = 0; i < n; i++)
            total += f[i];
        uint64_t idle = f[3] + (n > 4 ? f[4] : 0); /* idle + iowait */
        busy = total - idle;
        return true;
    }

    std::mt19937_64 &rng_;
    uint64_t prev_busy_ = 0, prev_total_ = 0;
};

struct Stream {
    std::string app, name;
    uint64_t bitrate; /* bits per second, around the rendition's nominal */
    uint64_t nominal;
    int viewers = 0;
};

struct Session {
    std::string ip;
    size_t stream;
};

class NimbleSim {
public:
    NimbleSim(const Options &o, std::mt19937_64 &rng) : rng_(rng), max_viewers_(o.viewers)
    {
        static const char *apps[] = {"live", "abr", "sport"};
        static const uint64_t renditions[] = {5800000, 2900000, 1200000, 4500000};
        for (int i = 0; i < o.streams; i++) {
            Stream s;
            s.app = apps[i % 3];
            s.name = s.app + "/stream" + std::to_string(i + 1);
            s.nominal = renditions[i % 4];
            s.bitrate = s.nominal;
            streams_.push_back(s);
        }
        if (!o.viewer_ips.empty()) {
            std::ifstream in(o.viewer_ips);
            if (!in)
                throw std::runtime_error("cannot read --viewer-ips " + o.viewer_ips);
            std::string line;
            while (std::getline(in, line)) {
                line.erase(0, line.find_first_not_of(" \t\r"));
                line.erase(line.find_last_not_of(" \t\r") + 1);
                if (!line.empty() && line[0] != '#')
                    pool_.push_back(line);
            }
            if (pool_.empty())
                throw std::runtime_error("--viewer-ips " + o.viewer_ips + ": no address");
        }
    }

    /* One step of |period_ms|: viewers come and go, bitrates wander. */
    void step()
    {
        std::uniform_int_distribution<int> delta(-3, 4);
        int total = 0;
        for (auto &s : streams_) {
            s.viewers = std::max(0, s.viewers + delta(rng_));
            total += s.viewers;
            double j = std::uniform_real_distribution<double>(0.93, 1.07)(rng_);
            s.bitrate = static_cast<uint64_t>(static_cast<double>(s.nominal) * j);
        }
        /* keep the total under --viewers: trim the busiest streams */
        while (total > max_viewers_) {
            auto it = std::max_element(streams_.begin(), streams_.end(),
                                       [](const Stream &a, const Stream &b) { return a.viewers < b.viewers; });
            it->viewers--;
            total--;
        }
        /* sessions follow the viewer counts: leavers first, then newcomers */
        std::vector<int> have(streams_.size(), 0);
        std::vector<Session> kept;
        std::shuffle(sessions_.begin(), sessions_.end(), rng_);
        for (auto &se : sessions_) {
            if (have[se.stream] < streams_[se.stream].viewers) {
                have[se.stream]++;
                kept.push_back(std::move(se));
            }
        }
        for (size_t i = 0; i < streams_.size(); i++)
            for (int k = have[i]; k < streams_[i].viewers; k++)
                kept.push_back(Session{new_ip(), i});
        sessions_ = std::move(kept);
    }

    /* The frame of the period that just ended. */
    panelagent::Frame frame(const Options &o, HostLoad &host, uint64_t period_ms)
    {
        panelagent::Frame f;
        f.server(o.server_name, PANELAGENT_KIND_NIMBLE, kAgentVersion);
        f.server_ip("192.0.2.10").server_ip("2001:db8:ffff::10");
        uint64_t used = 0, total = 0;
        host.ram(used, total);
        f.load(host.cpu(), used, total);

        double secs = static_cast<double>(period_ms) / 1000.0;
        std::uniform_real_distribution<double> jitter(0.85, 1.15);
        uint64_t tin = 0, tout = 0;
        std::vector<uint64_t> sout(streams_.size(), 0);
        for (const auto &se : sessions_) {
            const Stream &s = streams_[se.stream];
            auto out = static_cast<uint64_t>(static_cast<double>(s.bitrate) / 8.0 * secs * jitter(rng_));
            uint64_t in = out / 200 + 300; /* requests, acks */
            f.conn(se.ip, in, out);
            sout[se.stream] += out;
            tin += in;
        }
        for (size_t i = 0; i < streams_.size(); i++) {
            const Stream &s = streams_[i];
            auto in = static_cast<uint64_t>(static_cast<double>(s.bitrate) / 8.0 * secs);
            f.stream("default", s.app, "_definst_", s.name, static_cast<uint64_t>(s.viewers),
                     s.bitrate, in, sout[i]);
            tin += in;
            tout += sout[i];
        }
        f.traffic(tin, tout, period_ms);

        f.config("product", "Nimble Streamer").config("rtmp_port", 1935).config("http_port", 8081);
        f.config("worker_threads", static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency())));
        f.config_begin_map("hls").config("chunk_ms", 6000).config("chunks", 3).config_end();
        f.config_begin_array("applications");
        for (const char *a : {"live", "abr", "sport"})
            f.config(nullptr, a);
        f.config_end();
        return f;
    }

    size_t sessions() const { return sessions_.size(); }

private:
    std::string new_ip()
    {
        if (!pool_.empty())
            return pool_[std::uniform_int_distribution<size_t>(0, pool_.size() - 1)(rng_)];
        std::uniform_int_distribution<int> byte(1, 254);
        std::uniform_int_distribution<int> word(0, 0xffff);
        char b[64];
        switch (std::uniform_int_distribution<int>(0, 2)(rng_)) {
        case 0: std::snprintf(b, sizeof b, "198.51.100.%d", byte(rng_)); break;
        case 1: std::snprintf(b, sizeof b, "203.0.113.%d", byte(rng_)); break;
        default:
            std::snprintf(b, sizeof b, "2001:db8:%x:%x:%x:%x:%x:%x", word(rng_), word(rng_),
                          word(rng_), word(rng_), word(rng_), 1 + word(rng_) % 0xfffe);
        }
        return b;
    }

    std::mt19937_64 &rng_;
    int max_viewers_;
    std::vector<Stream> streams_;
    std::vector<Session> sessions_;
    std::vector<std::string> pool_;
};

uint64_t mono_ms()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

/* Waits up to |ms| for SIGINT/SIGTERM (blocked in every thread); true when
 * one came. */
bool wait_signal(const sigset_t &set, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= end)
            return false;
        uint64_t left = end - now;
        struct timespec ts;
        ts.tv_sec = static_cast<time_t>(left / 1000);
        ts.tv_nsec = static_cast<long>((left % 1000) * 1000000);
        int s = sigtimedwait(&set, nullptr, &ts);
        if (s == SIGINT || s == SIGTERM)
            return true;
        if (s < 0 && errno != EAGAIN && errno != EINTR)
            return false;
    }
}

} // namespace

int main(int argc, char **argv)
{
    Options o = parse_args(argc, argv);

    /* SIGINT/SIGTERM are taken by sigtimedwait in the main thread; block
     * them before the library starts its thread so that it inherits it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    std::atomic<uint64_t> acks{0}, lost{0};
    std::mt19937_64 rng(std::random_device{}());
    int rc = 1;
    try {
        NimbleSim sim(o, rng);
        HostLoad host(rng);

        panelagent::Config cfg;
        cfg.gateway(o.host, o.port).ca_file(o.ca).cert_file(o.cert).key_file(o.key);
        if (o.sni_set)
            cfg.gateway_name(o.sni);
        if (!o.pin.empty())
            cfg.gateway_pin(o.pin);
        if (!o.seq_file.empty())
            cfg.seq_file(o.seq_file);
        cfg.on_ack([&acks](uint64_t seq) {
            acks.fetch_add(1);
            say("ack seq=" + std::to_string(seq));
        });
        cfg.on_error([&lost](int err, uint64_t seq, std::string_view detail) {
            /* frames that are gone for good; connection errors are retried */
            if (err == PANELAGENT_EREJECTED || err == PANELAGENT_EDROPPED ||
                err == PANELAGENT_EUNDELIVERED)
                lost.fetch_add(1);
            say("error seq=" + std::to_string(seq) + " code=" + panelagent::err_name(err) + ": " +
                std::string(detail));
        });
        if (o.verbose)
            cfg.on_log([](int level, std::string_view msg) {
                static const char *names[] = {"error", "warn", "info", "debug"};
                std::lock_guard<std::mutex> g(out_mu);
                std::fprintf(stderr, "nimble-agent: %s: %.*s\n",
                             level >= 0 && level <= 3 ? names[level] : "log",
                             static_cast<int>(msg.size()), msg.data());
            });

        panelagent::Client client(cfg);
        const auto &vi = panelagent::version();
        if (o.verbose)
            std::fprintf(stderr, "nimble-agent: libpanelagent %s, reporting %s to %s:%d\n", vi.version,
                         o.server_name.c_str(), o.host.c_str(), o.port);

        uint64_t built = 0, failed = 0;
        uint64_t last = mono_ms();
        uint64_t interval_ms = static_cast<uint64_t>(std::llround(o.interval_s * 1000.0));
        bool stop = false;
        /* the first frame covers the time since start (0 ms, PROTOCOL 5.4) */
        uint64_t period = 0;
        while (!stop) {
            sim.step();
            built++;
            try {
                uint64_t seq = client.submit(sim.frame(o, host, period));
                if (o.verbose)
                    say("submit seq=" + std::to_string(seq) + " viewers=" + std::to_string(sim.sessions()));
            } catch (const panelagent::QueueFull &e) {
                failed++;
                say(std::string("queue full: frame dropped: ") + e.what());
            } catch (const panelagent::Error &e) {
                failed++;
                say(std::string("submit failed: ") + e.what());
            }
            if (o.count > 0 && built >= static_cast<uint64_t>(o.count))
                break;
            stop = wait_signal(sigs, interval_ms);
            uint64_t now = mono_ms();
            period = now - last;
            last = now;
        }
        if (stop)
            say("signal: stopping");
        int undelivered = client.close(static_cast<int>(o.close_timeout_s * 1000.0));
        uint64_t acked = acks.load();
        say("done: built=" + std::to_string(built) + " acked=" + std::to_string(acked) +
            " undelivered=" + std::to_string(undelivered) + " failed=" + std::to_string(failed + lost.load()));
        rc = (failed == 0 && undelivered == 0 && lost.load() == 0 && acked == built) ? 0 : 1;
    } catch (const panelagent::Error &e) {
        std::fprintf(stderr, "nimble-agent: %s\n", e.what());
        rc = 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "nimble-agent: %s\n", e.what());
        rc = 1;
    }
    return rc;
}
