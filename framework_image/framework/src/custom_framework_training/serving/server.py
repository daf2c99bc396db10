"""The HTTP server: the app built once by :mod:`.startup`, served by gunicorn from forked workers.

The model is loaded in the master before the port is bound, then gunicorn forks one
worker per CPU (``SAGEMAKER_MODEL_SERVER_WORKERS``), which share the loaded model
copy-on-write.

gunicorn's ``gevent`` workers, as in SageMaker's framework containers: connections are
kept alive (a client does not pay a new TCP connection per request), and a slow client
holds a greenlet, not a worker, so it cannot starve ``/ping``. A request, body included,
gets ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` seconds (504 after, where the containers' nginx
answers 504); a handler that holds the CPU for longer stops its worker's heartbeat, so
its request is answered 504 too and the worker replaced by a fresh fork of the loaded
master (:mod:`.processes`). benchmarks/serving.py measures it against the handlers called
in-process and against the containers' stack (Flask on the same gunicorn gevent workers).
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

WORKER_CLASS = "custom_framework_training.serving.processes.GeventWorker"
# Connections one worker holds at once (open keep-alive ones included), as sagemaker-containers sets it.
WORKER_CONNECTIONS = 1000
# Idle seconds before a kept-alive connection is closed; also the limit for reading a request's headers.
KEEPALIVE_SECONDS = 5
# Seconds the workers get to finish their requests after SIGTERM before the master SIGKILLs them (gunicorn's).
GRACEFUL_STOP_SECONDS = 30


def with_deadline(app: InferenceApp, seconds: int) -> Any:
    """``app`` with each request cut off after ``seconds``: by a gevent timeout where the handler yields (I/O,
    sleeps), by the worker's SIGABRT handler where it holds the CPU (:class:`.processes.GeventWorker`)."""
    import gevent  # imported where it serves: the CLIs that start servers need neither gevent nor the workers

    from custom_framework_training.serving.processes import RequestTimeout

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            with gevent.Timeout(seconds, RequestTimeout):
                return app(environ, start_response)
        except RequestTimeout:
            logger.error(
                "%s %s took longer than %d s: cut off", environ["REQUEST_METHOD"], environ["PATH_INFO"], seconds
            )
            message = f"the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT={seconds} s\n".encode()
            start_response("504 Gateway Timeout", [("Content-Type", "text/plain; charset=utf-8")])
            return [message]

    return timed


class _Gunicorn(BaseApplication):
    """gunicorn driven from code: no command line, no config file, the already-built app."""

    def __init__(self, app: Any, options: Mapping[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._app

    def run(self) -> None:
        from custom_framework_training.serving.processes import Arbiter

        Arbiter(self).run()


def gunicorn_options(host: str, port: int, settings: ServingEnvironment) -> dict[str, Any]:
    return {
        "bind": [f"{host}:{port}"],
        "workers": settings.workers,
        "worker_class": WORKER_CLASS,
        "worker_connections": WORKER_CONNECTIONS,
        "keepalive": KEEPALIVE_SECONDS,
        # SAGEMAKER_MODEL_SERVER_TIMEOUT: a worker without a heartbeat for longer is aborted and replaced.
        "timeout": settings.timeout_seconds,
        "graceful_timeout": GRACEFUL_STOP_SECONDS,
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


def run(app: InferenceApp, host: str, port: int, settings: ServingEnvironment) -> NoReturn:
    """Serve ``app`` until SIGTERM or SIGINT; gunicorn then exits the process (``SystemExit``)."""
    _Gunicorn(with_deadline(app, settings.timeout_seconds), gunicorn_options(host, port, settings)).run()
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
