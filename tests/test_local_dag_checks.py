"""``run --local`` refuses a DAG it cannot run as SageMaker would, before anything is uploaded or run,
and orders and skips steps as SageMaker does. The DAGs are built with plain SDK v2 calls (a
render-only PipelineSession: no AWS call), then broken the way a hand-edited or foreign
definition can be."""

from __future__ import annotations

import copy
import json
import logging
import warnings

import boto3
import pytest
from moto_server import REGION
from support import BUCKET, ROLE_ARN, run_cli

from pipeline.errors import ExitStatus, UserError
from pipeline.local import executor, runners

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/any-image:1"


def render_session():
    from sagemaker.workflow.pipeline_context import PipelineSession

    from pipeline.definition.sdk import SDK_DEFAULTS

    class RenderOnly(PipelineSession):
        def default_bucket(self) -> str:  # the SDK would otherwise check that the bucket exists
            return BUCKET

    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    inert = boto3.Session(region_name=REGION, aws_access_key_id="render-only", aws_secret_access_key="render-only")
    return RenderOnly(boto_session=inert, default_bucket=BUCKET, sagemaker_config=SDK_DEFAULTS)


def definition(*extra_steps, processor_options=None, estimator_options=None, property_output="evaluation"):
    """Preprocess -> Train -> Evaluate (property file) -> Gate (mse <= 6) -> MakeModel | Fail, as dicts."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep

    sm = render_session()
    common = {"role": ROLE_ARN, "instance_count": 1, "instance_type": "ml.m5.large", "sagemaker_session": sm}
    processor_options = {"entrypoint": ["python3", "-m", "prep"], **(processor_options or {})}
    processor = Processor(image_uri=IMAGE, **common, **processor_options)
    preprocess = ProcessingStep(
        "Preprocess",
        step_args=processor.run(
            inputs=[ProcessingInput(source=f"s3://{BUCKET}/raw", destination="/opt/ml/processing/input")],
            outputs=[ProcessingOutput(output_name="train", source="/opt/ml/processing/train")],
        ),
    )
    estimator = Estimator(
        image_uri=IMAGE, output_path=f"s3://{BUCKET}/models", **{**common, **(estimator_options or {})}
    )
    source = preprocess.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
    train = TrainingStep("Train", step_args=estimator.fit({"train": TrainingInput(source)}))
    report = PropertyFile(name="Report", output_name=property_output, path="evaluation.json")
    evaluate = ProcessingStep(
        "Evaluate",
        step_args=Processor(image_uri=IMAGE, entrypoint=["python3", "-m", "evaluate"], **common).run(
            inputs=[
                ProcessingInput(
                    source=train.properties.ModelArtifacts.S3ModelArtifacts, destination="/opt/ml/processing/model"
                )
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
        ),
        property_files=[report],
    )
    model = Model(
        image_uri=IMAGE,
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        role=ROLE_ARN,
        sagemaker_session=sm,
    )
    gate = ConditionStep(
        "Gate",
        conditions=[
            ConditionLessThanOrEqualTo(
                left=JsonGet(step_name="Evaluate", property_file=report, json_path="mse"), right=6.0
            )
        ],
        if_steps=[ModelStep("MakeModel", step_args=model.create(instance_type="ml.m5.large"))],
        else_steps=[FailStep("Fail", error_message="too far")],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = Pipeline("dag", steps=[gate, evaluate, train, preprocess, *extra_steps], sagemaker_session=sm)
        return json.loads(pipeline.definition())


@pytest.fixture(scope="module")
def good():
    return definition()


def step(found: dict, name: str) -> dict:
    return next(s for s in executor.all_steps(found["Steps"]) if s["Name"] == name)


def refused(found: dict) -> str:
    with pytest.raises(UserError) as error:
        executor.check_runnable(found, [])
    assert error.value.status == ExitStatus.BAD_INPUT
    return str(error.value)


def test_the_order_follows_the_data_not_the_list(good):
    plan = executor.plan(good)
    assert [s["Name"] for s in good["Steps"]] == ["Gate", "Evaluate", "Train", "Preprocess"]
    assert plan.order.index("Preprocess") < plan.order.index("Train") < plan.order.index("Evaluate")
    assert plan.order.index("Evaluate") < plan.order.index("Gate") < plan.order.index("MakeModel-CreateModel")
    assert plan.branches["MakeModel-CreateModel"] == (("Gate", "IfSteps"),)
    assert plan.branches["Fail"] == (("Gate", "ElseSteps"),)
    assert executor.check_runnable(good, []) == {}


def test_a_cycle_is_named(good):
    broken = copy.deepcopy(good)
    step(broken, "Preprocess")["DependsOn"] = ["Evaluate"]
    message = refused(broken)
    assert "cycle" in message and "Preprocess" in message and "Evaluate" in message


def test_a_reference_to_a_missing_step_names_both(good):
    broken = copy.deepcopy(good)
    channel = step(broken, "Train")["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    channel["S3Uri"] = {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    message = refused(broken)
    assert "step Train refers to step Prepare" in message and "fix the name" in message


def test_a_condition_on_a_missing_step_names_the_condition(good):
    broken = copy.deepcopy(good)
    step(broken, "Gate")["Arguments"]["Conditions"][0]["LeftValue"] = {
        "Get": "Steps.Score.FinalMetricDataList['mse'].Value"
    }
    assert "step Gate refers to step Score" in refused(broken)


def test_a_jsonget_on_a_property_file_the_step_does_not_declare(good):
    broken = copy.deepcopy(good)
    left = step(broken, "Gate")["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    left["PropertyFile"]["Get"] = "Steps.Evaluate.PropertyFiles.Metrics"
    message = refused(broken)
    assert "step Gate reads property file Metrics of step Evaluate, which declares Report" in message
    left["PropertyFile"]["Get"] = "Steps.Train.PropertyFiles.Report"  # a step that declares none
    assert "of step Train, which declares none" in refused(broken)


def test_a_property_file_on_an_output_the_step_lacks():
    message = refused(definition(property_output="report"))
    assert "step Evaluate: property file Report is read from output report" in message
    assert "fix the PropertyFile's output_name" in message


def test_two_steps_of_one_name(good):
    broken = copy.deepcopy(good)
    step(broken, "Fail")["Name"] = "Train"
    assert "two steps are named 'Train'" in refused(broken)


def test_a_step_type_it_cannot_run_is_named():
    from sagemaker.workflow.callback_step import CallbackStep

    callback = CallbackStep("Notify", sqs_queue_url="https://sqs.us-east-1.amazonaws.com/1/q", inputs={}, outputs=[])
    message = refused(definition(callback))
    assert "step Notify has type Callback, which run --local cannot run" in message


def test_an_entrypoint_only_the_image_has_is_refused():
    message = refused(definition(processor_options={"entrypoint": ["Rscript", "prep.R"]}))
    assert "step Preprocess: entrypoint 'Rscript' runs only in the image" in message


def test_a_training_container_entrypoint_is_refused():
    message = refused(definition(estimator_options={"container_entry_point": ["python3", "x.py"]}))
    assert "step Train: AlgorithmSpecification.ContainerEntrypoint runs only in its image" in message


def test_a_pipe_mode_input_is_refused(good):
    broken = copy.deepcopy(good)
    step(broken, "Preprocess")["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3InputMode"] = "Pipe"
    assert "step Preprocess: input input-1 has S3InputMode Pipe: run --local reads only File" in refused(broken)


def test_a_bad_deployed_dag_is_one_line_and_nothing_is_written(aws_env, good, tmp_path):
    broken = copy.deepcopy(good)
    step(broken, "Preprocess")["DependsOn"] = ["Gate"]
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_pipeline(PipelineName="test-pipeline", PipelineDefinition=json.dumps(broken), RoleArn=ROLE_ARN)
    done = run_cli("run", "--local", "--deployed", "--output-dir", str(tmp_path / "jobs"))
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cycle" in line
    assert not (tmp_path / "jobs").exists()
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_inputs_another_step_makes_are_checked_when_it_has_run(aws_env, good):
    """Preprocess's raw data must be there now; Train's channel (Preprocess's output) not yet."""
    execution = executor.new_execution("dag")
    with pytest.raises(UserError, match=f"s3://{BUCKET}/raw holds no objects"):
        executor.check_inputs(good, {}, execution, REGION)
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="raw/data.csv", Body=b"1,2\n")
    executor.check_inputs(good, {}, execution, REGION)


# --- branches: a step whose dependency sits in the branch not taken does not run --------------------


def branchy(threshold: float) -> dict:
    """Gate (Mode == 'model') -> MakeModel | nothing; Announce (outside the branches) reads MakeModel's name."""
    from sagemaker.model import Model
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThan
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat
    from sagemaker.workflow.pipeline import Pipeline

    sm = render_session()
    score = ParameterFloat("Score", default_value=threshold)
    model = Model(image_uri=IMAGE, model_data=f"s3://{BUCKET}/model.tar.gz", role=ROLE_ARN, sagemaker_session=sm)
    make = ModelStep("MakeModel", step_args=model.create(instance_type="ml.m5.large"))
    gate = ConditionStep(
        "Gate", conditions=[ConditionGreaterThan(left=score, right=0.5)], if_steps=[make], else_steps=[]
    )
    message = Join(on=" ", values=["made", make.properties.ModelName, "in", ExecutionVariables.PIPELINE_EXECUTION_ID])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = Pipeline(
            "dag", parameters=[score], steps=[FailStep("Announce", error_message=message), gate], sagemaker_session=sm
        )
        return json.loads(pipeline.definition())


@pytest.fixture(scope="module")
def runner():
    return runners.process_runner(None, print)


@pytest.mark.parametrize("score, ran", [(0.9, ["Gate", "MakeModel-CreateModel", "Announce"]), (0.1, ["Gate"])])
def test_a_step_needing_a_step_of_the_branch_not_taken_does_not_run(aws_env, runner, tmp_path, score, ran):
    found = branchy(score)
    values = executor.check_runnable(found, [])
    lines: list[str] = []
    execution = executor.new_execution("dag", REGION)
    results = executor.run(found, values, tmp_path, runner, execution=execution, region=REGION, report=lines.append)
    assert [r.name for r in results] == ran
    if score > 0.5:
        name = f"pipelines-{execution['PipelineExecutionId']}-MakeModel-CreateModel"
        assert results[-1].detail == f"made {name} in {execution['PipelineExecutionId']}"
        sm = boto3.client("sagemaker", region_name=REGION)
        assert sm.describe_model(ModelName=name)["PrimaryContainer"]["Image"] == IMAGE


def test_a_property_the_step_will_not_have_is_named(good):
    broken = copy.deepcopy(good)
    channel = step(broken, "Train")["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    channel["S3Uri"] = {"Get": "Steps.Preprocess.ProcessingOutputConfig.Output['train'].S3Output.S3Uri"}
    message = refused(broken)
    assert "step Train reads" in message and "which step Preprocess does not have" in message
    assert "DescribeProcessingJob has no 'Output' there" in message and message.endswith("fix the property path")


def test_an_empty_input_another_step_made_fails_that_step_not_the_input_check(aws_env, runner, tmp_path):
    """Made writes nothing to its output; Use, fed by it, fails as SageMaker fails it (exit 1, not 2)."""
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.steps import ProcessingStep

    sm = render_session()
    common = {"role": ROLE_ARN, "instance_count": 1, "instance_type": "ml.m5.large", "sagemaker_session": sm}
    made = ProcessingStep(
        "Made",
        step_args=Processor(image_uri=IMAGE, entrypoint=["python3", "-c", "pass"], **common).run(
            outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")]
        ),
    )
    source = made.properties.ProcessingOutputConfig.Outputs["out"].S3Output.S3Uri
    use = ProcessingStep(
        "Use",
        step_args=Processor(image_uri=IMAGE, entrypoint=["python3", "-c", "pass"], **common).run(
            inputs=[ProcessingInput(source=source, destination="/opt/ml/processing/in")]
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = json.loads(Pipeline("dag", steps=[use, made], sagemaker_session=sm).definition())
    execution = executor.new_execution("dag", REGION)
    executor.check_inputs(found, {}, execution, REGION)  # Use's input is Made's: not checked yet
    results = executor.run(found, {}, tmp_path, runner, execution=execution, region=REGION, report=print)
    assert [(r.name, r.status) for r in results] == [("Made", "Succeeded"), ("Use", "Failed")]
    assert "holds no objects" in results[-1].detail and results[-1].exit_code == ExitStatus.JOB_FAILED
