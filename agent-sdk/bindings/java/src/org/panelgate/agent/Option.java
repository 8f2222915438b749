package org.panelgate.agent;

/**
 * The {@code PANELAGENT_OPT_*} option identifiers of panelagent.h (same
 * numbers; defaults and ranges are documented there). String options are
 * set with {@link Config#set(int, String)}, integer ones with
 * {@link Config#set(int, long)}.
 */
public final class Option {
    private Option() {}

    /* strings */
    public static final int GATEWAY_HOST = 1;
    public static final int GATEWAY_NAME = 2;
    public static final int CA_FILE = 3;
    public static final int CERT_FILE = 4;
    public static final int KEY_FILE = 5;
    public static final int GATEWAY_PIN = 6;
    public static final int SEQ_FILE = 7;
    /** Several gateways instead of GATEWAY_HOST/PORT: "host[:port],[v6]:port,...". */
    public static final int GATEWAYS = 8;
    /* integers */
    public static final int GATEWAY_PORT = 20;
    public static final int QUEUE_MAX_FRAMES = 21;
    public static final int QUEUE_MAX_BYTES = 22;
    public static final int QUEUE_POLICY = 23;
    public static final int MAX_IN_FLIGHT = 24;
    public static final int CONNECT_TIMEOUT_MS = 25;
    public static final int REQUEST_TIMEOUT_MS = 26;
    public static final int BACKOFF_INITIAL_MS = 27;
    public static final int BACKOFF_MAX_MS = 28;
    public static final int REFUSED_BACKOFF_MS = 29;
    public static final int IDLE_TIMEOUT_MS = 30;

    /** {@link #QUEUE_POLICY}: submit throws {@link QueueFullException}. */
    public static final int QUEUE_REJECT_NEW = 0;
    /** {@link #QUEUE_POLICY}: the oldest unsent frames are dropped (reported EDROPPED). */
    public static final int QUEUE_DROP_OLDEST = 1;
}
