"""The storm's pure parts: manifests and how a pod's last state reads."""

from __future__ import annotations

from typing import Any

from storm_pods import Ending, StormPlan, ending, is_final, newest_first_holds

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


def test_pool_pod_is_the_readme_example_with_or_without_its_sidecar() -> None:
    from pool_pods import pool_pod

    guarded = pool_pod("p", python_image="py", sidecar_image="og")
    alone = pool_pod("p", python_image="py", sidecar_image=None)
    assert [c["name"] for c in guarded["spec"]["containers"]] == ["app", "oomguard"]
    assert [c["name"] for c in alone["spec"]["containers"]] == ["app"]
    sidecar = guarded["spec"]["containers"][1]
    assert "--mode=sidecar" in sidecar["args"]
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert guarded["spec"]["shareProcessNamespace"] is True


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
