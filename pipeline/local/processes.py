"""Host processes of a local job, each under its own init (:mod:`host_init`); none outlives the job.

SageMaker ends a job's containers when they exit or one host fails, and stops a job by sending
SIGTERM and, after a grace period (120 s), SIGKILL. Here each host is an init process in its
own session that runs the toolkit (or the engine's ``run``) and takes ``term``/``kill``
requests over a pipe; when the CLI dies, even by SIGKILL, the pipe closes and the init kills
its whole tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST_INIT = Path(__file__).with_name("host_init.py")
POLL_SECONDS = 0.02
# After `kill`, how long an init may take to kill its tree and exit before it is killed itself.
KILL_WAIT_SECONDS = 10.0
DEFAULT_STOP_GRACE_SECONDS = 120.0  # SageMaker's, between SIGTERM and SIGKILL
PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def dies_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the CLI dies, even by SIGKILL, instead of running
    on as an orphan (a pip build, an image build). libc is loaded here, not in the forked child."""
    libc = _libc()
    return lambda: libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


@dataclass(frozen=True)
class HostCommand:
    """How one host runs: the command its init starts, and how the init stops it."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    mode: str = "process"  # or "container": --term/--kill run engine commands
    term: Sequence[str] | None = None
    kill: Sequence[str] | None = None
    scratch: Path | None = None  # the job's temp folder, which the init removes if the CLI dies
    opt_ml: Path | None = None  # process mode: the command starts where /opt/ml is this folder
    mounts: Sequence[Mapping[str, str | None]] = ()  # with opt_ml: data laid over its folders

    def init_argv(self) -> list[str]:
        # -I -S: the init needs nothing but the standard library, and starts in milliseconds.
        argv = [sys.executable, "-I", "-S", str(HOST_INIT), self.mode]
        if self.term is not None:
            argv += ["--term", json.dumps(list(self.term))]
        if self.kill is not None:
            argv += ["--kill", json.dumps(list(self.kill))]
        if self.scratch is not None:
            argv += ["--scratch", str(self.scratch)]
        if self.opt_ml is not None:
            argv += ["--opt-ml", str(self.opt_ml)]
        if self.mounts:
            argv += ["--mounts", json.dumps(list(self.mounts))]
        return [*argv, "--", *self.argv]


class Hosts:
    """Started hosts, waited for together; stopped with a grace period, or killed."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, host: HostCommand) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            host.init_argv(),
            env=dict(host.env),
            cwd=host.cwd,
            stdin=subprocess.PIPE,  # the init's requests; closing it (the CLI died) kills the tree
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the CLI only, which decides
        )
        self.processes.append(process)
        return process

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def wait(self, timeout: float | None, stop: threading.Event | None = None) -> bool:
        """Until every host exits or one fails (SageMaker then stops the rest); False on timeout or
        once ``stop`` is set (a stop signal is an event here, never an exception inside ``poll()``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            exited = [p for p in self.processes if p.poll() is not None]
            if len(exited) == len(self.processes) or any(p.returncode != 0 for p in exited):
                return True
            if (deadline is not None and time.monotonic() > deadline) or (stop is not None and stop.is_set()):
                return False
            time.sleep(POLL_SECONDS)

    def _request(self, word: bytes) -> None:
        for process in self.running():
            with contextlib.suppress(BrokenPipeError, ValueError):  # it exited meanwhile
                assert process.stdin is not None
                process.stdin.write(word + b"\n")
                process.stdin.flush()

    def stop(self, grace: float, forced: threading.Event) -> bool:
        """SIGTERM the user processes, wait ``grace`` seconds (or until ``forced``), then kill.

        Returns whether everything exited within the grace period.
        """
        self._request(b"term")
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline and not forced.is_set():
            time.sleep(POLL_SECONDS)
        graceful = not self.running()
        self.kill()
        return graceful

    def kill(self) -> None:
        """Kill every tree now; an init that does not exit in time is killed with its session."""
        self._request(b"kill")
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while self.running() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        for process in self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        """Close the request pipes of exited hosts (a running init would take that as the CLI's death)."""
        for process in self.processes:
            if process.poll() is not None and process.stdin:
                with contextlib.suppress(OSError):
                    process.stdin.close()
