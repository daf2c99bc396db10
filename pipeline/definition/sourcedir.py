"""Pack the user's code as ``sourcedir.tar.gz``, byte-for-byte reproducibly.

The pipeline and the local runner both use :func:`pack`, so what runs locally is
what SageMaker downloads. The S3 key is the archive's hash: unchanged code keeps
the same key, the definition stays byte-identical, and step caching hits.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.definition import contract
from pipeline.definition.contract import Contract
from pipeline.errors import SettingsError

# Build and editor leftovers that must never change the hash.
EXCLUDED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".git"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def check(source_dir: Path, entry_point: str) -> None:
    """Fail before packing when the folder or its entry point is missing: an empty archive would deploy."""
    if not source_dir.is_dir():
        raise SettingsError(
            f"source dir {source_dir} is not a folder: pass --source-dir with your training code,"
            " or run from the project root"
        )
    if not (source_dir / entry_point).is_file():
        raise SettingsError(
            f"source dir {source_dir} has no {entry_point}: add it, or name the script"
            " (entry_point in training.toml, or --entry-point)"
        )


def included_files(source_dir: Path) -> list[Path]:
    """Files to pack, relative to ``source_dir``, in a stable order."""
    files = []
    for path in sorted(source_dir.rglob("*")):
        relative = path.relative_to(source_dir)
        if any(part in EXCLUDED_DIRS for part in relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            files.append(relative)
    return files


def pack(source_dir: Path, entry_point: str) -> bytes:
    """A gzipped tar of ``source_dir`` with fixed mtimes, owners and modes; see :func:`check`."""
    check(source_dir, entry_point)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in included_files(source_dir):
            data = (source_dir / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(data)
            info.mode = 0o755 if (source_dir / relative).stat().st_mode & 0o100 else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def content_key(archive: bytes) -> str:
    """Short content hash that names the archive's S3 prefix."""
    return hashlib.sha256(archive).hexdigest()[:16]


def s3_uri(code_prefix: str, archive: bytes) -> str:
    """Where an archive lives: ``<code_prefix>/<hash>/sourcedir.tar.gz``."""
    return f"{code_prefix}/{content_key(archive)}/sourcedir.tar.gz"


@dataclass(frozen=True)
class Source:
    """A source dir read once: its contract, and the archive that ships it."""

    path: Path
    contract: Contract
    archive: bytes


def read(path: Path, entry_point: str | None = None) -> Source:
    """The source dir's contract (``entry_point`` overrides the declared one) and its packed archive."""
    declared = contract.load(path)
    if entry_point:
        declared = dataclasses.replace(declared, entry_point=entry_point)
    return Source(path, declared, pack(path, declared.entry_point))
