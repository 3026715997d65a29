"""Startup refusals and defaults of ``oomguard monitor`` / ``oomguard status`` that the chart
relies on: one agent port, and a plain message (never a traceback) on a node it cannot guard."""

from pathlib import Path

import pytest
import yaml

from oomguard.cli import build_parser, main
from oomguard.monitor.feedback.http_endpoints import AGENT_PORT

CHART_VALUES = Path(__file__).resolve().parents[3] / "helm" / "oomguard" / "values.yaml"


def test_status_default_url_is_the_charts_agent_port():
    """`kubectl exec ds/oomguard-agent -- oomguard status` must work without --url."""
    chart_port = yaml.safe_load(CHART_VALUES.read_text())["agent"]["port"]
    status = build_parser().parse_args(["status"])
    monitor = build_parser().parse_args(["monitor"])
    assert chart_port == AGENT_PORT
    assert status.url == f"http://127.0.0.1:{chart_port}/status"
    assert monitor.http_port == chart_port


def _v1_layout(root: Path) -> None:
    """What /sys/fs/cgroup is on a cgroup v1 node: a tmpfs of per-controller hierarchies."""
    for controller in ("memory", "cpu,cpuacct", "pids", "systemd"):
        (root / controller).mkdir()
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")


@pytest.mark.parametrize("layout", ["cgroup-v1", "missing-root", "empty-dir"])
def test_refuses_a_non_v2_cgroup_root_without_a_traceback(tmp_path, capsys, layout):
    root = tmp_path / "cgroup"
    if layout == "cgroup-v1":
        root.mkdir()
        _v1_layout(root)
    elif layout == "empty-dir":
        root.mkdir()
    assert main(["monitor", "--node-name", "n", "--cgroup-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oomguard monitor: ")
    assert "cgroup v2 with the memory controller" in err
    assert str(root) in err
    assert "Traceback" not in err
