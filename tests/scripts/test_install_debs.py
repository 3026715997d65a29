"""scripts/install-debs keeps the packages' services from starting and stops nothing.

apt-get, dpkg-query, systemctl, pkill and killall are stubs that log their calls, so the
test shows what the script would do to a machine without doing it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-debs"
PACKAGES = ["prometheus", "earlyoom", "openssl", "shellcheck", "dbus-daemon"]


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >>"$CALLS"\n{body}\n')
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path):
    """Runs the script against stubs; installed: the packages dpkg-query reports present."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    policy = tmp_path / "policy-rc.d"
    installed = tmp_path / "installed"
    installed.write_text("")
    _stub(stubs, "dpkg-query", 'grep -qx "${@: -1}" "$INSTALLED" && echo "install ok installed"')
    # At install time: does the policy exist, and what does it answer for a start?
    _stub(
        stubs,
        "apt-get",
        "[[ $1 == install ]] || exit 0\n"
        '[[ -x $POLICY_RC_D ]] && { "$POLICY_RC_D" prometheus.service start;'
        ' echo "policy $?" >>"$CALLS"; }\n'
        'exit "${APT_STATUS:-0}"',
    )
    for name in ("systemctl", "pkill", "killall", "kill"):
        _stub(stubs, name, "exit 0")

    def run(*, present: tuple[str, ...] = (), apt_status: int = 0) -> tuple[int, list[str]]:
        installed.write_text("".join(f"{p}\n" for p in present))
        calls.write_text("")
        env = {
            **os.environ,
            "PATH": f"{stubs}:/usr/bin:/bin",
            "CALLS": str(calls),
            "INSTALLED": str(installed),
            "POLICY_RC_D": str(policy),
            "APT_STATUS": str(apt_status),
        }
        result = subprocess.run(
            ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
        )
        return result.returncode, calls.read_text().splitlines()

    run.policy = policy  # type: ignore[attr-defined]
    return run


def test_services_are_kept_from_starting_then_disabled_never_killed(machine) -> None:
    status, calls = machine()
    assert status == 0
    assert f"apt-get install -y -qq --no-install-recommends {' '.join(PACKAGES)}" in calls
    assert "policy 101" in calls  # the maintainer scripts were told not to start services
    assert not machine.policy.exists()  # the temporary policy is gone
    assert [c for c in calls if c.startswith("systemctl")] == [
        "systemctl disable prometheus.service",
        "systemctl disable earlyoom.service",
    ]
    assert not [c for c in calls if c.split()[0] in {"pkill", "killall", "kill"}]


def test_a_service_of_a_package_already_there_is_left_alone(machine) -> None:
    status, calls = machine(present=("prometheus", "openssl"))
    assert status == 0
    assert "apt-get install -y -qq --no-install-recommends earlyoom shellcheck dbus-daemon" in calls
    assert [c for c in calls if c.startswith("systemctl")] == ["systemctl disable earlyoom.service"]


def test_nothing_missing_touches_nothing(machine) -> None:
    status, calls = machine(present=tuple(PACKAGES))
    assert status == 0
    assert [c.split()[0] for c in calls] == ["dpkg-query"] * len(PACKAGES)


def test_an_existing_policy_is_the_owners_and_stays(machine) -> None:
    machine.policy.write_text("#!/bin/sh\nexit 0\n")
    machine.policy.chmod(0o755)
    status, calls = machine()
    assert status == 0
    assert "policy 0" in calls
    assert machine.policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_a_failed_install_removes_the_temporary_policy(machine) -> None:
    status, calls = machine(apt_status=100)
    assert status == 100
    assert not machine.policy.exists()
    assert not [c for c in calls if c.startswith("systemctl")]
