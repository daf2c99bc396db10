"""Everything done before the port is bound: thread-pool sizes, the user's handlers, the model.

Each failure is a :class:`StartupError` naming the path, so ``serve`` exits with one line
instead of starting a server whose ``/ping`` lies or whose first request fails.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from custom_framework_training import threads
from custom_framework_training.serving import environment, files, handlers
from custom_framework_training.serving.app import InferenceApp
from custom_framework_training.serving.environment import ServingEnvironment
from custom_framework_training.serving.errors import StartupError

logger = logging.getLogger(__name__)


def build_app(settings: ServingEnvironment, code_dir: Path | None = None) -> InferenceApp:
    """The application with the user's handlers imported and the model loaded; :class:`StartupError` otherwise."""
    if not settings.model_dir.is_dir():
        raise StartupError(f"model directory {settings.model_dir} does not exist")
    started = time.perf_counter()
    code = code_dir or files.code_dir(settings.submit_directory, settings.model_dir)
    install_requirements(code)
    found = handlers.load(code, settings.program)
    model = handlers.load_model(found, settings.model_dir)
    logger.info(
        "model loaded from %s in %.2f s by %s", settings.model_dir, time.perf_counter() - started, found.module_path
    )
    return InferenceApp(
        found,
        model,
        max_payload_bytes=settings.max_payload_bytes,
        default_accept=settings.default_accept,
        execution_parameters={
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, settings.max_payload_bytes // 2**20),
        },
    )


def install_requirements(code: Path) -> None:
    """``pip install -r requirements.txt`` from the code dir into this Python, as the inference toolkit does at
    start; a failure stops the start with pip's last line (the toolkit stops too)."""
    requirements = code / "requirements.txt"
    if not requirements.is_file():
        return
    logger.info("installing packages from %s", requirements)
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        last = ([line for line in done.stderr.splitlines() if line.strip()] or ["no output"])[-1]
        raise StartupError(f"pip could not install {requirements} (exit {done.returncode}): {last.strip()}")


def limit_threads(workers: int) -> dict[str, str]:
    """Export thread-pool sizes so that the workers together use the CPUs once, unless the user set them.

    Called before the handlers import numpy or scikit-learn: the pools read them at load.
    """
    settings = threads.thread_settings(environment.cpu_count() // workers, os.environ)
    os.environ.update(settings)
    return settings
