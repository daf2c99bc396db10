"""The CLI against a real moto server on 127.0.0.1: upsert, diff, start, status and bad input."""

from __future__ import annotations

import json
import re
import shutil

import boto3
import pytest
from moto_server import free_port
from support import BUCKET, PROJECT_SRC, REGION, ROOT, run_cli


def s3_objects() -> dict[str, tuple[str, str]]:
    s3 = boto3.client("s3", region_name=REGION)
    contents = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: (o["ETag"], str(o["LastModified"])) for o in contents}


def pipelines() -> list[str]:
    sm = boto3.client("sagemaker", region_name=REGION)
    return [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]]


def test_upsert_creates_then_is_a_no_op(aws_env):
    first = run_cli("upsert")
    assert first.returncode == 0, first.stderr
    assert "created pipeline test-pipeline" in first.stdout
    assert first.stderr == ""
    objects = s3_objects()
    code = [k for k in objects if k.endswith("/sourcedir.tar.gz")]
    assert len(code) == 1 and code[0].startswith("test-pipeline/code/")
    assert "test-pipeline/data/train/train.csv" in objects  # seeded, so a first run from Studio works
    sm = boto3.client("sagemaker", region_name=REGION)
    described = sm.describe_pipeline(PipelineName="test-pipeline")

    second = run_cli("upsert")
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout
    assert "uploaded" not in second.stdout
    assert s3_objects() == objects
    again = sm.describe_pipeline(PipelineName="test-pipeline")
    assert again["PipelineDefinition"] == described["PipelineDefinition"]
    assert again["LastModifiedTime"] == described["LastModifiedTime"]


def test_code_change_updates_only_the_code_uri(aws_env, tmp_path):
    assert run_cli("upsert").returncode == 0
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "train.py").write_text((source / "train.py").read_text() + "\n# tweak\n")
    done = run_cli("upsert", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    changed = [line.strip() for line in done.stdout.splitlines() if line.startswith("  ")]
    (uploaded,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("uploaded")]
    # Train's submit directory, Evaluate's code input and the registered model's code: one URI.
    assert len(changed) == 3 and all(line.startswith("~ Steps[") and uploaded in line for line in changed)
    assert any(".HyperParameters.sagemaker_submit_directory" in line for line in changed)


def test_diff_is_right_both_ways(aws_env):
    missing = run_cli("diff")
    assert missing.returncode == 1
    assert "does not exist" in missing.stdout
    assert run_cli("upsert").returncode == 0
    same = run_cli("diff")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "up to date" in same.stdout
    other_image = aws_env["IMAGE_URI"].rsplit(":", 1)[0] + ":feedbeef"
    changed = run_cli("diff", "--image-uri", other_image)
    assert changed.returncode == 1
    assert f'~ Parameters[ImageUri].DefaultValue: "{aws_env["IMAGE_URI"]}" -> "{other_image}"' in changed.stdout


def test_start_records_overrides_and_status_lists_it(aws_env):
    assert run_cli("upsert").returncode == 0
    done = run_cli("start", "--param", "MaxIter=250", "--param", "LearningRate=0.05", "--wait", "--poll-seconds", "0.1")
    assert done.returncode == 0, done.stderr
    assert "execution Succeeded" in done.stdout
    arn = done.stdout.split("started ", 1)[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    recorded = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    values = {p["Name"]: p["Value"] for p in recorded}
    fingerprint = values.pop("DataFingerprint")  # start fills it in from the data prefixes
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert values == {"MaxIter": "250", "LearningRate": "0.05"}
    status = run_cli("status")
    assert status.returncode == 0
    assert arn in status.stdout and "Succeeded" in status.stdout


def _one_line_error(done, *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args, unset, fragments",
    [
        (["upsert"], "SAGEMAKER_ROLE_ARN", ["missing role arn", "--role-arn", "SAGEMAKER_ROLE_ARN"]),
        (["upsert"], "SAGEMAKER_BUCKET", ["missing bucket", "--bucket", "SAGEMAKER_BUCKET"]),
        (["upsert", "--image-uri", "custom-framework:latest"], None, ["malformed image uri", "IMAGE_URI"]),
        (["upsert", "--role-arn", "SageMakerRole"], None, ["malformed role arn"]),
        (["upsert", "--bucket", "s3://bucket"], None, ["malformed bucket", "not an s3:// URI"]),
        (["upsert", "--bucket", "no-such-bucket"], None, ["bucket no-such-bucket does not exist", "--bucket"]),
        (["upsert", "--tags", "team"], None, ["malformed tag 'team'"]),
    ],
)
def test_bad_input_is_one_line_and_deploys_nothing(aws_env, monkeypatch, args, unset, fragments):
    env = dict(aws_env)
    if unset:
        env[unset] = ""
    done = run_cli(*args, env=env)
    _one_line_error(done, *fragments)
    assert pipelines() == []
    assert s3_objects() == {}


@pytest.mark.parametrize(
    "params, fragments",
    [
        (["Epochs=3"], ["unknown parameter 'Epochs'", "MaxIter", "MinAccuracy"]),
        (["MaxIter=many"], ["parameter MaxIter expects int, got 'many'"]),
        (["TrainingInstanceCount=0"], ["TrainingInstanceCount must be between 1 and 100"]),
        (["TrainData=/local/path"], ["TrainData must be an s3://BUCKET/PREFIX URI"]),
        (["TrainData=s3://"], ["TrainData must be an s3://BUCKET/PREFIX URI"]),
        (["EvaluationInstanceType=m5.large"], ["EvaluationInstanceType must look like ml.m5.large"]),
        (["MinAccuracy=high"], ["MinAccuracy expects a finite float"]),
        (["MaxIter"], ["is not NAME=VALUE"]),
        (["MaxIter=1", "MaxIter=2"], ["--param MaxIter is given twice"]),
        (["LearningRate=nan"], ["LearningRate expects a finite float"]),
        (["MaxIter=\u0661"], ["MaxIter expects int"]),
    ],
)
def test_start_checks_params_against_the_deployed_definition_and_starts_nothing(aws_env, params, fragments):
    """The deployed pipeline's parameters, whatever DAG made them (MinAccuracy is the pipeline module's)."""
    assert run_cli("upsert").returncode == 0
    objects = s3_objects()
    done = run_cli("start", *(arg for pair in params for arg in ("--param", pair)))
    _one_line_error(done, *fragments)
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_pipeline_executions(PipelineName="test-pipeline")["PipelineExecutionSummaries"] == []
    assert s3_objects() == objects


def test_start_before_any_deploy_is_one_line(aws_env):
    _one_line_error(run_cli("start", "--param", "MaxIter=3"), "is not deployed", "run upsert first")


def test_unreachable_endpoint_is_one_line_and_quick(aws_env):
    closed = f"http://127.0.0.1:{free_port()}"
    done = run_cli("upsert", env={"AWS_ENDPOINT_URL": closed}, timeout=60)
    _one_line_error(done, "cannot reach the AWS endpoint", "AWS_ENDPOINT_URL")


def test_train_local_aws_errors_are_one_line(aws_env, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    done = run_cli(
        "train-local", "--train", "s3://b/t/", "--output-dir", str(tmp_path), env={"AWS_ENDPOINT_URL": closed}
    )
    _one_line_error(done, "cannot reach the AWS endpoint")


def test_status_ignores_settings_it_does_not_use(aws_env):
    assert run_cli("upsert").returncode == 0
    done = run_cli("status", env={"SAGEMAKER_BUCKET": "s3://not-a-bucket-name", "IMAGE_URI": "nope"})
    assert done.returncode == 0, done.stderr
    assert "no executions of test-pipeline" in done.stdout


def test_parameter_errors_come_before_any_aws_call(aws_env, tmp_path):
    """run --local checks --param against the rendered definition before it reaches AWS."""
    closed = f"http://127.0.0.1:{free_port()}"
    done = run_cli(
        "run", "--local", "--param", "Nope=1", "--output-dir", str(tmp_path), env={"AWS_ENDPOINT_URL": closed}
    )
    _one_line_error(done, "unknown parameter 'Nope'", "MinAccuracy")
    assert list(tmp_path.iterdir()) == []


def test_verbose_lets_sdk_logs_through(aws_env):
    quiet = run_cli("upsert")
    loud = run_cli("--verbose", "upsert")
    assert quiet.stderr == ""
    assert loud.returncode == 0 and "INFO" in loud.stderr


def test_tags_are_applied_on_create_and_on_update(aws_env):
    assert run_cli("upsert", "--tags", "team=ml").returncode == 0
    sm = boto3.client("sagemaker", region_name=REGION)
    arn = sm.describe_pipeline(PipelineName="test-pipeline")["PipelineArn"]
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} == {"team": "ml"}
    done = run_cli("upsert", "--tags", "team=ml,cost-center=42")
    assert done.returncode == 0, done.stderr
    assert '~ Tags.cost-center: "42"' in done.stdout
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} == {"team": "ml", "cost-center": "42"}
    again = run_cli("upsert", "--tags", "team=ml,cost-center=42")
    assert "nothing changed" in again.stdout


def test_train_local_reads_s3_channels_through_boto3(aws_env, tmp_path):
    from pipeline.definition import sample_data

    s3 = boto3.client("s3", region_name=REGION)
    for channel, text in sample_data.channel_files().items():
        s3.put_object(Bucket=BUCKET, Key=f"input/{channel}/part-0.csv", Body=text.encode())
    done = run_cli(
        "train-local",
        "--train", f"s3://{BUCKET}/input/train/",
        "--validation", f"s3://{BUCKET}/input/validation/",
        "--output-dir", str(tmp_path),
        "--hp", "max-iter=10",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation:accuracy = " in done.stdout


# How boto3 operations map to the IAM actions that authorise them.
S3_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject"}


def test_the_deploy_role_allows_every_call_the_deploy_makes(aws_env, capsys):
    """Record the AWS operations of upsert/diff/start/status and check each against the policy."""
    from support import ROOT

    from pipeline import cli

    called: set[str] = set()

    def record(model, **_):
        service = model.service_model.service_name
        called.add(S3_ACTIONS.get(model.name, f"{service}:{model.name}"))

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", record)
    try:
        for args in (
            ["upsert"],
            ["upsert", "--tags", "team=ml"],
            ["diff", "--tags", "team=ml"],
            ["start", "--wait", "--poll-seconds", "0.01"],
        ):
            assert cli.main(args) == 0, capsys.readouterr()
        assert cli.main(["status"]) == 0
    finally:
        boto3.DEFAULT_SESSION = None
    policy = json.loads((ROOT / ".github" / "aws" / "deploy-role-policy.json").read_text())
    granted = {
        a
        for s in policy["Statement"]
        if s["Effect"] == "Allow"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"s3:ListBucket", "s3:PutObject", "sagemaker:CreatePipeline", "sagemaker:ListTags"} <= called
    assert called - granted == set()


# --- plan, then apply ----------------------------------------------------------------------------


def test_diff_shows_every_write_upsert_makes_then_upsert_makes_them(aws_env):
    first = run_cli("diff")
    assert first.returncode == 1
    lines = first.stdout.splitlines()
    assert "pipeline test-pipeline does not exist: upsert would create it" in lines
    uploads = sorted(line.split()[2] for line in lines if line.startswith("+ upload "))
    assert len(uploads) == 3  # the code archive and the two seeded channels
    assert "+ create pipeline test-pipeline" in lines
    assert s3_objects() == {} and pipelines() == []  # diff wrote nothing
    done = run_cli("upsert")
    assert done.returncode == 0, done.stderr
    assert sorted(line.split()[1] for line in done.stdout.splitlines() if line.startswith("uploaded ")) == uploads
    assert sorted(f"s3://{BUCKET}/{key}" for key in s3_objects()) == uploads
    assert run_cli("diff").returncode == 0


def test_after_a_code_change_diff_names_the_archive_upsert_uploads(aws_env, tmp_path):
    assert run_cli("upsert").returncode == 0
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "train.py").write_text((source / "train.py").read_text() + "\n# tweak\n")
    diff = run_cli("diff", "--source-dir", str(source))
    assert diff.returncode == 1
    (upload,) = [line for line in diff.stdout.splitlines() if line.startswith("+ upload ")]
    archive = upload.split()[2]
    assert re.fullmatch(rf"s3://{BUCKET}/test-pipeline/code/[0-9a-f]{{16}}/sourcedir\.tar\.gz", archive)
    assert "(code archive, " in upload
    assert f'-> "\\"{archive}\\""' in diff.stdout
    done = run_cli("upsert", "--source-dir", str(source))
    assert f"uploaded {archive}" in done.stdout


def test_upsert_refuses_when_the_pipeline_changed_after_its_plan(aws_env, tmp_path):
    """Two deploys racing: the one whose plan is stale writes nothing and says so."""
    from pipeline.cli import common, deploy_commands
    from pipeline.cli.parser import parser
    from pipeline.definition.render import render
    from pipeline.deploy import apply
    from pipeline.errors import AwsError

    assert run_cli("upsert").returncode == 0
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "train.py").write_text((source / "train.py").read_text() + "\n# mine\n")
    args = parser().parse_args(["upsert", "--source-dir", str(source)])
    settings, mine = common.settings(args), common.source(args)
    stale, sm, s3 = deploy_commands._plan(settings, render(settings, mine), mine.contract, seed_data=True)
    other = tmp_path / "other"
    shutil.copytree(source, other)
    (other / "train.py").write_text((other / "train.py").read_text() + "\n# theirs\n")
    assert run_cli("upsert", "--source-dir", str(other)).returncode == 0  # the other deploy lands first
    before = s3_objects()
    with pytest.raises(AwsError, match="changed while this upsert was planning"):
        apply.apply(stale, sm, s3)
    assert s3_objects() == before


# --- step caching sees changed data ----------------------------------------------------------------


def test_the_data_fingerprint_changes_with_the_data_and_only_then(aws_env):
    from pipeline.definition.expressions import evaluate
    from pipeline.deploy.fingerprint import fingerprint

    s3 = boto3.client("s3", region_name=REGION)
    prefixes = [f"s3://{BUCKET}/data/train/", f"s3://{BUCKET}/data/validation/"]
    s3.put_object(Bucket=BUCKET, Key="data/train/a.csv", Body=b"x,label\n1,0\n")
    s3.put_object(Bucket=BUCKET, Key="data/validation/a.csv", Body=b"x,label\n2,1\n")
    same = fingerprint(s3, prefixes)
    s3.put_object(Bucket=BUCKET, Key="data/train/a.csv", Body=b"x,label\n1,0\n")  # the same bytes again
    assert fingerprint(s3, prefixes) == same
    s3.put_object(Bucket=BUCKET, Key="data/train/a.csv", Body=b"x,label\n1,1\n")  # new data, same key
    changed = fingerprint(s3, prefixes)
    assert changed != same
    # The fingerprint reaches the step's arguments, which are what the cache key compares.
    definition = json.loads(run_cli("definition", "--offline").stdout)
    step = definition["Steps"][0]["Arguments"]
    base = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    args_same = evaluate(step, {**base, "DataFingerprint": same}, {})
    assert evaluate(step, {**base, "DataFingerprint": same}, {}) == args_same
    assert evaluate(step, {**base, "DataFingerprint": changed}, {}) != args_same


def test_start_passes_a_new_fingerprint_after_the_data_changed(aws_env):
    assert run_cli("upsert").returncode == 0
    sm = boto3.client("sagemaker", region_name=REGION)

    def started_fingerprint() -> str:
        done = run_cli("start")
        assert done.returncode == 0, done.stderr
        arn = done.stdout.split("started ", 1)[1].split()[0]
        recorded = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
        return {p["Name"]: p["Value"] for p in recorded}["DataFingerprint"]

    first = started_fingerprint()
    assert started_fingerprint() == first
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="test-pipeline/data/train/more.csv", Body=b"f0,label\n1,0\n")
    assert started_fingerprint() != first


# What SageMaker does as the execution role for each step type of a definition.
STEP_ACTIONS = {
    "Training": {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"},
    "Processing": {"sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"},
    "RegisterModel": {"sagemaker:CreateModelPackage", "sagemaker:CreateModelPackageGroup"},
    "Condition": set(),
    "Fail": set(),
}


def test_the_execution_role_covers_every_step_the_definition_implies():
    from pipeline.local.executor import all_steps

    definition = json.loads(run_cli("definition", "--offline").stdout)
    types = {step["Type"] for step in all_steps(definition["Steps"])}
    assert types == set(STEP_ACTIONS), "a new step type needs its actions listed here"
    policy = json.loads((ROOT / ".github" / "aws" / "execution-role-policy.json").read_text())
    granted = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    needed = set().union(*(STEP_ACTIONS[t] for t in types)) | {"iam:PassRole", "s3:GetObject", "s3:PutObject"}
    assert needed - granted == set()
    # No experiment or trial per run, so no sagemaker:CreateExperiment/CreateTrial/AssociateTrialComponent.
    assert definition["PipelineExperimentConfig"] is None
