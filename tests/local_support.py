"""Helpers for the local-job tests: the job environment (made once per session, cached on disk
across runs), processes that must be gone, and a CLI run that is signalled mid-way."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from servers import DidNotStart, wait_until
from support import PROBE_SRC, ROOT

from pipeline.local import runners

START_TIMEOUT = 120  # the first job of a fresh machine also makes the job environment
# A script that saves its step to the checkpoint folder on SIGTERM, and resumes from it.
RESUMABLE = """\
import json, os, signal, sys, time
folder = os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "checkpoints")
state = os.path.join(folder, "state.json")
step = json.load(open(state))["step"] if os.path.exists(state) else 0
print(f"RESUMED at {step}", flush=True)

def save(signum, frame):
    json.dump({"step": step}, open(state, "w"))
    print(f"SAVED at {step}", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, save)
for step in range(step, step + 10_000):
    print(f"STEP {step}", flush=True)
    time.sleep(0.05)
"""


def run_init(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """A host's init (``HostCommand.init_argv()``) run as the CLI runs it: its control pipe is held
    open until it exits (a closed pipe means the CLI died, and the init kills its tree)."""
    control, held = os.pipe()
    try:
        return subprocess.run(argv, stdin=control, capture_output=True, **kwargs)
    finally:
        os.close(control)
        os.close(held)


@functools.cache
def process_runner() -> runners.ProcessRunner:
    """The Docker-free runner; its environment is made on first use, then found in the user's cache."""
    return runners.process_runner(None, lambda line: print(line, file=sys.stderr))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def assert_all_gone(pid_file: Path, within: float = 15) -> None:
    """Every process the probe recorded exits soon (not a timing claim: the bound only ends the wait)."""
    pids = [int(line) for line in pid_file.read_text().split()]
    assert pids
    try:
        wait_until(lambda: not any(alive(pid) for pid in pids), "every process gone", timeout=within, every=0.1)
    except DidNotStart:
        raise AssertionError(f"orphaned processes: {[pid for pid in pids if alive(pid)]}") from None


def wait_for(condition, what: str, process: subprocess.Popen | None = None, timeout: float = START_TIMEOUT) -> None:
    """:func:`servers.wait_until`, saying what the CLI wrote to stderr if it exited first."""
    try:
        wait_until(condition, what, process, timeout)
    except DidNotStart as error:
        exited = process is not None and process.poll() is not None
        said = process.stderr.read() if exited and process.stderr else ""
        raise DidNotStart(f"{error}: {said}" if said else str(error)) from None


def start_cli(*args: str, env: dict[str, str] | None = None, stderr: Path | None = None) -> subprocess.Popen:
    """``python -m pipeline ARGS`` in the background, output captured (stderr in a file if given,
    to be read while the CLI runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=stderr.open("w") if stderr else subprocess.PIPE,
        text=True,
    )


def start_probe_job(
    output: Path, pid_file: Path, *flags: str, env: dict[str, str] | None = None, stderr: Path | None = None
) -> subprocess.Popen:
    """``train-local`` on the probe, sleeping, returned once the probe has started."""
    cli = start_cli(
        "train-local",
        "--source-dir",
        str(PROBE_SRC),
        "--output-dir",
        str(output),
        "--env",
        "PROBE_SLEEP=60",
        "--env",
        f"PROBE_PID_FILE={pid_file}",
        *flags,
        env=env,
        stderr=stderr,
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the probe started", cli)
    return cli
