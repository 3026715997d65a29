"""``python -m oomguard``: the `oomguard` command, and the demo's way back in from its VM.

The demo is not a subcommand (it is developer tooling; ``scripts/demo`` runs its module),
but it re-runs itself inside the real-kernel VM as ``python -m oomguard demo --inside``.
That one form is handed to the demo module here, so it keeps working without the shipped
CLI listing a demo; once the demo names its own module for the VM, this goes.
"""

import runpy
import sys

DEMO_MODULE = "oomguard.monitor.modes.demo_command"

if sys.argv[1:2] == ["demo"]:
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    try:
        runpy.run_module(DEMO_MODULE, run_name="__main__", alter_sys=True)
    except ImportError:  # the image leaves the demo out
        sys.exit("the demo is developer tooling: run scripts/demo from the repository")
else:
    from oomguard.cli import main

    raise SystemExit(main())
