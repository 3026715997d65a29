"""Where the list + watch stream lived before ``oomguard.wire``; kept for existing imports."""

from oomguard.wire.list_watch import *  # noqa: F403
