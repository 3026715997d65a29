"""``python -m oomguard``: the `oomguard` command."""

from oomguard.cli import main

raise SystemExit(main())
