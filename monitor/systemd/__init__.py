"""systemd, the node's cgroup manager on systemd-driver nodes: a minimal D-Bus client (the
pure wire format and a thin socket adapter) and the one call oomguard needs of it, setting a
unit's ``MemoryHigh=``."""
