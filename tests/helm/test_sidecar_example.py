"""The sidecar example in the chart's README is a valid Pod that the real command accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from chart_cluster import ObjectApi, create_labelled_namespace
from chart_tools import CHART_DIR
from control_plane import ControlPlane
from k8s_helpers import unique_name

pytestmark = pytest.mark.helm

README = CHART_DIR / "README.md"


def sidecar_pod() -> dict[str, Any]:
    section = README.read_text().split("## Sidecar mode", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "no yaml example in the README's sidecar section"
    pod: dict[str, Any] = yaml.safe_load(block.group(1))
    return pod


def _sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in pod["spec"].get("initContainers", []) if c["name"] == "oomguard"]
    assert len(found) == 1, "the sidecar is an init container (a native sidecar)"
    return found[0]


def test_example_is_a_privileged_native_sidecar_sharing_the_process_namespace() -> None:
    """What the real node required (docs/real-node.md): started before the app and gating
    it by a startup probe on /healthz; privileged and root, so that it runs in the host's
    cgroup namespace and may move the app's processes where cgroup2 is mounted nsdelegate."""
    pod = sidecar_pod()
    assert pod["kind"] == "Pod" and pod["spec"]["shareProcessNamespace"] is True
    sidecar = _sidecar(pod)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["securityContext"] == {"privileged": True, "runAsUser": 0}
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]


def test_example_args_are_accepted_by_oomguard_monitor() -> None:
    from oomguard.cli import build_parser

    args = _sidecar(sidecar_pod())["args"]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"`oomguard {' '.join(args)}` is refused by the CLI") from exc
    assert parsed.command == "monitor" and parsed.mode == "sidecar"


@pytest.mark.apiserver
def test_example_passes_server_side_dry_run(control_plane: ControlPlane) -> None:
    ns = unique_name("sidecar")
    create_labelled_namespace(
        control_plane.api_client, ns, {"pod-security.kubernetes.io/enforce": "privileged"}
    )
    ObjectApi(control_plane.api_client).create(sidecar_pod(), ns, dry_run=True)
