/*
 * panelagent.hpp - header-only C++ wrapper over libpanelagent (panelagent.h).
 *
 * Needs C++17 (std::string_view, inline variables); link the shared
 * library `panelagent`.  Everything here is a thin RAII layer: the C
 * library does the work and its rules hold (panelagent.h, docs/SDK.md).
 *
 *   panelagent::Config cfg;
 *   cfg.gateway("panel.example.net", 8443).ca_file("ca.crt")
 *      .cert_file("edge-01.crt").key_file("edge-01.key")
 *      .on_ack([](uint64_t seq) { ... })
 *      .on_error([](int err, uint64_t seq, std::string_view detail) { ... });
 *   panelagent::Client client(cfg);             // throws panelagent::Error
 *   panelagent::Frame f;
 *   f.server("edge-01", PANELAGENT_KIND_NIMBLE, "nimble-agent/1.0")
 *    .load(12.5, used, total).traffic(in, out, 5000)
 *    .stream("default", "live", "_definst_", "cam1", 10, 2500000, bin, bout);
 *   uint64_t seq = client.submit(std::move(f)); // throws QueueFull / Error
 *
 * Errors: every failing call throws panelagent::Error (code() is the
 * PANELAGENT_E* value, what() the library's reason: for a frame the text
 * of panelagent_frame_error(), for a client the err buffer).  A full queue
 * (PANELAGENT_EAGAIN) throws panelagent::QueueFull, derived from Error, so
 * that a caller can drop or keep the frame's data and try again later.
 *
 * Ownership: Frame is move-only and owns its panelagent_frame; submit()
 * consumes it (the C library frees it whatever the result).  Client owns
 * the panelagent_client and the callbacks (std::function copies made when
 * the client is constructed, kept alive until it is closed).  A Config may
 * be reused or destroyed once a Client was made from it.
 *
 * Threading: as in C.  Client is thread-safe except close()/destruction,
 * which must not race with other calls on the same object.  Callbacks run
 * on the library's I/O thread (log: any library thread); they must not
 * block for long and must not call flush()/close() (Error with
 * PANELAGENT_EBUSY).  An exception thrown by a callback never reaches the
 * C library: it is caught, reported through the log callback (level
 * PANELAGENT_LOG_ERROR) when there is one, and counted
 * (Client::callback_exceptions()).
 *
 * The destructor closes the client with close_timeout() (default 2000 ms)
 * and never throws; frames still unacknowledged then are reported with
 * PANELAGENT_EUNDELIVERED through on_error.  Call close() yourself to
 * choose the time and learn the count.  Never destroy a Client from one of
 * its own callbacks: the library refuses to close from there
 * (PANELAGENT_EBUSY) and the client would be leaked.
 */
#ifndef PANELAGENT_HPP
#define PANELAGENT_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "panelagent.hpp needs C++17"
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "panelagent.h"

namespace panelagent {

/* "PANELAGENT_EAGAIN" for PANELAGENT_EAGAIN; "PANELAGENT_E?" when unknown. */
inline const char *err_name(int code) noexcept
{
    switch (code) {
#define PANELAGENT_HPP_NAME(c) case c: return #c;
        PANELAGENT_HPP_NAME(PANELAGENT_OK)
        PANELAGENT_HPP_NAME(PANELAGENT_EINVAL)
        PANELAGENT_HPP_NAME(PANELAGENT_ENOMEM)
        PANELAGENT_HPP_NAME(PANELAGENT_EAGAIN)
        PANELAGENT_HPP_NAME(PANELAGENT_ETIMEDOUT)
        PANELAGENT_HPP_NAME(PANELAGENT_ECLOSED)
        PANELAGENT_HPP_NAME(PANELAGENT_ELIMIT)
        PANELAGENT_HPP_NAME(PANELAGENT_EFRAME)
        PANELAGENT_HPP_NAME(PANELAGENT_EIO)
        PANELAGENT_HPP_NAME(PANELAGENT_ECONFIG)
        PANELAGENT_HPP_NAME(PANELAGENT_ECONNECT)
        PANELAGENT_HPP_NAME(PANELAGENT_ETLS)
        PANELAGENT_HPP_NAME(PANELAGENT_EPROTOCOL)
        PANELAGENT_HPP_NAME(PANELAGENT_EGATEWAY_CERT)
        PANELAGENT_HPP_NAME(PANELAGENT_EGATEWAY_PIN)
        PANELAGENT_HPP_NAME(PANELAGENT_ENOT_REGISTERED)
        PANELAGENT_HPP_NAME(PANELAGENT_EREVOKED)
        PANELAGENT_HPP_NAME(PANELAGENT_ECERT_REJECTED)
        PANELAGENT_HPP_NAME(PANELAGENT_ERATE_LIMITED)
        PANELAGENT_HPP_NAME(PANELAGENT_EREJECTED)
        PANELAGENT_HPP_NAME(PANELAGENT_EDROPPED)
        PANELAGENT_HPP_NAME(PANELAGENT_EUNDELIVERED)
        PANELAGENT_HPP_NAME(PANELAGENT_EBUSY)
        PANELAGENT_HPP_NAME(PANELAGENT_EINTERNAL)
#undef PANELAGENT_HPP_NAME
    }
    return "PANELAGENT_E?";
}

/* A failed call: the PANELAGENT_E* code and the library's reason. */
class Error : public std::runtime_error {
public:
    Error(int code, const std::string &what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }
    const char *name() const noexcept { return err_name(code_); }

    /* what = "context: reason" (reason = strerror when |detail| is empty) */
    static std::string describe(int code, const char *context, const char *detail)
    {
        std::string s(context);
        s += ": ";
        s += (detail != nullptr && detail[0] != '\0') ? detail : panelagent_strerror(code);
        s += " (";
        s += err_name(code);
        s += ")";
        return s;
    }

private:
    int code_;
};

/* submit() on a full queue (PANELAGENT_EAGAIN, policy
 * PANELAGENT_QUEUE_REJECT_NEW): the frame was not queued. */
class QueueFull : public Error {
public:
    explicit QueueFull(const std::string &what) : Error(PANELAGENT_EAGAIN, what) {}
};

/* The library's static description; throws Error when it is older than
 * this header. */
inline const panelagent_info &version()
{
    const panelagent_info *i = panelagent_version(PANELAGENT_INFO_AGE);
    if (i == nullptr)
        throw Error(PANELAGENT_EINVAL, "panelagent_version: library older than the header");
    return *i;
}

/* A new P-256 key (0600) and a CSR for it (panelagent_keygen). */
inline void keygen(const std::string &key_path, const std::string &csr_path,
                   const std::string &common_name)
{
    char err[256] = "";
    int rv = panelagent_keygen(key_path.c_str(), csr_path.c_str(), common_name.c_str(), err,
                               sizeof err);
    if (rv != PANELAGENT_OK)
        throw Error(rv, Error::describe(rv, "keygen", err));
}

using AckFn = std::function<void(uint64_t seq)>;
using ErrorFn = std::function<void(int err, uint64_t seq, std::string_view detail)>;
using LogFn = std::function<void(int level, std::string_view msg)>;

class Client;

/* Options and callbacks for a Client.  Setters throw Error
 * (PANELAGENT_EINVAL) for a value the library refuses. */
class Config {
public:
    Config()
    {
        int rv = panelagent_config_new(&c_);
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "panelagent_config_new", nullptr));
    }
    ~Config() { panelagent_config_free(c_); }
    Config(const Config &) = delete;
    Config &operator=(const Config &) = delete;
    Config(Config &&o) noexcept
        : c_(std::exchange(o.c_, nullptr)), ack_(std::move(o.ack_)),
          error_(std::move(o.error_)), log_(std::move(o.log_))
    {
    }
    Config &operator=(Config &&o) noexcept
    {
        if (this != &o) {
            panelagent_config_free(c_);
            c_ = std::exchange(o.c_, nullptr);
            ack_ = std::move(o.ack_);
            error_ = std::move(o.error_);
            log_ = std::move(o.log_);
        }
        return *this;
    }

    /* Any string option; an empty optional-like reset is set(id, nullptr). */
    Config &set(panelagent_opt id, const char *v)
    {
        check(panelagent_config_set_str(get(), id, v), "config string option", id);
        return *this;
    }
    Config &set(panelagent_opt id, const std::string &v) { return set(id, v.c_str()); }
    Config &set(panelagent_opt id, int64_t v)
    {
        check(panelagent_config_set_i64(get(), id, v), "config integer option", id);
        return *this;
    }
    Config &set(panelagent_opt id, int v) { return set(id, static_cast<int64_t>(v)); }

    Config &gateway(const std::string &host, int port = 8443)
    {
        set(PANELAGENT_OPT_GATEWAY_HOST, host);
        return set(PANELAGENT_OPT_GATEWAY_PORT, static_cast<int64_t>(port));
    }
    /* Several gateways instead of gateway(): "host[:port],[v6]:port,..."
     * (PANELAGENT_OPT_GATEWAYS; a missing port is GATEWAY_PORT).  The
     * client fails over from one to the next with its unacknowledged
     * frames (same seqs). */
    Config &gateways(const std::string &list) { return set(PANELAGENT_OPT_GATEWAYS, list); }
    Config &gateways(const std::vector<std::string> &list)
    {
        std::string joined;
        for (const std::string &g : list)
            joined += (joined.empty() ? "" : ",") + g;
        return gateways(joined);
    }
    Config &gateway_name(const std::string &sni) { return set(PANELAGENT_OPT_GATEWAY_NAME, sni); }
    Config &gateway_pin(const std::string &hex) { return set(PANELAGENT_OPT_GATEWAY_PIN, hex); }
    Config &ca_file(const std::string &p) { return set(PANELAGENT_OPT_CA_FILE, p); }
    Config &cert_file(const std::string &p) { return set(PANELAGENT_OPT_CERT_FILE, p); }
    Config &key_file(const std::string &p) { return set(PANELAGENT_OPT_KEY_FILE, p); }
    Config &seq_file(const std::string &p) { return set(PANELAGENT_OPT_SEQ_FILE, p); }
    Config &queue(int64_t max_frames, int policy = PANELAGENT_QUEUE_REJECT_NEW)
    {
        set(PANELAGENT_OPT_QUEUE_MAX_FRAMES, max_frames);
        return set(PANELAGENT_OPT_QUEUE_POLICY, static_cast<int64_t>(policy));
    }

    /* Callbacks, copied into each Client made from this Config. */
    Config &on_ack(AckFn fn)
    {
        ack_ = std::move(fn);
        return *this;
    }
    Config &on_error(ErrorFn fn)
    {
        error_ = std::move(fn);
        return *this;
    }
    Config &on_log(LogFn fn)
    {
        log_ = std::move(fn);
        return *this;
    }

    /* The C handle (callbacks are attached only while a Client is made). */
    panelagent_config *get() const
    {
        if (c_ == nullptr)
            throw Error(PANELAGENT_EINVAL, "panelagent::Config: moved from");
        return c_;
    }

private:
    friend class Client;

    static void check(int rv, const char *what, int id)
    {
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, (std::string(what) + " " + std::to_string(id)).c_str(),
                                            nullptr));
    }

    panelagent_config *c_ = nullptr;
    AckFn ack_;
    ErrorFn error_;
    LogFn log_;
};

/* One stats frame under construction.  Move-only; every builder method
 * returns *this and throws Error (code, panelagent_frame_error() text) when
 * the library refuses the value; the frame is then unchanged. */
class Frame {
public:
    Frame()
    {
        int rv = panelagent_frame_new(&f_);
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "panelagent_frame_new", nullptr));
    }
    /* Takes ownership of a C frame (may be nullptr: an empty Frame). */
    explicit Frame(panelagent_frame *f) noexcept : f_(f) {}
    /* A frame from an encoded v1 frame (fully validated). */
    static Frame from_msgpack(const uint8_t *buf, size_t len)
    {
        panelagent_frame *f = nullptr;
        char err[256] = "";
        int rv = panelagent_frame_new_msgpack(&f, buf, len, err, sizeof err);
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "frame from msgpack", err));
        return Frame(f);
    }
    ~Frame() { panelagent_frame_free(f_); }
    Frame(const Frame &) = delete;
    Frame &operator=(const Frame &) = delete;
    Frame(Frame &&o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    Frame &operator=(Frame &&o) noexcept
    {
        if (this != &o) {
            panelagent_frame_free(f_);
            f_ = std::exchange(o.f_, nullptr);
        }
        return *this;
    }

    Frame &server(const std::string &name, int kind, const std::string &agent_version)
    {
        return ok(panelagent_frame_set_server(get(), name.c_str(), kind, agent_version.c_str()),
                  "server");
    }
    Frame &server_ip(const std::string &ip)
    {
        return ok(panelagent_frame_add_server_ip(get(), ip.c_str()), "server ip");
    }
    Frame &time(uint64_t ts_ms) { return ok(panelagent_frame_set_time(get(), ts_ms), "time"); }
    Frame &load(double cpu_pct, uint64_t ram_used, uint64_t ram_total)
    {
        return ok(panelagent_frame_set_load(get(), cpu_pct, ram_used, ram_total), "load");
    }
    Frame &traffic(uint64_t bytes_in, uint64_t bytes_out, uint64_t period_ms)
    {
        return ok(panelagent_frame_set_traffic(get(), bytes_in, bytes_out, period_ms), "traffic");
    }
    Frame &stream(const std::string &vhost, const std::string &app, const std::string &instance,
                  const std::string &name, uint64_t viewers, uint64_t bitrate_bps,
                  uint64_t bytes_in, uint64_t bytes_out)
    {
        return ok(panelagent_frame_add_stream(get(), vhost.c_str(), app.c_str(), instance.c_str(),
                                              name.c_str(), viewers, bitrate_bps, bytes_in,
                                              bytes_out),
                  "stream");
    }
    Frame &conn(const std::string &ip, uint64_t bytes_in, uint64_t bytes_out)
    {
        return ok(panelagent_frame_add_conn(get(), ip.c_str(), bytes_in, bytes_out), "conn");
    }
    Frame &conn_raw(const uint8_t *addr, size_t addr_len, uint64_t bytes_in, uint64_t bytes_out)
    {
        return ok(panelagent_frame_add_conn_raw(get(), addr, addr_len, bytes_in, bytes_out),
                  "conn");
    }

    /* The configuration map.  |key| is nullptr inside an array. */
    Frame &config(const char *key, const std::string &v)
    {
        return ok(panelagent_frame_config_str(get(), key, v.c_str()), "config");
    }
    Frame &config(const char *key, const char *v)
    {
        return ok(panelagent_frame_config_str(get(), key, v), "config");
    }
    Frame &config(const char *key, int64_t v)
    {
        return ok(panelagent_frame_config_i64(get(), key, v), "config");
    }
    Frame &config(const char *key, int v) { return config(key, static_cast<int64_t>(v)); }
    Frame &config(const char *key, double v)
    {
        return ok(panelagent_frame_config_f64(get(), key, v), "config");
    }
    Frame &config(const char *key, bool v)
    {
        return ok(panelagent_frame_config_bool(get(), key, v ? 1 : 0), "config");
    }
    Frame &config_begin_map(const char *key)
    {
        return ok(panelagent_frame_config_begin_map(get(), key), "config");
    }
    Frame &config_begin_array(const char *key)
    {
        return ok(panelagent_frame_config_begin_array(get(), key), "config");
    }
    Frame &config_end() { return ok(panelagent_frame_config_end(get()), "config"); }

    /* Validates the whole frame as the gateway will; throws Error
     * (PANELAGENT_EFRAME) otherwise. */
    void check() { ok(panelagent_frame_check(get()), "frame check"); }

    /* The encoded frame with |seq| (tools and tests; a client encodes
     * frames itself). */
    std::vector<uint8_t> encode(uint64_t seq)
    {
        uint8_t *buf = nullptr;
        size_t len = 0;
        ok(panelagent_frame_encode(get(), seq, &buf, &len), "frame encode");
        std::unique_ptr<uint8_t, void (*)(void *)> hold(buf, panelagent_free);
        return std::vector<uint8_t>(buf, buf + len);
    }

    /* The reason of the last failed call, "" when none. */
    std::string error() const
    {
        return f_ != nullptr ? std::string(panelagent_frame_error(f_)) : std::string();
    }

    explicit operator bool() const noexcept { return f_ != nullptr; }
    panelagent_frame *get() const
    {
        if (f_ == nullptr)
            throw Error(PANELAGENT_EINVAL, "panelagent::Frame: empty (moved from or submitted)");
        return f_;
    }
    /* Gives up ownership. */
    panelagent_frame *release() noexcept { return std::exchange(f_, nullptr); }

private:
    Frame &ok(int rv, const char *what)
    {
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, what, panelagent_frame_error(f_)));
        return *this;
    }

    panelagent_frame *f_ = nullptr;
};

/* Every counter of panelagent_client_stat at one moment (not atomic as a
 * whole: each is read on its own). */
struct Stats {
    uint64_t submitted = 0, acked = 0, queued = 0, queued_bytes = 0, rejected_full = 0,
             dropped_oldest = 0, rejected = 0, retries = 0, connects = 0,
             connect_failures = 0, resumed = 0, last_acked_seq = 0, undelivered = 0;
};

/* A running client (panelagent_client). */
class Client {
public:
    static constexpr int kDefaultCloseTimeoutMs = 2000;

    /* Starts the client; throws Error with the library's reason
     * (PANELAGENT_ECONFIG: which option or file). */
    explicit Client(const Config &cfg) : cb_(new Callbacks)
    {
        cb_->ack = cfg.ack_;
        cb_->error = cfg.error_;
        cb_->log = cfg.log_;
        panelagent_config *c = cfg.get();
        // The callbacks are attached to the C config only for the call: the
        // client copies them, and the Config stays free of pointers into
        // this object.
        struct Detach {
            panelagent_config *c;
            ~Detach()
            {
                panelagent_config_set_ack(c, nullptr, nullptr);
                panelagent_config_set_error(c, nullptr, nullptr);
                panelagent_config_set_log(c, nullptr, nullptr);
            }
        } detach{c};
        Callbacks *ud = cb_.get();
        int rv = panelagent_config_set_ack(c, cb_->ack ? &Client::ack_tramp : nullptr, ud);
        if (rv == PANELAGENT_OK)
            rv = panelagent_config_set_error(c, cb_->error ? &Client::error_tramp : nullptr, ud);
        if (rv == PANELAGENT_OK)
            rv = panelagent_config_set_log(c, cb_->log ? &Client::log_tramp : nullptr, ud);
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "client callbacks", nullptr));
        char err[512] = "";
        rv = panelagent_client_new(&cl_, c, err, sizeof err);
        if (rv != PANELAGENT_OK) {
            cl_ = nullptr;
            throw Error(rv, Error::describe(rv, "panelagent_client_new", err));
        }
    }

    /* Closes with close_timeout(); never throws. */
    ~Client()
    {
        if (cl_ != nullptr)
            (void)panelagent_client_close(cl_, close_timeout_ms_);
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    Client(Client &&o) noexcept
        : cb_(std::move(o.cb_)), cl_(std::exchange(o.cl_, nullptr)),
          close_timeout_ms_(o.close_timeout_ms_)
    {
    }
    Client &operator=(Client &&o) noexcept
    {
        if (this != &o) {
            if (cl_ != nullptr)
                (void)panelagent_client_close(cl_, close_timeout_ms_);
            cb_ = std::move(o.cb_);
            cl_ = std::exchange(o.cl_, nullptr);
            close_timeout_ms_ = o.close_timeout_ms_;
        }
        return *this;
    }

    /* Queues |f| (consumed whatever the result) and returns its seq.
     * Throws QueueFull (PANELAGENT_EAGAIN), or Error: PANELAGENT_EFRAME
     * with the reason, PANELAGENT_ECLOSED, ... */
    uint64_t submit(Frame &&f)
    {
        panelagent_client *cl = get();
        panelagent_frame *raw = f.release();
        if (raw == nullptr)
            throw Error(PANELAGENT_EINVAL, "submit: empty frame (moved from or submitted)");
        uint64_t seq = 0;
        char err[512] = "";
        int rv = panelagent_client_submit_take(cl, raw, &seq, err, sizeof err);
        if (rv == PANELAGENT_EAGAIN)
            throw QueueFull(Error::describe(rv, "submit", err));
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "submit", err));
        return seq;
    }

    /* true when everything submitted before was acknowledged or finally
     * failed, false when |timeout_ms| ran out (< 0: waits for ever).
     * Throws Error (PANELAGENT_EBUSY) from a callback. */
    bool flush(int timeout_ms)
    {
        int rv = panelagent_client_flush(get(), timeout_ms);
        if (rv == PANELAGENT_ETIMEDOUT)
            return false;
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "flush", nullptr));
        return true;
    }

    /* Flushes for up to |timeout_ms| (< 0: for ever), stops the client and
     * returns how many frames were undelivered (each also reported with
     * PANELAGENT_EUNDELIVERED).  0 when already closed.  Throws Error
     * (PANELAGENT_EBUSY) from a callback; the client is then still open. */
    int close(int timeout_ms)
    {
        if (cl_ == nullptr)
            return 0;
        int rv = panelagent_client_close(cl_, timeout_ms);
        if (rv == PANELAGENT_EBUSY)
            throw Error(rv, Error::describe(rv, "close", nullptr));
        cl_ = nullptr;
        if (rv < 0)
            throw Error(rv, Error::describe(rv, "close", nullptr));
        return rv;
    }

    uint64_t stat(panelagent_stat id) const
    {
        uint64_t v = 0;
        int rv = panelagent_client_stat(get(), id, &v);
        if (rv != PANELAGENT_OK)
            throw Error(rv, Error::describe(rv, "stat", nullptr));
        return v;
    }
    Stats stats() const
    {
        Stats s;
        s.submitted = stat(PANELAGENT_STAT_SUBMITTED);
        s.acked = stat(PANELAGENT_STAT_ACKED);
        s.queued = stat(PANELAGENT_STAT_QUEUED);
        s.queued_bytes = stat(PANELAGENT_STAT_QUEUED_BYTES);
        s.rejected_full = stat(PANELAGENT_STAT_REJECTED_FULL);
        s.dropped_oldest = stat(PANELAGENT_STAT_DROPPED_OLDEST);
        s.rejected = stat(PANELAGENT_STAT_REJECTED);
        s.retries = stat(PANELAGENT_STAT_RETRIES);
        s.connects = stat(PANELAGENT_STAT_CONNECTS);
        s.connect_failures = stat(PANELAGENT_STAT_CONNECT_FAILURES);
        s.resumed = stat(PANELAGENT_STAT_RESUMED);
        s.last_acked_seq = stat(PANELAGENT_STAT_LAST_ACKED_SEQ);
        s.undelivered = stat(PANELAGENT_STAT_UNDELIVERED);
        return s;
    }

    /* Exceptions thrown by this client's callbacks (caught, never passed
     * to the library). */
    uint64_t callback_exceptions() const noexcept
    {
        return cb_ ? cb_->exceptions.load(std::memory_order_relaxed) : 0;
    }

    void close_timeout(int ms) noexcept { close_timeout_ms_ = ms; }
    int close_timeout() const noexcept { return close_timeout_ms_; }

    bool is_open() const noexcept { return cl_ != nullptr; }
    panelagent_client *get() const
    {
        if (cl_ == nullptr)
            throw Error(PANELAGENT_ECLOSED, "panelagent::Client: closed");
        return cl_;
    }

private:
    struct Callbacks {
        AckFn ack;
        ErrorFn error;
        LogFn log;
        std::atomic<uint64_t> exceptions{0};

        /* Reports a callback's exception through the log callback; never
         * throws. */
        void caught(const char *which, const char *what) noexcept
        {
            exceptions.fetch_add(1, std::memory_order_relaxed);
            if (!log)
                return;
            try {
                std::string m = "panelagent.hpp: the ";
                m += which;
                m += " callback threw: ";
                m += what;
                log(PANELAGENT_LOG_ERROR, m);
            } catch (...) {
                // the log callback threw as well: nothing left to tell
            }
        }
    };

    static void ack_tramp(uint64_t seq, void *ud) noexcept
    {
        auto *cb = static_cast<Callbacks *>(ud);
        try {
            cb->ack(seq);
        } catch (const std::exception &e) {
            cb->caught("ack", e.what());
        } catch (...) {
            cb->caught("ack", "unknown exception");
        }
    }
    static void error_tramp(int err, uint64_t seq, const char *detail, void *ud) noexcept
    {
        auto *cb = static_cast<Callbacks *>(ud);
        try {
            cb->error(err, seq, std::string_view(detail != nullptr ? detail : ""));
        } catch (const std::exception &e) {
            cb->caught("error", e.what());
        } catch (...) {
            cb->caught("error", "unknown exception");
        }
    }
    static void log_tramp(int level, const char *msg, void *ud) noexcept
    {
        auto *cb = static_cast<Callbacks *>(ud);
        try {
            cb->log(level, std::string_view(msg != nullptr ? msg : ""));
        } catch (...) {
            // a throwing log callback cannot report itself
            cb->exceptions.fetch_add(1, std::memory_order_relaxed);
        }
    }

    std::unique_ptr<Callbacks> cb_;
    panelagent_client *cl_ = nullptr;
    int close_timeout_ms_ = kDefaultCloseTimeoutMs;
};

} // namespace panelagent

#endif /* PANELAGENT_HPP */
