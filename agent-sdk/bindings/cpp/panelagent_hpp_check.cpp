/*
 * panelagent-hpp-check - checks of the C++ wrapper (panelagent.hpp) against
 * the real libpanelagent; run by tests/integration/test_sdk_examples.sh.
 *
 *   panelagent-hpp-check --ca CA --cert CRT --key KEY --dead-port PORT
 *                        [--gateway HOST:PORT [--gateway-name NAME]]
 *
 * --dead-port is a loopback port where nothing listens (the "unreachable
 * gateway" checks); with --gateway, frames are also delivered for real.
 * Prints "ok - ..." / "not ok - ..." lines; exits 1 when any check failed.
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>

#include <sys/stat.h>
#include <unistd.h>

#include "panelagent.hpp"

namespace {

int failures = 0;

void check(bool cond, const std::string &what, const std::string &extra = "")
{
    std::printf("%s - %s%s%s\n", cond ? "ok" : "not ok", what.c_str(), extra.empty() ? "" : ": ",
                extra.c_str());
    std::fflush(stdout);
    if (!cond)
        failures++;
}

/* Runs |fn|; checks that it throws panelagent::Error with |code| and a
 * message that mentions |mention| (when not empty). */
template <typename Fn>
void expect_error(const std::string &what, int code, const std::string &mention, Fn fn)
{
    try {
        fn();
        check(false, what, "no exception");
    } catch (const panelagent::Error &e) {
        bool m = mention.empty() || std::string(e.what()).find(mention) != std::string::npos;
        check(e.code() == code && m, what,
              std::string(e.name()) + " \"" + e.what() + "\"");
    } catch (const std::exception &e) {
        check(false, what, std::string("other exception: ") + e.what());
    }
}

panelagent::Frame valid_frame(const std::string &ip = "203.0.113.5")
{
    panelagent::Frame f;
    f.server("hpp-check", PANELAGENT_KIND_NIMBLE, "hpp-check/1")
        .load(12.5, 1u << 30, 4ull << 30)
        .traffic(1000, 2000, 5000)
        .stream("default", "live", "_definst_", "cam1", 1, 2500000, 100, 200)
        .conn(ip, 10, 20);
    return f;
}

bool wait_for(const std::function<bool()> &cond, int ms)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!cond()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    std::string ca, cert, key, gw_host, gw_name;
    int dead_port = 0, gw_port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "--ca")
            ca = v;
        else if (a == "--cert")
            cert = v;
        else if (a == "--key")
            key = v;
        else if (a == "--gateway-name")
            gw_name = v;
        else if (a == "--dead-port")
            dead_port = std::stoi(v);
        else if (a == "--gateway") {
            size_t c = v.rfind(':');
            gw_host = v.substr(0, c);
            gw_port = std::stoi(v.substr(c + 1));
        }
    }
    if (ca.empty() || cert.empty() || key.empty() || dead_port <= 0) {
        std::fprintf(stderr, "usage: panelagent-hpp-check --ca F --cert F --key F --dead-port P "
                             "[--gateway HOST:PORT [--gateway-name NAME]]\n");
        return 64;
    }

    static_assert(!std::is_copy_constructible<panelagent::Frame>::value, "Frame is move-only");
    static_assert(std::is_nothrow_move_constructible<panelagent::Frame>::value, "Frame moves");
    static_assert(std::is_base_of<panelagent::Error, panelagent::QueueFull>::value,
                  "QueueFull is an Error");
    static_assert(std::is_nothrow_destructible<panelagent::Client>::value,
                  "~Client never throws");

    try {
        check(std::strcmp(panelagent::version().version, PANELAGENT_VERSION_STRING) == 0,
              "version() is the header's", panelagent::version().version);

        /* ---- keygen ------------------------------------------------------------- */
        {
            char dir[] = "/tmp/hpp-check-XXXXXX";
            if (mkdtemp(dir) == nullptr)
                throw std::runtime_error("mkdtemp");
            std::string k = std::string(dir) + "/agent.key", r = std::string(dir) + "/agent.csr";
            panelagent::keygen(k, r, "hpp-check-01");
            struct stat st;
            check(stat(k.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600 &&
                      stat(r.c_str(), &st) == 0 && st.st_size > 100,
                  "keygen() writes a 0600 key and a CSR");
            expect_error("keygen() over an existing key -> Error EIO with the reason", PANELAGENT_EIO,
                         "agent.key", [&] { panelagent::keygen(k, r + "2", "hpp-check-01"); });
            unlink(k.c_str());
            unlink(r.c_str());
            rmdir(dir);
        }

        /* ---- frame builder rejections -------------------------------------- */
        expect_error("load(150 %) -> Error EINVAL naming the field", PANELAGENT_EINVAL, "cpu",
                     [] { panelagent::Frame f; f.load(150.0, 1, 2); });
        expect_error("load(used > total) -> Error EINVAL", PANELAGENT_EINVAL, "",
                     [] { panelagent::Frame f; f.load(1.0, 3, 2); });
        expect_error("server(kind 7) -> Error EINVAL", PANELAGENT_EINVAL, "",
                     [] { panelagent::Frame f; f.server("x", 7, "1"); });
        expect_error("server(256-byte name) -> Error ELIMIT", PANELAGENT_ELIMIT, "",
                     [] { panelagent::Frame f; f.server(std::string(256, 'n'), 1, "1"); });
        expect_error("conn(\"not-an-ip\") -> Error EINVAL", PANELAGENT_EINVAL, "",
                     [] { panelagent::Frame f; f.conn("not-an-ip", 1, 2); });
        expect_error("conn_raw(5 bytes) -> Error EINVAL", PANELAGENT_EINVAL, "", [] {
            panelagent::Frame f;
            const uint8_t a[5] = {1, 2, 3, 4, 5};
            f.conn_raw(a, sizeof a, 1, 2);
        });
        expect_error("the same stream twice -> Error EINVAL", PANELAGENT_EINVAL, "", [] {
            panelagent::Frame f;
            f.stream("v", "a", "i", "s", 1, 1, 1, 1).stream("v", "a", "i", "s", 1, 1, 1, 1);
        });
        expect_error("check() on an empty frame -> Error EFRAME", PANELAGENT_EFRAME, "",
                     [] { panelagent::Frame().check(); });
        {
            panelagent::Frame f = valid_frame();
            bool threw = false;
            try {
                f.load(-1.0, 1, 2);
            } catch (const panelagent::Error &e) {
                threw = e.code() == PANELAGENT_EINVAL && !f.error().empty();
            }
            check(threw, "a failed setter leaves the reason in Frame::error()", f.error());
            bool still = true;
            try {
                f.check();
            } catch (const panelagent::Error &e) {
                still = false;
            }
            check(still, "... and the frame as it was (still valid)");
            std::vector<uint8_t> enc = f.encode(42);
            check(enc.size() > 20 && enc[0] >= 0x80 && enc[0] <= 0x8f, "encode() gives a msgpack map",
                  std::to_string(enc.size()) + " bytes");
            panelagent::Frame g = panelagent::Frame::from_msgpack(enc.data(), enc.size());
            check(static_cast<bool>(g), "from_msgpack() of encode() is a frame");
            panelagent::Frame h = std::move(g);
            check(!g && h, "a moved-from Frame is empty, the target owns it");
            expect_error("a moved-from Frame throws on use", PANELAGENT_EINVAL, "moved",
                         [&g] { g.time(1); });
            const uint8_t junk[3] = {0x81, 0xa1, 0x76};
            expect_error("from_msgpack(garbage) -> Error EFRAME", PANELAGENT_EFRAME, "",
                         [&junk] { panelagent::Frame::from_msgpack(junk, sizeof junk); });
        }

        /* ---- config and client construction --------------------------------- */
        expect_error("gateway_pin(\"abc\") -> Error EINVAL", PANELAGENT_EINVAL, "",
                     [] { panelagent::Config c; c.gateway_pin("abc"); });
        expect_error("gateways(\"a:0\") -> Error EINVAL", PANELAGENT_EINVAL, "",
                     [] { panelagent::Config c; c.gateways("a:0"); });
        expect_error("Client with gateway() and gateways() -> Error ECONFIG naming both",
                     PANELAGENT_ECONFIG, "GATEWAYS", [&] {
                         panelagent::Config c;
                         c.gateway("127.0.0.1", dead_port).gateways(std::vector<std::string>{"127.0.0.1:1", "[::1]:1"})
                             .ca_file(ca).cert_file(cert).key_file(key);
                         panelagent::Client cl(c);
                     });
        expect_error("Client without a gateway host -> Error ECONFIG with a reason",
                     PANELAGENT_ECONFIG, "", [&] {
                         panelagent::Config c;
                         c.ca_file(ca).cert_file(cert).key_file(key);
                         panelagent::Client cl(c);
                     });
        expect_error("Client with a missing key file -> Error ECONFIG naming the file",
                     PANELAGENT_ECONFIG, ".missing", [&] {
                         panelagent::Config c;
                         c.gateway("127.0.0.1", dead_port).ca_file(ca).cert_file(cert)
                             .key_file(key + ".missing");
                         panelagent::Client cl(c);
                     });

        /* ---- an unreachable gateway: full queue, undelivered at close --------- */
        {
            std::mutex mu;
            std::set<uint64_t> undelivered;
            std::atomic<int> logs_of_throw{0};
            panelagent::Config c;
            c.gateway("127.0.0.1", dead_port).ca_file(ca).cert_file(cert).key_file(key)
                .queue(2)
                .set(PANELAGENT_OPT_CONNECT_TIMEOUT_MS, 500)
                .set(PANELAGENT_OPT_BACKOFF_INITIAL_MS, 50)
                .set(PANELAGENT_OPT_BACKOFF_MAX_MS, 200)
                .on_error([&](int err, uint64_t seq, std::string_view) {
                    if (err == PANELAGENT_EUNDELIVERED) {
                        std::lock_guard<std::mutex> g(mu);
                        undelivered.insert(seq);
                        return;
                    }
                    /* connection errors: an exception that must not reach C */
                    throw std::runtime_error("thrown from on_error");
                })
                .on_log([&](int level, std::string_view msg) {
                    if (level == PANELAGENT_LOG_ERROR &&
                        msg.find("thrown from on_error") != std::string_view::npos)
                        logs_of_throw++;
                });
            panelagent::Client cl(c);
            expect_error("submitting an invalid frame -> Error EFRAME with the reason",
                         PANELAGENT_EFRAME, "server", [&cl] { cl.submit(panelagent::Frame()); });
            uint64_t s1 = cl.submit(valid_frame());
            uint64_t s2 = cl.submit(valid_frame("2001:db8::5"));
            check(s1 >= 1 && s2 > s1, "submit returns increasing seqs",
                  std::to_string(s1) + ", " + std::to_string(s2));
            bool qf = false;
            try {
                cl.submit(valid_frame());
            } catch (const panelagent::QueueFull &e) {
                qf = e.code() == PANELAGENT_EAGAIN;
            } catch (const panelagent::Error &e) {
                check(false, "third submit", std::string("Error, not QueueFull: ") + e.what());
            }
            check(qf, "submit to a full queue (2 frames) throws QueueFull (EAGAIN)");
            check(cl.stat(PANELAGENT_STAT_REJECTED_FULL) == 1, "stats count the refused submit");
            bool caught = wait_for([&] { return cl.callback_exceptions() > 0; }, 10000);
            check(caught, "a throwing on_error callback is caught and counted",
                  std::to_string(cl.callback_exceptions()));
            check(logs_of_throw.load() > 0, "... and reported through on_log");
            check(!cl.flush(200), "flush(200 ms) with an unreachable gateway -> false");
            auto t0 = std::chrono::steady_clock::now();
            int n = cl.close(300);
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            check(n == 2, "close(300 ms) returns the undelivered count 2", std::to_string(n));
            check(ms < 5000, "close(300 ms) returns in time", std::to_string(ms) + " ms");
            {
                std::lock_guard<std::mutex> g(mu);
                check(undelivered == std::set<uint64_t>{s1, s2},
                      "on_error saw EUNDELIVERED for each queued seq");
            }
            check(cl.close(0) == 0 && !cl.is_open(), "a second close() is a no-op");
            expect_error("submit after close -> Error ECLOSED", PANELAGENT_ECLOSED, "",
                         [&cl] { cl.submit(valid_frame()); });
        }
        {
            /* the destructor closes (short timeout) and never throws */
            auto t0 = std::chrono::steady_clock::now();
            {
                panelagent::Config c;
                c.gateway("127.0.0.1", dead_port).ca_file(ca).cert_file(cert).key_file(key);
                panelagent::Client cl(c);
                cl.close_timeout(100);
                cl.submit(valid_frame());
            }
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            check(ms < 5000, "~Client with a frame pending returns (close_timeout 100 ms)",
                  std::to_string(ms) + " ms");
        }

        /* ---- a real gateway ---------------------------------------------------- */
        if (!gw_host.empty()) {
            std::atomic<int> acks{0};
            panelagent::Config c;
            /* a dead gateway first: the client fails over to the real one */
            std::string real = (gw_host.find(':') != std::string::npos ? "[" + gw_host + "]"
                                                                        : gw_host) +
                               ":" + std::to_string(gw_port);
            c.gateways(std::vector<std::string>{"127.0.0.1:" + std::to_string(dead_port), real})
                .ca_file(ca).cert_file(cert).key_file(key);
            if (!gw_name.empty())
                c.gateway_name(gw_name);
            c.on_ack([&](uint64_t) {
                    acks++;
                    throw 42; /* not even a std::exception: still caught */
                });
            panelagent::Client cl(c);
            for (int i = 0; i < 3; i++)
                cl.submit(valid_frame());
            check(cl.flush(20000), "gateway: flush(20 s) -> every frame answered");
            panelagent::Stats st = cl.stats();
            check(st.acked == 3 && st.submitted == 3 && st.queued == 0,
                  "gateway: stats submitted=3 acked=3 queued=0",
                  std::to_string(st.submitted) + "/" + std::to_string(st.acked) + "/" +
                      std::to_string(st.queued));
            /* flush can return while the last ack callback still runs */
            bool all = wait_for([&] { return acks.load() == 3 && cl.callback_exceptions() == 3; }, 5000);
            check(all, "gateway: 3 acks, each callback's throw caught",
                  std::to_string(acks.load()) + " acks, " + std::to_string(cl.callback_exceptions()) +
                      " caught");
            check(cl.close(5000) == 0, "gateway: close -> 0 undelivered");
        }
    } catch (const std::exception &e) {
        check(false, "unexpected exception", e.what());
    }
    std::printf("%d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
