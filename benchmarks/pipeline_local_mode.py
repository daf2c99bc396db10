"""``run --local`` against the SDK's ``LocalPipelineSession`` on the same pipelines, and the plain scripts.

Rows: ``train.py`` then ``evaluate.py`` run back to back by hand (baseline: the scripts' own
work), then the train-only pipeline and the whole DAG (train, evaluate, gate, register), each by
``run --local`` (no container) and by ``LocalPipelineSession`` (the framework image through
podman's Docker API and docker-compose, as ``tests/test_sdk_local_pipeline.py`` runs it; its
RegisterModel becomes CreateModel, which local mode runs). S3 is a moto server on 127.0.0.1 for
both. Each is timed as a user runs it: ``run --local`` as a fresh command with its render cache
warm; the SDK as a fresh script that imports it, builds the pipeline and starts it
(``benchmarks/sdk_as_user.py``), timed from its spawn to ``start()``'s return, so the harness's
container removal is outside, and without the per-lookup schema check of the project's SDK
config that a user without a config file never pays.
Run: ``.venv/bin/python benchmarks/pipeline_local_mode.py [runs]`` (``CONTAINER_IMAGE=<ref>``
skips the image build); the table also goes to ``benchmarks/results-pipeline-local-mode.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from itertools import count
from pathlib import Path

from local_loop import source_copies
from sdk_local_mode import docker_api, framework_image
from timing import PYTHON, ROOT, interleaved, report, script_environment, until_stamped, wall_time

sys.path.insert(0, str(ROOT / "tests"))
from moto_server import account_environment, moto_server  # the tests' AWS stand-in

from pipeline.definition import sample_data, settings, sourcedir
from pipeline.definition.contract import WORKFLOW_FILE

RESULTS = Path(__file__).with_name("results-pipeline-local-mode.md")
BUCKET = "bench-bucket"
PIPELINE = "bench-pipeline"
ROLE = "arn:aws:iam::123456789012:role/Bench"
BASELINE = "python train.py && python evaluate.py (baseline)"


def sdk_run(image: str, docker_host: str, endpoint: str, source: Path, work: Path) -> Callable[[], float]:
    """One ``LocalPipelineSession`` execution of ``source``'s pipeline in a fresh process, SDK import included."""
    deployed = settings.Settings(PIPELINE, "us-east-1", ROLE, BUCKET, image)
    read = sourcedir.read(source)
    code_uri = sourcedir.s3_uri(deployed.code_prefix, read.archive)
    parameters = {"ImageUri": image, "TrainingInstanceType": "local"}
    if (source / WORKFLOW_FILE).is_file():  # the sample's DAG: Evaluate has its own instance type
        parameters["EvaluationInstanceType"] = "local"
    fields = ("pipeline_name", "region", "role_arn", "bucket", "image_uri")
    command = [PYTHON, str(ROOT / "benchmarks" / "sdk_as_user.py"), str(work / "done"), "pipeline"]
    command += ["--image", image, "--docker-host", docker_host, "--endpoint", endpoint, "--code-uri", code_uri]
    command += ["--settings", json.dumps({name: getattr(deployed, name) for name in fields})]
    command += ["--parameters", json.dumps(parameters), "--source-dir", str(source)]
    runs = count()

    def timed() -> float:
        work.mkdir(parents=True, exist_ok=True)
        return until_stamped([*command, "--work-dir", str(work / f"run-{next(runs)}")], work / "done")

    return timed


def main(runs: int) -> None:
    for name in ("sagemaker", "sagemaker.config", "sagemaker.workflow", "sagemaker.local", "botocore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    image = framework_image()
    out = io.StringIO()
    with (
        moto_server() as endpoint,
        docker_api() as docker_host,
        tempfile.TemporaryDirectory() as scratch,
        contextlib.redirect_stdout(out),
    ):
        os.environ.update(
            account_environment(endpoint),
            SAGEMAKER_ROLE_ARN=ROLE,
            SAGEMAKER_BUCKET=BUCKET,
            PIPELINE_NAME=PIPELINE,
            IMAGE_URI="123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:bench",
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        tmp = Path(scratch)
        dag, train_only = source_copies(tmp)
        for source in (dag, train_only):  # seeds the data and code, warms the render cache and job environment
            wall_time([PYTHON, "-m", "pipeline", "upsert", "--source-dir", str(source)])
            wall_time([PYTHON, "-m", "pipeline", "run", "--local", "--source-dir", str(source)], cwd=tmp)
        data = sample_data.write(tmp / "data")
        plain_env = script_environment(data, tmp / "plain")
        model_dir = tmp / "plain" / "model"

        def plain_scripts() -> float:
            seconds = wall_time([PYTHON, str(dag / "train.py")], plain_env)
            # evaluate.py reads model.tar.gz, as SageMaker hands the model to a processing job
            shutil.make_archive(str(tmp / "eval-model" / "model"), "gztar", model_dir)
            evaluate = [PYTHON, str(dag / "evaluate.py"), "--model-dir", str(tmp / "eval-model")]
            evaluate += ["--data-dir", str(data["validation"]), "--output-dir", str(tmp / "eval-out")]
            return seconds + wall_time(evaluate)

        def run_local(source: Path) -> Callable[[], float]:
            return lambda: wall_time([PYTHON, "-m", "pipeline", "run", "--local", "--source-dir", str(source)], cwd=tmp)

        medians = interleaved(
            {
                BASELINE: plain_scripts,
                "run --local, train-only pipeline": run_local(train_only),
                "LocalPipelineSession, train-only pipeline": sdk_run(
                    image, docker_host, endpoint, train_only, tmp / "sdk-train"
                ),
                "run --local, whole DAG": run_local(dag),
                "LocalPipelineSession, whole DAG": sdk_run(image, docker_host, endpoint, dag, tmp / "sdk-dag"),
            },
            runs=runs,
        )
        report("run --local vs LocalPipelineSession, S3 on moto", medians, BASELINE, runs)
        for shape in ("train-only pipeline", "whole DAG"):
            sdk, ours = medians[f"LocalPipelineSession, {shape}"], medians[f"run --local, {shape}"]
            print(f"\n- {shape}: LocalPipelineSession / run --local = {sdk / ours:.2f}x ({sdk - ours:.2f} s more)")
    text = out.getvalue()
    print(text)
    title = "# run --local vs LocalPipelineSession"
    RESULTS.write_text(f"{title}\n\nWritten by `benchmarks/pipeline_local_mode.py {runs}`.\n{text}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
