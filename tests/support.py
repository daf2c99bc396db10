"""Constants and helpers shared by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from moto_server import REGION

from pipeline.definition import sourcedir
from pipeline.definition.contract import Channel
from pipeline.local import job_config
from pipeline.local.job import LocalJob

ROOT = Path(__file__).resolve().parent.parent
PROBE_SRC = Path(__file__).resolve().parent / "fixtures" / "probe"
# The project's own realistic source dir (training script, contract, evaluation, handlers and a
# pipeline module), in a folder the CLI runs in, so that its default --source-dir (user_src) is
# this one: the tests never read the repository's user_src/, which is the user's to replace.
WORKDIR = Path(__file__).resolve().parent / "fixtures" / "workdir"
PROJECT_SRC = WORKDIR / "user_src"
ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:0123abc"
BUCKET = "test-bucket"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = WORKDIR
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` in a subprocess, as a user runs it (in :data:`WORKDIR` by default)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def source_dir(folder: Path, script: str, contract: str | None = None) -> Path:
    """A user's source dir at ``folder``: ``train.py`` holding ``script``, and ``training.toml`` if given."""
    folder.mkdir()
    (folder / "train.py").write_text(script)
    if contract is not None:
        (folder / "training.toml").write_text(contract)
    return folder


def probe_reports(log: str) -> list[dict]:
    """Every ``PROBE {json}`` line the probe script printed."""
    return [json.loads(line.split("PROBE ", 1)[1]) for line in log.splitlines() if "PROBE {" in line]


def make_job(
    tmp_path: Path, channels: dict[str, str], source: Path = PROBE_SRC, hyperparameters=None, **overrides
) -> LocalJob:
    """A job running ``source`` (the probe by default) with user hyperparameters as JSON strings."""
    archive = tmp_path / "sourcedir.tar.gz"
    archive.write_bytes(sourcedir.pack(source, "train.py"))
    all_hyperparameters = job_config.hyperparameters(
        hyperparameters or {}, program="train.py", submit_directory=str(archive), region=REGION
    )
    inputs = {name: Channel(name, content_type="text/csv", source=source) for name, source in channels.items()}
    return LocalJob(name="test-job", hyperparameters=all_hyperparameters, channels=inputs, **overrides)
