"""The serving settings SageMaker passes through the environment, read and checked once at start.

Names and defaults follow SageMaker's inference toolkit, so a model created with the
SageMaker SDK (which sets ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY``)
configures this server as it would a framework container. ``SAGEMAKER_BASE_DIR``
(or ``SM_MODEL_DIR``) moves the model directory for runs outside a container.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from custom_framework_training.serving.content import JSON
from custom_framework_training.serving.errors import StartupError

BASE_DIR = Path("/opt/ml")
DEFAULT_PROGRAM = "inference.py"
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_SECONDS = 60
# SageMaker real-time endpoints reject payloads over 6 MB before they reach the container.
DEFAULT_MAX_PAYLOAD_MB = 6.0

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class ServingEnvironment:
    model_dir: Path
    # SAGEMAKER_SUBMIT_DIRECTORY: a folder, a sourcedir.tar.gz, or its s3:// URI; None means model_dir/code.
    submit_directory: str | None
    program: str
    port: int
    workers: int
    timeout_seconds: int
    max_payload_bytes: int
    default_accept: str
    log_level: int


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count)."""
    return len(os.sched_getaffinity(0))


def model_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("SM_MODEL_DIR"):
        return Path(environ["SM_MODEL_DIR"])
    return Path(environ.get("SAGEMAKER_BASE_DIR") or BASE_DIR) / "model"


def from_environ(environ: Mapping[str, str] = os.environ) -> ServingEnvironment:
    """The settings, each variable checked: a bad value is a :class:`StartupError` naming it."""
    return ServingEnvironment(
        model_dir=model_dir(environ),
        submit_directory=environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or None,
        program=environ.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM,
        port=_number(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, int),
        workers=_number(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", cpu_count(), int),
        # The toolkit's newer name wins over the older one, as in sagemaker-inference.
        timeout_seconds=_number(
            environ,
            "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS",
            _number(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT_SECONDS, int),
            int,
        ),
        max_payload_bytes=int(_number(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB, float) * 2**20),
        default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON,
        log_level=_number(environ, "SAGEMAKER_CONTAINER_LOG_LEVEL", logging.INFO, int),
    )


def _number(environ: Mapping[str, str], name: str, default: Number, kind: type[Number]) -> Number:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise StartupError(f"{name}={raw!r} is not a positive {kind.__name__}")
    return value
