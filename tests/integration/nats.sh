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
