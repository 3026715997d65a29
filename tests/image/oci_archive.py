"""Read an OCI image archive (``oci-archive:``, as ``buildah push`` writes it) without a
container engine: its config and the file tree its layers add up to, whiteouts applied."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Entry:
    path: PurePosixPath
    size: int
    is_dir: bool
    is_link: bool


@dataclass(frozen=True)
class Image:
    config: dict[str, Any]
    layer_bytes: int  # the layers as stored (compressed when their media type says so)
    files: dict[PurePosixPath, Entry]

    @property
    def unpacked_bytes(self) -> int:
        return sum(e.size for e in self.files.values())

    def user(self) -> str:
        return str(self.config.get("config", {}).get("User", ""))


def _blob(archive: tarfile.TarFile, digest: str) -> IO[bytes]:
    algorithm, value = digest.split(":", 1)
    member = archive.extractfile(f"blobs/{algorithm}/{value}")
    if member is None:
        raise ValueError(f"blob {digest} is not a file")
    return member


def _apply_layer(files: dict[PurePosixPath, Entry], layer: tarfile.TarFile) -> None:
    for member in layer:
        path = PurePosixPath("/", member.name)
        if path.name == OPAQUE:
            for known in [p for p in files if path.parent in p.parents]:
                del files[known]
            continue
        if path.name.startswith(WHITEOUT):
            gone = path.parent / path.name[len(WHITEOUT) :]
            for known in [p for p in files if p == gone or gone in p.parents]:
                del files[known]
            continue
        files[path] = Entry(
            path, member.size if member.isfile() else 0, member.isdir(), member.issym()
        )


def read_image(archive_path: Path) -> Image:
    with tarfile.open(archive_path) as archive:
        index = json.load(_member(archive, "index.json"))
        (manifest_ref,) = index["manifests"]
        manifest = json.load(_blob(archive, manifest_ref["digest"]))
        config = json.load(_blob(archive, manifest["config"]["digest"]))
        files: dict[PurePosixPath, Entry] = {}
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=_blob(archive, layer["digest"]), mode="r:*") as tar:
                _apply_layer(files, tar)
        return Image(config, sum(int(layer["size"]) for layer in manifest["layers"]), files)


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    member = archive.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is missing from the archive")
    return member
