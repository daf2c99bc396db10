"""``demo``: the whole loop on this machine, with no AWS account and no Docker.

The AWS stand-in is moto's server (``moto.server.ThreadedMotoServer``, installed with the
dev extras), in this process on 127.0.0.1, with throwaway credentials: the real
``upsert`` deploys to it (code archive, sample data, pipeline), the real ``run --local``
runs the deployed DAG (train, evaluate, gate, register), and ``serve-local`` answers one
prediction from the trained model. Nothing reaches a real account, and the stand-in is
gone when the demo ends.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pipeline.cli.common import DEFAULT_SOURCE_DIR, cli_command
from pipeline.errors import ExitStatus, SettingsError

REGION = "us-east-1"
ACCOUNT = {
    "PIPELINE_NAME": "demo-pipeline",
    "SAGEMAKER_BUCKET": "demo-sagemaker-bucket",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/DemoSageMakerRole",
    "IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:demo",
}
SERVE_START_SECONDS = 60


@contextlib.contextmanager
def aws_stand_in(port: int = 0) -> Iterator[str]:
    """moto on 127.0.0.1 (``port`` 0: any free one), and this process (and its jobs) pointed at it;
    all restored afterwards."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise SettingsError("the demo's AWS stand-in is moto: pip install -e '.[dev]'") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log is not the demo's output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    values = {
        **ACCOUNT,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    # Anything that could send a call elsewhere goes for the demo's duration (a service's own
    # endpoint variable beats AWS_ENDPOINT_URL), and comes back afterwards.
    cleared = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]
    cleared += ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]
    saved = {name: os.environ.get(name) for name in [*values, *cleared]}
    for name in cleared:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def _first_row() -> str:
    """A row of the sample's validation features, as a CSV request body (the label left out)."""
    from pipeline.definition import sample_data

    rows = list(csv.reader(io.StringIO(sample_data.channel_files()["validation"])))
    header, row = rows[0], rows[1]
    return ",".join(value for name, value in zip(header, row, strict=True) if name != sample_data.TARGET)


def predict(model: Path, source_dir: Path, body: str) -> str:
    """Start ``serve-local`` on a free port, send one CSV request, stop the server by PID."""
    import urllib.request  # here, not at import: --help stays fast

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "pipeline", "serve-local", "--model", str(model), "--source-dir", str(source_dir)]
    server = subprocess.Popen([*command, "--port", str(port), "--workers", "1"], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.terminate()
                    said = server.communicate(timeout=30)[1].decode(errors="replace").strip()[-300:]
                    raise SettingsError(f"serve-local did not start: {said}") from None
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{url}/invocations", data=body.encode(), headers={"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode().strip()
    finally:
        server.terminate()
        server.wait(timeout=30)


def cmd_demo(args: argparse.Namespace, parse: Callable[[Sequence[str]], argparse.Namespace]) -> int:
    """``parse`` is the CLI's own parser: the demo runs ``upsert`` and ``run --local`` as typed."""
    from pipeline.cli import deploy_commands, local_commands
    from pipeline.cli.serve_commands import latest_model

    source = ["--source-dir", str(args.source_dir)]
    verbose = ["--verbose"] if args.verbose else []
    with aws_stand_in():
        import boto3

        boto3.client("s3", region_name=REGION).create_bucket(Bucket=ACCOUNT["SAGEMAKER_BUCKET"])
        print(f"--- deploy to the AWS stand-in (moto on 127.0.0.1): pipeline {ACCOUNT['PIPELINE_NAME']}")
        deploy_commands.cmd_upsert(parse([*verbose, "upsert", *source]))
        print("--- run the deployed pipeline here: train, evaluate, gate, register")
        started = time.monotonic()
        run = ["run", "--local", "--deployed", "--output-dir", str(args.output_dir)]
        code = local_commands.cmd_run(parse([*verbose, *run]))
        if code:
            return code
        print(f"--- pipeline run took {time.monotonic() - started:.1f} s")
        model = latest_model(args.output_dir)
        body = _first_row()
        print(f"--- serve {model} and predict one row: {body}")
        print(f"prediction: {predict(model, args.source_dir, body)}")
    cli = cli_command()
    print(f"--- next (README: your own pipeline, a real account):\n  {cli} definition --offline{_flags(source)}")
    print(f"  {cli} serve-local --output-dir {shlex.quote(str(args.output_dir))}{_flags(source)}\n  {cli} --help")
    return ExitStatus.OK


def _flags(source: list[str]) -> str:
    """``--source-dir`` for a hint, only when not the default."""
    return "" if source[1] == str(DEFAULT_SOURCE_DIR) else f" {shlex.join(source)}"
