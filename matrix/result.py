#!/usr/bin/env python3
"""Console plumbing and verdicts for the kernel matrix (see README.md).

  result.py stream LOG MARKERS [--echo]
      Copy stdin (a serial console) to LOG with carriage returns and the
      firmware's escape sequences removed; for every line holding a
      "FIVEXX-" marker append "<seconds since start>\t<marker line>" to
      MARKERS. --echo also copies the cleaned lines to stderr.

  result.py judge --kernel REL --label guest|host --dir DIR --exit N --limit S
      Read DIR/console.log and DIR/markers.tsv; write DIR/check.json (the
      capability report), DIR/selftest.json (the result line) and
      DIR/summary.txt; print the one summary line (and, on failure, why).
      Exit 0 iff the kernel passed: a capability report that is valid JSON,
      a FIVEXX-SELFTEST line for this very kernel, failed == 0, at least one
      test run, selftest exit code 0, no timeout, and every hook state and
      test status as matrix/expectations says for this kernel version.

  result.py table DIR...
      Print a Markdown table: hooks (rows) against kernels (columns), from
      each DIR/check.json, then the tests whose status differs by kernel.
"""
import fnmatch
import json
import os
import re
import sys
import time

MARK = re.compile(r"FIVEXX-[A-Z-]+(?:\s.*)?$")
ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])")


def stream(log_path, markers_path, echo):
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log, \
            open(markers_path, "w", encoding="utf-8") as markers:
        for raw in sys.stdin.buffer:
            line = ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "").rstrip("\n")
            log.write(line + "\n")
            log.flush()
            if echo:
                sys.stderr.write(line + "\n")
            m = MARK.search(line)
            if m:
                markers.write(f"{time.monotonic() - start:.2f}\t{m.group(0)}\n")
                markers.flush()


def read_markers(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                t, _, text = line.rstrip("\n").partition("\t")
                out.append((float(t), text))
    except FileNotFoundError:
        pass
    return out


def first(markers, prefix):
    for t, text in markers:
        if text.startswith(prefix):
            return t, text
    return None, None


def section(lines, begin, end):
    """Lines strictly between the first line starting with begin and the next starting with end."""
    out, inside = [], False
    for line in lines:
        if not inside and line.startswith(begin):
            inside = True
            continue
        if inside and line.startswith(end):
            return out, True
        if inside:
            out.append(line)
    return out, False


EXPECTATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expectations")


def kernel_version(release):
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def load_expectations(path=EXPECTATIONS):
    """[(kernels, what, name, expected)] from the expectations file."""
    rules = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            if len(line) != 4 or line[1] not in ("hook", "test") or \
                    not re.fullmatch(r"\*|(<|>=)\d+\.\d+", line[0]):
                raise ValueError(f"{path}:{n}: want 'KERNELS hook|test NAME STATE', KERNELS * or <X.Y or >=X.Y")
            rules.append(tuple(line))
    return rules


def expected(rules, release, what, name):
    version = kernel_version(release)
    for kernels, w, n, state in rules:
        if w != what or not fnmatch.fnmatchcase(name or "", n):
            continue
        if kernels != "*":
            if version is None:
                continue
            bound = kernel_version(kernels.lstrip("<>="))
            if (version < bound) != kernels.startswith("<"):
                continue
        return state
    return None


def check_expectations(rules, kernel, report, tests):
    """One problem per hook or test whose state is not what this kernel should give."""
    problems = []
    for h in (report or {}).get("hooks", []):
        want = expected(rules, kernel, "hook", h.get("tracepoint"))
        if want and h.get("state") not in want.split("|"):
            why = "; ".join(filter(None, [h.get("reason")] + (h.get("notes") or [])))
            problems.append(f"hook {h.get('tracepoint')} is {h.get('state')}, expected {want} on this kernel"
                            + (f" ({why})" if why else "") + " (matrix/expectations)")
    for t in tests:
        want = expected(rules, kernel, "test", t.get("name"))
        if want and t.get("status") not in want.split("|") and t.get("status") != "fail":
            problems.append(f"test {t.get('name')} is {t.get('status')}, expected {want} on this kernel"
                            f" (matrix/expectations)")
    return problems


def judge(args):
    kernel, label, d = args.kernel, args.label, args.dir
    with open(f"{d}/console.log", encoding="utf-8", errors="replace") as f:
        lines = [ln.rstrip("\n") for ln in f]
    # The first console line may carry firmware noise before the marker.
    lines = [MARK.search(ln).group(0) if MARK.search(ln) and "FIVEXX-INIT" in ln else ln for ln in lines]
    markers = read_markers(f"{d}/markers.tsv")
    problems = []

    t_init, init_line = first(markers, "FIVEXX-INIT start")
    t_check, _ = first(markers, "FIVEXX-CHECK-BEGIN")
    t_end, end_line = first(markers, "FIVEXX-SELFTEST-END")
    if label == "guest" and init_line is None:
        problems.append(f"never reached /init ({'timeout after %ss' % args.limit if args.exit == 124 else 'qemu exit %d' % args.exit})")
    elif init_line is not None and f"kernel={kernel}" not in init_line:
        problems.append(f"booted the wrong kernel: {init_line}")
    for t, text in markers:
        if text.startswith("FIVEXX-ENV") and " failed" in text:
            problems.append(text[len("FIVEXX-ENV "):])

    # Tracepoint layouts, saved as DIR/tracefs/<category>/<event>/format.
    fmt, out = None, []
    for line in lines:
        if line.startswith("FIVEXX-FORMAT-BEGIN "):
            fmt, out = line.split(" ", 1)[1].strip(), []
        elif line.startswith("FIVEXX-FORMAT-END") and fmt:
            if re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+", fmt):
                os.makedirs(f"{d}/tracefs/{fmt}", exist_ok=True)
                with open(f"{d}/tracefs/{fmt}/format", "w", encoding="utf-8") as f:
                    f.write("\n".join(out) + "\n")
            fmt = None
        elif fmt is not None:
            out.append(line)

    # Capability report.
    body, closed = section(lines, "FIVEXX-CHECK-BEGIN", "FIVEXX-CHECK-END")
    check_rc = None
    if closed:
        _, check_end = first(markers, "FIVEXX-CHECK-END")
        m = re.search(r"rc=(\d+)", check_end or "")
        check_rc = int(m.group(1)) if m else None
    report = None
    text = "\n".join(body).strip()
    if not closed:
        if init_line is not None or label == "host":
            problems.append("capability check never finished")
    elif check_rc == 127 and not text:
        problems.append("agent missing from the image")
    elif check_rc in (124, 143) and not text:
        problems.append("the capability check timed out or was killed")
    else:
        try:
            report = json.loads(text)
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            problems.append(f"capability report is not one JSON object ({e}); check exit {check_rc}")
        if check_rc not in (0, None):
            problems.append(f"the capability check exited {check_rc}")
    if report is not None:
        with open(f"{d}/check.json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        rel = report.get("kernel_release") or report.get("kernel")
        if rel is not None and rel != kernel:
            problems.append(f"capability report is for kernel {rel}")

    # Selftest result line: the last FIVEXX-SELFTEST {...} inside the section.
    body, closed = section(lines, "FIVEXX-SELFTEST-BEGIN", "FIVEXX-SELFTEST-END")
    result = None
    for line in reversed(body):
        if line.startswith("FIVEXX-SELFTEST {"):
            try:
                result = json.loads(line[len("FIVEXX-SELFTEST "):])
            except ValueError as e:
                problems.append(f"result line is not JSON ({e})")
            break
    selftest_rc = None
    if closed:
        m = re.search(r"rc=(\d+)", end_line or "")
        selftest_rc = int(m.group(1)) if m else None
    if result is None:
        if closed and selftest_rc in (124, 143):
            problems.append("selftest timed out or was killed, with no result line")
        elif closed:
            problems.append(f"selftest exited {selftest_rc} without a FIVEXX-SELFTEST result line")
        elif t_check is not None:
            why = "timeout after %ss" % args.limit if args.exit == 124 else "exit %d" % args.exit
            problems.append(f"selftest never finished ({why})")
        passed = failed = degraded = 0
        tests = []
    else:
        with open(f"{d}/selftest.json", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        passed = int(result.get("passed", 0))
        failed = int(result.get("failed", 0))
        degraded = int(result.get("degraded", 0))
        tests = result.get("tests") or []
        if result.get("kernel") != kernel:
            problems.append(f"result line is for kernel {result.get('kernel')!r}")
        counted = {s: sum(1 for t in tests if t.get("status") == s) for s in ("pass", "fail", "degraded")}
        # The agent's convention: "passed" includes the degraded tests (each
        # passed the degraded expectation of its kernel).
        if (counted["pass"] + counted["degraded"], counted["fail"], counted["degraded"]) != (passed, failed, degraded):
            problems.append(f"result counts passed {passed}, failed {failed}, degraded {degraded} "
                            f"disagree with its tests {counted}")
        bad = [t for t in tests if t.get("status") not in ("pass", "fail", "degraded")]
        if bad:
            problems.append(f"unknown test status: {bad[0]}")
        if failed:
            problems.append("failed: " + ", ".join(t.get("name", "?") for t in tests if t.get("status") == "fail"))
        if passed == 0 and not failed:
            problems.append("the selftest ran no tests")
        if selftest_rc not in (0, None) and not failed:
            problems.append(f"selftest exited {selftest_rc} with 0 failures")
        if selftest_rc == 0 and failed:
            problems.append(f"selftest exited 0 with {failed} failures")
    problems += check_expectations(load_expectations(getattr(args, "expectations", EXPECTATIONS)),
                                   kernel, report, tests)
    if args.exit == 124 and not any("timeout" in p for p in problems):
        problems.append(f"timeout after {args.limit}s")
    elif label == "guest" and args.exit not in (0, 124) and not problems:
        problems.append(f"qemu exited {args.exit}")
    if label == "guest" and init_line is not None and first(markers, "FIVEXX-INIT done")[1] is None \
            and args.exit != 124 and not problems:
        problems.append("guest did not finish its /init")

    timing = []
    if label == "guest":
        m = re.search(r"uptime=([0-9.]+)", init_line or "")
        guest = " (guest clock %s s)" % m.group(1) if m else ""
        timing.append("boot %.1f s%s" % (t_init, guest) if t_init is not None else "boot -")
    if t_check is not None and t_end is not None:
        timing.append("tests %.1f s" % (t_end - t_check))
    name = f"kernel {kernel}" + (" (host)" if label == "host" else "")
    counts = f"{passed} passed" + (f" ({degraded} degraded)" if degraded else "") + f", {failed} failed"
    if problems:
        summary = f"{name}: FAILED: {counts} ({', '.join(timing)}): {problems[0]}"
    else:
        summary = f"{name}: {counts} ({', '.join(timing)})"
    with open(f"{d}/summary.txt", "w", encoding="utf-8") as f:
        f.write(summary + "\n")
        for p in problems[1:]:
            f.write(f"  also: {p}\n")
        for t in tests:
            if t.get("status") != "pass":
                f.write(f"  {t.get('status')}: {t.get('name')}: {t.get('detail', '')}\n")
    print(summary)
    for p in problems[1:]:
        if not p.startswith("failed: "):
            print(f"    also: {p}")
    for t in tests:
        if t.get("status") == "fail":
            print(f"    fail: {t.get('name')}: {t.get('detail', '')}")
    return 1 if problems else 0


def table(dirs):
    reports, results = [], []
    for d in dirs:
        try:
            with open(f"{d}/check.json", encoding="utf-8") as f:
                reports.append(json.load(f))
        except (OSError, ValueError):
            reports.append(None)
        try:
            with open(f"{d}/selftest.json", encoding="utf-8") as f:
                results.append(json.load(f))
        except (OSError, ValueError):
            results.append(None)
    names = [d.rstrip("/").rsplit("/", 1)[-1] for d in dirs]
    print("| hook | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    hooks = []
    for r in reports:
        for h in (r or {}).get("hooks", []):
            if h.get("tracepoint") not in hooks:
                hooks.append(h.get("tracepoint"))
    for hook in hooks:
        cells = []
        for r in reports:
            if r is None:
                cells.append("no report")
                continue
            h = next((x for x in r.get("hooks", []) if x.get("tracepoint") == hook), None)
            if h is None:
                cells.append("not listed")
                continue
            cell = h.get("state", "?")
            if h.get("form") and h.get("state") in ("attached", "degraded"):
                cell += f" ({h['form']})"
            extra = [h["reason"]] if h.get("reason") else []
            extra += h.get("notes") or []
            if extra:
                cell += ": " + "; ".join(extra)
            cells.append(cell.replace("|", "\\|"))
        print(f"| `{hook}` | " + " | ".join(cells) + " |")
    for key in ("btf", "btf_offsets", "ring_buffer_bytes", "loaded"):
        vals = [json.dumps((r or {}).get(key)) if r else "no report" for r in reports]
        print(f"| {key} | " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
    print()
    formats_table(dirs, names)
    print()
    statuses = {}
    for i, res in enumerate(results):
        for t in (res or {}).get("tests", []):
            statuses.setdefault(t.get("name"), [None] * len(results))[i] = t
    diff = {k: v for k, v in statuses.items()
            if len({(t or {}).get("status") for t in v}) > 1}
    if diff:
        print("| test whose result differs | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for name, ts in diff.items():
            cells = [("%s: %s" % (t.get("status"), t.get("detail", "")) if t else "not run").replace("|", "\\|")
                     for t in ts]
            print(f"| {name} | " + " | ".join(cells) + " |")
    else:
        print("Every test has the same status on every kernel.")
    return 0


def fields(path):
    """The event's own fields ("type name"), without offsets and sizes, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    own = text.split("\n\n", 1)[1] if "\n\n" in text else text
    return [m.group(1).strip() for m in re.finditer(r"field:([^;]*);", own)
            if not m.group(1).strip().split()[-1].startswith("common_")]


def formats_table(dirs, names):
    """Fields of each saved tracepoint layout that not every kernel has."""
    events = sorted({f"{c}/{e}" for d in dirs if os.path.isdir(f"{d}/tracefs")
                     for c in os.listdir(f"{d}/tracefs") for e in os.listdir(f"{d}/tracefs/{c}")})
    rows = []
    for ev in events:
        per = [fields(f"{d}/tracefs/{ev}/format") for d in dirs]
        present = [set(p) for p in per if p is not None]
        common = set.intersection(*present) if present else set()
        if all(p is not None for p in per) and all(set(p) == common for p in per):
            continue
        cells = ["missing" if p is None else (", ".join(f"`{x}`" for x in p if x not in common) or "(only common fields)")
                 for p in per]
        rows.append(f"| `{ev}` | " + " | ".join(cells) + " |")
    if not events:
        print("No tracepoint layouts were saved.")
    elif rows:
        print("| tracepoint: fields not on every kernel | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        print("\n".join(rows))
    else:
        print(f"The {len(events)} saved tracepoint layouts have the same fields on every kernel.")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "stream" and len(sys.argv) in (4, 5):
        stream(sys.argv[2], sys.argv[3], sys.argv[4:] == ["--echo"])
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == "table":
        return table(sys.argv[2:])
    if len(sys.argv) >= 2 and sys.argv[1] == "judge":
        import argparse
        p = argparse.ArgumentParser(prog="result.py judge")
        p.add_argument("--kernel", required=True)
        p.add_argument("--label", choices=("guest", "host"), required=True)
        p.add_argument("--dir", required=True)
        p.add_argument("--exit", type=int, required=True)
        p.add_argument("--limit", type=int, required=True)
        try:
            return judge(p.parse_args(sys.argv[2:]))
        except (OSError, ValueError) as e:
            print(f"kernel {p.parse_args(sys.argv[2:]).kernel}: FAILED: {e}")
            return 1
    sys.stderr.write("usage: result.py stream LOG MARKERS [--echo] | judge ... | table DIR...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
