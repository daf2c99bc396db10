"""The examples/ pipelines, written as public SageMaker code is, run here unmodified (run --local)."""

from __future__ import annotations

from pathlib import Path

import boto3
from support import BUCKET, REGION, ROOT, run_cli

ABALONE = ROOT / "examples" / "abalone"


def seed_abalone() -> None:
    body = (ABALONE / "data" / "abalone-dataset.csv").read_bytes()
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key="test-pipeline/abalone/abalone-dataset.csv", Body=body
    )


def step_lines(output: str) -> dict[str, str]:
    """``step NAME: STATUS`` lines, the last status of each step."""
    found = {}
    for line in output.splitlines():
        if line.startswith("step ") and ": " in line:
            name, _, rest = line.removeprefix("step ").partition(": ")
            found[name] = rest.split(":")[0]
    return found


def test_the_abalone_template_runs_preprocess_train_evaluate_gate_register(aws_env, tmp_path: Path):
    seed_abalone()
    opt_ml_before = Path("/opt/ml").exists()
    done = run_cli("run", "--local", "--source-dir", str(ABALONE), "--output-dir", str(tmp_path), timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    steps = step_lines(output)
    for name in ("PreprocessAbaloneData", "TrainAbaloneModel", "EvaluateAbaloneModel", "CheckMSEAbaloneEvaluation"):
        assert steps[name] == "Succeeded", (name, output[-4000:])
    assert steps["RegisterAbaloneModel-RegisterModel"] == "Succeeded"
    sm = boto3.client("sagemaker", region_name=REGION)
    (package,) = sm.list_model_packages(ModelPackageGroupName="test-pipeline")["ModelPackageSummaryList"]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert Path("/opt/ml").exists() == opt_ml_before  # the scripts' /opt/ml paths were the jobs' own


def test_the_abalone_gate_fails_the_run_above_the_threshold(aws_env, tmp_path: Path):
    seed_abalone()
    done = run_cli(
        "run",
        "--local",
        "--source-dir",
        str(ABALONE),
        "--output-dir",
        str(tmp_path),
        "--param",
        "MseThreshold=0.0001",
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-4000:]
    steps = step_lines(output)
    assert steps["CheckMSEAbaloneEvaluation"] == "Succeeded"  # as SageMaker: the condition ran
    assert steps["AbaloneMSEFail"] == "Failed"
    assert "test MSE" in output and "is above 0.0001" in output
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
