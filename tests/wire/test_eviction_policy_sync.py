"""Adding a victim order: its ``EvictionPolicy`` value is the registration; both CRDs and the
chart's values schema must offer exactly those values, in the same order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from oomguard.wire.node_settings import EvictionPolicy

CHART = Path(__file__).resolve().parents[2] / "helm" / "oomguard"


def crd_eviction(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((CHART / "crds" / name).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    eviction: dict[str, Any] = spec["properties"]["eviction"]
    return eviction


def test_both_crds_and_the_values_schema_offer_every_eviction_policy() -> None:
    values = json.loads((CHART / "values.schema.json").read_text())
    offered = {
        "crds/memoryreservepolicies.oomguard.io.yaml": crd_eviction(
            "memoryreservepolicies.oomguard.io.yaml"
        ),
        "crds/nodememoryreserves.oomguard.io.yaml": crd_eviction(
            "nodememoryreserves.oomguard.io.yaml"
        ),
        "values.schema.json": values["properties"]["defaultPolicy"]["properties"]["eviction"],
    }
    registered = [p.value for p in EvictionPolicy]
    wrong = {
        where: eviction["properties"]["policy"]["enum"]
        for where, eviction in offered.items()
        if eviction["properties"]["policy"]["enum"] != registered
    }
    assert wrong == {}, f"eviction.policy enums that differ from {registered}: {wrong}"
