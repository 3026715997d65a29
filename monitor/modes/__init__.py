"""Compositions of monitors, decision and targets: guard, node agent, sidecar."""
