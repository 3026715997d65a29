"""``lastDecision`` in ``NodeMemoryReserve.status``: the CRD's structural schema prunes any
field it does not declare, so every key the agent writes must be in the schema, and the
schema must declare nothing the agent never writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from oomguard.monitor.modes.node_status import last_decision
from oomguard.monitor.triggers.trigger import StepTrigger

CRD = (
    Path(__file__).resolve().parents[2]
    / "helm"
    / "oomguard"
    / "crds"
    / "nodememoryreserves.oomguard.io.yaml"
)


def schema_last_decision() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    found: dict[str, Any] = status["properties"]["lastDecision"]["properties"]
    return found


def test_every_last_decision_key_is_in_the_crd_schema() -> None:
    written = last_decision(
        StepTrigger.EVENT, 10, 5, [], "why", datetime.now(UTC), protected_bytes=7
    )
    assert set(written) == set(schema_last_decision())
    # protected pods' memory is said in the status, not only in the Event and /status
    assert written["protectedMemoryBytes"] == 7
    assert schema_last_decision()["protectedMemoryBytes"]["type"] == "integer"
