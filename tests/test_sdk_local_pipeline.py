"""The whole DAG both ways: ``run --local`` (Docker-free) and the SDK's ``LocalPipelineSession`` (the
framework image, through the Docker API and docker-compose) give the same step outcomes and metrics,
on both branches of the gate. S3 is a moto server for both.

One difference is forced on the SDK's side: ``LocalPipelineSession`` refuses to start a pipeline
holding a RegisterModel step, so there the gate's if-branch creates the same Model (CreateModel:
image, artifact, environment) under the step's name, and that model is compared with the package
``run --local`` registers. Slow (two pipelines per case, four containers), so marked ``container``.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import sdk_local
from support import BUCKET, PROJECT_SRC, REGION, ROLE_ARN, run_cli

from pipeline.definition import contract, settings, sourcedir
from pipeline.local.metrics import parse_metrics

pytestmark = pytest.mark.container

SOURCE = PROJECT_SRC
PIPELINE = "test-pipeline"  # the aws_env fixture's PIPELINE_NAME
THRESHOLD = "MinAccuracy"
# The SDK's name for the step that stands in for Register-RegisterModel (see the module docstring).
STAND_IN = {"Register-CreateModel": "Register-RegisterModel"}
# run --local's verdict lines: "step NAME: STATUS[: detail]".
VERDICT = re.compile(r"^step (?P<name>\S+): (?P<status>Succeeded|Failed|Stopped)(?:: (?P<detail>.*))?$")
METRIC_LINE = re.compile(r"^  (?P<name>\S+) = (?P<value>\S+)$")


def ours(threshold: float, work: Path) -> dict[str, Any]:
    """``run --local`` of the pipeline ``upsert`` deployed: verdicts, gate outcome, training metrics."""
    done = run_cli("run", "--local", "--param", f"{THRESHOLD}={threshold}", "--output-dir", str(work), timeout=300)
    lines = done.stdout.splitlines()
    verdicts = {m["name"]: (m["status"], m["detail"]) for m in map(VERDICT.match, lines) if m}
    return {
        "exit": done.returncode,
        "statuses": {name: status for name, (status, _) in verdicts.items()},
        "details": {name: detail for name, (_, detail) in verdicts.items()},
        "met": "step Gate: Succeeded: condition met: running Register-RegisterModel" in lines,
        "not met": "step Gate: Succeeded: condition not met: running Fail" in lines,
        "metrics": {m["name"]: float(m["value"]) for m in map(METRIC_LINE.match, lines) if m},
        "output": done.stdout + done.stderr,
    }


def sdk(image: str, docker_host: str, endpoint: str, threshold: float, work: Path) -> sdk_local.PipelineResult:
    """The same pipeline under ``LocalPipelineSession``, on the same code archive and data."""
    deployed = settings.Settings(PIPELINE, REGION, ROLE_ARN, BUCKET, image)
    code_uri = sourcedir.s3_uri(deployed.code_prefix, sourcedir.read(SOURCE).archive)
    return sdk_local.run_pipeline(
        sdk_local.project_pipeline(deployed, SOURCE, code_uri),
        images=(image,),
        parameters={
            "ImageUri": image,
            "TrainingInstanceType": "local",
            "EvaluationInstanceType": "local",
            THRESHOLD: threshold,
        },
        docker_host=docker_host,
        work_dir=work,
        s3_endpoint_url=endpoint,
        default_bucket=BUCKET,
    )


def reports() -> dict[str, dict[str, Any]]:
    """Every evaluation.json in the bucket, by the training job it evaluated."""
    s3 = boto3.client("s3", region_name=REGION)
    found = {}
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PIPELINE}/models/")["Contents"]:
        job, _, rest = item["Key"].removeprefix(f"{PIPELINE}/models/").partition("/")
        if rest == "evaluation/evaluation.json":
            found[job] = json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
    return found


def members(uri: str) -> set[str]:
    """The names in a model.tar.gz on S3."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return set(tar.getnames())


@pytest.fixture
def both(request, image, docker_host, moto_endpoint, aws_env, tmp_path) -> tuple[dict[str, Any], Any, float, str]:
    """One gate threshold, run both ways after ``upsert`` seeded the data and the code archive."""
    threshold = request.param
    assert run_cli("upsert").returncode == 0
    local = ours(threshold, tmp_path / "ours")
    assert local["statuses"], local["output"]
    result = sdk(image, docker_host, moto_endpoint, threshold, tmp_path / "sdk")
    assert result.error is None, f"{result.error}\n{result.log[-4000:]}"
    # docker-compose v1 can report a failed container as a success; the engine's exit codes cannot.
    assert set(result.exit_codes.values()) == {0}, result.container_logs
    return local, result, threshold, image


def _same_outcomes(local: dict[str, Any], result: sdk_local.PipelineResult) -> None:
    statuses = {STAND_IN.get(name, name): step["StepStatus"] for name, step in result.steps.items()}
    assert local["statuses"] == statuses, local["output"]
    assert local["exit"] == (0 if result.status == "Succeeded" else 1), local["output"]


def _same_metrics(local: dict[str, Any], result: sdk_local.PipelineResult) -> None:
    """Training metrics by the contract's regexes over the training container's log; the
    evaluation report as each run's Evaluate step wrote it to S3."""
    (host,) = result.training_hosts
    definitions = contract.load(SOURCE).metric_definitions()
    assert local["metrics"] == pytest.approx(parse_metrics(result.container_logs[host], definitions), rel=1e-6)
    assert set(local["metrics"]) == {d["Name"] for d in definitions}
    found = reports()
    (ours_job,) = [job for job in found if job.startswith("pipelines-local-")]
    (sdk_job,) = [job for job in found if job.startswith("Train-")]
    assert _nested_equal(found[ours_job], found[sdk_job]), found


def _nested_equal(left: Any, right: Any) -> bool:
    """Equal JSON documents, numbers to 1e-9 (pytest.approx takes no nested dicts)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_nested_equal(left[k], right[k]) for k in left)
    return left == pytest.approx(right, rel=1e-9)


@pytest.mark.parametrize("both", [0.7], indirect=True, ids=["met"])
def test_gate_met_same_outcomes_metrics_and_model(both):
    local, result, _, image = both
    _same_outcomes(local, result)
    assert result.steps["Gate"]["Metadata"]["Condition"]["Outcome"] is True and local["met"]
    _same_metrics(local, result)
    # The model the SDK created is the one run --local registered: same image parameter, same
    # serving environment (the content-addressed code archive), each run's own trained artifact.
    sm = boto3.client("sagemaker", region_name=REGION)
    (package,) = sm.list_model_packages(ModelPackageGroupName=PIPELINE)["ModelPackageSummaryList"]
    (registered,) = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])["InferenceSpecification"][
        "Containers"
    ]
    created = result.models["Register-CreateModel"]["PrimaryContainer"]
    assert registered["Environment"] == created["Environment"]
    assert created["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("/sourcedir.tar.gz")
    assert created["Image"] == image
    for container in (registered, created):
        assert re.fullmatch(rf"s3://{BUCKET}/{PIPELINE}/models/[^/]+/output/model\.tar\.gz", container["ModelDataUrl"])
    assert members(registered["ModelDataUrl"]) == members(created["ModelDataUrl"])


@pytest.mark.parametrize("both", [0.99], indirect=True, ids=["not-met"])
def test_gate_not_met_same_outcomes_metrics_and_failure(both):
    local, result, threshold, _ = both
    _same_outcomes(local, result)
    assert result.steps["Gate"]["Metadata"]["Condition"]["Outcome"] is False and local["not met"]
    assert local["details"]["Fail"] == result.steps["Fail"]["FailureReason"]
    assert str(threshold) in local["details"]["Fail"]
    _same_metrics(local, result)
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert result.models == {}
