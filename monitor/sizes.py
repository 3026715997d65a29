"""Where sizes lived before ``oomguard.wire``; kept for existing imports."""

from oomguard.wire.sizes import *  # noqa: F403
