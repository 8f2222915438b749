#!/usr/bin/python3
"""memscan.py - searches the gateway's memory for viewer IP markers
(test_gw_memscan.sh).  Run as root.

As a module (from the agents' script, between requests):
    hits = memscan.scan_live(pid, ["10.123.1.201", ...])
reads what a core would hold of the live process (its readable mappings
that hold anything, except those marked MADV_DONTDUMP) through
/proc/PID/mem; the process is not stopped.

As a program, on a core file made by gdb's gcore:
    memscan.py CORE MAPS MARKERS LABEL [CONTROL]
prints one "ok - " / "not ok - " line per case for lib.sh's py_checks, and
one for CONTROL, a text that must be found (so a core the search cannot
read does not pass).
MARKERS is a JSON file: [{"case": "...", "ips": ["10.123.1.201", ...]}, ...];
MAPS a copy of /proc/PID/maps taken right before the core.  The core is an
ELF file: its PT_LOAD program headers map file offsets to virtual
addresses, and its PT_NOTE segment holds each thread's registers
(NT_PRSTATUS, then its floating-point/vector state: NT_FPREGSET,
NT_X86_XSTATE), which are searched too.

Each address is searched in every form the gateway could hold it in:
  text      inet_ntop's form, and for IPv6 the exploded form too
  mp-str    the same text as a MessagePack str (a frame that sends it as text)
  bin       the raw 4 or 16 bytes (struct pa_ip, a sockaddr, a decoded frame)
  mp-bin    MessagePack bin 4/16 (c4 04 / c4 10 + bytes: the request body)
  v4mapped  an IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d, 16 bytes)
A hit names the form, the address, the mapping (or register note and
thread) that holds it and the bytes around it.
"""
import ipaddress
import json
import mmap
import struct
import sys

NOTE_NAMES = {1: "NT_PRSTATUS (general registers)", 2: "NT_FPREGSET (x87/SSE registers)",
              0x202: "NT_X86_XSTATE (AVX/AVX-512 registers)", 6: "NT_AUXV",
              0x46494c45: "NT_FILE", 0x53494749: "NT_SIGINFO", 3: "NT_PRPSINFO"}


def forms(text):
    ip = ipaddress.ip_address(text)
    t = {ip.compressed.encode()}
    if ip.version == 6:
        t.add(ip.exploded.encode())
    res = []
    for s in sorted(t):
        res.append(("text", s))
        res.append(("mp-str", bytes([0xa0 | len(s)]) + s if len(s) < 32 else b"\xd9" + bytes([len(s)]) + s))
    res.append(("bin", ip.packed))
    res.append(("mp-bin", b"\xc4" + bytes([len(ip.packed)]) + ip.packed))
    if ip.version == 4:
        res.append(("v4mapped", b"\x00" * 10 + b"\xff\xff" + ip.packed))
    return res


def read_maps(path):
    rows = []
    for line in open(path):
        f = line.split(None, 5)
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        name = f[5].strip() if len(f) > 5 else "[anon]"
        rows.append((lo, hi, f[1], name))
    return rows


def _find_all(data, needle, limit=8):
    i = data.find(needle)
    while i >= 0 and limit > 0:
        yield i
        limit -= 1
        i = data.find(needle, i + 1)


def scan_live(pid, ips, needles=None):
    """Hits of the addresses in the memory of the live process |pid|
    (needles: [(label, kind, bytes)] instead, for a control)."""
    if needles is None:
        needles = [(ip, kind, n) for ip in ips for kind, n in forms(ip)]
    hits = []
    overlap = max(len(n) for _, _, n in needles) - 1
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for lo, hi, perm, name in _dumpable_maps(pid):
            off = lo
            while off < hi:  # in chunks, overlapping by a needle's length
                try:
                    mem.seek(off)
                    data = mem.read(min(CHUNK, hi - off))
                except OSError:
                    break
                for ip, kind, n in needles:
                    for i in _find_all(data, n):
                        if i + len(n) <= len(data):
                            hits.append("%s as %s at 0x%x in %s %s (+0x%x), bytes %s" % (
                                ip, kind, off + i, name, perm, off + i - lo,
                                data[max(0, i - 16):i + len(n) + 16].hex()))
                if off + len(data) >= hi or not data:
                    break
                off += len(data) - overlap
    return hits


CHUNK = 64 << 20


def _dumpable_maps(pid):
    """The mappings a core would hold (readable, not MADV_DONTDUMP: "dd" in
    VmFlags, which AddressSanitizer's terabytes of shadow are) that hold
    anything (resident or swapped)."""
    rows, cur = [], None
    for line in open("/proc/%d/smaps" % pid):
        head = line.split(None, 1)[0]
        if "-" in head and not head.endswith(":"):
            f = line.split(None, 5)
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            cur = {"lo": lo, "hi": hi, "perm": f[1], "rss": 0, "swap": 0, "flags": [],
                   "name": f[5].strip() if len(f) > 5 else "[anon]"}
            rows.append(cur)
        elif head == "Rss:":
            cur["rss"] = int(line.split()[1])
        elif head == "Swap:":
            cur["swap"] = int(line.split()[1])
        elif head == "VmFlags:":
            cur["flags"] = line.split()[1:]
    for r in rows:
        if r["perm"][0] != "r" or r["name"] in ("[vvar]", "[vsyscall]") or "dd" in r["flags"]:
            continue
        if r["rss"] == 0 and r["swap"] == 0:
            continue  # never touched (or dropped): zeros
        yield r["lo"], r["hi"], r["perm"], r["name"]


def _core_layout(m):
    """PT_LOAD segments [(file_off, vaddr, size)] and notes
    [(file_off, size, type, thread)] of an ELF64 core."""
    if m[:4] != b"\x7fELF" or m[4] != 2:
        raise ValueError("not a 64-bit ELF core")
    phoff, = struct.unpack_from("<Q", m, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", m, 0x36)
    segs, notes = [], []
    for i in range(phnum):
        p_type, _flags, p_off, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", m, phoff + i * phentsize)
        if p_type == 1 and p_filesz:
            segs.append((p_off, p_vaddr, p_filesz))
        elif p_type == 4:
            off, end, tid = p_off, p_off + p_filesz, None
            while off + 12 <= end:
                namesz, descsz, ntype = struct.unpack_from("<III", m, off)
                desc = off + 12 + ((namesz + 3) & ~3)
                if ntype == 1 and descsz >= 36:
                    tid, = struct.unpack_from("<i", m, desc + 32)  # pr_pid
                notes.append((desc, descsz, ntype, tid))
                off = desc + ((descsz + 3) & ~3)
    return segs, notes


def scan_core(core_path, maps_path, markers, label, control=None):
    maps = read_maps(maps_path)
    with open(core_path, "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    segs, notes = _core_layout(m)

    def where(off):
        for s_off, s_va, s_sz in segs:
            if s_off <= off < s_off + s_sz:
                va = s_va + off - s_off
                for lo, hi, perm, name in maps:
                    if lo <= va < hi:
                        return "0x%x in %s %s (+0x%x of 0x%x-0x%x)" % (va, name, perm, va - lo, lo, hi)
                return "0x%x (in no mapping)" % va
        for n_off, n_sz, ntype, tid in notes:
            if n_off <= off < n_off + n_sz:
                return "the registers of thread %s: %s, byte %d" % (
                    tid, NOTE_NAMES.get(ntype, "note type 0x%x" % ntype), off - n_off)
        return "file offset %d (outside every segment)" % off

    print("# %s: core %d bytes, %d memory segments (%d bytes), %d notes; %d cases" % (
        label, len(m), len(segs), sum(s[2] for s in segs), len(notes), len(markers)), flush=True)
    total = 0
    for case in markers:
        hits = []
        for ip in case["ips"]:
            for kind, needle in forms(ip):
                for i in _find_all(m, needle):
                    hits.append("%s as %s at %s, bytes %s" % (
                        ip, kind, where(i), m[max(0, i - 16):i + len(needle) + 16].hex()))
        total += len(hits)
        what = "%s: no viewer IP of case '%s' (%s) in the core" % (label, case["case"],
                                                                 ", ".join(case["ips"]))
        if hits:
            print("not ok - %s: %d hits" % (what, len(hits)))
            for h in hits[:40]:
                print("#   " + h)
        else:
            print("ok - " + what)
    print("# %s: %d hits in all" % (label, total), flush=True)
    if control:
        # the search itself works: something known to be in memory is found
        i = m.find(control.encode())
        print("%s - %s: control: '%s' is found in the core%s" % (
            "ok" if i >= 0 else "not ok", label, control, " (at %s)" % where(i) if i >= 0 else ""))


if __name__ == "__main__":
    core, maps_file, markers_file, lbl = sys.argv[1:5]
    scan_core(core, maps_file, json.load(open(markers_file)), lbl,
              sys.argv[5] if len(sys.argv) > 5 else None)
