"""What the operator and the node agent both speak: the only package both import.

The ``NodeMemoryReserve`` spec (``node_settings``), the CRDs' group and version (``crd``),
condition stamping (``conditions``), RFC 3339 times (``times``), Kubernetes quantities
(``sizes``) and the raw list + watch stream (``list_watch``). Pure, except ``list_watch``,
which reads from an API client it is given. It imports neither ``oomguard.monitor`` nor
``oomguard.operator``.
"""
