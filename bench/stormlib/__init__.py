"""The storm benchmark's parts, one job each; ``bench/storm.py`` is the entry point."""
