"""What the node agent's kernel tests share: one control plane inside the VM for the whole
session, so the agent tests and the crash tests do not each pay its start (minutes under
software emulation)."""

from collections.abc import Iterator

import pytest
from control_plane import ClusterBinaries, ControlPlane, running_control_plane


@pytest.fixture(scope="session")
def cluster() -> Iterator[ControlPlane]:
    """The control plane inside the VM (software-emulated: allow a slow start)."""
    with running_control_plane(ClusterBinaries.locate(), ready_timeout=600) as cp:
        yield cp
