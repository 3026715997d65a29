"""One file per kind of monitor: everything about a kind but its spec section (which the
operator shares, so it lives in ``oomguard.wire.monitor_sections``). Listed in
``monitor_registry.MONITOR_KINDS``."""
