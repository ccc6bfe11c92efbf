#!/usr/bin/env python3
"""Unit tests of the kernel matrix's verdicts (result.py judge): every way a
kernel can fail must fail, and a clean result must pass. No qemu needed:
each case writes the console log a guest or the host would have written."""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import result  # noqa: E402
# A kernel whose refused_connect is degraded (before 5.17: no pod side).
REL = "5.10.0-46-cloud-amd64"
CHECK = {"agent_version": "0.1.0", "kernel_release": REL, "tracefs": "/sys/kernel/tracing", "btf": True,
         "btf_offsets": {}, "ring_buffer_bytes": 262144, "loaded": True,
         "hooks": [{"tracepoint": "tcp:tcp_send_reset", "kind": "send_reset", "state": "degraded",
                    "notes": ["no socket-less RSTs before 6.10"]}]}


def result_line(passed=3, failed=0, degraded=1, kernel=REL, tests=None):
    """passed counts the degraded tests too, as the agent does."""
    if tests is None:
        tests = [{"name": f"p{i}", "status": "pass", "detail": ""} for i in range(passed - degraded)]
        tests += [{"name": f"f{i}", "status": "fail", "detail": "boom"} for i in range(failed)]
        tests += [{"name": "refused_connect" if i == 0 else f"d{i}", "status": "degraded", "detail": "5.10"}
                  for i in range(degraded)]
    return "FIVEXX-SELFTEST " + json.dumps({"kernel": kernel, "passed": passed, "failed": failed,
                                            "degraded": degraded, "tests": tests})


def console(check=None, check_rc=0, selftest=None, selftest_rc=0, init=True, done=True, kernel=REL):
    lines = ["SeaBIOS noise", "\x1b[2J" * 0 + f"junkFIVEXX-INIT start kernel={kernel} uptime=2.50"] if init else ["SeaBIOS"]
    if not init:
        return lines
    lines += ["FIVEXX-ENV tracefs ok /sys/kernel/tracing", "FIVEXX-CHECK-BEGIN"]
    if check is not None:
        lines.append(check if isinstance(check, str) else json.dumps(check))
    lines += [f"FIVEXX-CHECK-END rc={check_rc}", "FIVEXX-SELFTEST-BEGIN timeout=100", "case p0: pass"]
    if selftest is not None:
        lines.append(selftest)
    if selftest_rc is not None:
        lines.append(f"FIVEXX-SELFTEST-END rc={selftest_rc}")
        if done:
            lines.append("FIVEXX-INIT done uptime=9.0")
    return lines


def judge(lines, exit_code=0, label="guest", kernel=REL, expectations=result.EXPECTATIONS):
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/console.log", "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(f"{d}/markers.tsv", "w") as f:
            for i, ln in enumerate(lines):
                if "FIVEXX-" in ln:
                    f.write(f"{1.0 + i:.2f}\t{ln[ln.index('FIVEXX-'):]}\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = result.judge(argparse.Namespace(kernel=kernel, label=label, dir=d, exit=exit_code, limit=150,
                                                 expectations=expectations))
        return rc, out.getvalue()


class Verdicts(unittest.TestCase):
    def test_clean_result_passes(self):
        rc, out = judge(console(CHECK, 0, result_line()))
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.startswith(f"kernel {REL}: 3 passed (1 degraded), 0 failed (boot "), out)

    def test_host_clean_result_passes(self):
        rc, out = judge(console(CHECK, 0, result_line()), label="host")
        self.assertEqual(rc, 0, out)
        self.assertIn("(host)", out)

    def test_failed_test_fails(self):
        rc, out = judge(console(CHECK, 0, result_line(failed=1), selftest_rc=1))
        self.assertEqual(rc, 1)
        self.assertIn("FAILED", out)
        self.assertIn("fail: f0: boom", out)

    def test_exit_zero_with_failures_fails(self):
        rc, _ = judge(console(CHECK, 0, result_line(failed=1), selftest_rc=0))
        self.assertEqual(rc, 1)

    def test_nonzero_exit_without_failures_fails(self):
        rc, _ = judge(console(CHECK, 0, result_line(), selftest_rc=101))
        self.assertEqual(rc, 1)

    def test_no_tests_fails(self):
        rc, out = judge(console(CHECK, 0, result_line(passed=0, degraded=0)))
        self.assertEqual(rc, 1)
        self.assertIn("ran no tests", out)

    def test_wrong_kernel_fails(self):
        rc, out = judge(console(CHECK, 0, result_line(kernel="6.18.0")))
        self.assertEqual(rc, 1)
        self.assertIn("result line is for kernel", out)

    def test_degraded_not_counted_as_passed_fails(self):
        tests = [{"name": "a", "status": "pass"}, {"name": "b", "status": "degraded"}]
        rc, out = judge(console(CHECK, 0, result_line(passed=1, degraded=1, tests=tests)))
        self.assertEqual(rc, 1)
        self.assertIn("disagree", out)

    def test_counts_disagreeing_with_tests_fail(self):
        tests = [{"name": "a", "status": "fail", "detail": ""}]
        rc, _ = judge(console(CHECK, 0, result_line(passed=1, degraded=0, tests=tests)))
        self.assertEqual(rc, 1)

    def test_missing_result_line_fails(self):
        rc, out = judge(console(CHECK, 0, None, selftest_rc=2))
        self.assertEqual(rc, 1)
        self.assertIn("without a FIVEXX-SELFTEST result line", out)

    def test_garbled_result_line_fails(self):
        rc, out = judge(console(CHECK, 0, "FIVEXX-SELFTEST {\"kernel\": "))
        self.assertEqual(rc, 1)
        self.assertIn("not JSON", out)

    def test_bad_capability_report_fails(self):
        rc, out = judge(console("not json", 0, result_line()))
        self.assertEqual(rc, 1)
        self.assertIn("capability report", out)

    def test_failed_check_fails(self):
        rc, _ = judge(console(CHECK, 1, result_line()))
        self.assertEqual(rc, 1)

    def test_agent_missing_fails(self):
        rc, out = judge(console(None, 127, result_line(passed=0, failed=1, degraded=0), selftest_rc=127))
        self.assertEqual(rc, 1)
        self.assertIn("agent missing", out)

    def test_boot_timeout_fails(self):
        rc, out = judge(console(init=False), exit_code=124)
        self.assertEqual(rc, 1)
        self.assertIn("never reached /init (timeout after 150s)", out)

    def test_selftest_hang_fails(self):
        rc, out = judge(console(CHECK, 0, None, selftest_rc=None), exit_code=124)
        self.assertEqual(rc, 1)
        self.assertIn("selftest never finished (timeout after 150s)", out)

    def test_guest_side_timeout_fails(self):
        rc, out = judge(console(CHECK, 0, None, selftest_rc=143))
        self.assertEqual(rc, 1)
        self.assertIn("timed out", out)

    def test_check_timeout_fails(self):
        rc, out = judge(console(None, 143, result_line()))
        self.assertEqual(rc, 1)
        self.assertIn("capability check timed out", out)

    def test_kernel_panic_fails(self):
        rc, _ = judge(console(CHECK, 0, None, selftest_rc=None), exit_code=0)
        self.assertEqual(rc, 1)

    def test_unfinished_init_fails(self):
        rc, out = judge(console(CHECK, 0, result_line(), done=False))
        self.assertEqual(rc, 1)
        self.assertIn("did not finish", out)

    def test_wrong_booted_kernel_fails(self):
        rc, out = judge(console(CHECK, 0, result_line(), kernel="6.12.1"))
        self.assertEqual(rc, 1)
        self.assertIn("wrong kernel", out)

    def test_failed_mount_fails(self):
        lines = console(CHECK, 0, result_line())
        lines.insert(2, "FIVEXX-ENV cgroup2 failed /sys/fs/cgroup: no such device")
        rc, out = judge(lines)
        self.assertEqual(rc, 1)
        self.assertIn("cgroup2 failed", out)


class Expectations(unittest.TestCase):
    """matrix/expectations: degraded only where the kernel lacks something."""
    NEW = "6.12.117+deb12-cloud-amd64"

    def report(self, kernel, send_reset_state):
        r = dict(CHECK, kernel_release=kernel)
        r["hooks"] = [dict(CHECK["hooks"][0], state=send_reset_state),
                      {"tracepoint": "signal:signal_generate", "kind": "signal", "state": "attached"}]
        return r

    def test_5_10_degraded_as_expected_passes(self):
        rc, out = judge(console(self.report(REL, "degraded"), 0, result_line()))
        self.assertEqual(rc, 0, out)

    def test_6_12_with_a_degraded_test_fails(self):
        rc, out = judge(console(self.report(self.NEW, "attached"), 0, result_line(kernel=self.NEW), kernel=self.NEW),
                        kernel=self.NEW)
        self.assertEqual(rc, 1)
        self.assertIn("test refused_connect is degraded, expected pass", out)

    def test_6_12_with_a_degraded_hook_fails(self):
        rc, out = judge(console(self.report(self.NEW, "degraded"), 0, result_line(degraded=0, kernel=self.NEW),
                                kernel=self.NEW), kernel=self.NEW)
        self.assertEqual(rc, 1)
        self.assertIn("hook tcp:tcp_send_reset is degraded, expected attached", out)

    def test_6_1_claiming_a_socketless_rst_fails(self):
        rc, out = judge(console(self.report(REL, "attached"), 0, result_line(degraded=0)))
        self.assertEqual(rc, 1)
        self.assertIn("expected degraded", out)

    def test_a_missing_hook_fails_unless_listed(self):
        r = self.report(REL, "degraded")
        r["hooks"][1]["state"] = "missing"
        rc, out = judge(console(r, 0, result_line()))
        self.assertEqual(rc, 1)
        self.assertIn("hook signal:signal_generate is missing", out)

    def test_version_ranges(self):
        rules = [("<6.10", "test", "x", "degraded"), (">=6.18", "test", "*", "degraded"), ("*", "test", "*", "pass")]
        self.assertEqual(result.expected(rules, "6.1.0-56-cloud-amd64", "test", "x"), "degraded")
        self.assertEqual(result.expected(rules, "6.9.12", "test", "x"), "degraded")
        self.assertEqual(result.expected(rules, "6.10.0", "test", "x"), "pass")
        self.assertEqual(result.expected(rules, "6.12.117+deb12-cloud-amd64", "test", "x"), "pass")
        self.assertEqual(result.expected(rules, "6.18.44-fc-v657", "test", "x"), "degraded")
        self.assertEqual(result.expected(rules, "6.12.1", "hook", "x"), None)

    def test_wildcards_and_alternatives(self):
        r = self.report(REL, "degraded")
        r["hooks"].append({"tracepoint": "syscalls:sys_enter_writev", "kind": "http", "state": "not_loaded"})
        rc, out = judge(console(r, 0, result_line()))
        self.assertEqual(rc, 0, out)
        r["hooks"][-1]["state"] = "failed"
        rc, out = judge(console(r, 0, result_line()))
        self.assertEqual(rc, 1)
        self.assertIn("syscalls:sys_enter_writev is failed, expected not_loaded|attached", out)

    def test_the_shipped_file_parses(self):
        self.assertTrue(result.load_expectations())

    def test_a_bad_line_is_an_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".exp") as f:
            f.write("6.1 test x pass\n")
            f.flush()
            with self.assertRaises(ValueError):
                result.load_expectations(f.name)


if __name__ == "__main__":
    unittest.main()
