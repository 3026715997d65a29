"""What must not be in the shipped image, as checks over its file tree (``oci_archive``):
no compiler, nothing the build left behind, no bytecode outside Python's own places."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from oci_archive import Image

COMPILER = re.compile(r"(gcc|g\+\+|c\+\+|cc|clang|cc1|cc1plus|ld|as|make)(-[0-9.]+)?")
BIN_DIRS = {PurePosixPath(p) for p in ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin")}
# the interpreter's own modules, compiled by Debian's python3.11 at install, and the venv's
# site-packages, compiled by the Dockerfile (compileall) so the non-root user never writes any
BYTECODE_ALLOWED = tuple(
    PurePosixPath(p)
    for p in (
        "/usr/lib/python3.11",
        "/usr/share/python3",
        "/opt/oomguard/lib/python3.11/site-packages",
    )
)


def compilers(image: Image) -> list[str]:
    """Compiler drivers in a bin directory, and anything under a gcc tree that runs as one."""
    return sorted(
        str(p)
        for p, entry in image.files.items()
        if not entry.is_dir
        and COMPILER.fullmatch(_unprefixed(p.name))
        and (p.parent in BIN_DIRS or "gcc" in p.parts)
    )


def _unprefixed(name: str) -> str:
    for triplet in ("x86_64-linux-gnu-", "aarch64-linux-gnu-"):
        name = name.removeprefix(triplet)
    return name


def build_leftovers(image: Image) -> list[str]:
    """Caches (pip's and any other ``.cache``), the build stage's sources, wheels and venv."""
    return sorted(
        str(p)
        for p in image.files
        if ".cache" in p.parts
        or p.parts[:2] in (("/", "src"), ("/", "wheels"))
        or p.parts[:3] == ("/", "opt", "build")
    )


def stray_bytecode(image: Image) -> list[str]:
    return sorted(
        str(p)
        for p in image.files
        if (p.name == "__pycache__" or p.suffix == ".pyc")
        and not any(allowed in p.parents for allowed in BYTECODE_ALLOWED)
    )
