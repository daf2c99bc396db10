"""Stop signals (Ctrl-C, SIGTERM, a closed terminal) as events, never as exceptions raised into library code.

A handler that raises ``KeyboardInterrupt`` lands wherever the main thread happens to be: inside
``Popen.poll()`` between taking its lock and the ``try`` that releases it, every later ``poll()``
says "running" and ``wait()`` blocks forever, and a second Ctrl-C cannot help. So the handlers
here only record the stop. The CLI's own code delivers it, as ``KeyboardInterrupt``, at points
where unwinding is safe (:func:`check`: between files copied, objects downloaded, members packed,
polls of a child), and the hosts' supervisor waits on it as an event. Signal handlers exist only
in the main thread; elsewhere these contexts change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_pending = threading.Event()  # a stop received and not delivered yet
_listeners: list[threading.Event] = []  # counting() blocks, innermost last: a stop goes there instead
_depth = 0  # nested blocks that installed the handler


def _record(signum: int, frame: object) -> None:
    """The only handler: it sets an event and returns, whatever the main thread was doing."""
    (_listeners[-1] if _listeners else _pending).set()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _recorded() -> Iterator[None]:
    """Stop signals recorded while the block runs; the previous handlers come back after it."""
    global _depth
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _record) for sig in STOP_SIGNALS} if _depth == 0 else {}
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for sig, old in previous.items():
            signal.signal(sig, old)


def requested() -> bool:
    """Whether a stop is waiting to be delivered."""
    return _pending.is_set()


def check() -> None:
    """Deliver a pending stop here, a point where unwinding is safe, as ``KeyboardInterrupt``."""
    if _pending.is_set() and _in_main_thread():
        _pending.clear()
        raise KeyboardInterrupt


def take() -> bool:
    """Whether a stop was pending; it counts as delivered (the caller acts on it, without unwinding)."""
    was = _pending.is_set()
    _pending.clear()
    return was


@contextlib.contextmanager
def interrupting() -> Iterator[None]:
    """Stop signals are recorded and delivered by :func:`check`; one still pending when the block
    ends is delivered there."""
    with _recorded():
        yield
    check()


@contextlib.contextmanager
def counting() -> Iterator[threading.Event]:
    """Yields an event that the stop signals of the block set (a second Ctrl-C forcing a stop),
    instead of leaving them pending."""
    again = threading.Event()
    with _recorded():
        _listeners.append(again)
        try:
            yield again
        finally:
            _listeners.remove(again)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """The block runs to its end; a stop received meanwhile is delivered after it."""
    with _recorded():
        yield
    check()
