#!/usr/bin/env bash
# test_nats_harness.sh - scripts/nats.sh, the NATS harness of the JetStream
# tests and benchmarks, on what it once got wrong:
#  1. nats_cluster_start 1 (the one node bench/run_engines.sh runs replicas
#     1 on): the node runs standalone and its JetStream answers; a clustered
#     node with no routes refused to start ("JetStream cluster requires
#     configured routes"), and the dead node was reported ready;
#  2. nats_wait_ready fails when every node is dead instead of reporting
#     the empty cluster ready.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

nats_cluster_start 1
check "one node: running after nats_cluster_start 1" alive "${NATS_PIDS[1]}"
check "... its JetStream is up (/healthz?js-enabled-only=true)" \
    curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:${NATS_MPORT[1]}/healthz?js-enabled-only=true"
check "... standalone: no cluster in /varz" \
    "$PY" -c 'import json, sys, urllib.request as u
v = json.load(u.urlopen("http://127.0.0.1:%s/varz" % sys.argv[1], timeout=5))
sys.exit(0 if not (v.get("cluster") or {}).get("port") else 1)' "${NATS_MPORT[1]}"
check "... no fatal line in its log" bash -c "! grep -q '\[FTL\]' '$NATS_DIR/1/server.log'"

nats_kill 1
rc=0
nats_wait_ready 1 || rc=$?
check "every node dead: nats_wait_ready fails" test "$rc" -ne 0
finish
