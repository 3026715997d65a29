"""The scrape-time cgroup collector against a fake cgroup directory (plain files)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.feedback.cgroup_collector import FILES, CgroupCollector

EVENTS = "low 0\nhigh 12\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n"
LOCAL_EVENTS = "low 0\nhigh 12\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
VMSTAT = "nr_free_pages 1000\npgfault 77\noom_kill 5\nthp_fault_alloc 0\n"
STAT = "anon 4096\nfile 900000\nactive_file 100000\ninactive_file 800000\npgfault 77\n"


def fake_cgroup(root: Path, **files: str) -> Path:
    """A directory holding cgroupfs-like files; keyword ``memory_high`` -> ``memory.high``."""
    contents = {
        "memory.events": EVENTS,
        "memory.events.local": LOCAL_EVENTS,
        "memory.high": "268435456\n",
        "memory.max": "max\n",
        "memory.current": "1000000\n",
        "memory.stat": STAT,
    }
    for name, text in files.items():
        contents[name.replace("_", ".")] = text
    cgroup = root / "guarded.slice"
    cgroup.mkdir()
    for name, text in contents.items():
        if text is not None:
            (cgroup / name).write_text(text)
    return cgroup


def scrape(collector: CgroupCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render through a real registry and parse the text back, as Prometheus would."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_values_appear(tmp_path: Path) -> None:
    samples = scrape(CgroupCollector(fake_cgroup(tmp_path)))
    assert value(samples, "oomguard_memory_high_bytes") == 268435456
    assert value(samples, "oomguard_memory_max_bytes") == math.inf
    assert value(samples, "oomguard_memory_usage_bytes") == 1000000
    assert value(samples, "oomguard_memory_working_set_bytes") == 1000000 - 800000
    expected = {"low": 0, "high": 12, "max": 3, "oom": 1, "oom_kill": 2, "oom_group_kill": 0}
    for event, count in expected.items():
        assert value(samples, "oomguard_memory_events_total", event=event) == count
    for name in FILES:
        assert value(samples, "oomguard_cgroup_read_errors_total", file=name) == 0


def test_values_are_read_at_scrape_time(tmp_path: Path) -> None:
    cgroup = fake_cgroup(tmp_path)
    collector = CgroupCollector(cgroup)
    assert value(scrape(collector), "oomguard_memory_events_total", event="high") == 12
    (cgroup / "memory.events").write_text(EVENTS.replace("high 12", "high 40"))
    (cgroup / "memory.current").write_text("5\n")
    samples = scrape(collector)
    assert value(samples, "oomguard_memory_events_total", event="high") == 40
    assert value(samples, "oomguard_memory_usage_bytes") == 5
    assert value(samples, "oomguard_memory_working_set_bytes") == 0  # never negative


def test_unknown_memory_events_keys_are_exported_and_missing_optional_ones_omitted(
    tmp_path: Path,
) -> None:
    # A 5.10 kernel (no oom_group_kill) and a future kernel's new key.
    events = "low 0\nhigh 1\nmax 0\noom 0\noom_kill 0\nsock_throttled 9\n"
    samples = scrape(CgroupCollector(fake_cgroup(tmp_path, memory_events=events)))
    assert value(samples, "oomguard_memory_events_total", event="sock_throttled") == 9
    assert value(samples, "oomguard_memory_events_total", event="oom_group_kill") is None
    assert value(samples, "oomguard_cgroup_read_errors_total", file="memory.events") == 0


@pytest.mark.parametrize("missing", FILES)
def test_missing_file_omits_its_metric_and_counts_an_error(tmp_path: Path, missing: str) -> None:
    cgroup = fake_cgroup(tmp_path)
    (cgroup / missing).unlink()
    collector = CgroupCollector(cgroup)
    samples = scrape(collector)
    gone = {
        "memory.high": {"oomguard_memory_high_bytes"},
        "memory.max": {"oomguard_memory_max_bytes"},
        "memory.current": {"oomguard_memory_usage_bytes", "oomguard_memory_working_set_bytes"},
        "memory.stat": {"oomguard_memory_working_set_bytes"},
        "memory.events": {"oomguard_memory_events_total"},
        "memory.events.local": {"oomguard_memory_events_local_total"},
    }[missing]
    names = {name for name, _ in samples}
    assert not gone & names
    # everything else is still there
    assert {
        "oomguard_memory_high_bytes",
        "oomguard_memory_max_bytes",
        "oomguard_memory_usage_bytes",
        "oomguard_memory_working_set_bytes",
        "oomguard_memory_events_total",
        "oomguard_memory_events_local_total",
    } - gone <= names
    assert value(samples, "oomguard_cgroup_read_errors_total", file=missing) == 1
    assert value(scrape(collector), "oomguard_cgroup_read_errors_total", file=missing) == 2
    (cgroup / missing).write_text(
        {"memory.events": EVENTS, "memory.events.local": LOCAL_EVENTS, "memory.stat": STAT}.get(
            missing, "7\n"
        )
    )
    samples = scrape(collector)
    assert gone <= {name for name, _ in samples}
    assert value(samples, "oomguard_cgroup_read_errors_total", file=missing) == 2


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("memory.events", "high twelve\n"),
        ("memory.events", "high 1\n"),  # required keys missing
        ("memory.high", "-1\n"),
        ("memory.max", "lots\n"),
        ("memory.current", "max\n"),
        ("memory.current", "1 2\n"),
        ("memory.stat", "anon 1\n"),  # no inactive_file: no working set
        ("memory.stat", b"\xff\xfe".decode("latin-1")),
    ],
)
def test_unparsable_file_omits_its_metric_and_counts_an_error(
    tmp_path: Path, name: str, text: str
) -> None:
    cgroup = fake_cgroup(tmp_path)
    (cgroup / name).write_bytes(text.encode("latin-1"))
    samples = scrape(CgroupCollector(cgroup))
    assert value(samples, "oomguard_cgroup_read_errors_total", file=name) == 1
    assert sum(v for (n, _), v in samples.items() if n == "oomguard_cgroup_read_errors_total") == 1


def test_vanished_cgroup_never_fails_the_scrape(tmp_path: Path) -> None:
    collector = CgroupCollector(tmp_path / "removed", vmstat=None)
    samples = scrape(collector)
    assert {name for name, _ in samples} == {"oomguard_cgroup_read_errors_total"}
    for name in FILES:
        assert value(samples, "oomguard_cgroup_read_errors_total", file=name) == 1


def test_no_cgroup_yet_exports_only_the_error_counter(tmp_path: Path) -> None:
    collector = CgroupCollector(None, vmstat=None)
    samples = scrape(collector)
    assert {name for name, _ in samples} == {"oomguard_cgroup_read_errors_total"}
    assert all(v == 0 for v in samples.values())
    collector.cgroup = fake_cgroup(tmp_path)
    assert value(scrape(collector), "oomguard_memory_usage_bytes") == 1000000


def test_cgroup_directory_instead_of_file_counts_an_error(tmp_path: Path) -> None:
    cgroup = fake_cgroup(tmp_path)
    (cgroup / "memory.max").unlink()
    (cgroup / "memory.max").mkdir()
    samples = scrape(CgroupCollector(cgroup))
    assert value(samples, "oomguard_cgroup_read_errors_total", file="memory.max") == 1


def test_local_events_are_the_cgroups_own(tmp_path: Path) -> None:
    """memory.events.local is its own series: the subtree's oom does not leak into it."""
    samples = scrape(CgroupCollector(fake_cgroup(tmp_path), vmstat=None))
    assert value(samples, "oomguard_memory_events_total", event="oom") == 1
    assert value(samples, "oomguard_memory_events_local_total", event="oom") == 0
    assert value(samples, "oomguard_memory_events_local_total", event="high") == 12


def test_node_oom_kills_come_from_vmstat(tmp_path: Path) -> None:
    vmstat = tmp_path / "vmstat"
    vmstat.write_text(VMSTAT)
    collector = CgroupCollector(None, vmstat=vmstat)
    samples = scrape(collector)
    assert value(samples, "oomguard_node_oom_kills_total") == 5
    assert value(samples, "oomguard_cgroup_read_errors_total", file=str(vmstat)) == 0
    vmstat.write_text(VMSTAT.replace("oom_kill 5", "oom_kill 6"))
    assert value(scrape(collector), "oomguard_node_oom_kills_total") == 6


def test_vmstat_without_oom_kill_exports_nothing_and_is_no_error(tmp_path: Path) -> None:
    """Kernels before 4.13 have no oom_kill line: no series rather than a zero."""
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 1000\npgfault 77\n")
    samples = scrape(CgroupCollector(None, vmstat=vmstat))
    assert not [n for n, _ in samples if n == "oomguard_node_oom_kills_total"]
    assert value(samples, "oomguard_cgroup_read_errors_total", file=str(vmstat)) == 0


@pytest.mark.parametrize("content", [None, "oom_kill lots\n"])
def test_unreadable_vmstat_counts_an_error_and_keeps_the_cgroup_series(
    tmp_path: Path, content: str | None
) -> None:
    vmstat = tmp_path / "vmstat"
    if content is not None:
        vmstat.write_text(content)
    samples = scrape(CgroupCollector(fake_cgroup(tmp_path), vmstat=vmstat))
    assert value(samples, "oomguard_cgroup_read_errors_total", file=str(vmstat)) == 1
    assert not [n for n, _ in samples if n == "oomguard_node_oom_kills_total"]
    assert value(samples, "oomguard_memory_usage_bytes") == 1000000
