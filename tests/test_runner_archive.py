"""What a runner reads of the code archive: whether the toolkit will pip-install its requirements.txt."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.local import runners
from pipeline.local.job_config import PROGRAM


@dataclass
class Job:
    hyperparameters: dict[str, str] = field(default_factory=lambda: {PROGRAM: json.dumps("train.py")})


def archive(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "installs"),
    [
        ({"train.py": b""}, False),
        ({"train.py": b"", "requirements.txt": b"numpy\n"}, True),
        ({"train.py": b"", "lib/requirements.txt": b"numpy\n"}, False),  # named, but not where the toolkit looks
        ({"train.py": b"# see requirements.txt\n"}, False),  # named in a file's text only
        # past the scan's first 1 MB chunk, in a pax path record
        ({"big.bin": b"\0" * ((1 << 20) - 512 - 700), "x" * 120 + "/../requirements.txt": b"", "train.py": b""}, False),
        ({"big.bin": b"\0" * (3 << 20), "requirements.txt": b"numpy\n", "train.py": b""}, True),
    ],
)
def test_requirements_are_found_as_a_full_read_finds_them(tmp_path, members, installs):
    path = archive(tmp_path, members)
    with tarfile.open(path) as tar:
        assert ("requirements.txt" in tar.getnames()) is installs  # the case is what it claims
    assert runners.installs_requirements(Job(), path) is installs


def test_a_name_across_the_scans_chunks_is_seen(tmp_path):
    for offset in range(-20, 4):  # the name's bytes split at every point around the 1 MB boundary
        path = tmp_path / f"raw-{offset}.gz"
        body = b"\0" * ((1 << 20) + offset) + b"requirements.txt" + b"\0" * 100
        path.write_bytes(gzip.compress(body))
        assert runners._mentions(path, b"requirements.txt")
        path.write_bytes(gzip.compress(body.replace(b"requirements.txt", b"requirements.tx_")))
        assert not runners._mentions(path, b"requirements.txt")
