"""Unpack a ``.tar.gz`` (code or model) safely on every Python the image may run.

Archives come from users, so :func:`extract` writes nothing outside its folder (no member path or
link escapes it, no device files) and refuses one that would unpack to more than
:data:`MAX_UNPACKED_BYTES`, the free disk space, or :data:`MAX_MEMBERS` files: a tar bomb is
refused from its headers, before it fills the disk.

tarfile's ``"data"`` filter refuses members that would land outside the target folder, but
it exists only from Python 3.11.4 and 3.12: Debian bookworm's ``python3`` (3.11.2, a base
``framework_image/`` supports) lacks it and raises ``TypeError`` on ``filter=``. There the
same refusals are made here before extracting.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

MAX_UNPACKED_BYTES = 32 * 2**30
MAX_MEMBERS = 1_000_000
# Room left on the disk after unpacking, so a model that barely fits still leaves space to run.
DISK_RESERVE_BYTES = 256 * 2**20


class UnsafeArchive(tarfile.TarError):
    """A member that would be written outside the target folder, or is not a file, folder or link."""


class ArchiveTooLarge(tarfile.TarError):
    """The archive would unpack to more than the limit or the free disk space."""


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def check_members(members: list[tarfile.TarInfo], into: Path) -> None:
    """Raise :class:`UnsafeArchive` for the first member the ``"data"`` filter would refuse for its place."""
    root = into.resolve()
    for member in members:
        target = (root / member.name).resolve()
        if not _inside(root, target):
            raise UnsafeArchive(f"{member.name}: would be written outside {into}")
        if member.issym():
            if not _inside(root, (target.parent / member.linkname).resolve()):
                raise UnsafeArchive(f"{member.name}: links outside {into} ({member.linkname})")
        elif member.islnk():
            if not _inside(root, (root / member.linkname).resolve()):
                raise UnsafeArchive(f"{member.name}: links outside {into} ({member.linkname})")
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchive(f"{member.name}: not a file, folder or link")


def unpacked_size(archive: Path, limit: int, max_members: int = MAX_MEMBERS) -> int:
    """The bytes ``archive`` unpacks to, read from its headers; :class:`ArchiveTooLarge` as soon as it passes
    ``limit`` or ``max_members``, so a bomb is not read to its end."""
    total = members = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            members += 1
            total += member.size if member.isfile() else 0
            if total > limit:
                raise ArchiveTooLarge(
                    f"{archive} unpacks to more than {limit} bytes (the limit, or the free disk space)"
                )
            if members > max_members:
                raise ArchiveTooLarge(f"{archive} holds more than {max_members} members")
    return total


def extract(archive: Path, into: Path, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Every member of ``archive`` under ``into`` (made if missing), after checking its size against
    ``limit`` and the free space; raises ``tarfile.TarError`` for a member that would escape ``into``."""
    disk = next(folder for folder in (into, *into.parents) if folder.exists())
    free = shutil.disk_usage(disk).free - DISK_RESERVE_BYTES
    unpacked_size(archive, min(limit, max(free, 0)))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            into.mkdir(parents=True, exist_ok=True)
            tar.extractall(into, filter="data")
            return
        members = tar.getmembers()
        check_members(members, into)
        for member in members:
            _data_filter_mode(member)
        into.mkdir(parents=True, exist_ok=True)
        tar.extractall(into, members=members)


def _data_filter_mode(member: tarfile.TarInfo) -> None:
    """The modes the ``"data"`` filter gives: folders the default (a folder stored as 0o644 would lock
    out anyone but root), files readable and writable by their owner, no setuid, setgid, sticky or
    group/other write bits."""
    if member.isdir():
        member.mode = 0o755
    elif member.isfile():
        member.mode = (member.mode & 0o755 & ~0o022) | 0o600
        if not member.mode & 0o100:
            member.mode &= ~0o111
