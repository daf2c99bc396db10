"""The end of this process's stderr, kept for a failure message while it is passed on unchanged.

For the block, file descriptor 2 is a pipe: a thread copies each line to the real stderr
as it comes (so the log shows progress) and keeps the last few. It sees what reaches the
descriptor, whoever writes it: Python code, C libraries, and child processes, which
inherit it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator

# After the block, how long the lines still in the pipe may take to come through. A child
# process left running by the script keeps its end of the pipe open: the rest is not waited for.
DRAIN_SECONDS = 2.0


def _pass_on(pipe: int, stderr: int, tail: deque[str]) -> None:
    with open(pipe, "rb") as lines, open(stderr, "wb", buffering=0) as out:
        for line in lines:
            out.write(line)
            tail.append(line.decode(errors="replace").rstrip())


@contextlib.contextmanager
def stderr_tail(lines: int) -> Iterator[deque[str]]:
    """The last ``lines`` lines written to stderr in the block (complete once it has ended)."""
    tail: deque[str] = deque(maxlen=lines)
    sys.stderr.flush()
    real = os.dup(2)
    pipe, writer = os.pipe()
    os.dup2(writer, 2)
    os.close(writer)
    thread = threading.Thread(target=_pass_on, args=(pipe, os.dup(real), tail), daemon=True)
    thread.start()
    try:
        yield tail
    finally:
        with contextlib.suppress(ValueError, OSError):  # the script may have closed or replaced it
            sys.stderr.flush()
        os.dup2(real, 2)  # this process's last write end of the pipe closes
        os.close(real)
        thread.join(DRAIN_SECONDS)
