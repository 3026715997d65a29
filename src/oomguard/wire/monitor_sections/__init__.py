"""One file per monitor's section of the ``monitor`` spec (the spec half of a monitor kind;
what runs is in ``oomguard.monitor.triggers.kinds``). Listed in ``monitor_settings``."""
