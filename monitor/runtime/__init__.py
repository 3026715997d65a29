"""The process the guard runs in: stopping threads, termination signals, the kernel release.

The bottom layer: every other package may import it, it imports none of them.
"""
