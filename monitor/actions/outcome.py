"""How one attempt to free memory from one victim ended, in one vocabulary for every action.

A pod's eviction or ``cgroup.kill`` and a process's signals all end in one of these. Each
place that shows them (metrics labels, log lines, the ``--report`` JSON, the node agent's
counters and its CRD status) renders them with an exhaustive ``match``, so a new outcome
cannot go unrendered: mypy reports the function that misses it.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    EVICTED = "evicted"  # the Eviction API accepted it
    GONE = "already-gone"  # it had ended already (404, ESRCH, no cgroup left)
    BLOCKED = "blocked-by-pdb"  # 429: a PodDisruptionBudget refused; the next one is tried
    FAILED = "failed"  # any other error from the API or cgroup.kill
    UNREACHABLE = "api-unreachable"  # no API server: the pod stays chosen, kill fallback later
    RATE_LIMITED = "rate-limited"  # not tried: the evictions-per-minute budget was spent
    DRY_RUN = "dry-run"  # not tried: dry run, would have acted
    KILLED = "cgroup-killed"  # a pod's cgroup.kill, the last resort
    EXITED = "exited"  # a process ended after our SIGTERM or SIGKILL
    STUCK = "stuck"  # a process outlived the wait after SIGKILL (uninterruptible sleep)
