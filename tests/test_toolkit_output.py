"""The terminal copy of a job's output folds the image's INFO records; the log keeps every line."""

from __future__ import annotations

import io
import logging

import pytest
from local_support import process_runner
from support import make_job, probe_reports, run_cli

from pipeline.definition import sample_data
from pipeline.local import job as local_job
from pipeline.local import toolkit_output


def run(tmp_path, env: dict[str, str] | None = None, verbose: bool = False) -> tuple[str, str]:
    """A real job through the real toolkit: (what the terminal got, the host's log)."""
    channels = {name: str(path) for name, path in sample_data.write(tmp_path / "data").items()}
    job = make_job(tmp_path, channels, hyperparameters={"target": "label"}, environment=env or {})
    sink = io.StringIO()
    result = local_job.run_job(
        job, tmp_path / "job", process_runner(), sink=sink, report=lambda line: None, verbose=verbose
    )
    return sink.getvalue(), result.logs["algo-1"].read_text()


def records(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if f" sagemaker-training-toolkit {level} " in line]


def test_a_job_shows_the_scripts_output_and_folds_the_toolkits_info_lines(tmp_path, caplog):
    with caplog.at_level(logging.INFO, toolkit_output.IMAGE_LOGGERS[0]):  # as importing the toolkit sets it
        shown, log = run(tmp_path)
    # the noise is real ("label" is no JSON: a two-line record)
    assert len(records(log, "INFO")) > 10 and "Returning the value itself" in log
    assert records(shown, "INFO") == [] and "Returning the value itself" not in shown
    assert probe_reports(shown) == probe_reports(log) != []  # the user script's own output
    assert toolkit_output.folded_note(tmp_path / "job" / "algo-1.log") in shown
    kept = [line for line in log.splitlines() if toolkit_output.Fold()(line + "\n")]
    assert len(shown.splitlines()) < len(log.splitlines()) / 2 and len(kept) < len(log.splitlines())


def test_a_failing_job_shows_the_traceback_and_the_toolkits_errors(tmp_path):
    shown, log = run(tmp_path, {"PROBE_FAIL": "raise"})
    assert "Traceback (most recent call last)" in shown and "probe asked to fail" in shown
    assert records(log, "ERROR") and records(shown, "ERROR") == records(log, "ERROR")


def test_verbose_shows_every_line(tmp_path):
    shown, log = run(tmp_path, verbose=True)
    assert records(shown, "INFO") == records(log, "INFO") != []


@pytest.mark.parametrize(
    "lines, shown",
    [
        (["2026-01-01 10:00:00,000 sagemaker-training-toolkit INFO     No GPUs detected\n"], [False]),
        (["2026-01-01 10:00:00,000 sagemaker_training.entry_point INFO     Bypass DNS check\n"], [False]),
        (["2026-01-01 10:00:00,000 custom_framework_training.training INFO     Framework settings: {}\n"], [False]),
        (
            ["2026-01-01 10:00:00,000 botocore.credentials INFO     Found credentials in environment variables.\n"],
            [False],
        ),
        (["2026-01-01 10:00:00,000 botocore.credentials WARNING  expired\n"], [True]),
        (["2026-01-01 10:00:00,000 sagemaker-training-toolkit WARNING  slow\n"], [True]),
        (["2026-01-01 10:00:00,000 sagemaker-training-toolkit ERROR    ExecuteUserScriptError\n"], [True]),
        (["2026-01-01 10:00:00,000 my_script INFO     epoch 1\n"], [True]),
        (["... to Json.\n", "Returning the value itself\n"], [True, True]),  # not after a folded record
        (
            [
                "2026-01-01 10:00:00,000 sagemaker-training-toolkit INFO     Failed ... to Json.\n",
                "Returning the value itself\n",
                "Returning the value itself\n",
            ],
            [False, False, True],
        ),
    ],
)
def test_fold_keeps_all_but_the_images_info_records(lines, shown):
    fold = toolkit_output.Fold()
    assert [fold(line) for line in lines] == shown


@pytest.mark.parametrize("verbose", [False, True])
def test_train_local_folds_unless_verbose(tmp_path, verbose):
    flags = ["--verbose"] if verbose else []
    done = run_cli("train-local", *flags, "--output-dir", str(tmp_path), "--job-name", "j", "--hp", "max-iter=5")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "j" / "algo-1.log").read_text()
    assert "validation:accuracy=" in done.stdout and records(log, "INFO")
    assert records(done.stdout, "INFO") == (records(log, "INFO") if verbose else [])
