"""Host processes of a local job: each in its own process group, none outliving the job.

SageMaker ends a job's containers when they exit, are stopped or one host fails;
here a container is a process group, so the same rules are kept with signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

POLL_SECONDS = 0.02
KILL_GRACE_SECONDS = 5.0
# Ctrl-C, kill and a closed terminal all stop the job; the hosts run in their own
# sessions, so they receive none of these themselves.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _set_handlers(handler: object) -> dict[int, object]:
    """Install ``handler`` for every stop signal (main thread only); returns the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, as SIGINT already is."""
    previous = _set_handlers(_raise_keyboard_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone, or never ours
        os.killpg(process.pid, sig)


class Hosts:
    """Started host processes; each group is killed as soon as its leader exits.

    Killing at once, right after the leader is reaped, means no user process
    lingers, and no group id is signalled later when the kernel may have reused it.
    """

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self._reaped: set[int] = set()

    def start(self, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def _exited(self, process: subprocess.Popen[bytes]) -> bool:
        if process.pid in self._reaped:
            return True
        if process.poll() is None:
            return False
        self._reaped.add(process.pid)
        _signal_group(process, signal.SIGKILL)
        return True

    def wait(self, timeout: float | None) -> bool:
        """Until every host exits or one fails (SageMaker then stops the rest); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            exited = [p for p in self.processes if self._exited(p)]
            if len(exited) == len(self.processes) or any(p.returncode != 0 for p in exited):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM the running groups, SIGKILL them after a grace period; stop signals wait meanwhile."""
        previous = _set_handlers(signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        try:
            running = [p for p in self.processes if not self._exited(p)]
            for process in running:
                _signal_group(process, signal.SIGTERM)
            deadline = time.monotonic() + KILL_GRACE_SECONDS
            while time.monotonic() < deadline and not all(self._exited(p) for p in running):
                time.sleep(POLL_SECONDS)
            for process in running:
                if not self._exited(process):
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
                    self._exited(process)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
