"""The node side: kernel files in, decisions out, actions taken, feedback reported.

Data flows through the subpackages in this order:
``kernel`` (cgroupfs parsers and operations) -> ``triggers`` (event, threshold,
pressure monitors) -> ``decision`` (pure victim selection) -> ``actions``
(kill processes, evict pods) -> ``feedback`` (reports, metrics, logs).
``modes`` composes them into ``oomguard guard``, ``oomguard monitor`` and friends.
"""
