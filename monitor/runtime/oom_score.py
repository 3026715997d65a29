"""The agent's own standing with the kernel OOM killer.

The kubelet gives a pod -997 only for the system-node-critical priority class or Guaranteed
QoS; an agent installed with another class and Burstable resources would sit near 999, the
kernel's first choice, under the very memory.high it sets. So the agent lowers its own
``oom_score_adj`` at start, whatever the class (CAP_SYS_RESOURCE, which the chart adds, lets
it go below what it was given). A failure is logged, never fatal: guarding matters more.
"""

from __future__ import annotations

import logging
from pathlib import Path

AGENT_OOM_SCORE_ADJ = -998  # just above the kubelet's own -999

log = logging.getLogger("oomguard.node")


def lower_own_oom_score(
    value: int = AGENT_OOM_SCORE_ADJ, path: Path = Path("/proc/self/oom_score_adj")
) -> bool:
    """Write ``value`` to this process's ``oom_score_adj``; False (and a warning) when the
    kernel refuses."""
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        log.warning(
            "cannot set the agent's oom_score_adj to %d (%s): the kernel may pick the agent "
            "before the pods it guards",
            value,
            exc,
        )
        return False
    log.info("agent oom_score_adj set to %d", value)
    return True
