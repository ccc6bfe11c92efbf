#!/usr/bin/env python3
"""Layout rules that neither rustc nor clippy check (part of `make lint`).

1. No import cycle between the modules of fivexx-core: the top-level
   modules (event, model, explain, capture, report, analysis, ...) form a
   DAG, and so do the sibling submodules of each folder. A cycle means one
   concern reaches into another and back (the model depending on the
   engine, the capture format on the report), which is what made two files
   grow past a thousand lines.
2. No Rust source file over 600 lines unless its header comment (the first
   30 lines) says why, in a line like "longer than 600 lines because".

Exits 1 with one line per violation; prints a one-line summary otherwise.
"""

import os
import re
import sys

ROOT = os.environ.get("LAYOUT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, "fivexx-core", "src")
MAX_LINES = 600
# "longer than 600 lines because ...", "Longer than our ~600-line guide: ..."
REASON = re.compile(r"longer than\b.{0,25}\b600", re.I)
SOURCE_DIRS = ["fivexx-core", "kubectl-fivexx", "tracer-user", "tracer-ebpf", "tests"]


def module_path(path):
    """fivexx-core/src/explain/classify.rs -> ("explain", "classify")."""
    rel = os.path.relpath(path, CORE)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return ()
    return tuple(rel)


def strip_tests_and_comments(text):
    """Code without `#[cfg(test)] mod tests { ... }` (tests may reach
    anywhere) and without comments (doc links name modules)."""
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+", text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


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


def core_edges(modules):
    """(from, to) edges at the top level and between sibling submodules."""
    edges = set()
    for me, path in modules.items():
        with open(path) as f:
            code = strip_tests_and_comments(f.read())
        for p in use_trees(code):
            target = resolve(me, p)
            if not target:
                continue
            # Top level: the first segment of each side.
            if me and target[0] != me[0] and target[0] in TOP:
                edges.add(((me[0],), (target[0],)))
            # Siblings: same parent folder, different child.
            if len(me) >= 2 and len(target) >= len(me) and target[: len(me) - 1] == me[:-1]:
                other = target[: len(me)]
                if other != me and other in modules:
                    edges.add((me, other))
    return edges


def find_cycle(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state, stack = {}, []

    def dfs(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = dfs(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = dfs(n)
            if c:
                return c
    return None


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


modules = {}
for dirpath, _, files in os.walk(CORE):
    for name in files:
        if name.endswith(".rs"):
            p = os.path.join(dirpath, name)
            modules[module_path(p)] = p
TOP = {m[0] for m in modules if m}

problems = []
cycle = find_cycle(core_edges(modules))
if cycle:
    problems.append("fivexx-core: import cycle: " + " -> ".join("::".join(m) for m in cycle))
problems.extend(long_files())
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"layout: fivexx-core's {len(modules)} modules import without cycles; no long file without a reason")
