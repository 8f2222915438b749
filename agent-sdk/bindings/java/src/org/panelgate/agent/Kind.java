package org.panelgate.agent;

/** Agent kinds ({@code PANELAGENT_KIND_*}), for {@link Frame#setServer}. */
public final class Kind {
    private Kind() {}

    public static final int NIMBLE = 1;
    public static final int WOWZA = 2;
}
