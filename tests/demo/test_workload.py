"""The pool runs by path (as the kernel tests start it) and reports each worker's progress."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from demo.scenarios import Scenario, plan, staggered_pool
from demo.workload import parse_args, specs_of

WORKLOAD = Path(__file__).resolve().parents[2] / "demo" / "workload.py"


def test_specs_from_a_scenario_or_from_flags() -> None:
    assert specs_of(parse_args(["--scenario", "leak"])) == plan(Scenario.LEAK).workers
    assert specs_of(parse_args([])) == staggered_pool(6, 0.3, 80, 10, 0.15, 3.0)  # the old pool


def run_pool(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKLOAD), *flags, "--quiet", "--results", str(tmp_path / "w.json")],
        cwd=tmp_path,  # by path, from anywhere
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_small_pool_finishes_and_reports_progress(tmp_path: Path) -> None:
    flags = ["--workers", "2", "--worker-mib", "2", "--step-mib", "1", "--step-interval", "0"]
    done = run_pool(tmp_path, *flags, "--stagger", "0", "--hold", "0.1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["pool: worker 0 finished", "pool: worker 1 finished"]
    rows = json.loads((tmp_path / "w.json").read_text())["workers"]
    assert [(r["index"], r["outcome"], r["progress"], r["planned"]) for r in rows] == [
        (0, "finished", 3, 3),
        (1, "finished", 3, 3),
    ]
    assert all(r["started_at"] <= r["ended_at"] and r["pid"] > 0 for r in rows)


def test_workers_in_turn_start_after_the_previous_has_grown_and_end_together(
    tmp_path: Path,
) -> None:
    flags = ["--workers", "3", "--worker-mib", "2", "--step-mib", "1", "--step-interval", "0.05"]
    done = run_pool(tmp_path, *flags, "--stagger", "0", "--hold", "0", "--in-turn")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "w.json").read_text())["workers"]
    starts = [r["started_at"] for r in rows]
    # no stagger, yet each waited for its predecessor's two steps (the first one's sleep)
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(starts)), starts
    # no hold, yet the done ones held on until the last had grown
    assert min(r["ended_at"] for r in rows) >= max(starts)
