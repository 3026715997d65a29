"""A broken control-plane build fails the cluster tests; it never skips them."""

from __future__ import annotations

from pathlib import Path

import cluster_fixtures
import pytest
from control_plane import ClusterBinaries, ControlPlaneError

NAMES = ("kube-apiserver", "kube-controller-manager", "etcd", "helm")


def test_missing_binaries_are_named_with_the_build_to_run(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    with pytest.raises(ControlPlaneError) as err:
        ClusterBinaries.locate(tmp_path)
    message = str(err.value)
    assert "kube-apiserver" in message and "kube-controller-manager" in message
    assert "helm" in message and "/etcd" not in message
    assert "build" in message


def test_all_four_executables_are_found(tmp_path: Path) -> None:
    for name in NAMES:
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    found = ClusterBinaries.locate(tmp_path)
    assert found.apiserver == tmp_path / "kube-apiserver"


def test_the_fixture_fails_rather_than_skips_when_the_build_is_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        @classmethod
        def locate(cls) -> ClusterBinaries:
            raise ControlPlaneError("cluster binaries missing: kube-apiserver")

    monkeypatch.setattr(cluster_fixtures, "ClusterBinaries", Broken)
    session = cluster_fixtures.control_plane.__wrapped__()
    with pytest.raises(pytest.fail.Exception, match="cluster binaries missing"):
        next(session)
