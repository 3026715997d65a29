"""The node tier's pure parts: the storm's and the pool's manifests (the pool's held to the
documented sidecar example) and how a pod's last state reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from storm_pods import Ending, StormPlan, ending, is_final, newest_first_holds

REPO = Path(__file__).resolve().parents[2]
PLAN = StormPlan(namespace="s", count=3, size_mib=64, image="img", host_dir="/run/s")


def terminated(reason: str, phase: str = "Failed") -> dict[str, Any]:
    return {
        "status": {
            "phase": phase,
            "containerStatuses": [{"state": {"terminated": {"reason": reason}}}],
        }
    }


def test_manifests_name_pods_in_age_order_and_never_pull() -> None:
    manifest = PLAN.manifest(2)
    assert manifest["metadata"]["name"] == "storm-02"
    container = manifest["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    assert {"name": "SIZE_MIB", "value": "64"} in container["env"]
    assert manifest["spec"]["restartPolicy"] == "Never"
    assert manifest["spec"]["volumes"][0]["hostPath"]["path"] == "/run/s"
    assert PLAN.full_file(2) == "/run/s/storm-02.full"


def test_endings() -> None:
    assert ending(None, evicted=True) is Ending.EVICTED
    assert ending(terminated("Completed", "Succeeded"), evicted=True) is Ending.EVICTED
    assert ending(None, evicted=False) is Ending.OTHER
    assert ending(terminated("OOMKilled"), evicted=False) is Ending.OOM_KILLED
    assert ending(terminated("Completed", "Succeeded"), evicted=False) is Ending.COMPLETED
    assert ending(terminated("Error"), evicted=False) is Ending.OTHER
    assert ending({"status": {"phase": "Running"}}, evicted=False) is Ending.OTHER


def test_final_states() -> None:
    assert is_final(None)
    assert is_final({"status": {"phase": "Succeeded"}})
    assert is_final({"status": {"phase": "Failed"}})
    assert not is_final({"status": {"phase": "Running"}})
    assert not is_final({})


def test_newest_first() -> None:
    c, e, k = Ending.COMPLETED, Ending.EVICTED, Ending.OOM_KILLED
    assert newest_first_holds([c, c, e, e])
    assert newest_first_holds([c, k, c, e])
    assert newest_first_holds([e, e])
    assert newest_first_holds([c, c])
    assert not newest_first_holds([c, e, c])
    assert not newest_first_holds([e, c, c])


def readme_examples() -> list[dict[str, Any]]:
    """The sidecar example pod of the chart README and of docs/sidecar.md."""
    found = []
    for doc in (REPO / "helm" / "oomguard" / "README.md", REPO / "docs" / "sidecar.md"):
        blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
        pods = [yaml.safe_load(b) for b in blocks if "--mode=sidecar" in b and "kind: Pod" in b]
        assert len(pods) == 1, f"{doc}: expected one sidecar example pod"
        found.append(pods[0])
    return found


def without_sizing(container: dict[str, Any]) -> dict[str, Any]:
    """A sidecar container less what the example leaves to each pool: the image, and the
    reserve and worker pattern (sized for the node bed here)."""
    kept = {k: v for k, v in container.items() if k not in ("image", "imagePullPolicy")}
    kept["args"] = [
        a for a in container["args"] if not a.startswith(("--reserve=", "--workers-match="))
    ]
    return kept


@pytest.mark.parametrize("example", readme_examples(), ids=["chart-readme", "docs-sidecar"])
def test_pool_pod_runs_its_sidecar_as_the_documented_example(example: dict[str, Any]) -> None:
    """The node test runs what users are told to write: the same sidecar container (native,
    privileged, probes, mounts), pod settings and volumes."""
    from pool_pods import pool_pod

    guarded = pool_pod("p", python_image="py", sidecar_image="og")["spec"]
    alone = pool_pod("p", python_image="py", sidecar_image=None)["spec"]
    documented = example["spec"]
    assert [c["name"] for c in guarded["initContainers"]] == ["oomguard"]
    assert alone["initContainers"] == []
    assert (
        [c["name"] for c in guarded["containers"]]
        == ["app"]
        == [c["name"] for c in documented["containers"]]
    )
    assert without_sizing(guarded["initContainers"][0]) == without_sizing(
        documented["initContainers"][0]
    )
    assert guarded["shareProcessNamespace"] is documented["shareProcessNamespace"] is True
    assert guarded["volumes"] == documented["volumes"]


def test_pool_results() -> None:
    from pool_pods import app_result

    def pod(state: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"containerStatuses": [{"name": "app", "state": state}]}}

    assert app_result({}) == ("waiting", None)
    assert app_result(pod({"running": {}})) == ("running", None)
    done = pod({"terminated": {"reason": "Completed", "message": '{"0": "exit 0"}'}})
    assert app_result(done) == ("Completed", {"0": "exit 0"})
    assert app_result(pod({"terminated": {"reason": "OOMKilled", "message": ""}})) == (
        "OOMKilled",
        None,
    )
