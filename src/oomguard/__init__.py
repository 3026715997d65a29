"""oomguard: frees memory newest-first before the kernel OOM killer picks a victim."""

# The one place the version is written: pyproject.toml reads it (dynamic), the chart's
# version and appVersion repeat it (tests/release/test_version.py), and a release tag is
# v<this> (.github/workflows/release.yml refuses any other).
__version__ = "0.1.0"
