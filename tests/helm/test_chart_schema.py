"""values.schema.json: typos and bad values fail `helm template` and `helm lint`.

Every case names the value that is wrong; helm must refuse to render and say where. The last
tests keep the schema's copy of the policy fields in step with the CRD the apiserver enforces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tools import CHART_DIR, VALUES_FILES, lint_args, run_helm, template_args

pytestmark = pytest.mark.helm

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())

# (case id, values document, a piece of helm's error message that points at the problem)
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("top-level typo", {"dryrun": True}, "dryrun"),
    ("agent typo", {"agent": {"priorityClass": "x"}}, "priorityClass"),
    ("operator typo", {"operator": {"replica": 1}}, "replica"),
    ("image typo", {"image": {"tag": "1.0", "pullpolicy": "Always"}}, "pullpolicy"),
    ("monitoring typo", {"monitoring": {"serviceMonitor": {"enable": True}}}, "enable"),
    ("policy typo", {"defaultPolicy": {"reserve": {"percent": 10, "maximum": "1Gi"}}}, "maximum"),
    ("eviction typo", {"defaultPolicy": {"eviction": {"maxEvictionPerMinute": 3}}}, "maxEviction"),
    ("pull policy enum", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ("digest format", {"image": {"digest": "sha256:abc"}}, "digest"),
    ("dry-run type", {"dryRun": "yes"}, "dryRun"),
    ("port range", {"agent": {"port": 70000}}, "port"),
    ("log format", {"agent": {"logFormat": "yaml"}}, "logFormat"),
    ("agent log level", {"agent": {"logLevel": "trace"}}, "logLevel"),
    ("operator log format", {"operator": {"logFormat": "yaml"}}, "logFormat"),
    ("operator log level", {"operator": {"logLevel": "DEBUG"}}, "logLevel"),
    ("cgroup driver", {"agent": {"cgroupDriver": "systemd.slice"}}, "cgroupDriver"),
    ("systemd dbus", {"agent": {"systemdDBus": True}}, "systemdDBus"),
    ("dbus dir", {"agent": {"hostDBusDir": "run/dbus"}}, "hostDBusDir"),
    ("fallback reserve", {"agent": {"fallbackReserve": "one gig"}}, "fallbackReserve"),
    ("posting level", {"operator": {"postingLevel": "info"}}, "postingLevel"),
    ("maxUnavailable zero", {"agent": {"maxUnavailable": 0}}, "maxUnavailable"),
    ("maxUnavailable pct", {"agent": {"maxUnavailable": "0%"}}, "maxUnavailable"),
    ("capability prefix", {"agent": {"capabilities": ["CAP_SYS_ADMIN"]}}, "capabilities"),
    ("toleration operator", {"agent": {"tolerations": [{"operator": "Any"}]}}, "operator"),
    (
        "toleration typo",
        {"agent": {"tolerations": [{"operator": "Exists", "efect": "x"}]}},
        "efect",
    ),
    ("resources typo", {"agent": {"resources": {"request": {"cpu": "1"}}}}, "request"),
    ("resource quantity", {"agent": {"resources": {"limits": {"memory": "lots"}}}}, "memory"),
    ("relative cgroup root", {"agent": {"hostCgroupRoot": "sys/fs/cgroup"}}, "hostCgroupRoot"),
    ("kubepods escapes", {"agent": {"kubepodsCgroup": "../etc"}}, "kubepodsCgroup"),
    ("v1 node label", {"agent": {"cgroupV1NodeLabel": "not a label"}}, "cgroupV1NodeLabel"),
    ("namespace override", {"namespaceOverride": "Guard_NS"}, "namespaceOverride"),
    ("rbac typo", {"rbac": {"enabled": False}}, "enabled"),
    ("global registry", {"global": {"imageRegistry": "mirror example"}}, "imageRegistry"),
    ("pull secret", {"global": {"imagePullSecrets": [{"secret": "x"}]}}, "imagePullSecrets"),
    (
        "security context typo",
        {"agent": {"securityContext": {"seLinuxOption": {"type": "spc_t"}}}},
        "seLinuxOption",
    ),
    (
        "apparmor type",
        {"agent": {"securityContext": {"appArmorProfile": {"type": "Strict"}}}},
        "appArmorProfile",
    ),
    (
        "mount without path",
        {"operator": {"extraVolumeMounts": [{"name": "x"}]}},
        "mountPath",
    ),
    ("volume without name", {"agent": {"extraVolumes": [{"emptyDir": {}}]}}, "name"),
    (
        "relabel action",
        {"monitoring": {"serviceMonitor": {"relabelings": [{"action": "rename"}]}}},
        "action",
    ),
    ("scrape annotations", {"monitoring": {"scrapeAnnotations": "yes"}}, "scrapeAnnotations"),
    ("monitor namespace", {"monitoring": {"podMonitor": {"namespace": "Mon"}}}, "namespace"),
    ("extra arg not a flag", {"agent": {"extraArgs": ["rm -rf"]}}, "extraArgs"),
    ("two standalone operators", {"operator": {"replicas": 2}}, "replicas"),
    ("percent > 100", {"defaultPolicy": {"reserve": {"percent": 150}}}, "percent"),
    ("percent zero", {"defaultPolicy": {"reserve": {"percent": 0}}}, "percent"),
    (
        "absolute and percent",
        {"defaultPolicy": {"reserve": {"absolute": "2Gi", "percent": 10}}},
        "reserve",
    ),
    (
        "min with absolute",
        {"defaultPolicy": {"reserve": {"absolute": "2Gi", "min": "1Gi"}}},
        "reserve",
    ),
    ("bad quantity", {"defaultPolicy": {"reserve": {"absolute": "2 GB"}}}, "absolute"),
    ("eviction policy enum", {"defaultPolicy": {"eviction": {"policy": "Oldest"}}}, "policy"),
    ("rate bounds", {"defaultPolicy": {"eviction": {"maxEvictionsPerMinute": 0}}}, "maxEvictions"),
    (
        "psi window",
        {"defaultPolicy": {"monitor": {"pressure": {"windowMilliseconds": 100}}}},
        "window",
    ),
    (
        "selector operator",
        {"defaultPolicy": {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}},
        "operator",
    ),
    ("policy name", {"defaultPolicy": {"name": "Default Policy"}}, "name"),
    ("scrape interval", {"monitoring": {"serviceMonitor": {"interval": "30 seconds"}}}, "interval"),
    (
        "alert threshold",
        {"monitoring": {"prometheusRule": {"evictionsPerMinute": 0}}},
        "evictionsPerMinute",
    ),
]


@pytest.mark.parametrize(
    ("values", "needle"), [(v, n) for _, v, n in BAD_VALUES], ids=[c for c, _, _ in BAD_VALUES]
)
def test_bad_values_are_rejected(
    values: dict[str, Any], needle: str, helm_home: Path, tmp_path: Path
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = run_helm(template_args([values_file]), home=helm_home)
    assert result.returncode != 0, f"helm rendered bad values {values}"
    assert "schema" in result.output.lower(), result.output
    assert needle in result.output, result.output

    lint = run_helm(lint_args([values_file]), home=helm_home)
    assert lint.returncode != 0, lint.output


def test_set_typo_is_rejected(helm_home: Path) -> None:
    result = run_helm(template_args(set_values=["agent.hostPid=true"]), home=helm_home)
    assert result.returncode != 0
    assert "hostPid" in result.output


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.stem)
def test_lint_strict_passes(values_file: Path, helm_home: Path) -> None:
    result = run_helm(lint_args([values_file]), home=helm_home)
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


def test_every_object_level_of_the_schema_is_closed() -> None:
    """additionalProperties: false wherever properties are listed, so typos cannot slip in."""
    open_paths = []
    # if/then/else/not/oneOf hold constraints on an object defined next to them, not objects.
    fragments = {"if", "then", "else", "not", "oneOf", "anyOf"}

    def visit(node: Any, path: str, fragment: bool = False) -> None:
        if isinstance(node, dict):
            if (
                not fragment
                and "properties" in node
                and node.get("additionalProperties") is not False
            ):
                open_paths.append(path or "<root>")
            for key, child in node.items():
                visit(child, f"{path}/{key}", fragment or key in fragments)
        elif isinstance(node, list):
            for i, child in enumerate(node):
                visit(child, f"{path}/{i}", fragment)

    visit(SCHEMA, "")
    assert open_paths == []


def _crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(
        (CHART_DIR / "crds" / "memoryreservepolicies.oomguard.io.yaml").read_text()
    )
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _field_tree(node: dict[str, Any]) -> dict[str, Any]:
    """Field names only, nested: what must match between the CRD and the values schema."""
    tree: dict[str, Any] = {}
    for key, child in node.get("properties", {}).items():
        tree[key] = _field_tree(
            child.get("items", child) if child.get("type") == "array" else child
        )
    return tree


@pytest.mark.parametrize("field", ["nodeSelector", "reserve", "monitor", "eviction"])
def test_policy_fields_match_the_crd(field: str) -> None:
    """The values schema repeats the CRD's policy fields (to reject typos before install)."""
    crd_field = _crd_spec_schema()["properties"][field]
    values_field = SCHEMA["properties"]["defaultPolicy"]["properties"][field]
    assert _field_tree(values_field) == _field_tree(crd_field)


def test_policy_enums_match_the_crd() -> None:
    crd = _crd_spec_schema()["properties"]
    values = SCHEMA["properties"]["defaultPolicy"]["properties"]
    assert (
        values["eviction"]["properties"]["policy"]["enum"]
        == crd["eviction"]["properties"]["policy"]["enum"]
    )
    crd_ops = crd["nodeSelector"]["properties"]["matchExpressions"]["items"]["properties"]
    values_ops = values["nodeSelector"]["properties"]["matchExpressions"]["items"]["properties"]
    assert values_ops["operator"]["enum"] == crd_ops["operator"]["enum"]
