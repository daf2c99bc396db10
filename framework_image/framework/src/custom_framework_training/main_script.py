"""Run a Python script in this process as ``python SCRIPT ARGS...`` runs it in a new one.

The script is the ``__main__`` module (``__name__``, ``__file__``, ``sys.argv``, its folder
first on ``sys.path``) and stays so until the process ends; an uncaught exception is
printed by ``sys.excepthook`` from the script's own frames on, and ``SystemExit`` gives the
exit status as the interpreter maps it. :func:`shut_down` then does what the interpreter
does first when it ends: wait for the script's non-daemon threads, run the ``atexit``
handlers. What is saved against a second interpreter is its start and, with ``gc.freeze()``
before the exit, its final garbage collection of every object (about 0.3 s after
importing scikit-learn); Python does not promise to finalize objects still alive at exit.
"""

from __future__ import annotations

import atexit
import builtins
import io
import sys
import threading
import types
from pathlib import Path
from types import TracebackType

SIGINT_STATUS = 130  # what the interpreter's death by SIGINT after an uncaught KeyboardInterrupt reports


def exit_status(code: object) -> int:
    """The process's exit status for ``SystemExit(code)``: None is 0, an int is itself (mod 256, as
    the OS keeps it), anything else is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _script_frames(traceback: TracebackType | None, path: Path) -> TracebackType | None:
    """The traceback from the script's first frame on: this module's frames are not the script's."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename != str(path):
        traceback = traceback.tb_next
    return traceback


def run_as_main(path: Path, argv: list[str]) -> int:
    """Execute ``path`` (absolute) as ``__main__`` with ``sys.argv = argv``; its exit status."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=str(path), __builtins__=builtins, __cached__=None)
    sys.modules["__main__"] = main
    sys.argv = argv
    if not sys.flags.safe_path:  # ``python -m`` put the working directory there; ``python SCRIPT`` its folder
        sys.path[0] = str(path.parent)
    try:
        with io.open_code(str(path)) as source:
            code = compile(source.read(), str(path), "exec", dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit as stop:
        return exit_status(stop.code)
    except BaseException as error:  # as the interpreter reports what ends a script
        traceback = _script_frames(error.__traceback__, path)
        sys.excepthook(type(error), error.with_traceback(traceback), traceback)
        return SIGINT_STATUS if isinstance(error, KeyboardInterrupt) else 1
    return 0


def shut_down() -> None:
    """The interpreter's first steps at exit, in its order: the threads' exit functions
    (``concurrent.futures`` stops its workers there) and every non-daemon thread joined, then the
    ``atexit`` handlers. Both functions are private to CPython: they are what its exit calls."""
    threading._shutdown()
    atexit._run_exitfuncs()
