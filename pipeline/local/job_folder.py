"""Folders a live CLI is filling (a job's, a scratch dir) and what a killed one leaves behind.

The CLI holds a lock file in each such folder for as long as it lives: the kernel releases it however
the process ends, even by SIGKILL, so the next run tells an abandoned folder from one in use and
finishes the cleanup the dead CLI could not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.local import stops

LOCK = ".in-use"


def host_started(job_dir: Path) -> bool:
    """Whether a host of the job started: it wrote its log (``algo-N.log``) into the job folder. From
    then on the folder is the job's record, which no later error may delete."""
    return any(job_dir.glob("algo-*.log"))


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; the lock file is gone when the block ends."""
    with (folder / f"{LOCK}.new").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
        os.rename(lock.name, folder / LOCK)  # a sweep sees the lock file only once it is held
        try:
            yield folder
        finally:
            (folder / LOCK).unlink(missing_ok=True)


def abandoned(folder: Path) -> bool:
    """Whether ``folder`` has a lock file that no live process holds: its CLI died in the block."""
    try:
        with (folder / LOCK).open("r") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # in use
    except OSError:  # not ours (no lock file), or removed meanwhile
        return False
    return True


@contextlib.contextmanager
def claimed(job_dir: Path, report: Callable[[str], None] | None = None) -> Iterator[Path]:
    """A new job folder, locked while the job is prepared and run. If the block fails before a host
    started, the folder goes (nothing is left of a job that never ran); after that it stays."""
    job_dir.mkdir(parents=True)
    try:
        with locked(job_dir):
            yield job_dir
    except BaseException:
        if not host_started(job_dir):
            with stops.deferred():
                shutil.rmtree(job_dir, ignore_errors=True)
        elif report:
            report(f"the job's folder is kept: {job_dir}")
        raise


def sweep_jobs(output_dir: Path) -> None:
    """Finish what a killed CLI left in ``output_dir``: a job folder no host started in is removed;
    in one that ran, the half-written ``.*.partial`` files go and the logs and whole artifacts stay."""
    if not output_dir.is_dir():
        return
    for folder in output_dir.iterdir():
        if not folder.is_dir() or folder.is_symlink() or not abandoned(folder):
            continue
        if not host_started(folder):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for partial in folder.rglob(".*.partial"):
            partial.unlink(missing_ok=True)
        (folder / LOCK).unlink(missing_ok=True)
