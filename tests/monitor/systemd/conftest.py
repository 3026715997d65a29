"""The fake D-Bus peer (fake_dbus.py) imports as a top-level module, like monitor_fakes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
