"""A job that ran is never lost to a later error: its folder, log and model stay."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from local_support import process_runner
from support import run_cli, source_dir

from pipeline.local import job_folder
from pipeline.local.metrics import parse_metrics

SCRIPT = """
import os
print("status=ok; loss=0.25; empty=;")
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("weights")
"""
CONTRACT = """
entry_point = "train.py"
metrics = [
    { name = "status", regex = "status=(\\\\w+);" },
    { name = "empty", regex = "empty=(\\\\S*);" },
    { name = "loss", regex = "loss=([0-9.]+);" },
]
"""


def test_a_metric_that_is_not_a_number_records_nothing_and_keeps_the_job(tmp_path: Path):
    source = source_dir(tmp_path / "src", SCRIPT, CONTRACT)
    out = tmp_path / "jobs"
    done = run_cli("train-local", "--source-dir", str(source), "--output-dir", str(out), "--job-name", "j")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loss = 0.25" in done.stdout and "status" not in done.stdout.split("metrics:")[-1]
    assert (out / "j" / "model.tar.gz").is_file() and (out / "j" / "algo-1.log").is_file()


def test_non_numbers_and_non_finite_matches_are_skipped_the_last_number_wins():
    log = "acc=0.5; acc=ok; acc=nan; acc=0.75; acc=;"
    assert parse_metrics(log, [{"Name": "acc", "Regex": r"acc=([^;]*);"}]) == {"acc": 0.75}
    assert parse_metrics("acc=ok;", [{"Name": "acc", "Regex": r"acc=(\w*);"}]) == {}


BIG_MODEL = """
import os
for i in range(4):  # each file under the file-size limit, together over it once packed
    with open(os.path.join(os.environ["SM_MODEL_DIR"], f"part-{i}.bin"), "wb") as out:
        out.write(os.urandom(300_000))
print("trained")
"""


def _file_size_limit(limit: int):
    """The CLI and its hosts may write no file over ``limit`` bytes: a write past it fails (EFBIG), as
    on a full disk, instead of killing the process (SIGXFSZ ignored, which exec keeps)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_write_error_while_packing_reports_the_job_and_keeps_its_folder_and_log(tmp_path: Path):
    source = source_dir(tmp_path / "src", BIG_MODEL)
    out = tmp_path / "jobs"
    process_runner()  # the job environment, made without the limit
    command = [sys.executable, "-m", "pipeline", "train-local", "--source-dir", str(source)]
    command += ["--output-dir", str(out), "--job-name", "j"]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(1_000_000)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("training failed (exit 1): the platform's part failed: File too large: "), done.stderr
    assert last.endswith(str(out / "j" / "model.tar.gz")), last
    assert "trained" in (out / "j" / "algo-1.log").read_text()
    assert sorted(p.name for p in (out / "j").iterdir()) == ["algo-1.log", "sample-data", "sourcedir.tar.gz"]


def _killed_while_holding(folder: Path) -> None:
    """``folder`` as a CLI killed by SIGKILL inside :func:`job_folder.locked` leaves it."""
    code = "import os, sys; from pathlib import Path; from pipeline.local import job_folder\n"
    code += "with job_folder.locked(Path(sys.argv[1])): os.kill(os.getpid(), 9)"
    done = subprocess.run([sys.executable, "-c", code, str(folder)], timeout=60)
    assert done.returncode == -signal.SIGKILL


def test_the_next_run_clears_what_a_sigkilled_cli_left_and_keeps_every_job_that_ran(tmp_path: Path):
    out = tmp_path / "jobs"
    stub = out / "stub"  # killed while its job was prepared: no host started
    (stub / "sample-data" / "train").mkdir(parents=True)
    (stub / "sample-data" / "train" / "train.csv").write_text("half")
    ran = out / "ran"  # killed while its model was packed
    ran.mkdir()
    (ran / "algo-1.log").write_text("trained\n")
    (ran / ".model.tar.gz.partial").write_bytes(b"\x1f\x8b")
    for folder in (stub, ran):
        _killed_while_holding(folder)
    busy = out / "busy"  # another CLI's job, in progress
    busy.mkdir()
    mine = out / "mine"  # the user's own folder: no lock, never touched
    mine.mkdir()
    with job_folder.locked(busy):
        source = source_dir(tmp_path / "src", SCRIPT)
        done = run_cli("train-local", "--source-dir", str(source), "--output-dir", str(out), "--job-name", "j")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (busy / job_folder.LOCK).is_file()
    assert not stub.exists()
    assert sorted(p.name for p in ran.iterdir()) == ["algo-1.log"]
    assert sorted(p.name for p in out.iterdir()) == ["busy", "j", "mine", "ran"]
    assert not (out / "j" / job_folder.LOCK).exists()  # released when the CLI ended


def test_a_full_disk_while_the_sample_data_is_written_is_one_error_line_and_leaves_nothing(tmp_path: Path):
    """An 8 KB tmpfs in a private user and mount namespace: a full disk without root."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    source = source_dir(tmp_path / "src", SCRIPT, 'entry_point = "train.py"\n[channels.train]\nsample = "train"\n')
    # After the CLI, the shell lists what is left on that disk, which goes with the namespace.
    shell = 'd="$1"; shift; mount -t tmpfs -o size=8k tmpfs "$d" && "$@"; s=$?'
    shell += '; echo "left: $(ls -A "$d/jobs")"; exit $s'
    command = ["unshare", "-Urm", "sh", "-c", shell, "sh", str(disk), sys.executable, "-m", "pipeline"]
    command += ["train-local", "--source-dir", str(source), "--output-dir", str(disk / "jobs"), "--job-name", "j"]
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces refused here: {probe.stderr.decode().strip()}")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: No space left on device: "), done.stderr
    assert lines[-1].endswith("/sample-data/train/train.csv"), lines[-1]  # the file it could not write
    assert done.stdout.splitlines()[-1] == "left: ", done.stdout
    assert "Traceback" not in done.stderr
