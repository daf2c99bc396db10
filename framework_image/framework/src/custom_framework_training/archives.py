"""Unpack a ``.tar.gz`` (code or model) safely on every Python the image may run.

tarfile's ``"data"`` filter refuses members that would land outside the target folder, but
it exists only from Python 3.11.4 and 3.12: Debian bookworm's ``python3`` (3.11.2, a base
``framework_image/`` supports) lacks it and raises ``TypeError`` on ``filter=``. There the
same refusals are made here before extracting.
"""

from __future__ import annotations

import tarfile
from pathlib import Path


class UnsafeArchive(tarfile.TarError):
    """A member that would be written outside the target folder, or is not a file, folder or link."""


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


def extract(archive: Path, into: Path) -> None:
    """Every member of ``archive`` under ``into``; raises ``tarfile.TarError`` for one that would escape it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
            return
        members = tar.getmembers()
        check_members(members, into)
        for member in members:
            _data_filter_mode(member)
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
