"""How a job's hosts run: as processes in the job environment, or as containers of the built image.

Both get the same base dir, request and environment variables, and run the toolkit's
``train`` under a :mod:`host_init`; they differ only in where the toolkit and the user's
code run (the cached venv here, the image there) and in the paths the job sees.
"""

from __future__ import annotations

import json
import os
import secrets
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from custom_framework_training import archives
from pipeline.errors import UnsupportedExpression
from pipeline.local import container, host_env, runtime
from pipeline.local.job_config import PROGRAM, SUBMIT_DIRECTORY
from pipeline.local.processes import HostCommand

DOCKERFILE = runtime.FRAMEWORK_IMAGE / "Dockerfile"
HostFactory = Callable[[str, Path], HostCommand]


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
    """The job's code as a local tarball, or None when the toolkit downloads it (``s3://``)."""
    location = json.loads(job.hyperparameters[SUBMIT_DIRECTORY])
    return None if location.startswith("s3://") else Path(location)


def installs_requirements(job: JobSpec, archive: Path | None) -> bool:
    """Whether the toolkit pip-installs the code's ``requirements.txt``: for a Python script or a package
    (``setup.py``), not for a command, as ``sagemaker_training.entry_point.install`` decides."""
    if archive is None:
        return False
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    program = json.loads(job.hyperparameters.get(PROGRAM, '""'))
    return "requirements.txt" in names and ("setup.py" in names or program.endswith(".py"))


class Runner(Protocol):
    """Where a job's hosts run; :func:`pipeline.local.job.run_job` does the rest the same way for both."""

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
    """Hosts as processes of the cached job environment, with ``SAGEMAKER_BASE_DIR`` for ``/opt/ml``."""

    environment: runtime.JobEnvironment
    interpreter: runtime.Interpreter

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
        return self._hosts(job, scratch, environment, [str(environment.root / "bin" / "train")])

    def processing(self, job: ProcessingSpec, scratch: Path) -> HostFactory:
        """How a processing job's container command runs here: its ``python3`` is the job's Python."""
        command = list(job.argv)
        if command and command[0] in ("python", "python3"):
            command = command[1:]
        else:
            raise UnsupportedExpression(f"{job.name}: only a python3 entrypoint runs locally, not {job.argv[:1]}")
        return self._hosts(job, scratch, self.environment, command)

    def _hosts(
        self, job: ProcessingSpec | JobSpec, scratch: Path, environment: runtime.JobEnvironment, command: list[str]
    ) -> HostFactory:
        """``command`` run by the job's throwaway venv, with the image's, the platform's and the job's variables."""
        venv = scratch / "venv"
        python = runtime.job_venv(venv, environment)
        bins = [str(venv / "bin"), *([str(environment.layer / "bin")] if environment.layer else [])]
        bins.append(str(environment.root / "bin"))
        image = host_env.relocate(host_env.image_environment(DOCKERFILE.read_text()), str(venv), bins)
        passed = host_env.passed_through(os.environ, host_env.NETWORK + host_env.HOST_FILES, host_env.HOST_PREFIXES)
        argv = [str(python), *command]

        def host(name: str, base: Path) -> HostCommand:
            env = host_env.environment(
                image=image,
                passed=passed,
                job=job.environment,
                platform_vars=host_env.platform(job.name, job.region, job.role_arn),
                local={"SAGEMAKER_BASE_DIR": str(base), "SM_STUDIO_LOCAL_MODE": "true"},
            )
            return HostCommand(argv, env, base, scratch=scratch)

        return host


def process_runner(python: str | None, report: Callable[[str], None]) -> ProcessRunner:
    """The Docker-free runner: ``python`` (else the image's version on PATH, else this one), its
    environment made now if this is its first use."""
    wanted = runtime.image_python(DOCKERFILE.read_text())
    interpreter = runtime.choose_interpreter(python, wanted, os.environ.get("PATH", ""))
    return ProcessRunner(runtime.ensure_environment(interpreter, report), interpreter)


@dataclass(frozen=True)
class ContainerRunner:
    """Hosts as containers of the framework image, ``ENGINE run ... IMAGE train``, base dir at ``/opt/ml``."""

    engine: str
    image: str

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

        def host(name: str, base: Path) -> HostCommand:
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
