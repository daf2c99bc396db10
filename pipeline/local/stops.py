"""Stop signals (Ctrl-C, SIGTERM, a closed terminal) in each phase of a local job.

While the job is prepared or packed, a stop raises ``KeyboardInterrupt`` wherever the CLI is,
so every ``finally`` cleans up (temp folders, half-written files). While the hosts stop,
further stops are only counted: the first one asked for a graceful stop, a second one forces
it. Cleanup that must finish defers them to its end. Signal handlers exist only in the main
thread; elsewhere these contexts change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _handled(handler: Callable[[int, object], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def interrupting() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as SIGINT does."""
    with _handled(_raise_interrupt):
        yield


@contextlib.contextmanager
def counting() -> Iterator[threading.Event]:
    """Yields an event set by the next stop signal (a second Ctrl-C forcing a stop)."""
    again = threading.Event()
    with _handled(lambda signum, frame: again.set()):
        yield again


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """The block runs to its end; a stop signal received meanwhile raises ``KeyboardInterrupt`` after it."""
    with counting() as stopped:
        yield
    if stopped.is_set():
        raise KeyboardInterrupt
