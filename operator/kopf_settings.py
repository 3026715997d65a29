"""kopf's settings, made explicit so nothing depends on kopf's zalando.org defaults.

HA: by default the operator runs standalone (one replica, no peering objects). For several
replicas, install kopf's ``ClusterKopfPeering`` CRD, create a ClusterKopfPeering named like
``--peering`` and run with ``--peering NAME``: the replicas then elect one active instance by
priority and the others pause (see kopf's peering docs).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from oomguard.operator.options import OperatorOptions

FINALIZER = "oomguard.io/operator"
ANNOTATION_PREFIX = "oomguard.io"


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No "last handled" state, for an operator with only index and event handlers.

    kopf builds every object's diff base (a deep copy of the body, its annotations sifted) on
    every watch event, for change handlers (``on.create``/``update``/``resume``) to diff
    against; with none registered that copy is thrown away. At 5,000 Nodes it was an eighth
    of the operator's event handling. A change handler added later needs the real storage
    back: ``tests/operator/test_kopf_settings.py`` fails while one is registered."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


def configure_kopf(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    # Our handlers are index and event handlers (no finalizers, no progress); these are set
    # so that any handler added later marks objects under our own domain.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = NoDiffBase(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.peering.standalone = options.peering is None
    settings.peering.mandatory = options.peering is not None
    settings.peering.clusterwide = True
    if options.peering is not None:
        settings.peering.name = options.peering
    settings.posting.enabled = True
    settings.posting.level = logging.getLevelName(options.posting_level.upper())
    settings.watching.server_timeout = options.watch_server_timeout
    settings.watching.client_timeout = options.watch_client_timeout
    settings.watching.connect_timeout = options.watch_connect_timeout
    # Nodes change status every few seconds; kopf must never try to store anything on them.
    settings.execution.max_workers = max(options.write_concurrency, 4)
