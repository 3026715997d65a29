"""Monitors that notice memory trouble: inotify on memory.events, usage polling, PSI."""
