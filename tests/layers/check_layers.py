#!/usr/bin/env python3
"""check_layers.py - the build graph says what docs/ARCHITECTURE.md says.

Reads build-graph.tsv (written by the top-level CMakeLists.txt at configure
time: each product target's folder, sources, include directories and direct
links) and checks, from the CMake targets and the sources themselves:

  1. every link goes down the layer table below (so there is no cycle), and
     no target links a component it must not know (the protocol links
     nothing of ours, the SDK nothing of the gateway, the gateway nothing
     of the SDK);
  2. agent-sdk/src is on no include path but the SDK's own objects and
     pa_agent_static (the SDK's white-box tests);
  3. every #include of a project header in a target's sources resolves, as
     the compiler would resolve it, to a header owned by that target or by
     a target below it in its link closure: a module cannot reach a header
     that merely sits in a folder its include path happens to share
     (regadmin may include storage/store.h, never storage/sink.h).

Usage: check_layers.py BUILD_GRAPH_TSV SOURCE_DIR [--dot FILE]
Prints the layered graph; exits 1 with one line per violation.
"""
import os
import re
import sys

# Layer of each product target: a target may link only lower layers.
# Components: proto < sdk; proto < gateway; sdk and gateway never meet.
LAYERS = {
    "panelproto": ("proto", 0),
    "panelproto_tls": ("proto", 0),
    "panelproto_json": ("proto", 1),
    "pa_agent_objs": ("sdk", 2),
    "panelagent": ("sdk", 3),
    "pa_agent_static": ("sdk", 3),
    "panelagent_cli": ("sdk", 4),
    "gw_base": ("gateway", 2),
    "gw_policy": ("gateway", 3),
    "gw_store": ("gateway", 3),
    "gw_regadmin": ("gateway", 4),
    "gw_storage": ("gateway", 5),
    "gw_ctl": ("gateway", 5),
    "gw_net": ("gateway", 6),
    "panelgatectl": ("gateway", 6),
    "panelgate-store": ("gateway", 6),
    "panelgate": ("gateway", 7),
}
MAY_LINK = {"proto": {"proto"}, "sdk": {"proto", "sdk"}, "gateway": {"proto", "gateway"}}
SDK_PRIVATE_OK = {"pa_agent_objs", "pa_agent_static"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def strip_genex(v):
    """$<BUILD_INTERFACE:x> -> x; other generator expressions are dropped."""
    out = []
    for item in v.split(";"):
        if not item:
            continue
        m = re.fullmatch(r"\$<BUILD_INTERFACE:(.*)>", item)
        if m:
            out.append(m.group(1))
        elif not item.startswith("$<"):
            out.append(item)
    return out


def load(path):
    targets = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 7 or parts[0] != "target":
                continue
            _, name, folder, srcs, incs, iincs, links = parts
            targets[name] = {
                "dir": folder,
                "srcs": [os.path.normpath(os.path.join(folder, s)) for s in strip_genex(srcs)],
                "incs": [os.path.normpath(p) for p in strip_genex(incs)],
                "iincs": [os.path.normpath(p) for p in strip_genex(iincs)],
                "links": [l for l in strip_genex(links) if l in LAYERS],
            }
    # pa_agent_static and panelagent are built from pa_agent_objs' objects
    for t in ("panelagent", "pa_agent_static"):
        if t in targets and "pa_agent_objs" in targets:
            targets[t]["objs_of"] = "pa_agent_objs"
    return targets


def closure(targets, name):
    seen, todo = set(), list(targets[name]["links"])
    while todo:
        t = todo.pop()
        if t in seen or t not in targets:
            continue
        seen.add(t)
        todo.extend(targets[t]["links"])
    return seen


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    targets = load(argv[1])
    src_root = os.path.normpath(argv[2])
    dot = argv[argv.index("--dot") + 1] if "--dot" in argv else None
    bad = []

    missing = [t for t in LAYERS if t not in targets]
    if len(targets) < 10:
        bad.append(f"build graph lists only {sorted(targets)}: configure with the gateway and SDK")

    # 1. links go down, within the allowed components
    for name, t in targets.items():
        comp, rank = LAYERS[name]
        for dep in t["links"]:
            dcomp, drank = LAYERS[dep]
            if dcomp not in MAY_LINK[comp]:
                bad.append(f"{name} ({comp}) links {dep} ({dcomp}): {comp} must not know {dcomp}")
            elif drank >= rank:
                bad.append(f"{name} (layer {rank}) links {dep} (layer {drank}): links go down only")
        if name in closure(targets, name):
            bad.append(f"{name} is in its own link closure (a cycle)")

    # effective include directories (own + interface of every linked target)
    eff = {}
    for name, t in targets.items():
        dirs = list(t["incs"])
        for dep in closure(targets, name):
            dirs.extend(targets[dep]["iincs"])
        eff[name] = list(dict.fromkeys(dirs))

    # 2. the SDK's private directory
    sdk_src = os.path.join(src_root, "agent-sdk", "src")
    for name, dirs in eff.items():
        if sdk_src in dirs and name not in SDK_PRIVATE_OK:
            bad.append(f"{name} has the SDK's private agent-sdk/src on its include path")

    # header owners: the target compiling its .c sibling, else the target
    # whose own include directories hold its folder (the lowest such)
    owner_of_src = {}
    for name, t in targets.items():
        if "objs_of" in t:
            continue
        for s in t["srcs"]:
            owner_of_src[s] = name

    def header_owner(h):
        stem = os.path.splitext(os.path.basename(h))[0]
        folder = os.path.dirname(h)

        def reaches(t):
            return any(folder == d or folder.startswith(d + os.sep)
                       for d in t["incs"] + t["iincs"])
        for src, name in owner_of_src.items():
            if os.path.splitext(os.path.basename(src))[0] == stem and \
               (os.path.dirname(src) == folder or reaches(targets[name])):
                return name
        cands = [n for n, t in targets.items()
                 if "objs_of" not in t and any(folder == d or folder.startswith(d + os.sep)
                                               for d in t["incs"])]
        cands.sort(key=lambda n: LAYERS[n][1])
        return cands[0] if cands else None

    # 3. every project include resolves to a header the target may use
    n_includes = 0
    for name, t in targets.items():
        if "objs_of" in t:
            continue
        allowed = {name} | closure(targets, name)
        allowed |= {targets[a]["objs_of"] for a in allowed if "objs_of" in targets[a]}
        for src in t["srcs"]:
            if not src.startswith(src_root + os.sep) or not os.path.exists(src):
                continue
            with open(src, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for kind, inc in INCLUDE_RE.findall(text):
                search = ([os.path.dirname(src)] if kind == '"' else []) + eff[name]
                hit = next((os.path.normpath(os.path.join(d, inc)) for d in search
                            if os.path.isfile(os.path.join(d, inc))), None)
                if hit is None or not hit.startswith(src_root + os.sep):
                    continue  # a system or library header
                n_includes += 1
                own = header_owner(hit)
                rel = os.path.relpath(hit, src_root)
                if own is None:
                    bad.append(f"{os.path.relpath(src, src_root)}: {rel} belongs to no target")
                elif own not in allowed:
                    bad.append(f"{os.path.relpath(src, src_root)} ({name}) includes {rel}, "
                               f"which is {own}'s: {name} does not link it")

    # the picture
    by_rank = {}
    for name in targets:
        by_rank.setdefault(LAYERS[name][1], []).append(name)
    print("layers, top first (links go down only):")
    for rank in sorted(by_rank, reverse=True):
        row = []
        for n in sorted(by_rank[rank]):
            row.append(f"{n} -> {', '.join(sorted(targets[n]['links'])) or '(nothing of ours)'}")
        print(f"  {rank}: " + "; ".join(row))
    print(f"{len(targets)} targets, {n_includes} project includes checked")
    if missing:
        print(f"not built here: {', '.join(missing)}")
    if dot:
        with open(dot, "w", encoding="utf-8") as f:
            f.write("digraph panelgate {\n  rankdir=BT;\n")
            for name, t in sorted(targets.items()):
                for dep in sorted(t["links"]):
                    f.write(f'  "{name}" -> "{dep}";\n')
            f.write("}\n")

    for b in bad:
        print("layers: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
