package org.panelgate.agent;

/**
 * {@link PanelAgent#submit} on a full queue (code {@link ErrorCode#EAGAIN},
 * policy {@link Option#QUEUE_REJECT_NEW}): the frame was not queued (and
 * it is consumed all the same). Keep the data for the next frame, or drop
 * it, and try again later.
 */
public class QueueFullException extends PanelAgentException {
    private static final long serialVersionUID = 1L;

    public QueueFullException(String message) {
        super(ErrorCode.EAGAIN, message);
    }
}
