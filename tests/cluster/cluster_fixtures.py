"""pytest fixtures for the real control plane (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from control_plane import ClusterBinaries, ControlPlane, ControlPlaneError, running_control_plane
from k8s_helpers import create_namespace
from kubernetes.client import CoreV1Api


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session.

    Missing or stale binaries make every test that uses it fail (never skip): CI must notice a
    broken build.
    """
    try:
        binaries = ClusterBinaries.locate()
        with running_control_plane(binaries) as cp:
            yield cp
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def core_api(control_plane: ControlPlane) -> CoreV1Api:
    return CoreV1Api(control_plane.api_client)


@pytest.fixture
def namespace(core_api: CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test; deleted afterwards (without waiting for it to go)."""
    name = create_namespace(core_api)
    yield name
    core_api.delete_namespace(name)
