"""Batch transform here: the image's own model server, in the image's package set, fed records as SageMaker does.

:func:`run_transform` takes what SageMaker takes, a CreateModel ``PrimaryContainer`` and a
CreateTransformJob request: it downloads the model and the code, starts the server the image
runs (``custom_framework_training.serving``) in the cached job environment, asks
``/execution-parameters``, sends the input objects' records (split, batched and
concurrent as the request says), writes each ``<key>.out`` under ``S3OutputPath`` and stops
the server. :func:`server_process` is the same start for ``serve-local``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custom_framework_training import archives
from custom_framework_training.serving.server import GRACEFUL_STOP_SECONDS
from pipeline import aws
from pipeline.errors import UnsupportedExpression, UserError
from pipeline.local import host_env, runtime
from pipeline.local.processes import dies_with_parent
from pipeline.local.runners import DOCKERFILE, ProcessRunner

SERVE_MODULE = "custom_framework_training.serving.cli"
STARTUP_ERROR = "serve: error: "
START_TIMEOUT_SECONDS = 600  # SageMaker's container start-up health check allows as long
# gunicorn's graceful stop (its workers finish their requests, then are killed), and a margin for its exit.
STOP_GRACE_SECONDS = GRACEFUL_STOP_SECONDS + 10
# Variables of the developer's shell that would point the server's Python elsewhere than the job environment.
NOT_PASSED = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER")
# What SageMaker assumes when neither the request nor /execution-parameters says.
DEFAULT_PAYLOAD_MB = 6
DEFAULT_CONCURRENCY = 1
REQUEST_TIMEOUT_SECONDS = 3600  # a record may take long; SageMaker's InvocationsTimeoutInSeconds default
MB = 2**20


class TransformError(UserError):
    """The transform job failed (the server did not start, or refused a record); the message says where."""

    status = 1


@dataclass(frozen=True)
class TransformResult:
    """What a finished job wrote: one ``.out`` object per input object."""

    outputs: tuple[str, ...]
    records: int
    requests: int
    seconds: float


# --- the server process ----------------------------------------------------------------------


def server_process(
    runner: ProcessRunner,
    code_dir: Path,
    scratch: Path,
    report: Callable[[str], None],
    arguments: list[str],
    variables: Mapping[str, str] = {},
) -> tuple[list[str], dict[str, str]]:
    """The image's ``serve`` as a command of a throwaway venv over the job environment (plus the code's
    ``requirements.txt`` in a cached layer, which the server's own install at start then finds satisfied),
    with the image's variables, the caller's and ``variables``."""
    environment = runner.environment
    if (code_dir / "requirements.txt").is_file():
        environment = runtime.ensure_layer(environment, code_dir, report)
    venv = scratch / "venv"
    python = runtime.job_venv(venv, environment)
    bins = [str(venv / "bin"), *([str(environment.layer / "bin")] if environment.layer else [])]
    bins.append(str(environment.root / "bin"))
    image = host_env.relocate(host_env.image_environment(DOCKERFILE.read_text()), str(venv), bins)
    caller = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    argv = [str(python), "-m", SERVE_MODULE, "--code-dir", str(code_dir), *arguments]
    return argv, {**caller, **image, **variables}


@dataclass
class Server:
    """A started server; its stderr is copied to ``sink`` line by line, a start-up error kept aside."""

    process: subprocess.Popen[bytes]
    startup_error: list[str]
    copier: threading.Thread

    def wait(self) -> int:
        code = self.process.wait()
        self.copier.join(timeout=5)
        return code

    def failure(self) -> str | None:
        """The server's one-line start-up error, if it exited with one."""
        return self.startup_error[-1] if self.startup_error else None

    def stop(self) -> int:
        """SIGTERM to gunicorn's master, which stops its workers (a booting one as soon as it can) and exits;
        SIGKILL to the server's process group only if it outlives gunicorn's own graceful stop."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the group of the server this process started
        return self.wait()


def start(argv: list[str], env: Mapping[str, str], sink: Callable[[bytes], None]) -> Server:
    """Start ``argv`` in a process group of its own (stopped by :meth:`Server.stop`); it dies with this process."""
    process = subprocess.Popen(
        argv,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=dies_with_parent(),
        start_new_session=True,
    )
    errors: list[str] = []

    def copy() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            text = line.decode(errors="replace")
            if text.startswith(STARTUP_ERROR):
                errors.append(text[len(STARTUP_ERROR) :].strip())
            else:
                sink(line)

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()
    return Server(process, errors, copier)


@contextlib.contextmanager
def forwarded_stop(server: Server) -> Iterator[None]:
    """SIGTERM to this CLI stops the server too (Ctrl-C is the caller's to turn into :meth:`Server.stop`)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: server.process.send_signal(signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_until_ready(server: Server, http: Any) -> None:
    """Until ``/ping`` answers 200; a server that exits first raises its start-up error."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.wait()
            raise TransformError(f"the model server did not start: {server.failure() or 'it exited'}")
        with contextlib.suppress(Exception):
            if http.request("GET", "/ping", timeout=2, retries=False).status == 200:
                return
        time.sleep(0.05)
    raise TransformError(f"the model server did not answer /ping within {START_TIMEOUT_SECONDS} s")


# --- the job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The request's choices, checked: what to read, how to split and batch, what to write."""

    inputs: tuple[tuple[str, str], ...]  # (s3 uri of an input object, its key relative to the input prefix)
    content_type: str | None
    compression: str
    split: str
    strategy: str | None
    payload_mb: int | None
    concurrency: int | None
    output_path: str
    accept: str | None
    assemble: str


def refuse_unsupported(request: Mapping[str, Any]) -> None:
    """What this runner does not do, refused by name before anything is downloaded."""
    processing = request.get("DataProcessing") or {}
    for name in ("InputFilter", "OutputFilter"):
        if processing.get(name, "$") != "$":
            raise UnsupportedExpression(f"DataProcessing.{name} {processing[name]!r} does not run locally; use '$'")
    if processing.get("JoinSource", "None") != "None":
        raise UnsupportedExpression("DataProcessing.JoinSource does not run locally; use 'None'")
    source = request["TransformInput"]["DataSource"]
    if "S3DataSource" not in source:
        raise UnsupportedExpression("only an S3DataSource transform input runs locally")
    data_type = source["S3DataSource"].get("S3DataType", "S3Prefix")
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise UnsupportedExpression(f"S3DataType {data_type} does not run locally; use S3Prefix or ManifestFile")
    split = request["TransformInput"].get("SplitType", "None")
    if split not in ("None", "Line"):
        raise UnsupportedExpression(f"SplitType {split} does not run locally; use None or Line")


def input_objects(s3: Any, source: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(uri, relative key) of each input object: the keys under the prefix, or those a manifest lists."""
    uri = source["S3Uri"]
    bucket, prefix = aws.split_s3_uri(uri)
    if source.get("S3DataType", "S3Prefix") == "ManifestFile":
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
        base = manifest[0]["prefix"]
        base_bucket, base_prefix = aws.split_s3_uri(base)
        return tuple((f"s3://{base_bucket}/{base_prefix}{name}", name) for name in manifest[1:])
    folder = prefix[: prefix.rfind("/") + 1]
    keys = sorted(key for key in aws.list_keys(s3, uri) if not key.endswith("/"))
    if not keys:
        raise TransformError(f"no input objects under {uri}")
    return tuple((f"s3://{bucket}/{key}", key[len(folder) :]) for key in keys)


def plan(request: Mapping[str, Any], inputs: tuple[tuple[str, str], ...]) -> Plan:
    transform_input, output = request["TransformInput"], request["TransformOutput"]
    return Plan(
        inputs=inputs,
        content_type=transform_input.get("ContentType"),
        compression=transform_input.get("CompressionType", "None"),
        split=transform_input.get("SplitType", "None"),
        strategy=request.get("BatchStrategy"),
        payload_mb=request.get("MaxPayloadInMB"),
        concurrency=request.get("MaxConcurrentTransforms"),
        output_path=output["S3OutputPath"].rstrip("/"),
        accept=output.get("Accept"),
        assemble=output.get("AssembleWith", "None"),
    )


def batches(data: bytes, split: str, strategy: str, payload_bytes: int) -> list[bytes]:
    """The request bodies for one object: the whole object, one line each (SingleRecord), or as many lines as
    fit in the payload limit (MultiRecord), as SageMaker splits and batches."""
    if split == "None":
        return [data]
    records = [line + b"\n" for line in data.splitlines() if line.strip()]
    if strategy == "SingleRecord":
        return records
    bodies: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and size + len(record) > payload_bytes:
            bodies.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        bodies.append(b"".join(current))
    return bodies


def assemble(responses: list[bytes], how: str) -> bytes:
    """``Line``: each response on its own line(s), newline-terminated; ``None``: the bytes as they came."""
    if how == "Line":
        return b"".join(r if r.endswith(b"\n") else r + b"\n" for r in responses)
    return b"".join(responses)


def _download_model(s3: Any, model: Mapping[str, Any], work_dir: Path) -> Path:
    bucket, key = aws.split_s3_uri(model["ModelDataUrl"])
    archive = work_dir / "model.tar.gz"
    s3.download_file(bucket, key, str(archive))
    model_dir = work_dir / "model"
    archives.extract(archive, model_dir)
    return model_dir


def _download_code(s3: Any, environment: Mapping[str, str], model_dir: Path, work_dir: Path) -> Path:
    submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if not submit:
        return model_dir / "code"
    if not submit.startswith("s3://"):
        raise UnsupportedExpression(f"SAGEMAKER_SUBMIT_DIRECTORY {submit} is not an s3:// archive")
    bucket, key = aws.split_s3_uri(submit)
    archive = work_dir / "sourcedir.tar.gz"
    s3.download_file(bucket, key, str(archive))
    code_dir = work_dir / "code"
    archives.extract(archive, code_dir)
    return code_dir


def run_transform(
    model: Mapping[str, Any],
    request: Mapping[str, Any],
    work_dir: Path,
    runner: ProcessRunner,
    region: str,
    report: Callable[[str], None],
) -> TransformResult:
    """Run the CreateTransformJob ``request`` on ``model`` (a CreateModel PrimaryContainer) here.

    ``work_dir`` is an empty folder for the model, the code, the server's venv and log.
    Raises :class:`UnsupportedExpression` (before any download) for what does not run locally,
    :class:`TransformError` when the server fails to start or answers a record with an error.
    """
    started = time.monotonic()
    refuse_unsupported(request)
    import urllib3

    work_dir.mkdir(parents=True, exist_ok=True)
    s3 = aws.client("s3", region)
    try:
        job = plan(request, input_objects(s3, request["TransformInput"]["DataSource"]["S3DataSource"]))
        model_dir = _download_model(s3, model, work_dir)
        environment = {**model.get("Environment", {}), **request.get("Environment", {})}
        code_dir = _download_code(s3, environment, model_dir, work_dir)
    except aws.aws_errors() as error:
        raise TransformError(aws.describe_error(error)) from None
    port = _free_port()
    variables = {
        **environment,
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_SUBMIT_DIRECTORY": str(code_dir),
        "AWS_REGION": region,
        **({"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(job.payload_mb)} if job.payload_mb else {}),
    }
    argv, env = server_process(
        runner, code_dir, work_dir, report, ["--host", "127.0.0.1", "--port", str(port), "--model-dir", str(model_dir)]
    )
    log = (work_dir / "server.log").open("ab")
    report(f"transform: model server on 127.0.0.1:{port}, log {work_dir / 'server.log'}")
    server = start(argv, {**env, **variables}, lambda line: (log.write(line), log.flush()))
    http = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=16)
    try:
        wait_until_ready(server, http)
        return _transform(job, s3, http, report, started)
    finally:
        # Closes the kept-alive connections, which gunicorn's graceful stop would wait out (a PoolManager's clear()
        # leaves them open while anything holds its pools, such as the traceback of a refused record).
        http.close()
        server.stop()
        log.close()


def _execution_parameters(http: Any) -> dict[str, Any]:
    response = http.request("GET", "/execution-parameters", timeout=10, retries=False)
    return json.loads(response.data) if response.status == 200 else {}


def _transform(job: Plan, s3: Any, http: Any, report: Callable[[str], None], started: float) -> TransformResult:
    offered = _execution_parameters(http)
    strategy = job.strategy or _strategy(offered.get("BatchStrategy")) or "MultiRecord"
    payload = (job.payload_mb or offered.get("MaxPayloadInMB") or DEFAULT_PAYLOAD_MB) * MB
    concurrency = job.concurrency or offered.get("MaxConcurrentTransforms") or DEFAULT_CONCURRENCY
    headers = {k: v for k, v in (("Content-Type", job.content_type), ("Accept", job.accept)) if v}
    outputs, records, requests = [], 0, 0

    def send(body: bytes) -> bytes:
        response = http.request("POST", "/invocations", body=body, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
        if response.status != 200:
            line = response.data.decode(errors="replace").strip().splitlines()[:1]
            raise TransformError(f"the model server answered {response.status}: {line[0] if line else ''}")
        return response.data

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for uri, relative in job.inputs:
            bucket, key = aws.split_s3_uri(uri)
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if job.compression == "Gzip":
                data = gzip.decompress(data)
            bodies = batches(data, job.split, strategy, payload)
            too_large = [len(b) for b in bodies if len(b) > payload]
            if too_large:
                raise TransformError(
                    f"{uri}: a request of {too_large[0]} bytes is over MaxPayloadInMB ({payload // MB} MB);"
                    " split it with SplitType Line or raise MaxPayloadInMB"
                )
            try:
                responses = list(pool.map(send, bodies))
            except TransformError as error:
                raise TransformError(f"{uri}: {error}") from None
            out_bucket, out_prefix = aws.split_s3_uri(f"{job.output_path}/{relative}.out")
            s3.put_object(Bucket=out_bucket, Key=out_prefix, Body=assemble(responses, job.assemble))
            outputs.append(f"s3://{out_bucket}/{out_prefix}")
            records += sum(body.count(b"\n") for body in bodies) if job.split == "Line" else 1
            requests += len(bodies)
            report(f"transform: {relative} -> s3://{out_bucket}/{out_prefix} ({len(bodies)} requests)")
    return TransformResult(tuple(outputs), records, requests, time.monotonic() - started)


def _strategy(offered: str | None) -> str | None:
    """``MULTI_RECORD`` (the /execution-parameters spelling) as ``MultiRecord`` (the request's)."""
    return {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}.get(offered or "")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def echo(line: bytes) -> None:
    """A server log line to this process's stderr, as it came."""
    sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()
