"""How a job's hosts run: as processes in the job environment, or as containers of the built image.

Both get the same base dir, request and environment variables, and run the toolkit's
``train`` under a :mod:`host_init` (here its entry through :mod:`toolkit_train`); they differ
only in where the toolkit and the user's code run (the cached venv here, the image there). Both
show the base dir at ``/opt/ml``: the container by a volume, a process by a private mount
namespace (:func:`host_init.enter`); where this machine allows no user namespace, a process gets
``SAGEMAKER_BASE_DIR`` and paths moved under the base dir instead, and a warning says what to enable.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from custom_framework_training import archives
from pipeline.errors import UnsupportedExpression
from pipeline.local import container, host_env, runtime
from pipeline.local.channels import Mount
from pipeline.local.job_config import PROGRAM, SUBMIT_DIRECTORY
from pipeline.local.processes import HOST_INIT, HostCommand

DOCKERFILE = runtime.FRAMEWORK_IMAGE / "Dockerfile"
TOOLKIT_TRAIN = Path(__file__).with_name("toolkit_train.py")  # the toolkit's train, paramiko deferred


class HostFactory(Protocol):
    """How one host runs: its name, its base dir, and the channel data its namespace mounts."""

    def __call__(self, name: str, base: Path, mounts: Sequence[Mount] = ()) -> HostCommand: ...


BASE_DIR = container.BASE_DIR
# A processing job's entrypoint that the job environment runs: its Python (``python3 script.py``,
# ScriptProcessor; ``python3 -m module``), or a shell script run by this machine's shell, which finds
# the job's python3 and pip first on PATH (FrameworkProcessor's ``/bin/bash runproc.sh``).
PYTHON = re.compile(r"(?:/usr(?:/local)?/bin/|/opt/venv/bin/)?python(?:3(?:\.\d+)?)?")
SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash")
NAMESPACE_FIX = (
    "enable unprivileged user namespaces (Ubuntu 24.04: sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
    " or run with --container"
)


class JobSpec(Protocol):
    """What a runner reads of a job (:class:`pipeline.local.job.LocalJob`)."""

    name: str
    region: str
    role_arn: str | None
    hyperparameters: Mapping[str, str]
    environment: Mapping[str, str]


class ProcessingSpec(Protocol):
    """What a runner reads of a processing job (:class:`pipeline.local.processing.ProcessingJob`)."""

    name: str
    region: str
    role_arn: str | None
    environment: Mapping[str, str]
    argv: tuple[str, ...]  # the container's entrypoint and arguments, paths as the job sees them


def code_archive(job: JobSpec) -> Path | None:
    """The job's code as a local tarball, or None when the toolkit downloads it (``s3://``) or the
    job has none (an ``Estimator`` on an image whose training module needs no user script)."""
    location = json.loads(job.hyperparameters.get(SUBMIT_DIRECTORY, '""'))
    return None if not location or location.startswith("s3://") else Path(location)


def processing_command(argv: tuple[str, ...], where: str) -> tuple[str, ...]:
    """A processing entrypoint as the job environment runs it: ``python3`` becomes ``""`` (the
    job's Python, filled in by the runner); a shell stays. Any other program is refused by name."""
    if not argv:
        raise UnsupportedExpression(
            f"{where}: no ContainerEntrypoint, so the image's own entrypoint would run, which only the image has:"
            " give the processor an entrypoint (Processor(entrypoint=['python3', ...]) or ScriptProcessor)"
        )
    first = argv[0]
    if isinstance(first, str) and PYTHON.fullmatch(first):
        return ("", *argv[1:])
    if first in SHELLS:
        return argv
    raise UnsupportedExpression(
        f"{where}: entrypoint {first!r} runs only in the image: run --local runs python3 and shell"
        " (sh, bash) entrypoints; use python3 (ScriptProcessor(command=['python3'])) or run it on SageMaker"
    )


def moved(argv: list[str], base: Path) -> list[str]:
    """The command with every ``/opt/ml`` path moved under the base dir that stands for it."""
    return [
        str(base) + arg[len(BASE_DIR) :] if arg == BASE_DIR or arg.startswith(f"{BASE_DIR}/") else arg for arg in argv
    ]


# What decides whether this process may make a user namespace, besides the namespaces it runs in.
NAMESPACE_SWITCHES = (
    "/proc/sys/kernel/random/boot_id",
    "/proc/sys/user/max_user_namespaces",
    "/proc/sys/kernel/unprivileged_userns_clone",  # Debian
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",  # Ubuntu 24.04
)


def _probe_key() -> str:
    """The boot, the user, the namespaces this process is in, the kernel's switches for them, the
    interpreter (an AppArmor profile attaches to it) and the init script: what the probe's answer follows."""
    parts = [str(os.geteuid()), sys.executable, os.readlink("/proc/self/ns/user"), os.readlink("/proc/self/ns/mnt")]
    for switch in NAMESPACE_SWITCHES:
        try:
            parts.append(Path(switch).read_text().strip())
        except FileNotFoundError:
            parts.append("-")
    stat = HOST_INIT.stat()
    parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\0".join(parts).encode(errors="surrogateescape")).hexdigest()[:32]


@functools.cache
def namespace_problem() -> str | None:
    """Why a host cannot get a private ``/opt/ml`` here (None: it can). The probe is a process (about
    40 ms of every job), so a success is remembered in the user cache under :func:`_probe_key`; a
    failure is tried again each time (it costs a warning anyway, and the fix is a setting)."""
    try:
        known: Path | None = runtime.cache_dir() / "namespace-probe" / _probe_key()
    except OSError:  # no /proc/self/ns here: probe every time
        known = None
    if known is not None and known.is_file():
        return None
    problem = _probe()
    if problem is None and known is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the probe next time
            known.parent.mkdir(parents=True, exist_ok=True)
            known.touch()
    return problem


def _probe() -> str | None:
    probe = subprocess.run(
        [sys.executable, "-I", "-S", str(HOST_INIT), "enter", "--probe"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]


def installs_requirements(job: JobSpec, archive: Path | None) -> bool:
    """Whether the toolkit pip-installs the code's ``requirements.txt``: for a Python script or a package
    (``setup.py``), not for a command, as ``sagemaker_training.entry_point.install`` decides."""
    if archive is None or not _mentions(archive, b"requirements.txt"):
        return False
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    program = json.loads(job.hyperparameters.get(PROGRAM, '""'))
    return "requirements.txt" in names and ("setup.py" in names or program.endswith(".py"))


def _mentions(archive: Path, name: bytes) -> bool:
    """Whether ``name`` occurs anywhere in the uncompressed tar: a member so named has it in its header
    (ustar field, pax record or long-name block). Most code has no requirements.txt, and this scan
    answers without parsing every member's header (10 ms, not 0.25 s, at 10,000 files)."""
    tail = b""
    with gzip.open(archive) as raw:
        while chunk := raw.read(1 << 20):
            if name in tail + chunk[: len(name)] or name in chunk:
                return True
            tail = chunk[-len(name) :]
    return False


class Runner(Protocol):
    """Where a job's hosts run; :func:`pipeline.local.job.run_job` does the rest the same way for both."""

    @property
    def mounts_data(self) -> bool:
        """Whether a host's namespace can mount its channels (:mod:`channels`), so none is copied."""
        ...

    def describe(self) -> str:
        """One line for the job's output and logs: which Python, or which image."""
        ...

    def hyperparameters(self, job: JobSpec) -> Mapping[str, str]:
        """``hyperparameters.json`` as the hosts see it (paths where the host finds them)."""
        ...

    def prepare(self, job: JobSpec, scratch: Path, report: Callable[[str], None]) -> HostFactory:
        """Whatever the hosts need in ``scratch``; returns how to run one host on its base dir."""
        ...


@dataclass(frozen=True)
class ProcessRunner:
    """Hosts as processes of the cached job environment, each seeing its base dir at ``/opt/ml`` if
    ``opt_ml`` (a private mount namespace), else through ``SAGEMAKER_BASE_DIR`` and moved paths."""

    environment: runtime.JobEnvironment
    interpreter: runtime.Interpreter
    opt_ml: bool = False

    @property
    def mounts_data(self) -> bool:
        return self.opt_ml

    def describe(self) -> str:
        return (
            f"job environment: Python {self.interpreter.version} ({self.interpreter.path}; {self.interpreter.why}),"
            f" packages of framework_image/ in {self.environment.root}"
        )

    def hyperparameters(self, job: JobSpec) -> Mapping[str, str]:
        return job.hyperparameters

    def prepare(self, job: JobSpec, scratch: Path, report: Callable[[str], None]) -> HostFactory:
        environment = self.environment
        archive = code_archive(job)
        if installs_requirements(job, archive):
            assert archive is not None
            code = scratch / "requirements-code"
            archives.extract(archive, code)
            environment = runtime.ensure_layer(environment, code, report)
        return self._hosts(job, scratch, environment, ["", "-P", str(TOOLKIT_TRAIN)])

    def processing(self, job: ProcessingSpec, scratch: Path) -> HostFactory:
        """How a processing job's container command runs here (:func:`processing_command`)."""
        command = processing_command(job.argv, f"processing job {job.name}")
        return self._hosts(job, scratch, self.environment, list(command))

    def _hosts(
        self, job: ProcessingSpec | JobSpec, scratch: Path, environment: runtime.JobEnvironment, command: list[str]
    ) -> HostFactory:
        """``command`` run by the job's throwaway venv (``""`` first: its python), with the image's, the
        platform's and the job's variables; in a private namespace where ``/opt/ml`` is the host's base dir."""
        venv = scratch / "venv"
        python = runtime.job_venv(venv, environment)
        bins = [str(venv / "bin"), *([str(environment.layer / "bin")] if environment.layer else [])]
        bins.append(str(environment.root / "bin"))
        image = host_env.relocate(host_env.image_environment(DOCKERFILE.read_text()), str(venv), bins)
        hosts = getattr(job, "instance_count", 1)
        image = {**image, **host_env.host_threads(len(os.sched_getaffinity(0)), hosts)}
        passed = host_env.passed_through(os.environ, host_env.NETWORK + host_env.HOST_FILES, host_env.HOST_PREFIXES)
        argv = [str(python), *command[1:]] if command[0] == "" else command

        def host(name: str, base: Path, mounts: Sequence[Mount] = ()) -> HostCommand:
            env = host_env.environment(
                image=image,
                passed=passed,
                job=job.environment,
                platform_vars=host_env.platform(job.name, job.region, job.role_arn),
                local={"SAGEMAKER_BASE_DIR": BASE_DIR if self.opt_ml else str(base), "SM_STUDIO_LOCAL_MODE": "true"},
            )
            if self.opt_ml:
                laid = tuple(mount.as_json() for mount in mounts)
                return HostCommand(argv, env, base, scratch=scratch, opt_ml=base, mounts=laid)
            return HostCommand(moved(argv, base), env, base, scratch=scratch)

        return host


def process_runner(python: str | None, report: Callable[[str], None]) -> ProcessRunner:
    """The Docker-free runner: ``python`` (else the image's version on PATH, else this one), its
    environment made now if this is its first use."""
    wanted = runtime.image_python(DOCKERFILE.read_text())
    interpreter = runtime.choose_interpreter(python, wanted, os.environ.get("PATH", ""))
    problem = namespace_problem()
    if problem:
        report(
            f"warning: jobs cannot see {BASE_DIR} here ({problem}): they get SAGEMAKER_BASE_DIR and"
            f" moved paths, so scripts that hard-code {BASE_DIR} fail; {NAMESPACE_FIX}"
        )
    return ProcessRunner(runtime.ensure_environment(interpreter, report), interpreter, opt_ml=problem is None)


@dataclass(frozen=True)
class ContainerRunner:
    """Hosts as containers of the framework image, ``ENGINE run ... IMAGE train``, base dir at ``/opt/ml``."""

    engine: str
    image: str

    mounts_data = False  # channels are copied into the volume (reflinked where the filesystem can)

    def describe(self) -> str:
        return f"container: {self.image} through {self.engine}"

    def hyperparameters(self, job: JobSpec) -> Mapping[str, str]:
        if code_archive(job) is None:
            return job.hyperparameters
        return {**job.hyperparameters, SUBMIT_DIRECTORY: json.dumps(container.CODE_ARCHIVE)}

    def prepare(self, job: JobSpec, scratch: Path, report: Callable[[str], None]) -> HostFactory:
        archive = code_archive(job)
        # No network, as with SageMaker's network isolation, unless pip must reach the index.
        network = installs_requirements(job, archive) or archive is None
        token = secrets.token_hex(3)

        def host(name: str, base: Path, mounts: Sequence[Mount] = ()) -> HostCommand:
            assert not mounts, "a container's channels are copied"
            env = host_env.environment(
                image={},
                passed=host_env.passed_through(os.environ, host_env.NETWORK) if network else {},
                job=job.environment,
                platform_vars=host_env.platform(job.name, job.region, job.role_arn),
                local={"SM_STUDIO_LOCAL_MODE": "true"},
            )
            container_name = f"train-local-{job.name}-{name}-{token}".lower()
            argv = container.run_command(
                self.engine, self.image, container_name, base, env, code_archive=archive, network=network
            )
            engine_env = {**os.environ, **{k: v for k, v in env.items() if k in host_env.SECRETS}}
            return HostCommand(
                argv,
                engine_env,
                base,
                mode="container",
                term=container.term_command(self.engine, container_name),
                kill=container.kill_command(self.engine, container_name),
                scratch=scratch,
            )

        return host
