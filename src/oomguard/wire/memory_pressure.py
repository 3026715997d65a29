"""The names the node agent and the operator share about memory pressure on a node.

The agent sets the ``MemoryPressure`` condition on its ``NodeMemoryReserve`` status when it
evicts; the operator keeps the taint ``oomguard.io/memory-pressure:NoSchedule`` on the Node
while that condition is True (``docs/operator.md``).
"""

from __future__ import annotations

MEMORY_PRESSURE = "MemoryPressure"  # the NodeMemoryReserve status condition
TAINT_KEY = "oomguard.io/memory-pressure"
TAINT_EFFECT = "NoSchedule"
