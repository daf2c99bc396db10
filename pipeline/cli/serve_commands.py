"""``serve-local``: serve a trained model here, Docker-free, with the image's own server and handlers.

The framework package's ``serve`` is the server the image runs (``docker run IMAGE serve``), and it
runs here in the image's package set (the job environment ``train-local`` uses), so a request
answered here is answered the same way by an endpoint on the registered model, and a script
importing a package the image lacks fails at start here as it would there.
"""

from __future__ import annotations

import argparse
import hashlib
import tarfile
import tempfile
from pathlib import Path

from custom_framework_training import archives
from pipeline.cli.common import DEFAULT_OUTPUT_DIR
from pipeline.errors import SettingsError


def latest_model(output_dir: Path = DEFAULT_OUTPUT_DIR) -> Path:
    """The newest ``model.tar.gz`` a local job left, or an error naming how to make one."""
    models = sorted(output_dir.glob("*/model.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SettingsError(f"no model.tar.gz under {output_dir}: run train-local first, or pass --model")
    return models[-1]


def model_dir(model: Path) -> Path:
    """A folder holding the model: ``model`` itself, or ``model.tar.gz`` unpacked beside it, once per content."""
    if model.is_dir():
        return model
    if not model.is_file() or not tarfile.is_tarfile(model):
        raise SettingsError(f"--model {model}: pass a model.tar.gz or a folder holding the model")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    folder = model.with_name(f"serving-model-{digest}")  # a new archive at the same path gets its own
    if not folder.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=".serving-model-", dir=model.parent))
        try:
            archives.extract(model, partial)
        except (OSError, tarfile.TarError) as error:
            raise SettingsError(f"--model {model}: cannot unpack it: {error}") from None
        partial.rename(folder)
    return folder


def container_command(engine: str, image: str, model: Path, code: Path, host: str, port: int) -> list[str]:
    """``ENGINE run ... IMAGE serve`` as SageMaker starts an endpoint: the model at ``/opt/ml/model``,
    the handlers at ``SAGEMAKER_SUBMIT_DIRECTORY``, port 8080 published on ``host``."""
    from pipeline.local import container

    return [
        *(engine, "run", "--rm", "--pull", "never", *container.run_flags(engine)),
        *("--publish", f"{host}:{port}:8080"),
        *("--volume", f"{model.resolve()}:/opt/ml/model:ro", "--volume", f"{code.resolve()}:/opt/ml/code:ro"),
        *("--env", "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code", image, "serve"),
    ]


def cmd_serve_local(args: argparse.Namespace) -> int:
    model = model_dir(args.model or latest_model(args.output_dir))
    if args.container or args.image:
        import subprocess

        from pipeline.local import container

        engine = container.engine()
        image = args.image or container.built_image(engine)
        container.check_image(engine, image)
        return subprocess.call(container_command(engine, image, model, args.source_dir, args.host, args.port))
    return _serve_in_job_environment(args, model)


def _serve_in_job_environment(args: argparse.Namespace, model: Path) -> int:
    """The image's ``serve`` in a throwaway venv over the job environment; its start-up error is this
    command's one ``error:`` line."""
    import sys

    from pipeline.local import runners, transform

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    runner = runners.process_runner(None, report)
    arguments = ["--host", args.host, "--port", str(args.port), "--model-dir", str(model.resolve())]
    if args.workers:
        arguments += ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="serve-local-") as scratch:
        argv, env = transform.server_process(runner, args.source_dir.resolve(), Path(scratch), report, arguments)
        server = transform.start(argv, env, transform.echo)
        with transform.forwarded_stop(server):
            try:
                code = server.wait()
            except KeyboardInterrupt:  # the server has a process group of its own: the terminal's SIGINT is ours
                code = server.stop()
    if server.failure():
        raise SettingsError(server.failure())
    return code
