"""Whether the loop has taken a monitor's last trigger: a :class:`ChangeNotice` the monitor
polls on.

A monitor that sent a trigger has nothing new to say until the loop has taken it (one
decision answers everything that arrived meanwhile), so it stops reading its kernel file
and sleeps on this instead; the loop marks the trigger consumed when it hands it to a step
(``Trigger.on_consumed``), and the monitor reads once more: everything that happened while
it slept arrives as one trigger. Safe to mark from any thread, even after the monitor has
closed it (then it does nothing).
"""

from __future__ import annotations

from oomguard.monitor.runtime.change_notice import ChangeNotice


class Consumption(ChangeNotice):
    def consumed(self) -> None:
        """The loop took the trigger (called from the loop's thread)."""
        self.notify()
