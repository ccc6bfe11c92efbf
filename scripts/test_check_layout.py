"""The layout check fails on what it is for (run by `make lint`)."""

import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-layout.py")


def tree(files):
    root = tempfile.mkdtemp()
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return root


def run(root):
    env = dict(os.environ, LAYOUT_ROOT=root)
    return subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True)


class LayoutCheck(unittest.TestCase):
    def test_a_top_level_cycle_fails(self):
        r = run(tree({
            "fivexx-core/src/lib.rs": "pub mod model;\npub mod explain;\n",
            "fivexx-core/src/model/mod.rs": "use crate::explain::{Evidence, Said};\n",
            "fivexx-core/src/explain/mod.rs": "pub mod verdict;\n",
            "fivexx-core/src/explain/verdict.rs": "use crate::model::PodTimeline;\n",
        }))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("import cycle: explain -> model -> explain", r.stdout)

    def test_a_sibling_cycle_fails_and_tests_do_not_count(self):
        r = run(tree({
            "fivexx-core/src/lib.rs": "pub mod explain;\n",
            "fivexx-core/src/explain/mod.rs": "mod a;\nmod b;\n",
            "fivexx-core/src/explain/a.rs": "use super::b::X;\n",
            "fivexx-core/src/explain/b.rs": "use super::{a::Y, c};\n",
        }))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("explain::a -> explain::b -> explain::a", r.stdout)
        r = run(tree({
            "fivexx-core/src/lib.rs": "pub mod explain;\n",
            "fivexx-core/src/explain/a.rs": "use super::b::X;\n",
            "fivexx-core/src/explain/b.rs": "#[cfg(test)]\nmod tests { use super::super::a::Y; }\n",
        }))
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_a_cycle_in_any_crate_fails(self):
        r = run(tree({
            "fivexx-core/src/lib.rs": "pub mod event;\n",
            "fivexx-core/src/event.rs": "",
            "kubectl-fivexx/src/main.rs": "mod agent;\nmod session;\nfn main() {}\n",
            "kubectl-fivexx/src/agent/mod.rs": "pub mod subscription;\n",
            "kubectl-fivexx/src/agent/subscription.rs": "fn f() -> u64 { crate::session::now_ns() }\n",
            "kubectl-fivexx/src/session/mod.rs": "use crate::agent::subscription::Update;\n",
            "tracer-user/src/lib.rs": "pub mod jiffies;\npub mod tracer;\n",
            "tracer-user/src/jiffies.rs": "fn f() { crate::tracer::monotonic_ns(); }\n",
            "tracer-user/src/tracer.rs": "use crate::jiffies;\n",
            "tests/src/lib.rs": "pub mod node;\npub mod sim;\n",
            "tests/src/node/mod.rs": "pub mod proxy;\n",
            "tests/src/node/proxy/mod.rs": "pub mod nginx;\npub mod envoy;\n",
            "tests/src/node/proxy/nginx.rs": "use super::envoy::Flags;\n",
            "tests/src/node/proxy/envoy.rs": "use super::{nginx::Conf, Proxy};\n",
            "tests/src/sim/mod.rs": "",
        }))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("kubectl-fivexx: import cycle: agent -> session -> agent", r.stdout)
        self.assertIn("tracer-user: import cycle: jiffies -> tracer -> jiffies", r.stdout)
        self.assertIn("tests: import cycle: node::proxy::envoy -> node::proxy::nginx -> node::proxy::envoy",
                      r.stdout)
        self.assertNotIn("fivexx-core", r.stdout)

    def test_a_library_and_its_binary_are_two_graphs(self):
        # `crate::` names the lib's tree in lib.rs's modules and the bin's
        # in main.rs's: together they would look like a cycle.
        r = run(tree({
            "tracer-user/src/lib.rs": "pub mod a;\n",
            "tracer-user/src/a.rs": "use crate::b::X;\n",
            "tracer-user/src/main.rs": "mod b;\nfn main() {}\n",
            "tracer-user/src/b.rs": "use crate::a::Y;\n",
        }))
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run(tree({
            "tracer-user/src/lib.rs": "pub mod a;\n",
            "tracer-user/src/a.rs": "",
            "tracer-user/src/main.rs": "mod cmd;\nfn main() {}\n",
            "tracer-user/src/cmd/mod.rs": "mod check;\nmod trace;\n",
            "tracer-user/src/cmd/check.rs": "use super::trace::Args;\n",
            "tracer-user/src/cmd/trace.rs": "use super::check::Report;\n",
        }))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("tracer-user (main.rs): import cycle: cmd::check -> cmd::trace -> cmd::check", r.stdout)

    def test_test_only_items_comments_and_strings_do_not_count(self):
        r = run(tree({
            "kubectl-fivexx/src/main.rs": "mod agent;\nmod session;\nfn main() {}\n",
            "kubectl-fivexx/src/agent.rs": (
                "#[cfg(test)]\nmod tests;\n"
                "#[cfg(test)]\nuse crate::session::{A, B};\n"
                "impl X {\n    #[cfg(test)]\n    pub fn f(&self) { crate::session::g() }\n}\n"
                "// see crate::session::now_ns\n"
                "const S: &str = \"crate::session::now_ns {\";\n"
                "fn kept() { let c = '{'; }\n"
            ),
            "kubectl-fivexx/src/agent/tests.rs": "use crate::session::Anything;\n",
            "kubectl-fivexx/src/session.rs": "use crate::agent::Link;\n",
        }))
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_a_long_file_needs_a_reason(self):
        body = "fn f() {}\n" * 601
        r = run(tree({"fivexx-core/src/lib.rs": "//! A crate.\n" + body}))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("fivexx-core/src/lib.rs: 602 lines", r.stdout)
        reason = "//! A crate.\n//! This file is longer than 600 lines because it must be.\n"
        r = run(tree({"fivexx-core/src/lib.rs": reason + body}))
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
