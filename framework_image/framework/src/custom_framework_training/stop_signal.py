"""SageMaker's stop, passed on to the user's script.

SageMaker stops a job (StopTrainingJob, ``MaxRuntimeInSeconds``, a stopped pipeline execution)
with SIGTERM to the container's PID 1, the toolkit's ``train``, and SIGKILL 120 s later. The
kernel drops a signal that PID 1 has no handler for, and the toolkit installs none, so the
script never hears of the stop and cannot save a checkpoint (sagemaker-training-toolkit#125).
Here ``train`` passes SIGTERM on to its child processes and goes on waiting, so the toolkit
still reports how the script ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType

PROC = Path("/proc")


def child_pids(parent: int, proc: Path = PROC) -> list[int]:
    """The processes whose parent is ``parent``, read from ``/proc/<pid>/stat``."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def forward(signum: int, _frame: FrameType | None = None) -> None:
    """Send ``signum`` to every child of this process."""
    for pid in child_pids(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def install() -> None:
    """Forward SIGTERM where it would otherwise be lost: in PID 1. Elsewhere (``train-local`` on
    the host) the local runner signals the script itself."""
    if os.getpid() == 1:
        signal.signal(signal.SIGTERM, forward)
