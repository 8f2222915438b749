#!/usr/bin/env bash
# test_sdk_hostile.sh - libpanelagent ($SDK_PROBE) against a scripted fake
# gateway (fakegw.py) that breaks the protocol in one way per scenario.
# For each: the codes reported (once where the contract says once), that
# resends carry the same seq and respect the backoff (lower bounds only),
# that nothing is acked that the fake did not acknowledge, that the frame is
# delivered once the fake behaves, that the probe closes and exits on its
# own (never killed by its timeout), and that its output has no sanitizer
# report (the sanitizer build runs this same script).
#
# Also flush(): it returns only after the ack callbacks of the frames it
# waited for have returned (slow callbacks make a regression show), and it
# is refused with EBUSY from a callback (close too).
. "$(dirname "$0")/lib.sh"

SDK_PROBE=${SDK_PROBE:-$PANELGATE_BUILD_DIR/bin/sdk_probe}
[[ -x $SDK_PROBE ]] || fatal "no sdk_probe at $SDK_PROBE"
FAKEGW=$LIB_DIR/fakegw.py

make_pki

BACKOFF=200 # --backoff-initial; waits are 3/4..1 of 200, 400, 800 ... ms

# fake_start SCENARIO [FAKEGW ARGS...]: sets FAKE_PID, FAKE_PORT, FAKE_OUT.
fake_start() {
    local sc=$1
    shift
    FAKE_OUT=$T/fake-$sc.out
    rm -f "$T/fake.port"
    py_bg "$FAKE_OUT" "$FAKEGW" --scenario "$sc" --pki "$PKI" --port-file "$T/fake.port" "$@"
    FAKE_PID=$PY_BG_PID
    wait_until 20 test -s "$T/fake.port" || fatal "fakegw $sc did not start: $(cat "$FAKE_OUT")"
    FAKE_PORT=$(cat "$T/fake.port")
}
fake_stop() {
    kill -TERM "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
}

# probe OUT [ARGS...]: sdk_probe against the fake; sets PROBE_RC.
probe() {
    local out=$1
    shift
    PROBE_RC=0
    timeout 90 "$SDK_PROBE" --host 127.0.0.1 --port "$FAKE_PORT" --name localhost \
        --ca "$PKI/ca.crt" --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" \
        --backoff-initial "$BACKOFF" --backoff-max 5000 --log 3 "$@" >"$out" 2>&1 || PROBE_RC=$?
}

# The checks of one scenario are in python (hostile_check.py below):
# scenario PROBE_OUT FAKE_OUT [key=value ...]
cat >"$T/hostile_check.py" <<'PY'
import re, sys

sc, probe_out, fake_out = sys.argv[1:4]
opt = dict(a.split("=", 1) for a in sys.argv[4:])
P = open(probe_out, errors="replace").read().splitlines()
F = open(fake_out, errors="replace").read().splitlines()

def check(what, cond, got=None):
    print(("ok - " if cond else "not ok - ") + f"{sc}: {what}" +
          ("" if cond or got is None else f" (got {got!r})"))
    return cond

def kv(line):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))

submitted = [int(kv(l)["seq"]) for l in P if l.startswith("submit ") and "rv=PANELAGENT_OK" in l]
acks = [int(kv(l)["seq"]) for l in P if l.startswith("ack ")]
errors = [(kv(l)["code"], int(kv(l)["seq"]), l.split("detail=", 1)[-1])
          for l in P if l.startswith("error ")]
stat = kv(next((l for l in P if l.startswith("stat ")), ""))
reqs = [kv(l) for l in F if l.startswith("req ")]
answers = [kv(l) for l in F if l.startswith("answer ")]
conns = [kv(l) for l in F if l.startswith("conn ")]
# connection gaps are measured between TCP accepts: a resumed handshake is
# faster than a full one, so the gap between handshakes can be shorter
# than the client's wait
accepts = [int(kv(l)["t"]) for l in F if l.startswith("accept ")]

# common: the probe was created, closed, nothing acked that the fake did
# not acknowledge, every ack is for a submitted seq and once
check("client created", any(l == "new rv=PANELAGENT_OK err=" for l in P))
check("closed: 'close undelivered=' line", any(l.startswith("close undelivered=") for l in P))
acked_by_fake = [int(a["n"]) for a in answers if a["what"] == "202"]
acked_seqs = sorted({int(r["seq"]) for r in reqs if int(r["n"]) in acked_by_fake})
check("every ack callback is for a seq the fake answered 202 with its own ack",
      sorted(acks) == acked_seqs, (sorted(acks), acked_seqs))
check("no seq acked twice", len(acks) == len(set(acks)), acks)
check(f"stat acked={stat.get('acked')} = ack callbacks", int(stat.get("acked", -1)) == len(acks))

def expect_errors(code, n, seq=0, detail=None):
    got = [e for e in errors if e[0] == code]
    check(f"{code} reported exactly {n} time(s)", len(got) == n, got)
    if got and detail:
        check(f"{code} detail mentions {detail!r} ({got[0][2][:120]})",
              re.search(detail, got[0][2]) is not None)
    if got:
        check(f"{code} reported with seq {'0' if seq == 0 else 'of the frame'}",
              all((e[1] == 0) == (seq == 0) for e in got), got)

def no_other_errors(*allowed):
    other = [e for e in errors if e[0] not in allowed]
    check(f"no other error reported", not other, other)

def sends_of(seq):
    return [r for r in reqs if int(r["seq"]) == seq]

def same_seq_resends(min_sends):
    for s in submitted:
        rs = sends_of(s)
        check(f"frame {s} sent {len(rs)} times (>= {min_sends}), always with its seq",
              len(rs) >= min_sends, [r["seq"] for r in rs])
    unknown = [r for r in reqs if int(r["seq"]) not in submitted]
    check("the fake saw no seq the probe did not submit", not unknown, unknown)

def delivered():
    check("every frame acked in the end", sorted(acks) == sorted(submitted), (acks, submitted))
    check("nothing undelivered", any(l == "close undelivered=0" for l in P))

def gaps_at_least(times, bounds, what):
    gaps = [b - a for a, b in zip(times, times[1:])]
    ok = len(gaps) >= len(bounds) and all(g >= lo for g, lo in zip(gaps, bounds))
    check(f"{what}: gaps {gaps} ms >= {bounds}", ok)

B = int(opt.get("backoff", 200))
lo = lambda k: int(B * (2 ** k) * 3 / 4) - 30  # least wait after the k-th failure, with margin

if sc == "flush":
    fl = [kv(l) for l in P if l.startswith("flush ")]
    check("flush returned OK", fl and fl[0]["rv"] == "PANELAGENT_OK", fl)
    check(f"flush returned after all {len(submitted)} ack callbacks had returned",
          fl and int(fl[0]["acks"]) == len(submitted), fl)
    delivered()
    no_other_errors()
elif sc == "callback-flush":
    cf = [kv(l) for l in P if l.startswith("callback_flush ")]
    check("flush and close from a callback: EBUSY", cf and cf[0]["rv"] == "PANELAGENT_EBUSY" and
          cf[0]["close_rv"] == "PANELAGENT_EBUSY", cf)
    delivered()
elif sc == "goaway-calm":
    expect_errors("PANELAGENT_ERATE_LIMITED", 1)
    no_other_errors("PANELAGENT_ERATE_LIMITED")
    same_seq_resends(2)
    rb = int(opt["refused"])
    gaps_at_least(accepts, [rb * 3 // 4 - 30] * int(opt["bad"]),
                  f"no reconnect before the refusal backoff (3/4 of {rb} ms)")
    delivered()
elif sc in ("goaway", "goaway-error"):
    if sc == "goaway":
        no_other_errors()
    else:
        expect_errors("PANELAGENT_EPROTOCOL", 1, detail="GOAWAY PROTOCOL_ERROR")
        no_other_errors("PANELAGENT_EPROTOCOL")
    bad = int(opt["bad"])
    same_seq_resends(bad + 1)
    gaps_at_least(accepts, [lo(k) for k in range(bad)], "reconnects after GOAWAY back off")
    delivered()
elif sc == "silent":
    expect_errors("PANELAGENT_ECONNECT", 1, detail="no answer")
    no_other_errors("PANELAGENT_ECONNECT")
    same_seq_resends(2)
    rt = int(opt["timeout"])
    c1 = [r for r in reqs if r["conn"] == "1"]
    c2 = [r for r in reqs if r["conn"] != "1"]
    check("conn 1 took every frame, unanswered", sorted(int(r["seq"]) for r in c1) == submitted)
    check("the same seqs were resent on a new connection",
          sorted({int(r["seq"]) for r in c2}) == submitted)
    check(f"not before the request timeout ({rt} ms)",
          c2 and int(c2[0]["t"]) - int(c1[0]["t"]) >= rt - 30)
    delivered()
elif sc in ("rst", "500"):
    no_other_errors()
    same_seq_resends(int(opt["bad"]) + 1)
    for s in submitted:
        gaps_at_least([int(r["t"]) for r in sends_of(s)],
                      [lo(k) for k in range(int(opt["bad"]))], f"resends of {s} back off")
    delivered()
elif sc == "storage-rejected":
    # the first frame's only answer is 500 storage_rejected: reported once
    # as rejected and never resent; the frames after it are delivered
    bad = int(opt["bad"])
    first = submitted[:bad]
    expect_errors("PANELAGENT_EREJECTED", bad, seq=1, detail="storage_rejected")
    no_other_errors("PANELAGENT_EREJECTED")
    check("the rejected frames are the first ones",
          sorted(e[1] for e in errors) == sorted(first), (errors, first))
    for s in first:
        check(f"frame {s} sent once, not resent", len(sends_of(s)) == 1, sends_of(s))
    rest = submitted[bad:]
    check("every other frame acked", sorted(acks) == sorted(rest), (acks, rest))
    check(f"stat rejected={stat.get('rejected')} = {bad}", stat.get("rejected") == str(bad))
    check("nothing undelivered", any(l == "close undelivered=0" for l in P))
elif sc == "wrong-ack":
    expect_errors("PANELAGENT_EPROTOCOL", 1, detail="acknowledged seq")
    no_other_errors("PANELAGENT_EPROTOCOL")
    same_seq_resends(int(opt["bad"]) + 1)
    s = submitted[0]
    check("each wrong ack cost the connection: sends on distinct connections",
          len({r["conn"] for r in sends_of(s)}) == len(sends_of(s)))
    gaps_at_least([int(r["t"]) for r in sends_of(s)],
                  [lo(k) for k in range(int(opt["bad"]))], "resends back off")
    delivered()
elif sc in ("garbage", "no-alpn", "http1", "mute"):
    code = "PANELAGENT_ECONNECT" if sc == "mute" else "PANELAGENT_EPROTOCOL"
    detail = {"garbage": "HTTP/2", "no-alpn": "ALPN", "http1": "ALPN", "mute": "SETTINGS"}[sc]
    expect_errors(code, 1, detail=detail)
    no_other_errors(code)
    bad = int(opt["bad"])
    check(f"no request reached the {bad} broken connection(s)",
          all(int(r["conn"]) > bad for r in reqs), reqs)
    check(f"stat connects={stat.get('connects')}: only the working connection counts",
          stat.get("connects") == "1")
    check(f"stat connect_failures={stat.get('connect_failures')} >= {bad}",
          int(stat.get("connect_failures", 0)) >= bad)
    first = int(opt.get("timeout", 0))
    gaps_at_least(accepts[:bad + 1], [first + lo(k) for k in range(bad)], "reconnects back off")
    same_seq_resends(1)
    delivered()
elif sc in ("huge-headers", "huge-body"):
    expect_errors("PANELAGENT_EPROTOCOL", 1)
    no_other_errors("PANELAGENT_EPROTOCOL")
    same_seq_resends(2)
    delivered()
    rss = int(kv(next(l for l in P if l.startswith("rusage ")))["maxrss_kb"])
    base = int(opt["base_rss"])
    check(f"peak RSS {rss} kB within 16 MiB of the well-behaved run's {base} kB "
          f"(the fake sent megabytes)", rss - base < 16384)
elif sc == "silent-close":
    s = submitted
    expect_errors("PANELAGENT_EUNDELIVERED", len(s), seq=1)
    check("close reports the unanswered frames", any(l == f"close undelivered={len(s)}" for l in P))
    check("nothing acked", not acks)
else:
    check("known scenario", False)
PY

# run SCENARIO FAKEGW_ARGS -- PROBE_ARGS -- CHECK_ARGS
run() {
    local sc=$1 fargs=() pargs=() cargs=() out
    shift
    while (($#)) && [[ $1 != -- ]]; do fargs+=("$1"); shift; done
    shift
    while (($#)) && [[ $1 != -- ]]; do pargs+=("$1"); shift; done
    (($#)) && shift
    cargs=("$@")
    local fsc=$sc
    case $sc in flush | callback-flush) fsc=ok ;; silent-close) fsc=silent ;; esac
    fake_start "$fsc" "${fargs[@]}"
    out=$T/probe-$sc.out
    probe "$out" "${pargs[@]}"
    fake_stop
    check_eq "$sc: the probe exited by itself (not killed by its timeout), status 0" "$PROBE_RC" 0
    py_checks "$T/hostile_check.py" "$sc" "$out" "$FAKE_OUT" backoff=$BACKOFF "${cargs[@]}"
}
rss_of() { sed -nE 's/^rusage maxrss_kb=([0-9]+)$/\1/p' "$1"; }

# flush waits for the callbacks: 3 frames, each ack callback sleeps 300 ms
run flush -- --frames 3 --in-flight 3 --slow-ack 300 --flush 30000
run callback-flush -- --frames 2 --callback-flush --run 20000 --until-done
run goaway-calm --bad 2 -- --frames 1 --refused-backoff 1000 --run 30000 --until-done -- refused=1000 bad=2
run goaway --bad 3 -- --frames 1 --run 30000 --until-done -- bad=3
run goaway-error --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run silent --bad 1 -- --frames 2 --in-flight 2 --request-timeout 1000 --run 30000 --until-done -- timeout=1000
run rst --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run 500 --bad 3 -- --frames 1 --run 30000 --until-done -- bad=3
run storage-rejected --bad 1 -- --frames 3 --in-flight 1 --run 30000 --until-done -- bad=1
run wrong-ack --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run garbage --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run no-alpn --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run http1 --bad 2 -- --frames 1 --run 30000 --until-done -- bad=2
run mute --bad 1 -- --frames 1 --connect-timeout 1000 --run 30000 --until-done -- bad=1 timeout=1000
BASE_RSS=$(rss_of "$T/probe-rst.out")
run huge-headers --bad 1 -- --frames 1 --run 60000 --until-done -- base_rss="$BASE_RSS"
run huge-body --bad 1 -- --frames 1 --run 60000 --until-done -- base_rss="$BASE_RSS"
# a gateway that never answers: close(timeout) gives up and reports
run silent-close --bad 99 -- --frames 2 --run 500 --close-timeout 1000

bad=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' "$T"/probe-*.out 2>/dev/null || true)
check_eq "sdk_probe output free of sanitizer reports" "$bad" ""

finish
