"""A job that ran is never lost to a later error: its folder, log and model stay."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

from local_support import process_runner
from support import run_cli

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
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    (source / "training.toml").write_text(CONTRACT)
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
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(BIG_MODEL)
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
