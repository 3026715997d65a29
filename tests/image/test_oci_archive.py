"""The image checks' own machinery, on small archives made here (no image build needed):
layers add up with whiteouts applied, and each rule catches what it is there to catch."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path, PurePosixPath

from image_rules import build_leftovers, compilers, stray_bytecode
from oci_archive import read_image

Layer = dict[str, bytes | None]  # path -> file content, or None for a directory


def layer_tar(entries: Layer) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def write_archive(path: Path, layers: list[Layer], config: dict[str, object]) -> None:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_refs = []
    for n, entries in enumerate(layers):
        data = layer_tar(entries)
        gzipped = n % 2 == 0  # both kinds: buildah writes gzip, other tools plain tar
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzipped else "")
        layer_refs.append({"mediaType": media, **blob(gzip.compress(data) if gzipped else data)})
    manifest = {
        "schemaVersion": 2,
        "config": blob(json.dumps(config).encode()),
        "layers": layer_refs,
    }
    index = {"schemaVersion": 2, "manifests": [blob(json.dumps(manifest).encode())]}
    with tarfile.open(path, "w") as tar:
        for name, data in [
            ("index.json", json.dumps(index).encode()),
            *((f"blobs/sha256/{d}", b) for d, b in blobs.items()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


CONFIG = {"os": "linux", "config": {"User": "65532:65532", "Entrypoint": ["oomguard"]}}


def test_layers_add_up_with_whiteouts(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    write_archive(
        archive,
        [
            {"usr": None, "usr/bin": None, "usr/bin/python3": b"x" * 100, "tmp/junk": b"y" * 50},
            {"tmp/.wh.junk": b"", "opt/app/old": b"z" * 7, "opt/app/keep": b"k"},
            {"opt/app/.wh..wh..opq": b"", "opt/app/new": b"n" * 3},
        ],
        CONFIG,
    )
    image = read_image(archive)
    files = {str(p) for p, e in image.files.items() if not e.is_dir}
    assert files == {"/usr/bin/python3", "/opt/app/new"}
    assert image.unpacked_bytes == 103
    assert image.user() == "65532:65532"


def test_rules_catch_compilers_caches_and_stray_bytecode(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    site = "opt/oomguard/lib/python3.11/site-packages"
    write_archive(
        archive,
        [
            {
                "usr/bin/gcc-12": b"",
                "usr/bin/x86_64-linux-gnu-ld": b"",
                "usr/lib/gcc/x86_64-linux-gnu/12/cc1": b"",
                "usr/bin/ccache-stats": b"",  # a name that only starts like a compiler
                "root/.cache/pip/http/x": b"",
                "src/oomguard/__pycache__/cli.cpython-311.pyc": b"",
                "opt/build/bin/pip": b"",
                f"{site}/oomguard/__pycache__/cli.cpython-311.pyc": b"",
                "usr/lib/python3.11/__pycache__/os.cpython-311.pyc": b"",
            }
        ],
        CONFIG,
    )
    image = read_image(archive)
    assert compilers(image) == [
        "/usr/bin/gcc-12",
        "/usr/bin/x86_64-linux-gnu-ld",
        "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
    ]
    assert build_leftovers(image) == [
        "/opt/build/bin/pip",
        "/root/.cache/pip/http/x",
        "/src/oomguard/__pycache__/cli.cpython-311.pyc",
    ]
    assert stray_bytecode(image) == ["/src/oomguard/__pycache__/cli.cpython-311.pyc"]
    assert PurePosixPath("/usr/bin/ccache-stats") in image.files
