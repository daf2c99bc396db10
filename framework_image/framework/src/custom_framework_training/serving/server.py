"""The HTTP server: the app built once by :mod:`.startup`, served by gunicorn from forked workers.

The model is loaded in the master before the port is bound, then gunicorn forks one
worker per CPU, which share the loaded model copy-on-write.

gunicorn's ``sync`` workers, as in SageMaker's bring-your-own-container sample: one
request per process at a time, the shape of CPU-bound predictions. Only an idle worker
accepts a connection, so no request queues behind a long one while a worker is free;
a worker stuck longer than ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` is killed and re-forked
from the loaded master; no thread or monkey-patching runs under the user's handlers.
The price is no keep-alive (one TCP connection per request): benchmarks/serving.py
measures it, and the alternatives.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication

from custom_framework_training.serving import environment
from custom_framework_training.serving.app import InferenceApp
from custom_framework_training.serving.environment import ServingEnvironment
from custom_framework_training.serving.startup import build_app, limit_threads

logger = logging.getLogger(__name__)

WORKER_CLASS = "sync"


class _Gunicorn(BaseApplication):
    """gunicorn driven from code: no command line, no config file, the already-built app."""

    def __init__(self, app: InferenceApp, options: Mapping[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> InferenceApp:
        return self._app


def gunicorn_options(
    host: str, port: int, settings: ServingEnvironment, worker_class: str = WORKER_CLASS
) -> dict[str, Any]:
    return {
        "bind": [f"{host}:{port}"],
        "workers": settings.workers,
        "worker_class": worker_class,
        # SAGEMAKER_MODEL_SERVER_TIMEOUT: a worker busy for longer on one request is killed and replaced.
        "timeout": settings.timeout_seconds,
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": logging.getLevelName(settings.log_level).lower(),
        # Otherwise gunicorn opens a control socket under $HOME, shared by every server on the machine.
        "control_socket_disable": True,
        # The workers' heartbeat files: in memory, since /tmp may be a slow overlay in a container.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "proc_name": "serve",
    }


def run(app: InferenceApp, host: str, port: int, settings: ServingEnvironment, **kwargs: Any) -> NoReturn:
    """Serve ``app`` until SIGTERM or SIGINT; gunicorn then exits the process (``SystemExit``)."""
    _Gunicorn(app, gunicorn_options(host, port, settings, **kwargs)).run()
    raise SystemExit(0)  # gunicorn's run() exits itself; this only states it


def serve(
    model_dir: Path,
    code_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = environment.DEFAULT_PORT,
    workers: int | None = None,
) -> NoReturn:
    """Serve the model in ``model_dir`` as the image's ``serve`` does, without Docker.

    ``code_dir`` holds the handlers module (``SAGEMAKER_PROGRAM``, default ``inference.py``);
    None means ``SAGEMAKER_SUBMIT_DIRECTORY``, else ``model_dir/code``. ``workers`` None means
    ``SAGEMAKER_MODEL_SERVER_WORKERS``, else one per CPU. Other settings come from the same
    environment variables as in the image. Raises :class:`StartupError` (one line, naming the
    path) before binding the port when the model or handlers cannot be loaded; otherwise blocks
    until SIGTERM or SIGINT and exits the process.
    """
    settings = environment.from_environ()
    settings = dataclasses.replace(settings, model_dir=Path(model_dir), workers=workers or settings.workers)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_threads(settings.workers)
    app = build_app(settings, Path(code_dir) if code_dir is not None else None)
    run(app, host, port, settings)
