"""The pure parts of the node bed's two cgroup drivers (no VM): what containerd, the kubelet
and systemd are told. The beds themselves run in the ``node`` tier."""

import json
import tomllib
from pathlib import Path

from node_bed import containerd_config, kubelet_config
from systemd_services import unit_text

STATE = Path("/run/oomguard-node")


def runc_options(systemd_cgroup: bool) -> dict[str, object]:
    config = tomllib.loads(containerd_config(STATE, Path("/cni"), systemd_cgroup=systemd_cgroup))
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    return runtime["containerd"]["runtimes"]["runc"]["options"]


def test_runc_manages_cgroups_through_systemd_only_under_the_systemd_driver() -> None:
    assert runc_options(systemd_cgroup=True)["SystemdCgroup"] is True
    assert runc_options(systemd_cgroup=False)["SystemdCgroup"] is False


def test_the_kubelets_cgroup_driver_is_the_one_asked_for() -> None:
    socket = STATE / "containerd.sock"
    assert kubelet_config(Path("/pki"), socket, 1)["cgroupDriver"] == "cgroupfs"
    systemd = kubelet_config(Path("/pki"), socket, 1, "systemd")
    assert systemd["cgroupDriver"] == "systemd"
    assert json.loads(json.dumps(systemd))["containerRuntimeEndpoint"] == f"unix://{socket}"


def test_a_service_unit_runs_the_command_with_its_output_in_the_bed_log() -> None:
    text = unit_text(
        "containerd",
        ["/bin/containerd", "--config", "/tmp/a b.toml"],
        Path("/logs/containerd.log"),
        {"PATH": "/shim:/usr/bin"},
        ["Delegate=yes", "KillMode=process"],
    )
    lines = text.splitlines()
    assert lines[:3] == ["[Unit]", "Description=oomguard node bed: containerd", "[Service]"]
    assert "ExecStart=/bin/containerd --config '/tmp/a b.toml'" in lines
    assert 'Environment="PATH=/shim:/usr/bin"' in lines
    assert "StandardOutput=append:/logs/containerd.log" in lines
    assert {"Delegate=yes", "KillMode=process"} <= set(lines)
