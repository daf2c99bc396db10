"""Stops are events, never exceptions raised into library code; a killed CLI leaves no process,
no scratch folder and no half-made environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from local_support import assert_all_gone, wait_for

from pipeline.local import job, processes, runtime, stops


def test_a_stop_signal_never_raises_where_the_cli_happens_to_be():
    """The old handler raised at the next bytecode, wherever that was (inside ``Popen.poll()``
    holding its lock, say); now the stop waits for a point that unwinds safely."""
    reached = []
    with pytest.raises(KeyboardInterrupt), stops.interrupting():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("the line after the signal")
        assert stops.requested()
        stops.check()
        reached.append("never: check() delivers it")
    assert reached == ["the line after the signal"]
    assert not stops.requested()


def test_a_stop_during_a_deferred_block_is_delivered_after_it():
    done = []
    with pytest.raises(KeyboardInterrupt), stops.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("cleanup finished")
    assert done == ["cleanup finished"]


def test_a_counted_stop_sets_its_event_and_leaves_nothing_pending():
    with stops.interrupting(), stops.counting() as again:
        os.kill(os.getpid(), signal.SIGHUP)
        assert again.wait(5)
    assert not stops.requested()


def test_the_hosts_wait_ends_on_a_stop_and_the_processes_can_still_be_waited_for(tmp_path):
    hosts = processes.Hosts()
    command = processes.HostCommand(["sleep", "60"], dict(os.environ), tmp_path)
    process = hosts.start(command)
    with stops.interrupting(), stops.counting() as stop:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert hosts.wait(None, stop) is False and stop.is_set()
    hosts.kill()  # Popen's lock intact: poll() and wait() see the exit
    hosts.close()
    assert process.returncode is not None and hosts.running() == []


SLEEPER = "sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait"


def test_a_stop_while_the_environment_is_made_kills_the_build_and_its_children(tmp_path):
    pids, log = tmp_path / "pids", tmp_path / "build.log"
    threading.Thread(target=lambda: (wait_for(pids.exists, "build"), os.kill(os.getpid(), signal.SIGINT))).start()
    with pytest.raises(KeyboardInterrupt), stops.interrupting():
        runtime._run_logged(["sh", "-c", SLEEPER.format(pids=pids)], log)
    assert_all_gone(pids)


BUILD = """
import sys
from pathlib import Path
from pipeline.local import runtime
def steps(temp, log):
    temp.mkdir()
    (temp / "half-made").write_text("x")
    runtime._run_logged(["sh", "-c", sys.argv[2]], log, scratch=temp)
runtime.build_once(Path(sys.argv[1]), print, "test", steps)
"""


def test_sigkill_while_the_environment_is_made_leaves_no_process_and_no_half_made_folder(tmp_path):
    final, pids = tmp_path / "envs" / "abc", tmp_path / "pids"
    cli = subprocess.Popen([sys.executable, "-c", BUILD, str(final), SLEEPER.format(pids=pids)])
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, "the build started", cli)
    assert list(final.parent.glob(".abc.tmp-*"))
    cli.kill()
    cli.wait()
    assert_all_gone(pids)  # pip's runners included: the init kills the whole tree
    wait_for(lambda: not list(final.parent.glob(".abc.tmp-*")), "the half-made folder removed")
    assert not final.exists()


def test_a_half_made_folder_nobody_builds_is_swept_and_one_being_built_is_not(tmp_path):
    stale, busy = tmp_path / ".old.tmp-1", tmp_path / ".busy.tmp-2"
    stale.mkdir()
    busy.mkdir()
    with runtime._exclusive(tmp_path / ".busy.lock"):
        runtime.sweep_stale(tmp_path)
        assert not stale.exists() and busy.exists()


SCRATCH = """
import sys
from pipeline.local import job
with job.scratch_dir("killed") as root:
    print(root, flush=True)
    sys.stdin.read()
"""


def test_sigkill_before_the_hosts_start_leaves_a_scratch_folder_the_next_job_sweeps(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    cli = subprocess.Popen([sys.executable, "-c", SCRATCH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    root = Path(cli.stdout.readline().decode().strip())
    job.sweep_scratch(tmp_path)
    assert root.is_dir()  # its CLI lives: the lock is held
    cli.kill()
    cli.wait()
    job.sweep_scratch(tmp_path)
    assert not root.exists()


def test_the_sweep_leaves_folders_it_did_not_make(tmp_path):
    foreign = tmp_path / f"{job.SCRATCH_PREFIX}someone-else"
    foreign.mkdir()
    job.sweep_scratch(tmp_path)
    assert foreign.is_dir()
