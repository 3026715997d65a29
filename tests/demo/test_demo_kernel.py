"""scripts/demo on a real cgroup v2 kernel: the summary's figures against the raw results.

Runs the default scenario (the staggered pool) once, the way the demo runs inside its VM,
then recomputes from the files the run left (the guards' reports and the pool's worker
results) what the summary claims, and checks that the summary is the last thing printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
SUMMARY_LINES = 10  # header, 7 table lines, logs, verdict


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def kept_percent(workers: list[dict[str, Any]]) -> float:
    kept = sum(w["planned"] for w in workers if w["outcome"] == "finished")
    lost = sum(w["progress"] for w in workers if w["outcome"] != "finished")
    return 100.0 * kept / (kept + lost)


@pytest.mark.timeout(1500)  # two runs under emulation, minutes each on a loaded host
def test_demo_summary_matches_the_raw_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demo", "--inside", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=1300,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", "the guards' logs belong in their files"

    # the summary is last: nothing after the verdict
    header = lines[-SUMMARY_LINES]
    assert header.startswith("=== summary"), done.stdout
    assert lines[-1].startswith("verdict: oomguard kept more work"), done.stdout
    assert sum(line.startswith("=== summary") for line in lines) == 1

    summary = load(tmp_path / "summary.json")
    raw_kills = {}
    for run in ("kernel_alone", "with_oomguard"):
        report = load(tmp_path / f"{run}-report.json")
        workers = load(tmp_path / f"{run}-workers.json")["workers"]
        claimed = summary["runs"][run]
        raw_kills[run] = report["memory_events"]["final"]["oom_kill"]
        assert claimed["kernel_oom_kills"] == raw_kills[run]
        assert claimed["work_kept_percent"] == round(kept_percent(workers), 1)
        finished = [w["index"] for w in workers if w["outcome"] == "finished"]
        assert claimed["workers_finished"] == finished
        assert Path(claimed["log"]).is_file()
    assert raw_kills["kernel_alone"] > 0 and raw_kills["with_oomguard"] == 0, raw_kills
    kernel, guarded = summary["runs"]["kernel_alone"], summary["runs"]["with_oomguard"]
    assert guarded["work_kept_percent"] > kernel["work_kept_percent"]
    assert summary["verdict"] == "guard_kept_more"

    # the table says the same as the JSON
    rows = {line.split("  ")[0]: line for line in lines[-SUMMARY_LINES + 2 : -2]}
    assert rows["kernel OOM kills"].split()[-2:] == [
        str(kernel["kernel_oom_kills"]),
        str(guarded["kernel_oom_kills"]),
    ]
    assert f"{guarded['work_kept_percent']:.0f} %" in rows["work kept"]

    # the policy at its best: each of oomguard's decisions stopped the newest worker alone
    report = load(tmp_path / "with_oomguard-report.json")
    chosen = [d["victim_pids"] for d in report["decisions"] if d["outcome"] == "victims"]
    assert chosen and all(len(pids) == 1 for pids in chosen), chosen
    assert not any(line.lstrip().split()[2:3] == ["why"] for line in lines)
