"""The code archive built chunk by chunk, so a one-file edit re-reads and re-compresses one chunk.

The files, in order, fall into chunks: a chunk ends after a file whose path hashes to 0 modulo
:data:`CHUNK_FILES` (about that many files each; an edit, insertion or removal moves no other
boundary), and a file of :data:`LARGE` bytes or more is a chunk of its own. Each chunk's tar
members (header, data, padding) are compressed as one gzip member; the archive is their
concatenation and a last member with the tar's end blocks. A multi-member gzip is a valid
``.tar.gz`` (RFC 1952: GNU tar, Python's tarfile and the SageMaker toolkit read it), and its
bytes depend only on the files' paths, contents and execute bits: the same files give the same
archive and S3 key, from the cache or not. Chunks of many files keep most of the compression
a single stream gets, and few members keep readers fast (``gzip.decompress`` is quadratic in them).

The cache keeps, per file, its stat (size, mtime and ctime in ns, inode, mode) and the verdict of
the caller's check, and per chunk (named by its files' paths and stats) its gzip member. Entries
are reused only while the stats are unchanged; a file changed less than :data:`RACY_NS` before
packing is not cached, since a write in the same clock tick could leave its stat as it was. One
cache per source dir (and caller's salt: the Python that checked) in the user's cache folder; an
unreadable or inconsistent one is ignored, and a failed write only costs speed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = 2  # bump when the archive's bytes or the index change
CHUNK_FILES = 64
LARGE = 1 << 20
MAX_SOURCE_DIRS = 16  # caches kept, the least recently used dropped
RACY_NS = 1_000_000_000
ENCODING = "utf-8"
Files = Sequence[tuple[Path, os.stat_result]]


@dataclass(frozen=True)
class Packed:
    """The archive and the non-empty verdicts of the check, in file order."""

    archive: bytes
    notes: tuple[str, ...]
    read: int  # files read from disk (the rest came from the cache), for the benchmarks and tests


def member(name: str, data: bytes, executable: bool) -> bytes:
    """One file as tar bytes: its header, data and padding to a block."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    padding = -len(data) % tarfile.BLOCKSIZE
    return info.tobuf(tarfile.PAX_FORMAT, ENCODING, "surrogateescape") + data + tarfile.NUL * padding


def end(raw_length: int) -> bytes:
    """The last gzip member: the tar's two zero blocks, padded to a record, as ``tarfile`` writes them."""
    length = raw_length + 2 * tarfile.BLOCKSIZE
    return gzip.compress(tarfile.NUL * (2 * tarfile.BLOCKSIZE + -length % tarfile.RECORDSIZE), mtime=0)


def chunks(files: Files) -> list[Files]:
    """``files`` cut where :mod:`packing` says, each boundary decided by its neighbours alone."""
    out: list[Files] = []
    current: list[tuple[Path, os.stat_result]] = []
    for file in files:
        large = file[1].st_size >= LARGE
        if large and current:
            out.append(current)
            current = []
        current.append(file)
        if large or zlib.crc32(file[0].as_posix().encode(ENCODING, "surrogateescape")) % CHUNK_FILES == 0:
            out.append(current)
            current = []
    return [*out, current] if current else out


def _signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_mode]


def _chunk_key(chunk: Files) -> str:
    digest = hashlib.sha256()
    for relative, stat in chunk:
        digest.update(f"{relative.as_posix()}\0{_signature(stat)}\0".encode(ENCODING, "surrogateescape"))
    return digest.hexdigest()[:32]


def pack(source_dir: Path, files: Files, check: Callable[[Path, bytes], str], cache: Path | None) -> Packed:
    """The archive of ``files`` (relative to ``source_dir``, with their ``lstat``), each new or changed
    one read and passed to ``check`` (which raises to refuse it, or returns a note, ``""`` for none)."""
    old_files, old_chunks, blob = _load(cache) if cache else ({}, {}, b"")
    now = time.time_ns()
    data: dict[Path, bytes] = {}
    verdicts: dict[str, list] = {}
    notes = []
    for relative, stat in files:
        name = relative.as_posix()
        signature = _signature(stat)
        entry = old_files.get(name)
        if entry is not None and entry[:5] == signature:
            verdict = entry[5]
        else:
            path = source_dir / relative
            data[relative] = path.read_bytes()
            verdict = check(path, data[relative])
        if max(stat.st_mtime_ns, stat.st_ctime_ns) < now - RACY_NS:
            verdicts[name] = [*signature, verdict]
        if verdict:
            notes.append(verdict)
    parts: list[bytes] = []
    index: dict[str, list[int]] = {}
    raw_length = offset = 0
    for chunk in chunks(files):
        key = _chunk_key(chunk)
        if key in old_chunks:
            start, length, raw = old_chunks[key]
            packed = blob[start : start + length]
        else:
            tar = b"".join(
                member(relative.as_posix(), _data(source_dir, relative, data), bool(stat.st_mode & 0o100))
                for relative, stat in chunk
            )
            packed, raw = gzip.compress(tar, mtime=0), len(tar)
        if all(relative.as_posix() in verdicts for relative, _ in chunk):
            index[key] = [offset, len(packed), raw]
        parts.append(packed)
        raw_length += raw
        offset += len(packed)
    parts.append(end(raw_length))
    archive = b"".join(parts)
    if cache:
        with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
            if (verdicts, index) != (old_files, old_chunks):
                _store(cache, verdicts, index, archive)
            else:
                os.utime(cache.with_suffix(".json"))  # recently used: kept by the pruning
    return Packed(archive, tuple(notes), len(data))


def _data(source_dir: Path, relative: Path, read: dict[Path, bytes]) -> bytes:
    """A file's bytes: read already, or now (an unchanged file in a chunk that changed)."""
    if relative not in read:
        read[relative] = (source_dir / relative).read_bytes()
    return read[relative]


def cache_file(folder: Path, source_dir: Path, salt: str) -> Path | None:
    """Where ``source_dir``'s cache lives (``.json`` index, ``.tar.gz`` archive), or None when the
    folder is inside the source dir, where the next pack would ship it."""
    resolved = source_dir.resolve()
    if folder.resolve().is_relative_to(resolved):
        return None
    key = hashlib.sha256(f"{FORMAT}\0{resolved}\0{salt}".encode(errors="surrogateescape")).hexdigest()[:32]
    return folder / key


def _load(cache: Path) -> tuple[dict[str, list], dict[str, list[int]], bytes]:
    """The cached files, chunks and archive, or nothing when any is missing, unreadable or they disagree."""
    try:
        index = json.loads(cache.with_suffix(".json").read_bytes())
        blob = cache.with_suffix(".tar.gz").read_bytes()
        if index["format"] != FORMAT or index["archive"] != hashlib.sha256(blob).hexdigest():
            return {}, {}, b""
        files, chunks = index["files"], index["chunks"]
        for entry in files.values():
            *signature, verdict = entry
            if not (len(signature) == 5 and all(type(n) is int for n in signature) and isinstance(verdict, str)):
                return {}, {}, b""
        for start, length, raw in chunks.values():
            if not (all(type(n) is int for n in (start, length, raw)) and 0 <= start <= start + length <= len(blob)):
                return {}, {}, b""
        return files, chunks, blob
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}, b""


def _store(cache: Path, files: dict[str, list], chunks: dict[str, list[int]], archive: bytes) -> None:
    """Archive first, then the index that names its hash (atomically each), then drop the oldest caches."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(archive).hexdigest()
    text = json.dumps({"format": FORMAT, "archive": digest, "files": files, "chunks": chunks})
    for suffix, body in ((".tar.gz", archive), (".json", text.encode())):
        with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp", delete=False) as out:
            try:
                out.write(body)
                out.close()
                os.replace(out.name, cache.with_suffix(suffix))
            except OSError:
                os.unlink(out.name)  # no partial file left behind
                raise
    indexes = sorted(cache.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in indexes[MAX_SOURCE_DIRS:]:
        for suffix in (".json", ".tar.gz"):
            with contextlib.suppress(FileNotFoundError):  # another process may have dropped it
                old.with_suffix(suffix).unlink()
