"""``run --local``: the deployed definition executed here, against a moto server."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import boto3
import pytest
from support import BUCKET, PROBE_SRC, PROJECT_SRC, REGION, probe_reports, run_cli

from pipeline.definition import expressions
from pipeline.errors import ParameterError


def s3_keys(prefix: str) -> list[str]:
    s3 = boto3.client("s3", region_name=REGION)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def deployed_definition() -> dict:
    sm = boto3.client("sagemaker", region_name=REGION)
    return json.loads(sm.describe_pipeline(PipelineName="test-pipeline")["PipelineDefinition"])


def probe_with(tmp_path, contract_lines: str):
    """A copy of the probe whose contract has more in it (the job's Environment, say)."""
    source = tmp_path / "probe"
    shutil.copytree(PROBE_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    with (source / "training.toml").open("a") as contract:
        contract.write(contract_lines)
    return source


def test_upsert_then_run_local_deployed_uploads_the_model_and_parses_metrics(aws_env, tmp_path):
    # The probe: user_src's definition now has an Evaluate (processing) step, which runs only on SageMaker.
    assert run_cli("upsert", "--source-dir", str(PROBE_SRC)).returncode == 0
    done = run_cli("run", "--local", "--deployed", "--param", "MaxIter=20", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (model_key,) = [k for k in s3_keys("test-pipeline/models/") if k.endswith("/output/model.tar.gz")]
    job_name = model_key.split("/")[2]
    assert job_name.startswith("pipelines-local-") and job_name.endswith("-Train")
    assert f"s3://{BUCKET}/{model_key}" in done.stdout
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=model_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["probe.txt"]
    assert "  validation:accuracy = 0.5" in done.stdout
    assert "job environment: Python" in done.stdout  # the job ran in the image's packages


def test_what_the_script_sees_is_what_the_definition_deploys(aws_env, tmp_path):
    assert run_cli("upsert", "--source-dir", str(PROBE_SRC)).returncode == 0
    done = run_cli("run", "--local", "--deployed", "--param", "MaxIter=7", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (seen,) = probe_reports(done.stdout)
    definition = deployed_definition()
    values = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]} | {"MaxIter": 7}
    args = expressions.evaluate(definition["Steps"][0]["Arguments"], values, {})
    deployed = dict(args["HyperParameters"])
    # The reserved names reach the toolkit, which turns them into these variables.
    assert seen["env"]["SM_MODULE_DIR"] == json.loads(deployed.pop("sagemaker_submit_directory"))
    assert seen["env"]["SM_USER_ENTRY_POINT"] == json.loads(deployed.pop("sagemaker_program"))
    for reserved in ("sagemaker_region", "sagemaker_container_log_level"):
        deployed.pop(reserved)

    def decoded(text: str):
        try:
            return json.loads(text)
        except ValueError:
            return text

    assert json.loads(seen["env"]["SM_HPS"]) == {name: decoded(text) for name, text in deployed.items()}
    assert json.loads(seen["env"]["SM_HPS"])["max-iter"] == 7
    pairs = dict(zip(seen["argv"][::2], seen["argv"][1::2], strict=True))
    assert pairs["--max-iter"] == "7"
    channels = {c["ChannelName"] for c in args["InputDataConfig"]}
    assert set(json.loads(seen["env"]["SM_CHANNELS"])) == channels
    training_env = json.loads(seen["env"]["SM_TRAINING_ENV"])
    assert training_env["current_instance_type"] == values["TrainingInstanceType"]


def test_a_failing_script_fails_the_run_with_its_reason(aws_env, tmp_path):
    # Only the definition's Environment reaches the job, not the calling shell's.
    source = probe_with(tmp_path, '\n[environment]\nPROBE_FAIL = "raise"\n')
    assert run_cli("upsert", "--source-dir", str(source)).returncode == 0
    done = run_cli("run", "--local", "--deployed", "--output-dir", str(tmp_path / "jobs"))
    assert done.returncode == 1
    assert "step Train: Failed" in done.stdout
    assert "probe asked to fail" in done.stdout
    assert s3_keys("test-pipeline/models/") == []


def test_missing_channel_data_is_one_line(aws_env, tmp_path):
    done = run_cli("run", "--local", "--source-dir", str(PROBE_SRC), "--output-dir", str(tmp_path))
    assert done.returncode == 2
    assert "holds no objects: upload the data (upsert seeds the sample data" in done.stderr
    assert list(tmp_path.iterdir()) == []  # the step never started: no job folder


def test_fresh_definition_runs_the_local_tree_without_deploying_it(aws_env, tmp_path):
    assert run_cli("upsert").returncode == 0  # the deployed pipeline runs user_src
    done = run_cli("run", "--local", "--source-dir", str(PROBE_SRC), "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (seen,) = probe_reports(done.stdout)
    code_keys = s3_keys("test-pipeline/code/")
    assert len(code_keys) == 2  # the deployed tree's archive and the probe's
    assert seen["env"]["SM_MODULE_DIR"] in {f"s3://{BUCKET}/{key}" for key in code_keys}
    assert deployed_definition() == json.loads(run_cli("definition").stdout)  # nothing was redeployed


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--deployed"], "run needs --local"),
        (["run", "--local", "--deployed"], "pipeline test-pipeline is not deployed"),
        (["run", "--local", "--param", "Nope=1"], "unknown parameter 'Nope'"),
    ],
)
def test_run_bad_input_is_one_line(aws_env, args, message):
    done = run_cli(*args, "--source-dir", str(PROBE_SRC))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_expressions_it_cannot_evaluate_are_named():
    with pytest.raises(expressions.UnsupportedExpression, match=r"Steps\.Other\.Properties"):
        expressions.evaluate({"Get": "Steps.Other.Properties.ModelArtifacts"}, {}, {})
    with pytest.raises(expressions.UnsupportedExpression, match="Std:JsonGet"):
        expressions.evaluate({"x": {"Std:JsonGet": {}}}, {}, {})
    joined = {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Parameters.P"}, 3]}}
    assert expressions.evaluate(joined, {"P": "k"}, {}) == "s3://b/k/3"


def test_steps_it_cannot_run_are_named_before_anything_runs():
    from pipeline.local import executor as local_run

    definition = {
        "Parameters": [{"Name": "MaxIter", "Type": "Integer", "DefaultValue": 100}],
        "Steps": [{"Name": "Train", "Type": "Training"}, {"Name": "Notify", "Type": "Lambda"}],
    }
    with pytest.raises(expressions.UnsupportedExpression, match="step Notify has type Lambda, which run --local"):
        local_run.check_runnable(definition, [])
    definition["Steps"] = definition["Steps"][:1]
    assert local_run.check_runnable(definition, ["MaxIter=7"]) == {"MaxIter": 7}
    with pytest.raises(ParameterError, match="expects int"):
        local_run.check_runnable(definition, ["MaxIter=seven"])


# --- the whole DAG: train, evaluate, gate, then register or fail ---------------------------------


def model_packages(group: str) -> list[dict]:
    sm = boto3.client("sagemaker", region_name=REGION)
    return sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]


def test_the_gate_met_registers_the_model_with_its_metrics(aws_env, tmp_path):
    assert run_cli("upsert").returncode == 0
    done = run_cli("run", "--local", "--deployed", "--param", "MaxIter=20", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("step Train: Succeeded", "step Evaluate: Succeeded", "step Gate: Succeeded: condition met"):
        assert line in done.stdout
    (package,) = model_packages("test-pipeline")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    sm = boto3.client("sagemaker", region_name=REGION)
    described = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    statistics = described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = statistics.removeprefix("s3://").partition("/")
    report = json.loads(boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read())
    accuracy = report["binary_classification_metrics"]["accuracy"]["value"]
    assert 0.7 <= accuracy <= 1
    (container,) = described["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"].endswith("/output/model.tar.gz")
    assert container["Image"] == aws_env["IMAGE_URI"]


def test_the_gate_not_met_fails_the_run_and_registers_nothing(aws_env, tmp_path):
    assert run_cli("upsert").returncode == 0
    done = run_cli(
        "run", "--local", "--deployed", "--param", "MinAccuracy=1.01", "--param", "MaxIter=20",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step Gate: Succeeded: condition not met: running Fail" in done.stdout
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("step Fail: Failed: ")]
    assert "binary_classification_metrics.accuracy.value = 0." in failed and "threshold 1.01" in failed
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_after_an_edit_run_local_runs_the_whole_dag_on_the_new_code(aws_env, tmp_path):
    """The loop while iterating: upsert once, edit, run --local (the new archive is uploaded by the run)."""
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    assert run_cli("upsert", "--source-dir", str(source)).returncode == 0
    (source / "train.py").write_text((source / "train.py").read_text() + "\n# an edit\n")
    done = run_cli("run", "--local", "--source-dir", str(source), "--output-dir", str(tmp_path / "jobs"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step Evaluate: Succeeded" in done.stdout and "step Register-RegisterModel: Succeeded" in done.stdout


def test_a_gate_that_cannot_be_evaluated_fails_its_step_not_the_input(aws_env, tmp_path):
    """A metric path the report lacks is a failed condition step, as on SageMaker: exit 1, not 2."""
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    workflow = (source / "workflow.py").read_text().replace("accuracy.value", "accuracy.nope")
    (source / "workflow.py").write_text(workflow)
    assert run_cli("upsert", "--source-dir", str(source)).returncode == 0
    done = run_cli("run", "--local", "--deployed", "--output-dir", str(tmp_path / "jobs"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step Gate: Failed: cannot evaluate the condition" in done.stdout
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
