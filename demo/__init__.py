"""The demo behind ``scripts/demo``: one workload twice, the kernel alone vs ``oomguard guard``.

Developer tooling, not part of the installed package: it lives outside ``src/`` and the
linked ``monitor/`` and ``operator/`` folders, so neither the wheel nor the image holds it,
and nothing installed imports it. ``scripts/demo`` runs ``python -m demo`` from the
repository root; inside the real-kernel VM it re-runs itself the same way.

Pure parts: ``scenarios`` (the workloads), ``summary`` (figures from raw results),
``events`` (one line per guard event), ``render`` (bars, table, verdict, JSON).
Adapters: ``workload`` (the forked pool), ``sampler`` (memory.current), ``command``.
"""
