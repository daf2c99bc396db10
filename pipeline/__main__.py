"""``python -m pipeline``: the project's CLI.

The process ends with ``os._exit`` once the command has returned: by then its output is
flushed here, its files and archives are closed and its child processes reaped (each
command does that itself), and skipping the interpreter's teardown saves about half a
second after every command that imported the SageMaker SDK (benchmarks/local_loop.py).
"""

import contextlib
import logging
import os
import sys

from pipeline.cli import main

code = main()
logging.shutdown()
for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(BrokenPipeError):  # the reader left (`| head`): nothing more to tell it
        stream.flush()
os._exit(code)
