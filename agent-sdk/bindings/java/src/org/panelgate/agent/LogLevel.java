package org.panelgate.agent;

/** Log levels ({@code PANELAGENT_LOG_*}) of {@link PanelAgentListener#onLog}. */
public final class LogLevel {
    private LogLevel() {}

    public static final int ERROR = 0;
    public static final int WARN = 1;
    public static final int INFO = 2;
    public static final int DEBUG = 3;

    public static String name(int level) {
        switch (level) {
        case ERROR: return "error";
        case WARN: return "warn";
        case INFO: return "info";
        case DEBUG: return "debug";
        default: return "log";
        }
    }
}
