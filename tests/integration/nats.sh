# nats.sh - a real NATS JetStream cluster for the integration tests: the
# functions of scripts/nats.sh (read it: nats_cluster_start, nats_wait_ready,
# nats_kill, nats_start_node, nats_stop_all, nats_store_dirs; NATS_URLS,
# NATS_URL) with the node stores under $T/nats, failures as fatal (a "not
# ok" line, then finish) and every node in BG_PIDS, so lib.sh's EXIT trap
# kills the nodes still running.
#
# Source it after lib.sh:   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/nats.sh"
# shellcheck source=../../scripts/nats.sh
. "$PANELGATE_SOURCE_DIR/scripts/nats.sh"
NATS_DIR=$T/nats
nats_note() { note "$@"; }
nats_started() { BG_PIDS+=("$1"); }
nats_fail() { fatal "$@"; }

# ---- the JetStream engine's registry bucket ([jetstream] registry_bucket) ----
# Registrations go through panelgatectl --config (the bucket's own writer);
# jstool (libnats alone) writes raw values, e.g. one that breaks the layout.
#
#   kv_ctl ARGS...               panelgatectl --config $KV_CONF ARGS; the
#                                output in KV_OUT
#   kv_register NAME KIND CERT   panelgatectl register; sets KV_ID to the id
#   kv_revoke NAME               panelgatectl revoke
#   kv_key NAME                  prints the server's key ("." as "=2e")
#   kv_record NAME KIND CERT ID [STATUS]  prints a server record's JSON, as
#                                docs/STORAGE.md lays it out
#   kv_put KEY VALUE             any value, with jstool
#   kv_del KEY                   deletes a key, with jstool
# KV_CONF (default: $GW_CONF at the call) is the configuration panelgatectl
# reads; KV_BUCKET (default panelgate_registry) names the bucket for jstool.
# Each jstool write retries for a few seconds (a node may be electing a
# leader); every helper is fatal when it never succeeds.
KV_BUCKET=${KV_BUCKET:-panelgate_registry}
KV_JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
KV_CTL=${PANELGATE_CTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
KV_ID=
kv_key() { echo "server.${1//./=2e}"; }
kv_record() {
    local pin now
    pin=$(spki "$3")
    now=$(date +%s)
    printf '{"id":%d,"name":"%s","kind":"%s","status":"%s","created_at":%d,"pins":[{"spki_sha256":"%s","created_at":%d,"not_after":null}]}' \
        "$4" "$1" "$2" "${5:-active}" "$now" "$pin" "$now"
}
kv_ctl() { # ARGS...: panelgatectl on the bucket, retried like the jstool
    # writes (so only for a cluster that is settled, or commands safe to
    # repeat: a register that timed out half way fails again with "exists");
    # its output in KV_OUT (not printed: no command substitution around it,
    # so that a failure is fatal to the test, not to a subshell)
    local i
    for ((i = 0; i < 20; i++)); do
        KV_OUT=$("$KV_CTL" --config "${KV_CONF:-$GW_CONF}" --actor test "$@" 2>>"$T/ctl.err") &&
            return 0
        sleep 0.5
    done
    fatal "panelgatectl $* on the bucket (see $T/ctl.err)"
}
kv_register() {
    kv_ctl register "$1" --kind "$2" --cert "$3"
    KV_ID=$(sed -nE 's/.*, id ([0-9]+)$/\1/p' <<<"$KV_OUT")
    [[ -n $KV_ID ]] || fatal "panelgatectl register $1: no id in '$KV_OUT'"
}
kv_revoke() { kv_ctl revoke "$1"; }
kv_put() {
    local i
    for ((i = 0; i < 20; i++)); do
        "$KV_JSTOOL" kv-put "$NATS_URLS" "$KV_BUCKET" "$1" "$2" >/dev/null 2>>"$T/jstool.err" &&
            return 0
        sleep 0.5
    done
    fatal "bucket $KV_BUCKET: put $1 (see $T/jstool.err)"
}
kv_del() {
    local i
    for ((i = 0; i < 20; i++)); do
        "$KV_JSTOOL" kv-del "$NATS_URLS" "$KV_BUCKET" "$1" 2>>"$T/jstool.err" && return 0
        sleep 0.5
    done
    fatal "bucket $KV_BUCKET: delete $1 (see $T/jstool.err)"
}
# kv_register_defaults: nimble-01 and wowza-01 in the bucket (call it before
# the gateway starts: with the engine, a gateway starts only on a registry
# bucket); sets and exports NIMBLE_ID and WOWZA_ID.
kv_register_defaults() {
    kv_register nimble-01 nimble "$PKI/nimble-01.crt"
    NIMBLE_ID=$KV_ID
    kv_register wowza-01 wowza "$PKI/wowza-01.crt"
    WOWZA_ID=$KV_ID
    export NIMBLE_ID WOWZA_ID
}
