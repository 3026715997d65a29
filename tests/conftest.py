"""Shared pytest set-up for every test folder."""

import sys
from pathlib import Path

# tests/cluster: the real control plane (etcd, kube-apiserver, controller-manager) and helm
sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
# tests/vm: real-kernel test bed (runs `kernel` tests in a VM when the host lacks cgroup2 memory)
sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))

pytest_plugins = ["cluster_fixtures", "vm_pytest_plugin"]
