"""oomguard: frees memory newest-first before the kernel OOM killer picks a victim."""

__version__ = "0.1.0"
