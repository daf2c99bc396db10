"""File operations a job depends on, made safe: copies that refuse symlink loops, and files that
appear complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.errors import ChannelError
from pipeline.local import stops

FICLONE = 0x40049409  # ioctl: ``target`` shares ``source``'s blocks (btrfs, XFS, bcachefs): no bytes copied


def copy_file(source: Path, target: Path) -> None:
    """``source``'s bytes into ``target``: a reflink where the filesystem makes one (a later write to
    either copies only the blocks it changes), else the kernel's own copy."""
    with open(source, "rb") as data, open(target, "wb") as out:
        try:
            fcntl.ioctl(out.fileno(), FICLONE, data.fileno())
            return
        except OSError:  # not supported here, or across filesystems
            pass
    shutil.copyfile(source, target)


def copy_tree(source: Path, destination: Path) -> int:
    """Copy ``source``'s files into ``destination`` (:func:`copy_file`), following symlinks as SageMaker's
    File mode sees data (plain files); a folder link back to one of its ancestors is refused by name.
    Returns the count."""
    count = 0
    source = Path(source)
    stack = [(source, destination, (os.path.realpath(source),))]
    while stack:
        folder, target, ancestors = stack.pop()
        target.mkdir(parents=True, exist_ok=True)
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                if entry.is_dir():  # follows links
                    real = os.path.realpath(path)
                    if real in ancestors:
                        raise ChannelError(f"{path} is a symlink loop (it points back to {real}): remove or fix it")
                    stack.append((path, target / entry.name, (*ancestors, real)))
                elif entry.is_file():
                    stops.check()
                    copy_file(path, target / entry.name)
                    count += 1
                elif entry.is_symlink():
                    raise ChannelError(f"{path} is a broken symlink: remove or fix it")
    return count


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed to ``path`` only when the block completes,
    so an interrupted write never leaves a file that looks finished. I/O errors name ``path``."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as error:
        if error.filename is None:  # a full disk reports no file name from write()
            raise OSError(error.errno or errno.EIO, error.strerror or str(error), str(path)) from None
        raise
    finally:
        partial.unlink(missing_ok=True)


# gzip level 1 with ISA-L on every CPU: a 100 MB float32 model packs in 0.25 s against 4.45 s for
# tarfile's zlib at level 6, 0.2 % smaller (weights barely compress); benchmarks/scaling.py measures it.
PACK_LEVEL = 1


def pack_dir(folder: Path, archive: Path) -> Path:
    """``folder``'s contents as a gzipped tar with paths relative to it, as SageMaker packs them: a
    standard ``tar.gz``, compressed by ISA-L's deflate in parallel (:data:`PACK_LEVEL`)."""
    from isal import igzip_threaded

    threads = max(1, len(os.sched_getaffinity(0)))
    with (
        written_atomically(archive) as partial,
        igzip_threaded.open(partial, "wb", compresslevel=PACK_LEVEL, threads=threads) as raw,
        tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(folder.rglob("*")):
            stops.check()
            info = tar.gettarinfo(path, arcname=str(path.relative_to(folder)))
            if info.isreg():
                with path.open("rb") as data:
                    tar.addfile(info, _Stoppable(data))
            else:
                tar.addfile(info)
        stops.check()  # before the rename: a stop while the last member was packed leaves no archive
    return archive


class _Stoppable:
    """A file read in chunks by ``tarfile``, with a stop delivered between chunks (a model can be
    gigabytes in one file)."""

    def __init__(self, data: IO[bytes]) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        stops.check()
        return self.data.read(size)
