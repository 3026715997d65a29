"""Where :class:`StopSignal` lived before ``monitor/runtime``; kept for existing imports."""

from oomguard.monitor.runtime.stop_signal import StopSignal as StopSignal
