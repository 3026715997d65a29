"""``python -m demo`` (what ``scripts/demo`` runs, and what the demo re-runs in the VM)."""

import sys

from demo.command import main

sys.exit(main())
