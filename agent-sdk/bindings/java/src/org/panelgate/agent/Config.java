package org.panelgate.agent;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Options and the listener of a {@link PanelAgent}: a plain Java builder.
 * Each setter checks its value with the library at once and throws
 * {@link PanelAgentException} (EINVAL) when it is refused; whether the
 * whole configuration is usable (files readable, key matching the
 * certificate) is checked by {@code new PanelAgent(config)} (ECONFIG).
 * A Config can be reused for several clients. Not thread-safe.
 */
public final class Config {
    final Map<Integer, byte[]> strings = new LinkedHashMap<>();
    final Map<Integer, Long> integers = new LinkedHashMap<>();
    PanelAgentListener listener;
    int logLevel = LogLevel.INFO;

    public Config() {
        Native.load();
    }

    /** A string option ({@link Option}); null resets it to its default. */
    public Config set(int option, String value) {
        byte[] b = Native.bytes("option " + option, value);
        int rc = Native.configCheckStr(option, b);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "option " + option, null);
        }
        if (b == null) {
            strings.remove(option);
        } else {
            strings.put(option, b);
        }
        return this;
    }

    /** An integer option ({@link Option}). */
    public Config set(int option, long value) {
        int rc = Native.configCheckI64(option, value);
        if (rc != ErrorCode.OK) {
            throw PanelAgentException.of(rc, "option " + option + " = " + value, null);
        }
        integers.put(option, value);
        return this;
    }

    public Config gateway(String host, int port) {
        set(Option.GATEWAY_HOST, host);
        return set(Option.GATEWAY_PORT, port);
    }

    /**
     * Several gateways instead of {@link #gateway}: each "host", "host:port"
     * or "[v6addr]:port" (a missing port is {@link Option#GATEWAY_PORT}).
     * The client fails over from one to the next with its unacknowledged
     * frames, same seqs (docs/SDK.md).
     */
    public Config gateways(String... hostPorts) {
        return set(Option.GATEWAYS, String.join(",", hostPorts));
    }

    public Config gatewayName(String sni) { return set(Option.GATEWAY_NAME, sni); }
    public Config gatewayPin(String sha256Hex) { return set(Option.GATEWAY_PIN, sha256Hex); }
    public Config caFile(String path) { return set(Option.CA_FILE, path); }
    public Config certFile(String path) { return set(Option.CERT_FILE, path); }
    public Config keyFile(String path) { return set(Option.KEY_FILE, path); }
    public Config seqFile(String path) { return set(Option.SEQ_FILE, path); }

    public Config queue(long maxFrames, int policy) {
        set(Option.QUEUE_MAX_FRAMES, maxFrames);
        return set(Option.QUEUE_POLICY, policy);
    }

    /** Who hears acks, errors and log lines (null: nobody). */
    public Config listener(PanelAgentListener l) {
        this.listener = l;
        return this;
    }

    /**
     * The most verbose {@link LogLevel} passed to onLog (default INFO);
     * more verbose lines are dropped before they reach Java.
     */
    public Config logLevel(int level) {
        this.logLevel = level;
        return this;
    }
}
