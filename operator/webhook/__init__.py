"""The eviction webhook: confines each node agent's evictions to pods on its own node."""
