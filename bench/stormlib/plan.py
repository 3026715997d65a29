"""What the storm benchmark runs: its scenarios, its contenders and their labels, where."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORM_SCRIPT = ROOT / "bench" / "storm.py"  # the entry point: re-run for ``pool``/``loader``
MiB = 2**20
CGROOT = Path("/sys/fs/cgroup")
BENCH_CG = CGROOT / "storm"
SHM_DIR = Path("/tmp/storm-shm")  # a tmpfs the driver mounts inside the VM
TICK = 0.1  # one progress unit = one allocation step or 0.1 s of holding
SAMPLE_INTERVAL = 0.01
RUN_TIMEOUT = 90.0  # per scenario x contender, inside the VM
POLL_FLAGS = ["--monitors", "threshold", "--threshold-interval", "0.25", "--no-memory-high"]
CONTENDERS = ("none", "poll-250ms", "earlyoom", "oomguard")
EXTRA_CONTENDERS = {"d": ("oomguard-parent",)}
BASE = "oomguard-base"  # oomguard from another checkout (--base-src): before and after, one run
LABELS = {
    "none": "kernel alone",
    "poll-250ms": "oomguard threshold-only, 250 ms poll",
    "earlyoom": "earlyoom 1.7",
    "oomguard": "oomguard (event + threshold, its defaults)",
    "oomguard-parent": "oomguard guarding the parent cgroup",
    BASE: "oomguard before (base checkout, its defaults)",
}
SHORT = {
    "a": "(a) staggered pool",
    "b": "(b) fast balloon",
    "c": "(c) many small",
    "d": "(d) escaped shm",
    "e": "(e) slow leak",
    "f": "(f) bursts",
    "g": "(g) 120 tiny",
}
SCENARIOS = {
    "a": "staggered pool outgrows the limit",
    "b": "one new process balloons fast",
    "c": "many small short-lived workers",
    "d": "memory escapes via shared memory (tmpfs charged to a sibling)",
    "e": "slow leak",
    "f": "an allocator frees and re-allocates in bursts every 80 ms, each burst bigger",
    "g": "a pool of 120 tiny processes",
}
REPETITIONS = 3  # per scenario x contender (and of the idle window): medians with min-max
