"""A job that ran is never lost to a later error: its folder, log and model stay."""

from __future__ import annotations

from pathlib import Path

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
