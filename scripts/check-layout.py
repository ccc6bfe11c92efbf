#!/usr/bin/env python3
"""Layout rules that neither rustc nor clippy check (part of `make lint`).

1. No import cycle between the modules of any crate (fivexx-core,
   kubectl-fivexx, tracer-user, tracer-ebpf, the lab in tests/): in each
   crate the top-level modules form a DAG, and so do the sibling
   submodules of each folder. A cycle means one concern reaches into
   another and back (the model depending on the engine, a clock helper
   living in the loader that needs it), which is what made files grow past
   a thousand lines. Each crate root (src/lib.rs, src/main.rs) is its own
   graph: a package with both is two crates, and `crate::` means a
   different tree in each. Modules are found by following `mod`
   declarations from the root, as rustc does; `#[cfg(test)]` items are
   left out (tests may reach anywhere).
2. No Rust source file over 600 lines unless its header comment (the first
   30 lines) says why, in a line like "longer than 600 lines because".

Exits 1 with one line per violation; prints a one-line summary otherwise.
"""

import os
import re
import sys

ROOT = os.environ.get("LAYOUT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 600
# "longer than 600 lines because ...", "Longer than our ~600-line guide: ..."
REASON = re.compile(r"longer than\b.{0,25}\b600", re.I)
SOURCE_DIRS = ["fivexx-core", "kubectl-fivexx", "tracer-user", "tracer-ebpf", "tests"]
# Crates whose module graphs are checked: each package's src/ tree.
CRATES = SOURCE_DIRS
CRATE_ROOTS = ("lib.rs", "main.rs")

# Comments, string and char literals: blanked before anything is read, so
# that a doc link, an error message or a '{' never counts as code.
NOISE = re.compile(
    r"(?<![A-Za-z0-9_])b?r(#*)\".*?\"\1"  # raw strings
    r"|\"(?:\\.|[^\"\\])*\""  # strings
    r"|'(?:\\.|[^\\'\n])'"  # char literals (not lifetimes)
    r"|//[^\n]*"
    r"|/\*.*?\*/",
    re.S,
)
ATTRS = r"(?:#\[[^\]]*\]\s*)*"
VIS = r"(?:pub(?:\s*\([^)]*\))?\s+)?"
CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*" + ATTRS)
MOD_DECL = re.compile(r"(" + ATTRS + r")" + VIS + r"mod\s+(\w+)\s*([;{])")


def clean(text):
    """Code without comments, literals and `#[cfg(test)]` items."""
    code = NOISE.sub(lambda m: " " if m.group(0).startswith("/") else '""', text)
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code
        code = code[: m.start()] + code[item_end(code, m.end()) :]


def item_end(code, start):
    """Where the item starting at `start` ends: after its `;`, or after the
    `}` matching its first `{` (a `use` always ends at its `;`)."""
    if re.match(VIS + r"use\b", code[start:]):
        end = code.find(";", start)
        return len(code) if end < 0 else end + 1
    semi, brace = code.find(";", start), code.find("{", start)
    if brace < 0 or 0 <= semi < brace:
        return len(code) if semi < 0 else semi + 1
    return matching_brace(code, brace) + 1


def matching_brace(code, open_at):
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(code) - 1


def crate_modules(src, root_file):
    """{module path: [code of that module, ...]} for the crate rooted at
    `root_file`, following `mod` declarations; inline `mod x { ... }`
    blocks are modules of their own, as rustc sees them."""
    modules = {}

    def visit(me, path, child_dir):
        with open(path) as f:
            add(me, clean(f.read()), child_dir)

    def add(me, code, child_dir):
        own = []
        pos = 0
        while True:
            m = MOD_DECL.search(code, pos)
            if not m:
                own.append(code[pos:])
                break
            child = me + (m.group(2),)
            if m.group(3) == "{":
                close = matching_brace(code, m.end() - 1)
                own.append(code[pos : m.start()])
                add(child, code[m.end() : close], os.path.join(child_dir, m.group(2)))
                pos = close + 1
                continue
            own.append(code[pos : m.start()])
            pos = m.end()
            for cand, sub_dir in (
                (os.path.join(child_dir, m.group(2) + ".rs"), os.path.join(child_dir, m.group(2))),
                (os.path.join(child_dir, m.group(2), "mod.rs"), os.path.join(child_dir, m.group(2))),
            ):
                if os.path.isfile(cand):
                    visit(child, cand, sub_dir)
                    break
        modules.setdefault(me, []).append("".join(own))

    visit((), os.path.join(src, root_file), src)
    return modules


def use_trees(code):
    """The paths named by `use` statements and inline `crate::`/`super::`."""
    paths = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)::[^;]+);", code):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", code):
        paths.append(m.group(1).split("::"))
    return paths


def expand(tree):
    """`crate::{a::X, b::{Y, Z}}` -> [[crate, a, X], [crate, b, Y], ...]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        if s.startswith("{") and s.endswith("}"):
            depth, start = 0, 1
            for i, c in enumerate(s):
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                if (c == "," and depth == 1) or (c == "}" and depth == 0):
                    part = s[start:i]
                    if part:
                        walk(prefix, part)
                    start = i + 1
            return
        head, sep, rest = s.partition("::")
        if not sep:
            out.append(prefix + [head.split(" as ")[0]])
        elif head.startswith("{"):
            walk(prefix, s)
        else:
            walk(prefix + [head], rest)

    walk([], tree)
    return out


def resolve(me, path):
    """An absolute module path for `path` named in module `me`."""
    if path[0] == "crate":
        return tuple(path[1:])
    base = list(me)
    while path and path[0] in ("super", "self"):
        if path[0] == "super" and base:
            base.pop()
        path = path[1:]
    return tuple(base + path)


def module_edges(modules):
    """(from, to) edges at the top level and between sibling submodules."""
    top = {m[0] for m in modules if m}
    edges = set()
    for me, codes in modules.items():
        for code in codes:
            for p in use_trees(code):
                target = resolve(me, p)
                if not target:
                    continue
                # Top level: the first segment of each side.
                if me and target[0] != me[0] and target[0] in top:
                    edges.add(((me[0],), (target[0],)))
                # Siblings: same parent folder, different child.
                if len(me) >= 2 and len(target) >= len(me) and target[: len(me) - 1] == me[:-1]:
                    other = target[: len(me)]
                    if other != me and other in modules:
                        edges.add((me, other))
    return edges


def find_cycles(edges):
    """One cycle through each strongly connected component, so that every
    knot is reported at once, not one per run."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, on_stack, stack, comps = {}, {}, set(), [], []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(cycle_in(graph, comp) for comp in comps)


def cycle_in(graph, comp):
    """The shortest cycle through the component's first node (BFS)."""
    start = min(comp)
    prev, queue = {start: None}, [start]
    for n in queue:
        for m in sorted(graph[n] & comp):
            if m == start:
                path = [n]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return path[::-1] + [start]
            if m not in prev:
                prev[m] = n
                queue.append(m)
    return [start, start]


def cycle_problems():
    """One line per import cycle in any crate, and how many modules were read."""
    problems, count = [], 0
    for crate in CRATES:
        src = os.path.join(ROOT, crate, "src")
        roots = [r for r in CRATE_ROOTS if os.path.isfile(os.path.join(src, r))]
        for root_file in roots:
            modules = crate_modules(src, root_file)
            count += len(modules)
            label = crate if root_file == roots[0] else f"{crate} ({root_file})"
            for cycle in find_cycles(module_edges(modules)):
                problems.append(f"{label}: import cycle: " + " -> ".join("::".join(m) for m in cycle))
    return problems, count


def long_files():
    bad = []
    for d in SOURCE_DIRS:
        for dirpath, dirnames, files in os.walk(os.path.join(ROOT, d)):
            dirnames[:] = [x for x in dirnames if x not in ("target", "fuzz")]
            for name in files:
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    lines = f.readlines()
                if len(lines) > MAX_LINES and not any(REASON.search(l) for l in lines[:30]):
                    bad.append(
                        f"{os.path.relpath(path, ROOT)}: {len(lines)} lines, and its header comment "
                        f"does not say why it is longer than 600 lines"
                    )
    return bad


def main():
    problems, count = cycle_problems()
    problems.extend(long_files())
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"layout: the {count} modules of {len(CRATES)} crates import without cycles; "
          f"no long file without a reason")


if __name__ == "__main__":
    main()
