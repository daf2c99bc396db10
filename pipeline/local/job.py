"""Run a training job on this machine through the real toolkit ``train`` command, without Docker.

Each host gets a fresh base dir laid out as ``/opt/ml`` is on SageMaker
(``SAGEMAKER_BASE_DIR``), and runs in its own process group so Ctrl-C or a
timeout can stop the whole tree. Afterwards the platform's part is done here
too: ``model/`` becomes ``model.tar.gz`` and ``output/data`` ``output.tar.gz``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.definition.contract import DEFAULT_INSTANCE_TYPE
from pipeline.definition.settings import DEFAULT_REGION
from pipeline.errors import ExitStatus
from pipeline.local import channels, job_config, processes
from pipeline.local.job_config import ChannelInput
from pipeline.local.metrics import parse_metrics

FRAMEWORK_MODULE = "custom_framework_training.training:main"
# The toolkit's `train` console script, started with this interpreter.
TRAIN_COMMAND = [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"]


@dataclass(frozen=True)
class LocalJob:
    """What a CreateTrainingJob request says, reduced to what a local run needs."""

    name: str
    # hyperparameters.json verbatim, the reserved sagemaker_program and
    # sagemaker_submit_directory (a local tarball or an s3:// URI) included
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, ChannelInput]
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_runtime_seconds: float | None = None
    region: str = DEFAULT_REGION
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    environment: Mapping[str, str] = field(default_factory=dict)  # the job's Environment


@dataclass(frozen=True)
class JobResult:
    exit_code: int
    failure_reason: str | None
    metrics: dict[str, float]
    model_artifact: Path | None
    output_artifact: Path | None
    logs: dict[str, Path]

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def prepare_base_dir(base: Path, job: LocalJob, host: str, channel_data: Mapping[str, Path]) -> None:
    """Lay out one host's ``/opt/ml``: configs, channel copies, and the folders the toolkit expects."""
    config = base / "input" / "config"
    for folder in (config, base / "model", base / "output" / "data", base / "code"):
        folder.mkdir(parents=True, exist_ok=True)
    hosts = job_config.host_names(job.instance_count)
    files = {
        "hyperparameters.json": job.hyperparameters,
        "resourceconfig.json": job_config.resource_config(hosts, host, job.instance_type),
        "inputdataconfig.json": job_config.input_data_config(job.channels),
    }
    for name, content in files.items():
        (config / name).write_text(json.dumps(content, indent=2, sort_keys=True))
    for channel, source in channel_data.items():
        shutil.copytree(source, base / "input" / "data" / channel)


def host_environment(base: Path, job: LocalJob) -> dict[str, str]:
    """The container's environment: the image's settings plus what the platform sets."""
    env = {**os.environ, **job.environment}
    env.setdefault("SAGEMAKER_TRAINING_MODULE", FRAMEWORK_MODULE)
    env.update(
        SAGEMAKER_BASE_DIR=str(base),
        # Host names such as algo-2 resolve only on SageMaker's network; this
        # skips the toolkit's wait for them (15 minutes of retries otherwise).
        SM_STUDIO_LOCAL_MODE="true",
        TRAINING_JOB_NAME=job.name,
        AWS_REGION=job.region,
        PYTHONUNBUFFERED="1",
    )
    return env


def _pump(stream: IO[bytes], log: Path, prefix: str, sink: IO[str]) -> None:
    """Copy a host's output to its log file and, prefixed, to ``sink``.

    The log is complete even if ``sink`` goes away (``train-local | head``):
    metrics are parsed from it, and the pipe must keep draining.
    """
    echo = True
    with log.open("wb") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            if echo:
                try:
                    sink.write(prefix + line.decode(errors="replace"))
                    sink.flush()
                except OSError:
                    echo = False


def pack_dir(folder: Path, archive: Path) -> Path:
    """``folder``'s contents as a gzipped tar with paths relative to it, as SageMaker packs them."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def run_job(job: LocalJob, job_dir: Path, sink: IO[str] = sys.stdout) -> JobResult:
    """Run ``job`` to completion; artifacts and per-host logs land in ``job_dir``."""
    job_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{job.name}-") as scratch:
        root = Path(scratch)
        channel_data = {}
        for channel, given in job.channels.items():
            channel_data[channel] = root / "channels" / channel
            channels.fetch(given.source, channel_data[channel], job.region)
        hosts = job_config.host_names(job.instance_count)
        bases = {host: root / host for host in hosts}
        for host, base in bases.items():
            prepare_base_dir(base, job, host, channel_data)
        logs = {host: job_dir / f"{host}.log" for host in hosts}
        running = processes.Hosts()
        pumps = []
        with processes.stop_signals_interrupt():
            try:
                for host, base in bases.items():
                    process = running.start(TRAIN_COMMAND, host_environment(base, job), base)
                    prefix = f"[{host}] " if len(hosts) > 1 else ""
                    pump = threading.Thread(target=_pump, args=(process.stdout, logs[host], prefix, sink), daemon=True)
                    pump.start()
                    pumps.append(pump)
                finished = running.wait(job.max_runtime_seconds)
            finally:
                running.stop()  # also on Ctrl-C: no host outlives the job
                for pump in pumps:
                    pump.join(timeout=processes.KILL_GRACE_SECONDS)
        return _collect(job, job_dir, bases, logs, running.processes, finished)


def _collect(
    job: LocalJob,
    job_dir: Path,
    bases: Mapping[str, Path],
    logs: Mapping[str, Path],
    exited: list[subprocess.Popen[bytes]],
    finished: bool,
) -> JobResult:
    """Exit code, failure reason, metrics and artifacts, read from the leader (algo-1) first."""
    leader = next(iter(bases))
    reason = None
    exit_code = 0
    if not finished:
        exit_code = ExitStatus.TIMEOUT
        reason = f"MaxRuntimeExceeded: the job ran longer than {job.max_runtime_seconds:g} s and was stopped"
    else:
        failed = [
            (host, base, process.returncode)
            for (host, base), process in zip(bases.items(), exited, strict=True)
            if process.returncode != 0
        ]
        # The host that wrote a failure file is the cause; the others were stopped because of it.
        failed.sort(key=lambda item: not (item[1] / "output" / "failure").exists())
        if failed:
            host, base, code = failed[0]
            exit_code = code if code > 0 else 128 - code  # killed by signal N: 128 + N, as a shell reports
            failure = base / "output" / "failure"
            text = failure.read_text().strip() if failure.exists() else "no output/failure file was written"
            reason = f"{host}: {text}" if len(bases) > 1 else text  # as SageMaker reports it
    model = output = None
    if exit_code == 0:
        model = pack_dir(bases[leader] / "model", job_dir / "model.tar.gz")
        output = pack_dir(bases[leader] / "output" / "data", job_dir / "output.tar.gz")
    metrics = parse_metrics(logs[leader].read_text(errors="replace"), job.metric_definitions)
    return JobResult(exit_code, reason, metrics, model, output, dict(logs))
