"""``run --local --deployed`` on a DAG written with plain SageMaker SDK v2 calls, as a user's module would.

The pipeline (scripts in tests/fixtures/dags/linear) has the standard shape and the SDK's own
processor forms: Announce (ScriptProcessor, a Join of execution variables) -DependsOn-> Train;
Preprocess (ScriptProcessor, ``python3 script.py``) -> Train (Estimator fed by Preprocess's
output) -> Evaluate (FrameworkProcessor, ``/bin/bash runproc.sh``, a property file) -> Gate
(``mse <= threshold``) -> Register | Fail; and Route (Not, In, Or, Equals) -> MakeModel
(CreateModel) -> Predict (Transform). The steps are listed out of order: the data decides.
The scripts hard-code ``/opt/ml/...`` and must find those paths without writing to the host's
``/opt``. The DAG is rendered with a PipelineSession against the moto server (the SDK uploads
the code there), deployed with CreatePipeline, and run by the CLI.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import warnings
from pathlib import Path

import boto3
import pytest
from moto_server import REGION
from support import BUCKET, ROLE_ARN, run_cli

from pipeline.local import runners

LINEAR = Path(__file__).resolve().parent / "fixtures" / "dags" / "linear"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/any-image:1"
RAW = f"s3://{BUCKET}/dag/raw"
GROUP = "linear-models"
SERVING_CODE = f"s3://{BUCKET}/dag/serving/sourcedir.tar.gz"


@pytest.fixture(scope="module", autouse=True)
def opt_ml():
    """These scripts hard-code /opt/ml: they need a private mount namespace (skipped where none is
    allowed; CI must allow one: sysctl kernel.apparmor_restrict_unprivileged_userns=0)."""
    problem = runners.namespace_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"no user namespace for /opt/ml: {problem}", pytrace=False)
        pytest.skip(f"no user namespace for /opt/ml: {problem}")


def session():
    from sagemaker.workflow.pipeline_context import PipelineSession

    from pipeline.definition.sdk import SDK_DEFAULTS

    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    return PipelineSession(
        boto_session=boto3.Session(region_name=REGION), default_bucket=BUCKET, sagemaker_config=SDK_DEFAULTS
    )


def linear_pipeline(name: str):
    """The DAG, built as a user would write it (every call is the SDK's)."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import FrameworkProcessor, ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.sklearn.estimator import SKLearn
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import (
        ConditionEquals,
        ConditionGreaterThanOrEqualTo,
        ConditionIn,
        ConditionLessThanOrEqualTo,
        ConditionNot,
        ConditionOr,
    )
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TransformStep

    sm = session()
    common = {"role": ROLE_ARN, "instance_count": 1, "instance_type": "ml.m5.large", "sagemaker_session": sm}
    raw = ParameterString("InputData", default_value=RAW)
    threshold = ParameterFloat("MseThreshold", default_value=6.0)
    mode = ParameterString("Mode", default_value="model")
    script = ScriptProcessor(image_uri=IMAGE, command=["python3"], **common)

    announce = ProcessingStep(
        "Announce",
        step_args=script.run(
            code=str(LINEAR / "announce.py"),
            outputs=[ProcessingOutput(output_name="announce", source="/opt/ml/processing/announce")],
            arguments=[
                Join(on="/", values=[ExecutionVariables.PIPELINE_NAME, ExecutionVariables.PIPELINE_EXECUTION_ID])
            ],
        ),
    )
    preprocess = ProcessingStep(
        "Preprocess",
        step_args=script.run(
            code=str(LINEAR / "preprocess.py"),
            inputs=[ProcessingInput(source=raw, destination="/opt/ml/processing/input/raw")],
            outputs=[
                ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
                ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
            ],
        ),
    )
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs
    estimator = Estimator(
        image_uri=IMAGE,
        entry_point="train.py",
        source_dir=str(LINEAR),
        output_path=f"s3://{BUCKET}/dag/models",
        metric_definitions=[{"Name": "train_mse", "Regex": r"train_mse=([0-9.]+);"}],
        **common,
    )
    train = TrainingStep(
        "Train",
        step_args=estimator.fit({"train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv")}),
        depends_on=[announce],
    )
    report = PropertyFile(name="Report", output_name="evaluation", path="evaluation.json")
    framework = FrameworkProcessor(
        estimator_cls=SKLearn, framework_version="1.2-1", image_uri=IMAGE, command=["python3"], **common
    )
    evaluate = ProcessingStep(
        "Evaluate",
        step_args=framework.run(
            code="evaluate.py",
            source_dir=str(LINEAR),
            inputs=[
                ProcessingInput(
                    source=train.properties.ModelArtifacts.S3ModelArtifacts, destination="/opt/ml/processing/model"
                ),
                ProcessingInput(source=outputs[1].S3Output.S3Uri, destination="/opt/ml/processing/test"),
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
        ),
        property_files=[report],
    )
    mse = JsonGet(step_name=evaluate.name, property_file=report, json_path="regression_metrics.mse.value")
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    model = Model(
        image_uri=IMAGE,
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        env={"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": SERVING_CODE},
        role=ROLE_ARN,
        sagemaker_session=sm,
    )
    register = ModelStep(
        "Register",
        step_args=model.register(
            content_types=["text/csv"],
            response_types=["text/csv"],
            inference_instances=["ml.m5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=GROUP,
            approval_status="PendingManualApproval",
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"]), content_type="application/json"
                )
            ),
        ),
    )
    fail = FailStep(
        "TooFar",
        error_message=Join(
            on=" ", values=["mse", mse, "is above", threshold, "in", ExecutionVariables.PIPELINE_EXECUTION_ID]
        ),
    )
    gate = ConditionStep(
        "Gate",
        conditions=[ConditionLessThanOrEqualTo(left=mse, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    make_model = ModelStep("MakeModel", step_args=model.create(instance_type="ml.m5.large"))
    transformer = Transformer(
        model_name=make_model.properties.ModelName,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=Join(on="/", values=[f"s3://{BUCKET}/dag/predictions", ExecutionVariables.PIPELINE_EXECUTION_ID]),
        accept="text/csv",
        assemble_with="Line",
        sagemaker_session=sm,
    )
    predict = TransformStep(
        "Predict",
        step_args=transformer.transform(
            data=outputs["test"].S3Output.S3Uri, content_type="text/csv", split_type="Line"
        ),
    )
    route = ConditionStep(
        "Route",
        conditions=[
            ConditionNot(ConditionIn(value=ExecutionVariables.PIPELINE_NAME, in_values=["someone-elses"])),
            ConditionOr(
                [
                    ConditionEquals(left=mode, right="model"),
                    ConditionGreaterThanOrEqualTo(
                        left=train.properties.FinalMetricDataList["train_mse"].Value, right=1e9
                    ),
                ]
            ),
        ],
        if_steps=[make_model, predict],
        else_steps=[],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = Pipeline(
            name=name,
            parameters=[raw, threshold, mode],
            steps=[route, gate, evaluate, train, preprocess, announce],  # not in run order
            sagemaker_session=sm,
        )
        return pipeline.definition()


def s3_text(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def s3_keys(prefix: str) -> list[str]:
    s3 = boto3.client("s3", region_name=REGION)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.fixture
def deployed(aws_env):
    """The pipeline in the (moto) account, and the raw data where its parameter points: y = 2x + 1 + noise."""
    rows = "".join(f"{x},{2 * x + 1 + (0.5 if x % 3 else -1.0)}\n" for x in range(40))
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="dag/raw/data.csv", Body=rows.encode())
    code = io.BytesIO()
    with tarfile.open(fileobj=code, mode="w:gz") as archive:
        archive.add(LINEAR / "inference.py", arcname="inference.py")
    s3.put_object(Bucket=BUCKET, Key=SERVING_CODE.split("/", 3)[3], Body=code.getvalue())
    definition = linear_pipeline(aws_env["PIPELINE_NAME"])
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_pipeline(PipelineName=aws_env["PIPELINE_NAME"], PipelineDefinition=definition, RoleArn=ROLE_ARN)
    return json.loads(definition)


def ran(stdout: str) -> list[str]:
    """The steps that ran, in order, with how each ended."""
    return [
        line.split(": ")[0].removeprefix("step ") + ": " + line.split(": ")[1]
        for line in stdout.splitlines()
        if line.startswith("step ") and not line.split(": ")[1].startswith("Executing")
    ]


EVERY_STEP_BUT_FAIL = (
    "Announce", "Preprocess", "Train", "Evaluate", "Gate", "Register-RegisterModel", "Route",
    "MakeModel-CreateModel", "Predict",
)  # fmt: skip
# What must run before what: data, DependsOn, and a condition before its branch.
ORDER = (
    ("Announce", "Train"), ("Preprocess", "Train"), ("Train", "Evaluate"), ("Evaluate", "Gate"),
    ("Gate", "Register-RegisterModel"), ("Train", "Route"), ("Route", "MakeModel-CreateModel"),
    ("MakeModel-CreateModel", "Predict"),
)  # fmt: skip


def test_the_dag_runs_in_data_order_and_registers_the_model(deployed, tmp_path):
    opt_before = sorted(os.listdir("/opt"))
    done = run_cli("run", "--local", "--deployed", "--output-dir", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = ran(done.stdout)
    assert sorted(steps) == sorted(f"{name}: Succeeded" for name in EVERY_STEP_BUT_FAIL)
    position = {step.split(":")[0]: index for index, step in enumerate(steps)}
    for before, after in ORDER:
        assert position[before] < position[after], steps
    execution_id = done.stdout.split("local execution ", 1)[1].split(",")[0]
    # Nothing reached the host's /opt; the scripts wrote SageMaker's paths in their own namespace.
    assert sorted(os.listdir("/opt")) == opt_before and not Path("/opt/ml").exists()
    # Announce ran before Train (DependsOn), its Join of execution variables evaluated.
    (announced,) = [k for k in s3_keys("test-pipeline/") if k.endswith("announce/announce.txt")]
    assert s3_text(f"s3://{BUCKET}/{announced}") == f"test-pipeline/{execution_id}"
    # The model package points at Train's model, whose archive holds what train.py wrote to /opt/ml/model.
    sm = boto3.client("sagemaker", region_name=REGION)
    (package,) = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    described = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    model_url = described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert model_url == f"s3://{BUCKET}/dag/models/pipelines-{execution_id}-Train/output/model.tar.gz"
    bucket, _, key = model_url.removeprefix("s3://").partition("/")
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert sorted(archive.getnames()) == ["model.json", "x"]
        model = json.load(archive.extractfile("model.json"))
    assert model["a"] == pytest.approx(2, abs=0.1)
    # The property file the gate read is the report the model package names.
    statistics = described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    mse = json.loads(s3_text(statistics))["regression_metrics"]["mse"]["value"]
    assert 0 < mse <= 6.0
    # The transform ran the model the CreateModel step made, on Preprocess's test rows.
    (predictions,) = s3_keys(f"dag/predictions/{execution_id}/")
    assert predictions.endswith("test.csv.out")
    first = float(s3_text(f"s3://{BUCKET}/{predictions}").splitlines()[0])
    assert first == pytest.approx(model["a"] * 1 + model["b"], rel=1e-4)  # test rows are the odd x: 1, 3, ...


def test_the_gate_not_met_runs_the_fail_step_and_the_other_branch_does_not_run(deployed, tmp_path):
    done = run_cli(
        "run", "--local", "--deployed", "--param", "MseThreshold=0.01", "--param", "Mode=skip",
        "--output-dir", str(tmp_path), timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    steps = ran(done.stdout)
    # Route may run before the Fail step stops the execution (the order leaves it free), but picks no branch.
    assert set(steps) - {"Route: Succeeded"} == {
        *(f"{name}: Succeeded" for name in ("Announce", "Preprocess", "Train", "Evaluate", "Gate")),
        "TooFar: Failed",
    }
    assert steps[-1] == "TooFar: Failed"
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("step TooFar: Failed: ")]
    execution_id = done.stdout.split("local execution ", 1)[1].split(",")[0]
    assert failed.startswith("step TooFar: Failed: mse ") and failed.endswith(f"is above 0.01 in {execution_id}")
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
