"""Shared pytest set-up for every test folder."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# tests/cluster: the real control plane (etcd, kube-apiserver, controller-manager) and helm
sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
# tests/vm: real-kernel test bed (runs `kernel` tests in a VM when the host lacks cgroup2 memory)
sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))

pytest_plugins = ["cluster_fixtures", "vm_pytest_plugin"]

# Hypothesis: no per-example deadline (a loaded 2-core machine or the emulated VM can take
# longer than the default 200 ms on any example, and that says nothing about the code), and
# in CI the same examples every run, so a red CI is always a reproducible one.
settings.register_profile("oomguard", deadline=None)
settings.register_profile("oomguard-ci", deadline=None, derandomize=True)
settings.load_profile("oomguard-ci" if os.environ.get("CI") else "oomguard")


# Opt-in markers: tests that need an artefact only some machines build (the image archive,
# scripts/setup --node) are collected only when the -m expression names their marker, so
# the plain unit run never depends on them and, once named, they fail rather than skip.
OPT_IN_MARKERS = ("image",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.getoption("markexpr") or ""
    for marker in OPT_IN_MARKERS:
        if marker in expression.replace("(", " ").replace(")", " ").split():
            continue
        dropped = [item for item in items if item.get_closest_marker(marker)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]


# Repeat mode for tests suspected of racing: OOMGUARD_REPEAT=N runs every selected test N
# times (ids end in [repeat1]..[repeatN]). Kernel tests keep sharing one VM boot, so
#   OOMGUARD_REPEAT=10 .venv/bin/pytest -m kernel tests/monitor/modes/test_node_agent_kernel.py
# is ten runs of each for the price of one boot (see tests/vm/README.md).
def _repeat_count() -> int:
    raw = os.environ.get("OOMGUARD_REPEAT", "1")
    try:
        count = int(raw)
    except ValueError:
        raise pytest.UsageError(f"OOMGUARD_REPEAT must be a whole number, got {raw!r}") from None
    if count < 1:
        raise pytest.UsageError(f"OOMGUARD_REPEAT must be at least 1, got {count}")
    return count


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = _repeat_count()
    if count > 1:
        metafunc.fixturenames.append("oomguard_repeat")
        metafunc.parametrize(
            "oomguard_repeat", range(1, count + 1), indirect=True, ids=lambda i: f"repeat{i}"
        )


@pytest.fixture
def oomguard_repeat(request: pytest.FixtureRequest) -> int:
    """Which repetition this is (1..OOMGUARD_REPEAT); only present in repeat mode."""
    return int(request.param)
