"""What an operator deployment can tune, from the command line or (under test runners that
only take kopf's own arguments) from ``OOMGUARD_OPERATOR_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

ENV_PREFIX = "OOMGUARD_OPERATOR_"


@dataclass(frozen=True)
class OperatorOptions:
    resync_seconds: float = 60.0  # full reconcile even without events: repairs drift
    debounce_seconds: float = 0.3  # events inside this window share one reconcile
    write_concurrency: int = 16  # parallel API writes during one reconcile (threads, connections)
    metrics_port: int = 0  # 0: no metrics endpoint
    liveness_endpoint: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    peering: str | None = None  # None: standalone; a name: HA with leader election via peering
    posting_level: str = "WARNING"  # minimum level of log records posted as Kubernetes Events
    watch_server_timeout: int = 300  # seconds the apiserver keeps one watch open (an integer)
    watch_client_timeout: float = 330.0  # client side: a watch silent for longer is restarted
    watch_connect_timeout: float = 10.0
    override_seconds: float = 30.0  # how long our own writes stand in for a lagging watch
    # the taint oomguard.io/memory-pressure:NoSchedule while an agent reports MemoryPressure
    pressure_taint: bool = True
    pressure_taint_heartbeat_seconds: float = 180.0  # a silent agent's pressure is ignored
    pressure_taint_max_age_seconds: float = 600.0  # one pressure episode taints at most this

    def __post_init__(self) -> None:
        if self.resync_seconds <= 0 or self.debounce_seconds < 0:
            raise ValueError("resync_seconds must be positive and debounce_seconds not negative")
        if self.write_concurrency < 1:
            raise ValueError("write_concurrency must be at least 1")
        if self.pressure_taint_heartbeat_seconds <= 0 or self.pressure_taint_max_age_seconds <= 0:
            raise ValueError("the pressure taint's heartbeat and maximum age must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorOptions:
        """``OOMGUARD_OPERATOR_RESYNC_SECONDS=5`` and so on; unknown variables are ignored."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for item in fields(cls):
            raw = environ.get(ENV_PREFIX + item.name.upper())
            if raw is None:
                continue
            default = getattr(cls(), item.name)
            if isinstance(default, bool):
                values[item.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[item.name] = int(raw)
            elif isinstance(default, float):
                values[item.name] = float(raw)
            else:
                values[item.name] = raw or None
        return cls(**values)  # type: ignore[arg-type]
