"""Targets that carry out a decision: signal processes, evict pods, kill cgroups."""
