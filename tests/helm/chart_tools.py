"""Running the real helm on the chart, and reading what it renders.

helm is the binary `tests/cluster/build` builds from Go modules (`ClusterBinaries.helm`); a
missing or stale build fails the tests that need it (ControlPlaneError), never skips them.
Every helm call gets its own HOME/XDG dirs so nothing leaks between tests or from the user.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from control_plane import ClusterBinaries

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "oomguard"
VALUES_DIR = Path(__file__).resolve().parent / "values"
VALUES_FILES = sorted(VALUES_DIR.glob("*.yaml"))
RELEASE = "oomguard"


def _test_cluster_kube_version() -> str:
    """The Kubernetes version of the test control plane (tests/cluster/go.mod).

    helm built from Go modules lacks the release build's ldflags, so offline it believes it
    talks to Kubernetes v1.20; `helm template` and `helm lint` are told the real version.
    """
    go_mod = (REPO / "tests" / "cluster" / "go.mod").read_text()
    found = re.search(r"^\s*k8s\.io/kubernetes (v[0-9.]+)", go_mod, re.M)
    assert found is not None, "k8s.io/kubernetes not in tests/cluster/go.mod"
    return found.group(1)


KUBE_VERSION = _test_cluster_kube_version()


@functools.cache
def helm_binary() -> Path:
    """Checked once per session (the check runs `tests/cluster/build --check`)."""
    return ClusterBinaries.locate().helm


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_helm(
    args: Sequence[str], *, home: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> HelmResult:
    """Runs helm with an isolated HOME/config/cache; returns its exit status and output."""
    clean_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "HELM_NO_PLUGINS": "1",
        **(env or {}),
    }
    proc = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=timeout,
        check=False,
    )
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def template_args(
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    *,
    namespace: str = "oomguard-system",
    release: str = RELEASE,
    include_crds: bool = True,
) -> list[str]:
    args = ["template", release, str(CHART_DIR), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    if include_crds:
        args.append("--include-crds")
    for f in values_files:
        args += ["--values", str(f)]
    for s in set_values:
        args += ["--set", s]
    return args


def lint_args(values_files: Sequence[Path] = ()) -> list[str]:
    args = ["lint", "--strict", str(CHART_DIR), "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["--values", str(f)]
    return args


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of helm's output."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    home: Path,
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    *,
    namespace: str = "oomguard-system",
    release: str = RELEASE,
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """`helm template` the chart; fails the test with helm's message when it does not render."""
    result = run_helm(
        template_args(
            values_files,
            set_values,
            namespace=namespace,
            release=release,
            include_crds=include_crds,
        ),
        home=home,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.output}")
    return parse_manifests(result.stdout)


def by_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Sequence[dict[str, Any]], kind: str, name_part: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name_part in o["metadata"]["name"]]
    assert len(found) == 1, f"expected one {kind} with {name_part!r}, got {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, leaf or node) in a nested dict/list structure."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
