package org.panelgate.agent;

/** The {@code PANELAGENT_STAT_*} counters of panelagent.h, for {@link PanelAgent#stat(int)}. */
public final class Stat {
    private Stat() {}

    public static final int SUBMITTED = 1;
    public static final int ACKED = 2;
    public static final int QUEUED = 3;
    public static final int QUEUED_BYTES = 4;
    public static final int REJECTED_FULL = 5;
    public static final int DROPPED_OLDEST = 6;
    public static final int REJECTED = 7;
    public static final int RETRIES = 8;
    public static final int CONNECTS = 9;
    public static final int CONNECT_FAILURES = 10;
    public static final int RESUMED = 11;
    public static final int LAST_ACKED_SEQ = 12;
    public static final int UNDELIVERED = 13;
}
