"""Which pod goes first, per ``eviction.policy``: one rank rule and one description each.

A candidate's ``preference_rank`` orders classes before age (lower goes first); within a
rank the newest goes first (``decision/candidate.newest_first_key``). The description ends
the Event message a pod's owner reads: "... was chosen as the <description>". A new order
is a new ``EvictionPolicy`` value (and its enum value in both CRDs) plus one case in each
match below; mypy names a match that misses it.
"""

from __future__ import annotations

from oomguard.monitor.kube.pod_cgroups import QosClass
from oomguard.wire.node_settings import EvictionPolicy

QOS_PREFERENCE_RANK: dict[QosClass, int] = {
    QosClass.BEST_EFFORT: 0,
    QosClass.BURSTABLE: 1,
    QosClass.GUARANTEED: 2,
}


def preference_rank(policy: EvictionPolicy, qos: QosClass) -> int:
    match policy:
        case EvictionPolicy.NEWEST_FIRST:
            return 0  # one class: age alone decides
        case EvictionPolicy.QOS_THEN_NEWEST:
            return QOS_PREFERENCE_RANK[qos]  # BestEffort, then Burstable, then Guaranteed


def description(policy: EvictionPolicy) -> str:
    match policy:
        case EvictionPolicy.NEWEST_FIRST:
            return "newest unprotected pod first"
        case EvictionPolicy.QOS_THEN_NEWEST:
            return "newest pod of the least protected QoS class"
