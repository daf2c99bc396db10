"""A processing job on this machine, through the same machinery as a training job.

A processing step is a CreateProcessingJob request: inputs copied from S3 to
``/opt/ml/processing/...``, the container's entrypoint run, outputs uploaded from there.
Here one host runs in the job environment with a base dir that it sees at ``/opt/ml``
(:mod:`runners`), supervised, stopped and logged as a training host is, and the outputs go
to their S3 URIs as SageMaker puts them. Every input is an S3 prefix or object in File
mode (the SDK's ``code`` and ``entrypoint`` inputs included); what SageMaker alone can
provide (Athena or Redshift datasets, Pipe mode, feature-store outputs) is refused by name.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline import aws
from pipeline.errors import ExitStatus, UnsupportedExpression
from pipeline.local import channels, processes, stops
from pipeline.local.job import BASE_DIR, pump, scratch_dir, supervise
from pipeline.local.runners import ProcessRunner

HONOURED = {
    "AppSpecification",
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingResources",
    "StoppingCondition",
    "RoleArn",
    "Environment",
    "Tags",
    "NetworkConfig",
}


@dataclass(frozen=True)
class ProcessingJob:
    """What a CreateProcessingJob request says, reduced to what a local run needs."""

    name: str
    argv: tuple[str, ...]  # ContainerEntrypoint + ContainerArguments, paths as the container sees them
    inputs: tuple[tuple[str, str], ...]  # (S3 URI, LocalPath)
    outputs: tuple[tuple[str, str, str], ...]  # (OutputName, LocalPath, S3 URI)
    region: str
    role_arn: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    max_runtime_seconds: float | None = None


@dataclass(frozen=True)
class ProcessingResult:
    exit_code: int
    failure_reason: str | None
    log: Path
    outputs: dict[str, str]  # OutputName -> the S3 URI it was uploaded to

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


# Input settings a local job honours: anything else (ManifestFile, Pipe, Gzip) runs only on SageMaker.
INPUT_SETTINGS = {"S3DataType": ("S3Prefix",), "S3InputMode": ("File",), "S3CompressionType": ("None",)}


def _local(path: str, where: str) -> str:
    if not isinstance(path, str) or not (path == BASE_DIR or path.startswith(f"{BASE_DIR}/")):
        raise UnsupportedExpression(f"{where}: {path} is outside {BASE_DIR}, which is all a local job can lay out")
    return path


def check_request(request: Mapping[str, Any], where: str) -> None:
    """Refuse, before anything runs, a request that a local job cannot honour (expressions may
    still stand in for URIs)."""
    unknown = sorted(set(request) - HONOURED)
    if unknown:
        raise UnsupportedExpression(f"{where}: argument {unknown[0]} is not supported locally")
    for item in request.get("ProcessingInputs", []):
        name = item.get("InputName")
        source = item.get("S3Input")
        if source is None:
            kind = next(iter(set(item) - {"InputName", "AppManaged"}), "no source")
            raise UnsupportedExpression(f"{where}: input {name} reads a {kind}, which only SageMaker provides")
        for setting, allowed in INPUT_SETTINGS.items():
            value = source.get(setting, allowed[0])
            if value not in allowed:
                raise UnsupportedExpression(
                    f"{where}: input {name} has {setting} {value}: run --local reads only {allowed[0]}"
                )
        _local(source["LocalPath"], f"{where}: input {name}")
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        if "S3Output" not in item:
            raise UnsupportedExpression(f"{where}: output {item.get('OutputName')} is not an S3 output")
        _local(item["S3Output"]["LocalPath"], f"{where}: output {item.get('OutputName')}")


def from_request(request: Mapping[str, Any], *, name: str, region: str, where: str) -> ProcessingJob:
    """The job a request describes; an argument it cannot honour here is named, never ignored."""
    check_request(request, where)
    app = request["AppSpecification"]
    inputs = [(i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in request.get("ProcessingInputs", [])]
    outputs = [
        (item["OutputName"], item["S3Output"]["LocalPath"], item["S3Output"]["S3Uri"])
        for item in request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    ]
    runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    return ProcessingJob(
        name=name,
        argv=(*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        region=region,
        role_arn=request.get("RoleArn"),
        environment=dict(request.get("Environment", {})),
        max_runtime_seconds=None if runtime is None else float(runtime),
    )


def _lay_out_inputs(
    job: ProcessingJob, runner: ProcessRunner, root: Path, base: Path, report: Callable[[str], None]
) -> list[channels.Mount]:
    """Each input downloaded once and given to the host as a training channel is (:mod:`channels`); one
    that holds another input or an output is copied, so what lands inside it stays where it is read."""
    inputs, outputs = [path for _, path in job.inputs], [path for _, path, _ in job.outputs]
    mounts = []
    for number, (source, path) in enumerate(job.inputs):
        stops.check()
        staged = channels.stage(source, root / "inputs" / str(number), job.region)
        nested = any(Path(other).is_relative_to(path) for other in outputs) or any(
            other != path and Path(other).is_relative_to(path) for other in inputs
        )
        how = channels.said(channels.way(staged, runner.mounts_data and not nested), f"input {path}", report)
        folder = base / Path(path).relative_to(BASE_DIR)
        mount = channels.give(staged, how, folder, path, root / "changes" / str(number))
        mounts += [mount] if mount else []
    return mounts


def run_processing(
    job: ProcessingJob,
    job_dir: Path,
    runner: ProcessRunner,
    *,
    stop_grace: float = processes.DEFAULT_STOP_GRACE_SECONDS,
    sink: IO[str] = sys.stdout,
    report: Callable[[str], None] = print,
    verbose: bool = False,
) -> ProcessingResult:
    """Inputs in, the entrypoint run, outputs uploaded; the log lands in ``job_dir``."""
    job_dir.mkdir(parents=True, exist_ok=True)
    log = job_dir / "algo-1.log"
    with stops.interrupting(), scratch_dir(job.name) as root:
        base = root / "algo-1"
        mounts = _lay_out_inputs(job, runner, root, base, report)
        for _, path, _ in job.outputs:
            (base / Path(path).relative_to(BASE_DIR)).mkdir(parents=True, exist_ok=True)
        command = runner.processing(job, root)("algo-1", base, mounts)
        hosts = processes.Hosts()
        pumps: list[threading.Thread] = []
        try:
            process = hosts.start(command)
            pumps.append(threading.Thread(target=pump, args=(process.stdout, log, "", sink, "", verbose), daemon=True))
            pumps[0].start()
            run = supervise(hosts, job.max_runtime_seconds, stop_grace, report)
        finally:
            with stops.counting():  # whatever happened above, the host does not outlive this block
                hosts.kill()
                hosts.close()
                for thread in pumps:
                    thread.join(timeout=processes.KILL_WAIT_SECONDS)
        code = process.returncode if run.stopped_by is None else ExitStatus.INTERRUPTED
        if code:
            message = base / "output" / "message"
            reason = message.read_text(errors="replace").strip() if message.exists() else None
            return ProcessingResult(code, reason or f"the entrypoint exited {code}: see {log}", log, {})
        uploaded = {}
        s3 = aws.client("s3", job.region)
        for name, path, uri in job.outputs:
            folder = base / Path(path).relative_to(BASE_DIR)
            bucket, prefix = aws.split_s3_uri(uri.rstrip("/"))
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                s3.upload_file(str(file), bucket, f"{prefix}/{file.relative_to(folder).as_posix()}")
            uploaded[name] = uri
        return ProcessingResult(0, None, log, uploaded)
