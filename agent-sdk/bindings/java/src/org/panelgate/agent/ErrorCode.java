package org.panelgate.agent;

/**
 * The {@code PANELAGENT_E*} codes of panelagent.h (append-only, same
 * numbers). Calls report them as {@link PanelAgentException#getCode()};
 * the library's I/O thread reports the "reported" ones (from
 * {@link #ECONNECT} on) through {@link PanelAgentListener#onError}.
 */
public final class ErrorCode {
    private ErrorCode() {}

    public static final int OK = 0;
    public static final int EINVAL = -1;
    public static final int ENOMEM = -2;
    public static final int EAGAIN = -3;
    public static final int ETIMEDOUT = -4;
    public static final int ECLOSED = -5;
    public static final int ELIMIT = -6;
    public static final int EFRAME = -7;
    public static final int EIO = -8;
    public static final int ECONFIG = -9;
    public static final int ECONNECT = -10;
    public static final int ETLS = -11;
    public static final int EPROTOCOL = -12;
    public static final int EGATEWAY_CERT = -13;
    public static final int EGATEWAY_PIN = -14;
    public static final int ENOT_REGISTERED = -15;
    public static final int EREVOKED = -16;
    public static final int ECERT_REJECTED = -17;
    public static final int ERATE_LIMITED = -18;
    public static final int EREJECTED = -19;
    public static final int EDROPPED = -20;
    public static final int EUNDELIVERED = -21;
    public static final int EBUSY = -22;
    public static final int EINTERNAL = -23;

    private static final String[] NAMES = {
        "OK", "EINVAL", "ENOMEM", "EAGAIN", "ETIMEDOUT", "ECLOSED", "ELIMIT", "EFRAME", "EIO",
        "ECONFIG", "ECONNECT", "ETLS", "EPROTOCOL", "EGATEWAY_CERT", "EGATEWAY_PIN",
        "ENOT_REGISTERED", "EREVOKED", "ECERT_REJECTED", "ERATE_LIMITED", "EREJECTED",
        "EDROPPED", "EUNDELIVERED", "EBUSY", "EINTERNAL",
    };

    /** "EAGAIN" for {@link #EAGAIN}; "E?" for a code this binding does not know. */
    public static String name(int code) {
        return code <= 0 && -code < NAMES.length ? NAMES[-code] : "E?";
    }

    /** The library's description of {@code code} (panelagent_strerror). */
    public static String describe(int code) {
        return Native.utf8(Native.strerror(code));
    }
}
