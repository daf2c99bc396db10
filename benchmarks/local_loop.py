"""The edit -> ``run --local`` -> metrics loop, against running the training script alone.

Each round edits ``train.py`` (so the code archive and the definition change),
then runs the freshly built definition locally, with S3 on a moto server on
127.0.0.1. A real SageMaker training job takes minutes to start.
Run: ``.venv/bin/python benchmarks/local_loop.py [runs]``
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, wall_time

sys.path.insert(0, str(ROOT / "tests"))
from moto_server import account_environment, moto_server  # the tests' AWS stand-in

from pipeline.definition import sample_data


def main(runs: int) -> None:
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as scratch:
        os.environ.update(
            account_environment(endpoint),
            SAGEMAKER_ROLE_ARN="arn:aws:iam::123456789012:role/Bench",
            SAGEMAKER_BUCKET="bench-bucket",
            IMAGE_URI="123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:bench",
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-bucket")
        tmp = Path(scratch)
        source = tmp / "src"
        shutil.copytree(ROOT / "user_src", source, ignore=shutil.ignore_patterns("__pycache__"))
        wall_time([PYTHON, "-m", "pipeline", "upsert", "--source-dir", str(source)])  # seeds the data
        data = sample_data.write(tmp / "data")
        plain_env = script_environment(data, tmp)
        edits = iter(range(10_000))
        run_local = [PYTHON, "-m", "pipeline", "run", "--local", "--source-dir", str(source)]
        run_local += ["--output-dir", str(tmp / "jobs")]

        def edit_and_run() -> float:
            with (source / "train.py").open("a") as f:
                f.write(f"# edit {next(edits)}\n")
            return wall_time(run_local)

        baseline = "python train.py alone (baseline)"
        medians = interleaved(
            {
                baseline: lambda: wall_time([PYTHON, str(source / "train.py")], plain_env),
                "edit + python -m pipeline run --local": edit_and_run,
            },
            runs=runs,
        )
    report("Local loop: edit train.py, run the fresh definition here", medians, baseline, runs)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
