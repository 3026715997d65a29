"""Where the per-node settings lived before ``oomguard.wire``; kept for existing imports."""

from oomguard.wire.node_settings import *  # noqa: F403
