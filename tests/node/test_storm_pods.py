"""The node tier's pure parts: the storm's and the pool's manifests (the pool's held to the
documented sidecar example) and how a pod's last state reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from storm_pods import (
    KNOWN_AFTER,
    PRESSURE_TAINT,
    REPLICATED,
    REPLICATED_MARGIN_MIB,
    Decision,
    Ending,
    StormPlan,
    ending,
    evicted_without_a_decision,
    is_final,
    newest_first_violations,
    parse_decisions,
    replicated_pod,
    replicated_size_mib,
)

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


def test_bare_pods_tolerate_the_pressure_taint_and_the_deployment_does_not() -> None:
    bare = PLAN.manifest(0)["spec"]
    assert {"key": PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"} in bare[
        "tolerations"
    ]
    deployment = PLAN.replicated_manifest(100)
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert "tolerations" not in pod, "its replacement must wait for the taint to go"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["SIZE_MIB"]["value"] == "100"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["HOLD"]["value"] == "forever"
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert replicated_pod(f"{REPLICATED}-5d8f7c9b4-x2x7q") and not replicated_pod("storm-03")


MIB = 2**20


def test_the_deployment_comes_when_one_more_bare_pod_would_near_the_line() -> None:
    line, size = 4096 * MIB, 512
    # a bare pod still fits with the margin to spare: no Deployment yet
    room = line - (size + REPLICATED_MARGIN_MIB) * MIB - 1
    assert replicated_size_mib(line, room, size) is None
    # one byte further, the Deployment comes, sized to pass the line by half a pod
    committed = room + 1
    mib = replicated_size_mib(line, committed, size)
    assert mib is not None
    assert committed + mib * MIB >= line + (size // 2 - 1) * MIB
    # already at or over the line (the storm's start above it): still half a pod
    assert replicated_size_mib(line, line + 5 * MIB, size) == size // 2


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


STORM = StormPlan("storm", 5, 256, "img", "/storm")
LINE = (
    "2026-12-07T11:14:18.15179182Z stderr F 2026-12-07T11:14:18.127Z WARNING evicting newest "
    'pods trigger=recheck usage=3.6Gi target=3.6Gi amount_to_free=58.7Mi victims="[\\"storm/'
    'storm-03\\", \\"storm/storm-02\\"]" reason="2 newest candidate(s) free 1 of 1 bytes needed"'
)


def test_decisions_are_read_from_the_agents_log() -> None:
    log = "\n".join(["2026-12-07T11:14:17Z stderr F something else", LINE])
    (decision,) = parse_decisions(log)
    assert decision.victims == ("storm/storm-03", "storm/storm-02")
    assert decision.at == datetime(2026, 12, 7, 11, 14, 18, 127000, tzinfo=UTC).timestamp()


def _violations(decisions: list[Decision], running: list[float]) -> list[str]:
    return newest_first_violations(STORM, decisions, running, released_at=1000.0)


def test_taking_the_newest_pods_is_newest_first() -> None:
    running = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert _violations([Decision(100.0, ("storm/storm-04", "storm/storm-03"))], running) == []
    assert (
        _violations(
            [Decision(100.0, ("storm/storm-04",)), Decision(110.0, ("storm/storm-03",))], running
        )
        == []
    )


def test_taking_an_older_pod_while_a_newer_one_runs_is_a_violation() -> None:
    running = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert _violations([Decision(100.0, ("storm/storm-03",))], running) == [
        "storm/storm-03 taken while the newer storm/storm-04 was running"
    ]


def test_a_pod_started_after_the_decision_does_not_count_against_it() -> None:
    """The real node's case: pods 11-15 evicted, then pod 16 created, then 17 and 18 evicted;
    pod 16 completing is newest first at every decision."""
    running = [0.0, 10.0, 20.0, 200.0, 300.0]
    decisions = [
        Decision(150.0, ("storm/storm-02", "storm/storm-01")),
        Decision(400.0, ("storm/storm-04",)),
    ]
    assert _violations(decisions, running) == []


def test_a_pod_the_agent_may_not_know_yet_does_not_count() -> None:
    running = [0.0, 10.0, 20.0, 30.0, 100.0 - KNOWN_AFTER + 1]
    assert _violations([Decision(100.0, ("storm/storm-03",))], running) == []
    running[4] = 100.0 - KNOWN_AFTER
    assert _violations([Decision(100.0, ("storm/storm-03",))], running) != []


def test_decisions_after_the_release_are_not_judged() -> None:
    running = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert (
        newest_first_violations(
            STORM, [Decision(100.0, ("storm/storm-00",))], running, released_at=100.0
        )
        == []
    )


def test_an_eviction_no_decision_names_is_reported() -> None:
    c, e = Ending.COMPLETED, Ending.EVICTED
    decisions = [Decision(1.0, ("storm/storm-04",))]
    assert evicted_without_a_decision(STORM, [c, c, c, e, e], decisions) == ["storm-03"]


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
