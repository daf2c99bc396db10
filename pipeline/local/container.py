"""The framework image run as SageMaker runs it: ``ENGINE run ... IMAGE train``, ``/opt/ml`` mounted.

The engine is docker where a Docker engine answers, else podman (``ENGINE`` overrides), as
``framework_image/build-local.sh`` picks it. Command lines are built here as plain data;
the tests and ``train-local --container`` share them.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import UserError
from pipeline.local.host_env import SECRETS
from pipeline.local.processes import dies_with_parent
from pipeline.local.runtime import FRAMEWORK_IMAGE

BUILD_SCRIPT = FRAMEWORK_IMAGE / "build-local.sh"
BUILD_TIMEOUT_SECONDS = 1800
ENGINE_TIMEOUT_SECONDS = 60
BASE_DIR = "/opt/ml"
# Where the code archive is mounted: outside /opt/ml, where SageMaker has no such file either.
CODE_ARCHIVE = "/opt/code/sourcedir.tar.gz"


class ContainerError(UserError):
    """No engine, or no image to run; the message says how to get one."""


def engine(environ: Mapping[str, str] = os.environ) -> str:
    """``ENGINE``, else docker if a Docker engine answers, else podman."""
    if environ.get("ENGINE"):
        return environ["ENGINE"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=ENGINE_TIMEOUT_SECONDS, check=False)
        if probe.returncode == 0:
            return "docker"
    if shutil.which("podman"):
        return "podman"
    raise ContainerError("--container needs podman or a Docker engine: install one (apt-get install podman runc)")


def _hard_limit(which: int, cap: int) -> int:
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def ulimits() -> dict[str, int]:
    """Open files and processes for a container, within this host's hard limits: podman's default
    nofile is above them here, and runc then fails to start the container."""
    return {
        "nofile": _hard_limit(resource.RLIMIT_NOFILE, 1_048_576),
        "nproc": _hard_limit(resource.RLIMIT_NPROC, 32768),
    }


def run_flags(engine: str) -> list[str]:
    """What podman needs here to start a container: runc (crun refuses the hybrid cgroups) and :func:`ulimits`."""
    if engine != "podman":
        return []
    limits = [arg for name, value in ulimits().items() for arg in ("--ulimit", f"{name}={value}:{value}")]
    return ["--runtime", "runc", *limits]


def built_image(engine: str) -> str:
    """The reference ``framework_image/build-local.sh`` prints, after building the image if it changed."""
    try:
        build = subprocess.run(
            [str(BUILD_SCRIPT)],
            env={**os.environ, "ENGINE": engine},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
            preexec_fn=dies_with_parent(),  # its EXIT trap cleans up
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ContainerError(f"{BUILD_SCRIPT} did not run ({error}): pass --image with a built image") from None
    lines = build.stdout.strip().splitlines()
    if build.returncode != 0 or not lines:
        last = (build.stderr.strip().splitlines() or ["no output"])[-1]
        raise ContainerError(f"{BUILD_SCRIPT} exited {build.returncode} ({last}): fix the build or pass --image")
    return lines[-1]


def check_image(engine: str, image: str) -> None:
    """The image must be local: a job never pulls (no registry is reachable, and it would be another image)."""
    found = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        timeout=ENGINE_TIMEOUT_SECONDS,
        check=False,
    )
    if found.returncode != 0:
        raise ContainerError(f"image {image} is not in {engine}'s local storage: build it (build-local.sh) first")


def run_command(
    engine: str,
    image: str,
    name: str,
    base: Path,
    environment: Mapping[str, str],
    *,
    code_archive: Path | None,
    network: bool,
) -> list[str]:
    """``ENGINE run ... IMAGE train`` for one host; secrets are passed by name (their values come
    from the engine's environment), so they never appear on a command line."""
    command = [engine, "run", "--rm", "--name", name, "--pull", "never", "--network", "bridge" if network else "none"]
    command += [*run_flags(engine), "--volume", f"{base}:{BASE_DIR}"]
    if code_archive is not None:
        command += ["--volume", f"{code_archive}:{CODE_ARCHIVE}:ro"]
    for key, value in environment.items():
        command += ["--env", key if key in SECRETS else f"{key}={value}"]
    return [*command, image, "train"]


def term_command(engine: str, name: str) -> list[str]:
    """SIGTERM to the container's PID 1, the toolkit's ``train``, as SageMaker stops a job; the
    framework passes it on to the script (``custom_framework_training.stop_signal``)."""
    return [engine, "kill", "--signal", "TERM", name]


def kill_command(engine: str, name: str) -> list[str]:
    """Kill and remove now (podman's --force would first wait its stop timeout; docker's kills at once)."""
    return [engine, "rm", "--force", *(["--time", "0"] if engine == "podman" else []), name]
