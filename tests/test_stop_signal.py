"""The framework passes SageMaker's stop (SIGTERM to PID 1) on to the script; the container tier's
stop test proves it end to end (``train-local --container`` stops a job as SageMaker does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from custom_framework_training import stop_signal

# Prints once its handler is in place, then reports SIGTERM and exits 7.
TRAPPING_CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (print('got SIGTERM', flush=True), sys.exit(7)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def test_child_pids_reads_parents_from_proc_stat(tmp_path):
    for pid, stat in {
        "10": "10 (python) S 1 10 10 0",
        "11": "11 (odd) name (x)) R 10 11 11 0",  # a command with spaces and parentheses
        "12": "12 (sh) S 10 12 12 0",
        "13": "13 (other) S 2 13 13 0",
    }.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(stat)
    (tmp_path / "self").mkdir()  # not a process id
    (tmp_path / "14").mkdir()  # ended before its stat was read
    assert stop_signal.child_pids(10, tmp_path) == [11, 12]
    assert stop_signal.child_pids(1, tmp_path) == [10]


# A parent of its own, since forward() signals every child of the calling process (this test
# process has others: the session's moto server). It prints what its trapping child printed and
# the child's exit status.
FORWARDING_PARENT = f"""
import os, signal, subprocess, sys
from custom_framework_training import stop_signal
child = subprocess.Popen([sys.executable, "-c", {TRAPPING_CHILD!r}], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "ready\\n"
assert stop_signal.child_pids(os.getpid()) == [child.pid]
stop_signal.forward(signal.SIGTERM)
print(child.stdout.read().strip(), child.wait(timeout=10))
"""


def test_forward_reaches_a_real_child():
    done = subprocess.run([sys.executable, "-c", FORWARDING_PARENT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "got SIGTERM 7\n"


def test_installed_only_in_pid_1(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    stop_signal.install()  # this test process is not PID 1
    assert signal.getsignal(signal.SIGTERM) is before
    monkeypatch.setattr(os, "getpid", lambda: 1)
    try:
        stop_signal.install()
        assert signal.getsignal(signal.SIGTERM) is stop_signal.forward
    finally:
        signal.signal(signal.SIGTERM, before)
