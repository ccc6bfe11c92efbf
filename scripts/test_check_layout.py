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
