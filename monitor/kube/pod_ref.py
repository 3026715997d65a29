"""Which pod an action or an Event is about: the three fields the API needs to name it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str
