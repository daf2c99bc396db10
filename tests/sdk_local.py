"""The SageMaker Python SDK's own local mode, run on this machine with a Docker engine or without one.

It is the oracle that ``train-local`` is compared with, and a benchmark baseline. Local mode
writes a ``docker-compose.yaml`` and shells out to ``docker compose version`` (so a ``docker``
CLI must exist, even when it answers "unknown command"), then runs ``docker compose up`` when
that says v2 (GitHub's runners: Compose v2 only), else ``docker-compose up`` (v1), and
``docker images -q``/``docker pull`` for ECR-looking images only
(``sagemaker.local.image._SageMakerContainer._get_compose_cmd_prefix``). Without a Docker
engine, podman serves the Docker API on a private socket and ``DOCKER_HOST`` points both
clients at it; with one (``ENGINE=docker``), ``DOCKER_HOST`` or the default socket.

Import it from tests (``tests/`` is on ``sys.path``) or run it: ``python tests/sdk_local.py
--help`` trains once and prints a JSON summary, which is what the benchmark times.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import io
import json
import logging
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import wait_until

from pipeline.definition import sample_data, sdk

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# Local mode never assumes the role, but a bare name would make the SDK ask IAM to expand it.
ROLE_ARN = "arn:aws:iam::123456789012:role/SdkLocalMode"
SERVICE_START_TIMEOUT = 120  # a bound far above need (about 1 s), not a speed check
ENGINE_TIMEOUT = 60
NETWORK = "sagemaker-local"  # the one network local mode puts every container on
# The SDK makes boto3 clients from the default session: at `import sagemaker` (JumpStart's
# session) and in every estimator (TensorBoardApp). With no credentials in the environment,
# botocore then asks the EC2 metadata endpoint (169.254.169.254) for some. Set while the SDK runs.
SDK_ENVIRONMENT = {"AWS_EC2_METADATA_DISABLED": "true", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# docker-compose v1 prefixes container lines with "<container name> | "; the SDK names
# containers "<10 random chars>-<host>".
COMPOSE_LINE = re.compile(r"^[a-z0-9]{10}-(?P<host>\S+?)\s*\| ?(?P<text>.*)$")


def custom_framework_class() -> type:
    """The project's ``CustomFramework`` estimator class."""
    return sdk.custom_framework_class()


def sdk_defaults() -> dict[str, Any]:
    """The project's SDK defaults config: telemetry opted out, no config files searched."""
    return sdk.SDK_DEFAULTS


def write_sample_data(folder: Path) -> dict[str, Path]:
    """The project's sample CSV channels under ``folder``, channel name to its directory."""
    return sample_data.write(folder)


# --- the Docker API, served by podman ---------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket: the standard library has no such transport."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass(frozen=True)
class EngineApi:
    """The few Docker API calls the helper needs itself: ping, image lookup, container clean-up."""

    socket_path: str

    @classmethod
    def from_docker_host(cls, docker_host: str) -> EngineApi:
        if not docker_host.startswith("unix://"):
            raise ValueError(f"DOCKER_HOST={docker_host}: only unix:// sockets are supported here")
        return cls(docker_host.removeprefix("unix://"))

    def request(self, method: str, path: str, timeout: float = ENGINE_TIMEOUT) -> tuple[int, bytes]:
        connection = _UnixHTTPConnection(self.socket_path, timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def ping(self) -> bool:
        try:
            status, body = self.request("GET", "/_ping", timeout=2)
        except OSError:
            return False
        return status == 200 and body.strip() == b"OK"

    def image_exists(self, image: str) -> bool:
        status, _ = self.request("GET", f"/images/{urllib.parse.quote(image, safe='')}/json")
        return status == 200

    def exit_code(self, container: str) -> int | None:
        """The container's exit code, or None if it is missing or still running."""
        status, body = self.request("GET", f"/containers/{urllib.parse.quote(container)}/json")
        if status != 200:
            return None
        state = json.loads(body)["State"]
        return None if state.get("Running") else int(state["ExitCode"])

    def logs(self, container: str) -> str:
        """What the container printed, from the engine: docker-compose v1 can lose a short job's lines."""
        status, body = self.request("GET", f"/containers/{urllib.parse.quote(container)}/logs?stdout=1&stderr=1")
        return demultiplexed(body).decode("utf-8", "replace") if status == 200 else ""

    def remove(self, container: str) -> None:
        self.request("DELETE", f"/containers/{urllib.parse.quote(container)}?force=true&v=true")

    def network_exists(self, name: str) -> bool:
        return self.request("GET", f"/networks/{urllib.parse.quote(name)}")[0] == 200

    def remove_network(self, name: str) -> None:
        self.request("DELETE", f"/networks/{urllib.parse.quote(name)}")


def demultiplexed(stream: bytes) -> bytes:
    """A logs body as text: without a TTY the engine prefixes each frame with 8 bytes (stream,
    0, 0, 0, big-endian length); local mode's containers have one, so theirs come raw."""
    if len(stream) < 8 or stream[0] not in (0, 1, 2) or stream[1:4] != b"\0\0\0":
        return stream
    frames, at = [], 0
    while at + 8 <= len(stream):
        size = int.from_bytes(stream[at + 4 : at + 8], "big")
        frames.append(stream[at + 8 : at + 8 + size])
        at += 8 + size
    return b"".join(frames)


def _hard_limit(which: int, cap: int) -> int:
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def containers_conf() -> str:
    """podman's settings for the containers docker-compose creates, which take no CLI flags.

    runc, because crun refuses this machine's hybrid cgroups; ulimits at the host's hard limits,
    because podman's default nofile is above them and runc then fails to start the container.
    """
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 1_048_576)
    nproc = _hard_limit(resource.RLIMIT_NPROC, 32768)
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
    )


def missing_tools() -> list[str]:
    """What SDK local mode under podman needs and this machine lacks, each with how to get it."""
    needs = {
        "podman": "apt-get install podman runc",
        # The SDK runs `docker compose version` first and does not catch a missing binary.
        "docker": "apt-get install docker.io (its client) or podman-docker",
    }
    missing = [f"{tool}: {hint}" for tool, hint in needs.items() if shutil.which(tool) is None]
    if not missing and not _compose_v2() and shutil.which("docker-compose") is None:
        missing.append("docker compose: the Compose v2 CLI plugin (GitHub's runners have it; .ci/run installs it)")
    return missing


def _compose_v2() -> bool:
    """Whether ``docker compose`` is Compose v2, which the SDK prefers (and GitHub's runners have)."""
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return found.returncode == 0 and "v2" in found.stdout


def compose_command() -> list[str]:
    """The compose command local mode will run: ``docker compose`` if it says v2, else ``docker-compose``."""
    _import_sdk()
    from sagemaker.local.image import _SageMakerContainer

    return list(_SageMakerContainer._get_compose_cmd_prefix())


def compose_version() -> str:
    """That command's version, e.g. ``1.29.2``: v1 decides exit codes differently from v2."""
    found = subprocess.run([*compose_command(), "version", "--short"], capture_output=True, text=True, check=True)
    return found.stdout.strip().removeprefix("v")


@contextlib.contextmanager
def podman_docker_api(timeout: float = SERVICE_START_TIMEOUT) -> Iterator[str]:
    """Serve the Docker API with podman on a private socket; yields the ``DOCKER_HOST`` value.

    The service gets its own ``containers.conf`` through its environment only, so other podman
    users on the machine are unaffected. It is stopped by its process id on exit, after
    removing the ``sagemaker-local`` network local mode creates, if it was not there before
    (podman keeps networks on disk; one still in use elsewhere is left alone).
    """
    with tempfile.TemporaryDirectory(prefix="sdk-local-podman-") as scratch:
        folder = Path(scratch)
        conf = folder / "containers.conf"
        conf.write_text(containers_conf())
        sock = folder / "docker.sock"
        docker_host = f"unix://{sock}"
        with (folder / "service.log").open("w") as log:
            service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", docker_host],
                env={**os.environ, "CONTAINERS_CONF": str(conf)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            api = EngineApi(str(sock))
            wait_until(api.ping, f"podman system service answers on {sock}", service, timeout, folder / "service.log")
            network_was_there = api.network_exists(NETWORK)
            try:
                yield docker_host
            finally:
                if not network_was_there:
                    api.remove_network(NETWORK)
        finally:
            service.terminate()
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(timeout=30)


@contextlib.contextmanager
def _environment(values: Mapping[str, str], *, override: bool = True) -> Iterator[None]:
    """Set ``values`` in os.environ for a while (only the unset ones unless ``override``), then restore.

    Restores ``COMPOSE_HTTP_TIMEOUT`` too, which local mode sets for good.
    """
    names = {*values, "COMPOSE_HTTP_TIMEOUT"}
    saved = {name: os.environ.get(name) for name in names}
    for name, value in values.items():
        if override or name not in os.environ:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _import_sdk() -> None:
    """Import the SDK without a credential search (and without its v2 banner), once per process."""
    if "sagemaker" not in sys.modules:
        with _environment(SDK_ENVIRONMENT, override=False):
            importlib.import_module("sagemaker")


# --- sessions and estimators ------------------------------------------------------------


def _boto_session() -> Any:
    """Inert credentials and a region: without them boto3 searches for real ones, up to EC2 metadata."""
    import boto3

    return boto3.Session(region_name=REGION, aws_access_key_id="sdk-local", aws_secret_access_key="sdk-local")


def _local_config(container_root: Path) -> dict[str, Any]:
    """Mount ``source_dir`` instead of uploading it to S3, and keep the SDK's scratch under our folder."""
    container_root.mkdir(parents=True, exist_ok=True)
    return {"local": {"local_code": True, "container_root": str(container_root)}}


def local_session(container_root: Path) -> Any:
    """A ``LocalSession`` that makes no AWS call: telemetry off, code mounted, no S3."""
    _import_sdk()
    from sagemaker.local import LocalSession

    session = LocalSession(boto_session=_boto_session(), sagemaker_config=sdk_defaults())
    session.config = _local_config(container_root)
    return session


def local_pipeline_session(
    container_root: Path, *, s3_endpoint_url: str | None = None, default_bucket: str | None = None
) -> Any:
    """A ``LocalPipelineSession`` like :func:`local_session` (it takes no ``sagemaker_config``, so it is set after).

    With ``s3_endpoint_url`` (a moto server) the host side of local mode reads and writes S3 there:
    channel and processing inputs, model and processing outputs, property files.
    """
    _import_sdk()
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    session = LocalPipelineSession(
        boto_session=_boto_session(), s3_endpoint_url=s3_endpoint_url, default_bucket=default_bucket
    )
    session.sagemaker_config = sdk_defaults()
    session.config = _local_config(container_root)
    return session


def estimator(
    session: Any,
    image: str,
    source_dir: Path,
    *,
    hyperparameters: Mapping[str, Any],
    output_dir: Path,
    entry_point: str = "train.py",
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
) -> Any:
    """The project's ``CustomFramework`` for local mode: artifacts go to ``output_dir`` (``file://``)."""
    with _environment(SDK_ENVIRONMENT, override=False):
        return custom_framework_class()(
            entry_point=entry_point,
            source_dir=str(source_dir),
            image_uri=image,
            role=ROLE_ARN,
            instance_type="local",
            instance_count=instance_count,
            output_path=f"file://{output_dir}",
            hyperparameters=dict(hyperparameters),
            environment=dict(environment or {}),
            disable_profiler=True,
            debugger_hook_config=False,
            base_job_name="sdk-local",
            sagemaker_session=session,
        )


def _inputs(channels: Mapping[str, Path], content_type: str | None) -> dict[str, Any]:
    from sagemaker.inputs import TrainingInput

    return {
        name: TrainingInput(f"file://{Path(path).resolve()}", content_type=content_type)
        for name, path in channels.items()
    }


# --- running and collecting -------------------------------------------------------------


class _Capture(io.TextIOBase):
    """Where local mode's ``sys.stdout.write`` of the compose output lands; echoes it if asked."""

    def __init__(self, echo: bool) -> None:
        self.parts: list[str] = []
        self.echo = sys.stdout if echo else None

    def write(self, text: str) -> int:
        self.parts.append(text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _compose_files(container_root: Path) -> list[Path]:
    return sorted(container_root.glob("*/docker-compose.yaml"), key=lambda p: p.stat().st_mtime)


def _containers(compose_files: list[Path]) -> dict[str, str]:
    """Container name to host name, for every service of these compose files."""
    return {name: host for name, (host, _) in _services(compose_files).items()}


def _services(compose_files: list[Path]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Container name to its host name and compose service, for every service of these compose files."""
    import yaml

    services = {}
    for path in compose_files:
        for host, service in yaml.safe_load(path.read_text())["services"].items():
            services[service["container_name"]] = (host, service)
    return services


def _read_member(archive: Path, name: str) -> str | None:
    if not archive.is_file():
        return None
    with tarfile.open(archive) as tar:
        try:
            member = tar.extractfile(name)
        except KeyError:
            return None
        return None if member is None else member.read().decode("utf-8", "replace")


def container_lines(log: str) -> dict[str, list[str]]:
    """Host name to the lines its container printed, without compose's colours and prefixes."""
    lines: dict[str, list[str]] = {}
    for raw in ANSI.sub("", log).replace("\r", "").splitlines():
        match = COMPOSE_LINE.match(raw)
        if match:
            lines.setdefault(match["host"], []).append(match["text"])
    return lines


@dataclass(frozen=True)
class TrainingResult:
    """What one local-mode training job gave: the SDK's own report, and the ground truth beside it.

    ``error`` is what ``fit()`` raised (None if it returned); ``exit_codes`` are the containers'
    real exit codes from the engine. They can disagree: docker-compose v1 returns 0 for a failed
    container when its "die" event beats the end of the log stream, and local mode then reports
    success. ``sdk_status`` is ``describe_training_job``'s status: local mode knows only
    "Completed", or no job at all when ``fit()`` raised. ``failure`` is
    ``/opt/ml/output/failure`` from ``output.tar.gz``. ``hyperparameters`` are those the SDK
    sent (JSON-encoded); the container's ``hyperparameters.json`` has them with
    ``sagemaker_submit_directory`` rewritten to ``/opt/ml/code``.
    """

    job_name: str
    error: BaseException | None
    sdk_status: str | None
    exit_codes: dict[str, int | None]
    log: str
    model_artifact: Path | None
    output_artifact: Path | None
    failure: str | None
    hyperparameters: dict[str, str]
    compose: dict[str, Any] = field(repr=False)

    @property
    def succeeded(self) -> bool:
        return self.error is None and bool(self.exit_codes) and all(c == 0 for c in self.exit_codes.values())

    @property
    def container_log(self) -> str:
        """Every container's lines, host by host, as the script printed them."""
        return "\n".join(line for lines in container_lines(self.log).values() for line in lines)

    @property
    def container_environment(self) -> dict[str, dict[str, str]]:
        """Host name to the environment local mode gives its container (compose ``environment``)."""
        return {
            host: dict(item.split("=", 1) for item in service.get("environment", []))
            for host, service in self.compose.get("services", {}).items()
        }


def _artifact(output_dir: Path, name: str) -> Path | None:
    path = output_dir / name
    return path if path.is_file() else None


@dataclass
class _Run:
    """What one local-mode call leaves: its stdout, and the compose files and exit codes of its jobs."""

    container_root: Path
    capture: _Capture
    earlier: set[Path]
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # host to what its container printed
    training_hosts: set[str] = field(default_factory=set)  # hosts whose container ran ``train``

    def compose_files(self) -> list[Path]:
        """The jobs of this call only: a reused work dir keeps earlier compose files."""
        return [path for path in _compose_files(self.container_root) if path not in self.earlier]

    def remove_containers(self, api: EngineApi) -> None:
        for container in _containers(self.compose_files()):
            api.remove(container)

    def collect_containers(self, api: EngineApi) -> None:
        """Each host's exit code and log, then remove the containers: local mode leaves them behind."""
        for container, (host, service) in _services(self.compose_files()).items():
            self.exit_codes[host] = api.exit_code(container)
            self.logs[host] = api.logs(container)
            if service.get("command") == "train":
                self.training_hosts.add(host)
            api.remove(container)


@contextlib.contextmanager
def _local_mode_run(
    docker_host: str | None, container_root: Path, images: tuple[str, ...], timeout: float, echo: bool
) -> Iterator[_Run]:
    """Around one local-mode call: env, image check, stdout capture, a watchdog, container clean-up.

    The SDK has no time limit of its own (``max_run`` is not enforced locally); on ``timeout``
    the watchdog force-removes the job's containers, docker-compose exits and the SDK returns.
    """
    host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    api = EngineApi.from_docker_host(host)
    for image in images:
        # docker-compose would pull a missing image from a registry; it must be built here.
        if not api.image_exists(image):
            raise LookupError(f"image {image} is not in the engine's local storage (build it first)")
    run = _Run(container_root, _Capture(echo), set(_compose_files(container_root)))
    watchdog = threading.Timer(timeout, run.remove_containers, (api,))
    watchdog.daemon = True
    with _environment({"DOCKER_HOST": host}), _environment(SDK_ENVIRONMENT, override=False):
        watchdog.start()
        try:
            with contextlib.redirect_stdout(run.capture):
                yield run
        finally:
            watchdog.cancel()
            run.collect_containers(api)


def run_training(
    image: str,
    source_dir: Path,
    *,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, Path],
    entry_point: str = "train.py",
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
    content_type: str | None = None,
    docker_host: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 900,
    echo: bool = False,
) -> TrainingResult:
    """One training job through SDK local mode with ``CustomFramework``, ``estimator.fit()`` as a user calls it.

    ``work_dir`` (a new temporary folder if None, left for the caller) receives ``output/``
    (``model.tar.gz``, ``output.tar.gz``) and ``containers/`` (the SDK's scratch, with the
    ``docker-compose.yaml`` it wrote). ``docker_host`` defaults to ``$DOCKER_HOST``.
    """
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="sdk-local-"))
    output_dir, container_root = work / "output", work / "containers"
    session = local_session(container_root)
    job = estimator(
        session,
        image,
        source_dir,
        hyperparameters=hyperparameters,
        output_dir=output_dir,
        entry_point=entry_point,
        instance_count=instance_count,
        environment=environment,
    )
    error: BaseException | None = None
    with _local_mode_run(docker_host, container_root, (image,), timeout, echo) as run:
        try:
            job.fit(inputs=_inputs(channels, content_type))  # as a user calls it
        except Exception as raised:  # the SDK's failure report is part of the result
            error = raised
    import yaml
    from botocore.exceptions import ClientError

    try:
        sdk_status = session.sagemaker_client.describe_training_job(job._current_job_name)["TrainingJobStatus"]
    except ClientError:  # fit() raised before local mode registered the job
        sdk_status = None
    composes = run.compose_files()
    output_artifact = _artifact(output_dir, "output.tar.gz")
    return TrainingResult(
        job_name=job._current_job_name,
        error=error,
        sdk_status=sdk_status,
        exit_codes=run.exit_codes,
        log=run.capture.text(),
        model_artifact=_artifact(output_dir, "model.tar.gz"),
        output_artifact=output_artifact,
        failure=_read_member(output_artifact, "failure") if output_artifact else None,
        hyperparameters=dict(job.hyperparameters()),
        compose=yaml.safe_load(composes[-1].read_text()) if composes else {},
    )


# --- pipelines --------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineResult:
    """A local pipeline execution: its status, each step's status and failure, and the log.

    ``container_logs`` are each host's lines as the engine kept them (``log``, local mode's
    stdout, can miss a short job's); ``models`` are the CreateModel steps' models as described.
    """

    status: str | None
    failure_reason: str | None
    steps: dict[str, dict[str, Any]]
    error: BaseException | None
    exit_codes: dict[str, int | None]
    log: str
    container_logs: dict[str, str] = field(default_factory=dict)
    training_hosts: set[str] = field(default_factory=set)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def step_statuses(self) -> dict[str, str]:
        return {name: step.get("StepStatus", "") for name, step in self.steps.items()}


PipelineBuilder = Callable[[Any], Any]


def training_pipeline(
    image: str,
    source_dir: Path,
    *,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, Path],
    output_dir: Path,
    entry_point: str = "train.py",
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
    content_type: str | None = None,
    name: str = "sdk-local-training",
    step_name: str = "Train",
) -> PipelineBuilder:
    """A builder of a one-``TrainingStep`` pipeline, for :func:`run_pipeline`; a DAG builder has the same shape."""

    def build(session: Any) -> Any:
        from sagemaker.workflow.pipeline import Pipeline
        from sagemaker.workflow.steps import TrainingStep

        job = estimator(
            session,
            image,
            source_dir,
            hyperparameters=hyperparameters,
            output_dir=output_dir,
            entry_point=entry_point,
            instance_count=instance_count,
            environment=environment,
        )
        step = TrainingStep(name=step_name, step_args=job.fit(inputs=_inputs(channels, content_type)))
        return Pipeline(name=name, steps=[step], sagemaker_session=session)

    return build


def project_pipeline(settings: Any, source_dir: Path, code_uri: str) -> PipelineBuilder:
    """A builder of a source dir's pipeline (its ``workflow.py`` on the blocks of ``sdk.py``) for :func:`run_pipeline`.

    Two changes make it run under ``LocalPipelineSession``: the training code is mounted from
    ``source_dir`` (the session's ``local_code``; ``code_uri``, the same tree's archive, still
    feeds Evaluate), and each RegisterModel step, which local mode refuses to start, becomes a
    CreateModel step of the same Model (image, artifact, environment) under the same step name.
    """

    def build(session: Any) -> Any:
        from sagemaker.workflow.condition_step import ConditionStep

        from pipeline.definition import contract

        built, _, _, _ = sdk.build_pipeline(
            settings, contract.load(source_dir), source_dir, code_uri, session=session, mounted_code=str(source_dir)
        )
        for step in built.steps:
            if isinstance(step, ConditionStep):
                step.if_steps[:] = [_creating_instead_of_registering(inner) for inner in step.if_steps]
                step.else_steps[:] = [_creating_instead_of_registering(inner) for inner in step.else_steps]
        return built

    return build


def _creating_instead_of_registering(step: Any) -> Any:
    from sagemaker.workflow.model_step import ModelStep

    if not isinstance(step, ModelStep) or not step._register_model_args:
        return step
    return ModelStep(name=step.name, step_args=step._model.create(instance_type="local"))


def run_pipeline(
    pipeline: Any | PipelineBuilder,
    *,
    images: tuple[str, ...] = (),
    parameters: Mapping[str, Any] | None = None,
    docker_host: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 1800,
    echo: bool = False,
    s3_endpoint_url: str | None = None,
    default_bucket: str | None = None,
) -> PipelineResult:
    """Run a pipeline under ``LocalPipelineSession``: ``create`` then ``start``, which runs every step here.

    ``pipeline`` is a builder taking the session (it gets :func:`local_pipeline_session`), or a
    ``Pipeline`` already built on such a session with its ``container_root`` under ``work_dir /
    "containers"``. ``images`` are checked to be local first, since compose would pull them.
    ``s3_endpoint_url`` and ``default_bucket`` go to the session a builder gets.
    """
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="sdk-local-pipeline-"))
    container_root = work / "containers"
    with _environment(SDK_ENVIRONMENT, override=False):
        if callable(pipeline):
            session = local_pipeline_session(
                container_root, s3_endpoint_url=s3_endpoint_url, default_bucket=default_bucket
            )
            built = pipeline(session)
        else:
            built = pipeline
    error: BaseException | None = None
    execution = None
    with _local_mode_run(docker_host, container_root, images, timeout, echo) as run:
        try:
            built.create(role_arn=ROLE_ARN)
            execution = built.start(parameters=dict(parameters) if parameters else None)
        except Exception as raised:  # a pipeline the SDK rejects is a result too
            error = raised
    steps: dict[str, dict[str, Any]] = {}
    description: dict[str, Any] = {}
    if execution is not None:
        description = execution.describe()
        steps = {step["StepName"]: step for step in execution.list_steps()["PipelineExecutionSteps"]}
    client = built.sagemaker_session.sagemaker_client
    return PipelineResult(
        status=description.get("PipelineExecutionStatus"),
        failure_reason=description.get("FailureReason"),
        steps=steps,
        error=error,
        exit_codes=run.exit_codes,
        log=run.capture.text(),
        container_logs=run.logs,
        training_hosts=run.training_hosts,
        models={
            name: client.describe_model(ModelName=step["Metadata"]["Model"]["Arn"])
            for name, step in steps.items()
            if "Model" in step.get("Metadata", {})
        },
    )


# --- command line: one job, a JSON summary (what benchmarks/sdk_local_mode.py times) -------


def _channel(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    if not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    """Train once through SDK local mode; exit 0 only if the SDK and every container succeeded."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--image", required=True)
    parser.add_argument("--source-dir", type=Path, default=ROOT / "user_src")
    parser.add_argument("--entry-point", default="train.py")
    parser.add_argument("--channel", type=_channel, action="append", default=[], help="NAME=PATH, repeatable")
    parser.add_argument("--hp", action="append", default=[], help="NAME=JSON, repeatable")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--docker-host", help="default: $DOCKER_HOST, else a podman service started for this run")
    parser.add_argument("--verbose", action="store_true", help="show the SDK's logs and the job's output")
    args = parser.parse_args(argv)
    if not args.verbose:  # sagemaker.config logs to stdout, where the summary goes
        for name in ("sagemaker", "sagemaker.config"):
            logging.getLogger(name).setLevel(logging.WARNING)
    hyperparameters = {name: json.loads(value) for name, _, value in (hp.partition("=") for hp in args.hp)}

    def train(docker_host: str) -> TrainingResult:
        return run_training(
            args.image,
            args.source_dir,
            hyperparameters=hyperparameters,
            channels=dict(args.channel),
            entry_point=args.entry_point,
            docker_host=docker_host,
            work_dir=args.work_dir,
            echo=args.verbose,
        )

    docker_host = args.docker_host or os.environ.get("DOCKER_HOST")
    if docker_host:
        result = train(docker_host)
    else:
        with podman_docker_api() as started:
            result = train(started)
    summary = {
        "job_name": result.job_name,
        "succeeded": result.succeeded,
        "error": None if result.error is None else str(result.error),
        "sdk_status": result.sdk_status,
        "exit_codes": result.exit_codes,
        "model_artifact": str(result.model_artifact),
        "failure": result.failure,
    }
    print(json.dumps(summary, indent=2))
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
