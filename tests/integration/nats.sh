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
# Written here as docs/STORAGE.md lays it out, with jstool (libnats alone),
# until panelgatectl --config FILE writes the bucket (branch regkv).
#
#   kv_record NAME KIND CERT ID [STATUS]   prints the server record's JSON
#   kv_key NAME                            prints its key ("." as "=2e")
#   kv_register NAME KIND CERT ID          the record (active), its pin
#                                          index, next_id and schema
#   kv_revoke NAME KIND CERT ID            the record, status revoked
#   kv_put KEY VALUE                       any value (e.g. a broken one)
#   kv_del KEY                             deletes a key (as an erase does)
# KV_BUCKET (default panelgate_registry) names the bucket, NATS_URLS the
# cluster; each write retries for a few seconds (a node may be electing a
# leader) and is fatal when it never succeeds.
KV_BUCKET=${KV_BUCKET:-panelgate_registry}
KV_JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
kv_key() { echo "server.${1//./=2e}"; }
kv_record() {
    local pin now
    pin=$(spki "$3")
    now=$(date +%s)
    printf '{"id":%d,"name":"%s","kind":"%s","status":"%s","created_at":%d,"pins":[{"spki_sha256":"%s","created_at":%d,"not_after":null}]}' \
        "$4" "$1" "$2" "${5:-active}" "$now" "$pin" "$now"
}
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
kv_register() {
    kv_put schema 1
    kv_put "pin.$(spki "$3")" "{\"server\":\"$1\",\"id\":$4}"
    kv_put next_id "$4"
    kv_put "$(kv_key "$1")" "$(kv_record "$1" "$2" "$3" "$4")"
}
kv_revoke() { kv_put "$(kv_key "$1")" "$(kv_record "$1" "$2" "$3" "$4" revoked)"; }
