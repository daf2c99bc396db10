"""A job's input data (training channels, processing inputs), from local folders or ``s3://`` prefixes,
given to each host the way SageMaker's File mode does: as its own copy, which the script may change
without touching the original. Without copying the bytes where this machine allows it:

- an ``s3://`` prefix is downloaded once per job (:func:`stage`), whatever the host count;
- a host in a private mount namespace (:mod:`host_init`) sees the data through a :class:`Mount`:
  an overlay (writes land in the job's scratch) when the data is the user's own, else a read-only
  bind (an overlay cannot copy up another user's file);
- a folder holding symlinks, special files or other mounts, and every host without a namespace,
  gets a copy (:func:`files.copy_tree`, reflinked where the filesystem can), as File mode sees it.
"""

from __future__ import annotations

import enum
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import aws
from pipeline.errors import ChannelError
from pipeline.local import stops
from pipeline.local.files import copy_file, copy_tree


def _empty(source: str) -> ChannelError:
    return ChannelError(
        f"channel source {source} holds no objects: upload the data (upsert seeds the sample data"
        " at the default prefixes) or point the channel elsewhere"
    )


def _missing(source: str) -> ChannelError:
    return ChannelError(f"channel source {source} does not exist: pass an existing folder or an s3:// URI")


def check(source: str, region: str | None = None) -> None:
    """Refuse a channel :func:`stage` would refuse, without fetching it."""
    if source.startswith("s3://"):
        if next(aws.list_keys(aws.client("s3", region), source), None) is None:
            raise _empty(source)
    elif not Path(source).exists():
        raise _missing(source)


def stage(source: str, download: Path, region: str | None = None) -> Path:
    """Where the job's hosts take this channel from: a local source as it is, an ``s3://`` prefix
    downloaded into ``download`` (once per job). An empty or missing channel is an error, as on SageMaker."""
    if source.startswith("s3://"):
        download.mkdir(parents=True, exist_ok=True)
        if aws.download_prefix(aws.client("s3", region), source, download, stops.check) == 0:
            raise _empty(source)
        return download
    path = Path(source)
    if not path.exists():
        raise _missing(source)
    return path


class Way(enum.Enum):
    """How a host gets a channel."""

    OVERLAY = "overlay"  # writable, changes kept in the job's scratch
    READ_ONLY = "read-only"  # a bind: writes fail
    COPY = "copy"  # the host's own copy in its base dir


# Characters that overlay's mount options cannot carry in a lowerdir path.
_OPTION_CHARACTERS = frozenset(",:\\")


def way(source: Path, namespace: bool) -> Way:
    """How hosts get ``source`` (a folder or a file): found by one walk of its entries, no byte read.

    A copy is the only way without a ``namespace``, and for data that a mount would show otherwise
    than File mode does (symlinks, which File mode sees as plain files, special files, mounts inside);
    an overlay needs every entry to be the caller's (its uid and gid are all a user namespace maps)."""
    if not namespace:
        return Way.COPY
    if source.is_file():
        return Way.READ_ONLY  # an overlay is made of folders
    root = os.stat(source)
    mine = True  # the overlay's root folder is its upper one, the job's
    folders = [str(source)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)) or info.st_dev != root.st_dev:
                    return Way.COPY
                if stat.S_ISDIR(info.st_mode):
                    folders.append(entry.path)
                mine = mine and (os.geteuid() == 0 or (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()))
    if not mine or _OPTION_CHARACTERS & set(os.path.realpath(source)):
        return Way.READ_ONLY
    return Way.OVERLAY


def said(how: Way, what: str, report: Callable[[str], None]) -> Way:
    """``how``, after telling the user when it makes ``what`` read-only: a script that writes there fails
    where SageMaker's File mode would let it (the one difference zero-copy data has)."""
    if how is Way.READ_ONLY:
        report(
            f"note: {what} is read-only in the job (a one-file channel, files that are not all yours,"
            " or a path holding , : or \\ cannot be an overlay): writes into it fail"
        )
    return how


@dataclass(frozen=True)
class Mount:
    """A channel laid over a host's folder in its namespace (:func:`host_init.mount_data`)."""

    source: Path
    target: str  # as the host sees it, under /opt/ml
    upper: Path | None  # the overlay's changes; None: read-only

    def as_json(self) -> dict[str, str | None]:
        return {
            "source": os.path.realpath(self.source),
            "target": self.target,
            "upper": None if self.upper is None else str(self.upper),
        }


def give(source: Path, how: Way, folder: Path, target: str, changes: Path) -> Mount | None:
    """Lay ``source`` out in a host's ``folder`` (which the host sees at ``target``): a mount point and
    the :class:`Mount` for it, or a copy (None). An overlay's changes go to ``changes``."""
    folder.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        if how is Way.COPY:
            copy_file(source, folder / source.name)
            shutil.copystat(source, folder / source.name)
            return None
        (folder / source.name).touch()  # a file is bound over a file
        return Mount(source, f"{target}/{source.name}", None)
    if how is Way.COPY:
        copy_tree(source, folder)
        return None
    return Mount(source, target, changes if how is Way.OVERLAY else None)
