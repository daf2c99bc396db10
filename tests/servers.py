"""The one way tests wait for something they started: poll until it answers, or fail saying why.

A server (moto, serve, a registry, podman's API) is started as a process, then polled; the wait ends
early, with the process's log, if the process exits first.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class DidNotStart(AssertionError):
    """What was waited for never came (a test failure, not an error in the code under test)."""


def answers(url: str, status: int = 200) -> bool:
    """Whether ``url`` answers ``status`` now (``False`` while nothing listens)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == status
    except OSError:
        return False


def wait_until(
    ready: Callable[[], T],
    what: str,
    process: subprocess.Popen | None = None,
    timeout: float = 30,
    log: Path | None = None,
    every: float = 0.05,
) -> T:
    """Call ``ready`` until it returns something true (an ``OSError`` counts as not yet), and return that;
    fail, with the tail of ``log``, once ``process`` has exited or ``timeout`` seconds passed (a bound,
    not a claim)."""
    started = time.monotonic()
    while True:
        try:
            if result := ready():
                return result
        except OSError:
            pass
        waited = time.monotonic() - started
        if (process is not None and process.poll() is not None) or waited > timeout:
            exited = f" (exited {process.returncode})" if process is not None and process.returncode is not None else ""
            tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
            raise DidNotStart(f"never: {what}{exited} after {waited:.1f} s" + (f":\n{tail}" if tail else ""))
        time.sleep(every)
