"""The one AWS stand-in for tests and benchmarks: a moto server process on 127.0.0.1.

boto3 reaches it over real HTTP through ``AWS_ENDPOINT_URL``; nothing else of AWS is used.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from servers import answers, wait_until

REGION = "us-east-1"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MOTO = ("-m", "moto.server")


@contextlib.contextmanager
def moto_server(log: Path | None = None, program: tuple[str, ...] = MOTO) -> Iterator[str]:
    """Start a moto server, yield its endpoint once it answers, and stop it by PID. ``program`` is
    what ``python`` runs: moto's server module, or a script that patches moto first and runs it."""
    port = free_port()
    out = log.open("w") if log else subprocess.DEVNULL
    server = subprocess.Popen(
        [sys.executable, *program, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{endpoint}/moto-api/"), "the moto server answers", server, 30, log)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if log:
            out.close()


def reset(endpoint: str) -> None:
    """A clean account: every bucket, pipeline and execution gone."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)


def account_environment(endpoint: str) -> dict[str, str]:
    """What points boto3 and the CLI at the server, with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


@contextlib.contextmanager
def cli_stand_in(cwd: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``python -m pipeline stand-in`` on a free port, as a user starts it: its port and the variables
    its ``export`` lines set, read as a shell reads them. Stopped with Ctrl-C, which must exit 0."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "stand-in", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports = {}
        while (line := server.stdout.readline()).startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = shlex.split(value)[0]
        yield port, exports
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
