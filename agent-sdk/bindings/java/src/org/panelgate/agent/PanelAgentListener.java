package org.panelgate.agent;

/**
 * What a {@link PanelAgent} reports. Every method runs on the library's I/O
 * thread (onLog: any library thread; EUNDELIVERED reports may also run on
 * the thread that calls {@link PanelAgent#close(int)}), attached to the JVM
 * as a daemon thread named "panelagent-io". Return quickly: do not block,
 * do not call {@link PanelAgent#flush} or {@link PanelAgent#close} (they
 * throw EBUSY there), do not wait for a lock that a thread calling close()
 * may hold. {@link PanelAgent#submit} is allowed. An exception thrown here
 * is caught and reported through {@link #onLog} (level ERROR); it never
 * reaches the library.
 */
public interface PanelAgentListener {
    /** The gateway acknowledged frame {@code seq} (committed to storage). seq is unsigned. */
    default void onAck(long seq) {}

    /**
     * A reported error ({@link ErrorCode}): {@code seq} the frame it
     * concerns (0 for the connection). EREJECTED, EDROPPED and
     * EUNDELIVERED mean that frame is gone; connection errors are retried.
     */
    default void onError(int code, long seq, String detail) {}

    /** A log line of the library (never key material or viewer addresses). */
    default void onLog(int level, String message) {}
}
