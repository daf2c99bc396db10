"""The edit -> ``run --local`` -> metrics loop, against running the training script alone.

Each round edits ``train.py`` (so the code archive and the definition change),
then runs the freshly built definition locally, with S3 on a moto server on
127.0.0.1. A real SageMaker training job takes minutes to start.
Run: ``.venv/bin/python benchmarks/local_loop.py [runs]``
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, wall_time

from pipeline import sample_data


def moto_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def main(runs: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server(port)
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/Bench",
        "SAGEMAKER_BUCKET": "bench-bucket",
        "IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:bench",
    }
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-bucket")
        with tempfile.TemporaryDirectory() as scratch:
            tmp = Path(scratch)
            source = tmp / "src"
            shutil.copytree(ROOT / "user_src", source, ignore=shutil.ignore_patterns("__pycache__"))
            wall_time([PYTHON, "-m", "pipeline", "upsert", "--source-dir", str(source)])  # seeds the data
            data = sample_data.write(tmp / "data")
            plain_env = script_environment(data, tmp)
            edits = iter(range(10_000))

            def edit_and_run() -> float:
                with (source / "train.py").open("a") as f:
                    f.write(f"# edit {next(edits)}\n")
                return wall_time(
                    [
                        PYTHON,
                        "-m",
                        "pipeline",
                        "run",
                        "--local",
                        "--source-dir",
                        str(source),
                        "--output-dir",
                        str(tmp / "jobs"),
                    ]
                )

            baseline = "python train.py alone (baseline)"
            medians = interleaved(
                {
                    baseline: lambda: wall_time([PYTHON, str(source / "train.py")], plain_env),
                    "edit + python -m pipeline run --local": edit_and_run,
                },
                runs=runs,
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
    report("Local loop: edit train.py, run the fresh definition here", medians, baseline, runs)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
