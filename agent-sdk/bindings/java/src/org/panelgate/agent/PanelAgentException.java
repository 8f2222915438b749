package org.panelgate.agent;

/**
 * A call the library refused: {@link #getCode()} is the
 * {@code PANELAGENT_E*} value ({@link ErrorCode}), {@link #getName()} its
 * name ("EINVAL"), the message the library's reason (for a frame the text
 * of panelagent_frame_error, e.g. "load.cpu: out of range").
 * Unchecked, so that builder chains stay readable.
 */
public class PanelAgentException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int code;

    public PanelAgentException(int code, String message) {
        super(message + " (" + ErrorCode.name(code) + ")");
        this.code = code;
    }

    /** The PANELAGENT_E* code (negative). */
    public int getCode() {
        return code;
    }

    /** "EINVAL", "EAGAIN", ... */
    public String getName() {
        return ErrorCode.name(code);
    }

    /** The right exception for {@code code}: {@link QueueFullException} for EAGAIN. */
    static PanelAgentException of(int code, String context, String detail) {
        String msg = context + ": "
            + (detail != null && !detail.isEmpty() ? detail : ErrorCode.describe(code));
        return code == ErrorCode.EAGAIN ? new QueueFullException(msg)
                                        : new PanelAgentException(code, msg);
    }
}
