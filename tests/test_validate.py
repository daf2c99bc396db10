"""Requests checked against botocore's service model: every kind of constraint, the project's rules
on top, a definition's steps with their parameters resolved, and the plan refused whole."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from support import PROBE_SRC, ROOT

from pipeline import aws
from pipeline.definition import sourcedir
from pipeline.definition.render import Rendered, render
from pipeline.definition.settings import build_settings
from pipeline.deploy import plan, validate
from pipeline.deploy.state import Deployed

ROLE = "arn:aws:iam::111122223333:role/SageMakerExecutionRole"
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p"
CREATE = {"PipelineName": "p", "PipelineDefinition": "{}", "RoleArn": ROLE}


def tags(count: int, value: str = "v") -> list[dict[str, str]]:
    return [{"Key": f"k{i}", "Value": value} for i in range(count)]


def test_every_pattern_of_the_models_compiles_as_python():
    """A Java construct the translation misses would silently skip that pattern's check."""
    missed = []
    for service in ("sagemaker", "s3"):
        model = aws.service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern and validate._pattern(pattern) is None:
                missed.append((service, name, pattern))
    assert missed == []


def test_the_model_loads_once_per_process_and_not_at_import():
    assert aws.service_model("sagemaker") is aws.service_model("sagemaker")
    code = "import sys, pipeline.deploy.validate; print('botocore' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "False"  # importing the module costs nothing; the first check loads it


@pytest.mark.parametrize(
    "operation, request_, expected",
    [
        ("CreatePipeline", CREATE, []),  # ClientRequestToken is required, but botocore fills it in
        ("CreatePipeline", {**CREATE, "Tags": tags(50, "v" * 256)}, []),  # 50 tags, 256-character values: valid
        ("CreatePipeline", {"PipelineName": "p", "PipelineDefinition": "{}"}, ["CreatePipeline.RoleArn: required"]),
        ("CreatePipeline", {**CREATE, "Color": "red"}, ["CreatePipeline.Color: not a field of CreatePipelineRequest"]),
        (
            "CreatePipeline",
            {**CREATE, "PipelineName": 7},
            ["CreatePipeline.PipelineName: expected a string, got int 7"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "PipelineName": "p" * 302},
            ["CreatePipeline.PipelineName: 302 characters; allowed: 1 to 256"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "PipelineName": "p\n"},
            ["CreatePipeline.PipelineName: 'p\\n' does not match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "RoleArn": ROLE.replace("1111", "\u0661\u0661\u0661\u0661")},  # Arabic-Indic digits
            ["CreatePipeline.RoleArn: 'arn:aws:iam::\\u0661\\u0661\\u0661\\u0661222233"],
        ),
        ("CreatePipeline", {**CREATE, "Tags": tags(51)}, ["CreatePipeline.Tags: 51 items, at most 50"]),
        ("CreatePipeline", {**CREATE, "Tags": {"a": "b"}}, ["CreatePipeline.Tags: expected a list, got dict"]),
        (
            "CreatePipeline",
            {**CREATE, "Tags": [*tags(3), {"Key": "aws:team", "Value": "x"}]},
            ["CreatePipeline.Tags[3].Key: 'aws:team' starts with 'aws:', which AWS reserves"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "Tags": [*tags(2), {"Key": "k0", "Value": "x"}]},
            ["CreatePipeline.Tags[2].Key: 'k0' is given twice"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "Tags": [{"Key": "k", "Value": "v" * 257}]},
            ["CreatePipeline.Tags[0].Value: 257 characters; allowed: 0 to 256"],
        ),
        (
            "CreatePipeline",
            {**CREATE, "Tags": [{"Key": "Z\u00fcrich", "Value": ""}]},  # \p{L} reads as an ASCII letter
            ["CreatePipeline.Tags[0].Key: 'Z\\xfcrich' does not match"],
        ),
        ("AddTags", {"ResourceArn": "arn:p", "Tags": []}, ["AddTags.ResourceArn: 'arn:p' does not match"]),
        ("ListPipelineExecutions", {"PipelineName": "p", "MaxResults": 101}, ["MaxResults: 101 is above the maximum"]),
        ("ListPipelineExecutions", {"PipelineName": "p", "MaxResults": 0}, ["MaxResults: 0 is below the minimum 1"]),
        ("ListPipelineExecutions", {"PipelineName": "p", "MaxResults": True}, ["expected a whole number, got bool"]),
        ("ListPipelineExecutions", {"PipelineName": "p", "CreatedAfter": "2024-01-01"}, []),
        ("ListPipelineExecutions", {"PipelineName": "p", "CreatedAfter": [1]}, ["CreatedAfter: expected a time"]),
        (
            "ListPipelineExecutions",
            {"PipelineName": "p", "SortOrder": "Down"},
            ["ListPipelineExecutions.SortOrder: 'Down' is not one of Ascending, Descending"],
        ),
        (
            "StartPipelineExecution",
            {"PipelineName": "p", "PipelineParameters": [{"Name": "Target", "Value": "x" * 1025}]},
            ["StartPipelineExecution.PipelineParameters[0].Value: 1025 characters; allowed: 0 to 1024"],
        ),
        (
            "UpdatePipeline",
            {"PipelineName": "p", "ParallelismConfiguration": {"MaxParallelExecutionSteps": 1.5}},
            ["UpdatePipeline.ParallelismConfiguration.MaxParallelExecutionSteps: expected a whole number"],
        ),
        (
            "CreateEndpointConfig",
            {
                "EndpointConfigName": "c",
                "ProductionVariants": [{"VariantName": "v", "InitialVariantWeight": float("nan")}],
            },
            ["ProductionVariants[0].InitialVariantWeight: expected a finite number, got float nan"],
        ),
    ],
)
def test_a_request_breaking_the_model_is_named_by_its_path(operation, request_, expected):
    found = validate.problems(operation, request_)
    assert len(found) == len(expected), found
    for problem, fragment in zip(found, expected, strict=True):
        assert fragment in problem


def test_map_keys_and_values_are_checked():
    request_ = {
        "TrainingJobName": "j",
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "i"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "Environment": {"1BAD": "x", "GOOD": "y"},
        "HyperParameters": {f"h{i}": "1" for i in range(101)},
    }
    found = validate.problems("CreateTrainingJob", request_)
    assert found == [
        "CreateTrainingJob.Environment key '1BAD': '1BAD' does not match [a-zA-Z_][a-zA-Z0-9_]*",
        "CreateTrainingJob.HyperParameters: 101 entries, at most 100",
    ]


def test_a_union_takes_exactly_one_member():
    union = aws.service_model("sagemaker").shape_for("AutoMLProblemTypeConfig")
    assert list(validate._walk(union, {"TabularJobConfig": {"TargetAttributeName": "y"}}, "X")) == []
    (problem,) = validate._walk(union, {}, "X")
    assert problem.startswith("X: exactly one of ImageClassificationJobConfig, ")


def test_s3_uploads_are_checked_against_the_s3_model():
    assert validate.problems("PutObject", {"Bucket": "b", "Key": "k", "Body": b"x"}, service="s3") == []
    assert validate.problems("PutObject", {"Bucket": "b", "Key": "k", "Body": 3}, service="s3") == [
        "PutObject.Body: expected bytes, got int"
    ]


def test_a_refusal_is_one_line_naming_the_field_and_the_setting_to_fix():
    with pytest.raises(validate.InvalidRequest) as refused:
        validate.check("CreatePipeline", {**CREATE, "PipelineName": "bad_name", "Tags": tags(51)})
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("CreatePipeline.PipelineName: 'bad_name' does not match")
    assert "(and 1 more): set --pipeline-name or PIPELINE_NAME" in message
    assert message.endswith("nothing was written")


def test_a_long_enum_suggests_the_closest_values():
    (problem,) = validate.problems("ListPipelineExecutions", {"PipelineName": "p", "SortBy": "CreationTim"})
    assert "is not one of CreationTime, PipelineExecutionArn" in problem
    request_ = {"PipelineName": "p"}
    assert validate.problems("ListPipelineExecutions", request_) == []
    model = aws.service_model("sagemaker").shape_for("TrainingInstanceType")
    (problem,) = validate._walk(model, "ml.m5.larg", "X")
    assert "values botocore" in problem and "(closest: ml.m5.large" in problem


# --- a definition's steps, with the parameters resolved -------------------------------------------


def sample_definition() -> dict:
    settings = build_settings({}, offline=True)
    return json.loads(render(settings, sourcedir.read(PROBE_SRC)).definition)


def with_default(definition: dict, name: str, value) -> dict:
    changed = json.loads(json.dumps(definition))
    for parameter in changed["Parameters"]:
        if parameter["Name"] == name:
            parameter["DefaultValue"] = value
    return changed


def test_the_rendered_steps_are_valid_with_their_defaults():
    assert validate.step_problems(sample_definition(), {}, "p") == []


def test_a_step_is_checked_with_the_parameter_defaults_resolved():
    definition = with_default(sample_definition(), "MaxRuntimeSeconds", 0)
    assert validate.step_problems(definition, {}, "p") == [
        "step Train: CreateTrainingJob.StoppingCondition.MaxRuntimeInSeconds: 0 is below the minimum 1"
    ]


def test_overrides_take_the_place_of_defaults():
    (problem,) = validate.step_problems(sample_definition(), {"TrainingInstanceType": "ml.bogus.large"}, "p")
    assert problem.startswith("step Train: CreateTrainingJob.ResourceConfig.InstanceType: 'ml.bogus.large' is not")


def test_execution_variables_resolve_to_values_that_fit_the_patterns():
    definition = sample_definition()
    arguments = definition["Steps"][0]["Arguments"]
    arguments["OutputDataConfig"]["S3OutputPath"] = {
        "Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}, "models"]}
    }
    arguments["Environment"]["RUN"] = {"Get": "Execution.PipelineExecutionArn"}
    assert validate.step_problems(definition, {}, "p") == []
    arguments["Environment"]["RUN"] = {"Std:Join": {"On": "", "Values": ["x" * 600]}}
    (problem,) = validate.step_problems(definition, {}, "p")
    assert problem.startswith('step Train: CreateTrainingJob.Environment["RUN"]: 600 characters')


def test_values_known_only_at_run_time_are_left_alone_and_nested_steps_are_checked():
    definition = sample_definition()
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "group",
            "ModelApprovalStatus": {"Get": "Parameters.ApprovalStatus"},
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": {"Get": "Parameters.ImageUri"},
                        # another step's output, and a parameter without a default: known when it runs
                        "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
                        "Environment": {
                            "A": {"Std:Join": {"On": "/", "Values": [{"Get": "Parameters.NoDefault"}, "x"]}},
                            "B": {"Std:JsonGet": {"PropertyFile": "r", "Path": "a.b"}},
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        },
    }
    definition["Parameters"] += [
        {"Name": "ApprovalStatus", "Type": "String", "DefaultValue": "Approved"},
        {"Name": "NoDefault", "Type": "String"},
    ]
    definition["Steps"].append({"Name": "Gate", "Type": "Condition", "Arguments": {"IfSteps": [register]}})
    assert validate.step_problems(definition, {}, "p") == []
    (problem,) = validate.step_problems(definition, {"ApprovalStatus": "Maybe"}, "p")
    assert problem.startswith("step Register: CreateModelPackage.ModelApprovalStatus: 'Maybe' is not one of")


# --- the toolkit's entry point rule, on every step that names a script ----------------------------

# sagemaker-training 5.1.4 refuses these names when the job starts (process.validate_entry_point);
# tests/test_workflow_module.py checks the rule against the toolkit itself.
ENTRY_POINTS = [
    ("train.py", None),
    ("bin/train.sh", None),
    ("pkg/v1.2/train+x.py", None),
    ("my train.py", "would be refused by the toolkit"),
    ("train.py;rm", "would be refused by the toolkit"),
    ("-m", "not starting with '-'"),
    ("/opt/ml/code/train.py", "not starting with '-' or '/'"),
    ("sub/../train.py", "'..' segment"),
    ("./train.py", "'.' or '..' segment"),
    ("ü.py", "would be refused by the toolkit"),
    ("", "no entry point is named"),
]


def training_with_program(encoded: str) -> dict:
    definition = sample_definition()
    definition["Steps"][0]["Arguments"]["HyperParameters"]["sagemaker_program"] = encoded
    return definition


def processing_definition(entrypoint: list, arguments: list | None = None) -> dict:
    """The sample's training step plus a processing step running the image's processing entry."""
    definition = sample_definition()
    train = definition["Steps"][0]["Arguments"]
    app = {"ImageUri": {"Get": "Parameters.ImageUri"}, "ContainerEntrypoint": entrypoint}
    if arguments is not None:
        app["ContainerArguments"] = arguments
    resources = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}}
    step = {
        "Name": "Evaluate",
        "Type": "Processing",
        "Arguments": {"AppSpecification": app, "ProcessingResources": resources, "RoleArn": train["RoleArn"]},
    }
    definition["Steps"].append(step)
    return definition


@pytest.mark.parametrize("name, fragment", ENTRY_POINTS, ids=[repr(name) for name, _ in ENTRY_POINTS])
def test_a_training_steps_entry_point_is_checked_as_the_toolkit_reads_it(name, fragment):
    """``sagemaker_program`` is JSON-encoded by the SDK; the toolkit json.loads it, else takes it raw."""
    for encoded in (json.dumps(name), name) if name else (json.dumps(name),):
        found = validate.step_problems(training_with_program(encoded), {}, "p")
        if fragment is None:
            assert found == [], encoded
        else:
            (problem,) = found
            assert problem.startswith("step Train: HyperParameters.sagemaker_program: "), problem
            assert fragment in problem, problem


@pytest.mark.parametrize("name, fragment", ENTRY_POINTS, ids=[repr(name) for name, _ in ENTRY_POINTS])
def test_a_processing_steps_script_is_checked_too(name, fragment):
    module = ["python3", "-m", "custom_framework_training.processing"]
    for entrypoint, arguments in [
        ([*module, "/opt/ml/processing/code/sourcedir.tar.gz", name], ["--threshold", "0.7"]),
        (module, ["/opt/ml/processing/code/sourcedir.tar.gz", name, "--threshold", "0.7"]),
    ]:
        found = validate.step_problems(processing_definition(entrypoint, arguments), {}, "p")
        if fragment is None:
            assert found == [], (entrypoint, arguments)
        else:
            (problem,) = found
            assert problem.startswith("step Evaluate: the processing script: "), problem
            assert fragment in problem, problem


@pytest.mark.parametrize(
    "encoded, fragment",
    [
        ("123", "the entry point 123 is not a file name"),
        ("null", "the entry point null is not a file name"),
        ('["train.py"]', 'the entry point ["train.py"] is not a file name'),
    ],
)
def test_a_program_that_decodes_to_no_file_name_is_refused(encoded, fragment):
    (problem,) = validate.step_problems(training_with_program(encoded), {}, "p")
    assert fragment in problem, problem


def test_a_program_from_a_parameter_is_checked_with_its_value_and_left_alone_without_one():
    definition = training_with_program({"Get": "Parameters.Program"})
    definition["Parameters"].append({"Name": "Program", "Type": "String", "DefaultValue": "a b.py"})
    (problem,) = validate.step_problems(definition, {}, "p")
    assert "'a b.py' would be refused by the toolkit" in problem
    assert validate.step_problems(definition, {"Program": "train.py"}, "p") == []
    definition["Parameters"][-1].pop("DefaultValue")
    assert validate.step_problems(definition, {}, "p") == []


def test_steps_that_run_other_images_are_not_held_to_the_toolkits_rule():
    """A processing step that is not the image's processing entry, a training step without sagemaker_program."""
    definition = processing_definition(["python3", "/opt/ml/processing/input/code/my script.py"])
    del definition["Steps"][0]["Arguments"]["HyperParameters"]["sagemaker_program"]
    assert validate.step_problems(definition, {}, "p") == []


def test_a_processing_entry_without_a_script_is_refused():
    definition = processing_definition(["python3", "-m", "custom_framework_training.processing", "code.tar.gz"])
    (problem,) = validate.step_problems(definition, {}, "p")
    assert problem.endswith("the processing script: no entry point is named: name the script"), problem


def test_a_refused_entry_point_is_one_line_naming_the_step_and_the_fix():
    with pytest.raises(validate.InvalidRequest) as refused:
        validate.check_steps(training_with_program(json.dumps("my train.py")), {}, "p")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("step Train: HyperParameters.sagemaker_program: ")
    assert message.endswith("the job would fail as it starts, so nothing was written"), message


# --- the plan is refused whole ---------------------------------------------------------------------

SETTINGS = build_settings({}, offline=True)


def rendered_probe() -> Rendered:
    return render(SETTINGS, sourcedir.read(PROBE_SRC))


def deployed(tags_: dict[str, str] | None = None) -> Deployed:
    pipeline = {"PipelineArn": PIPELINE_ARN, "PipelineDefinition": "{}", "LastModifiedTime": 1}
    return Deployed(pipeline if tags_ is not None else None, tags_ or {}, frozenset(), frozenset())


def test_a_plan_with_a_request_aws_would_refuse_is_not_made():
    """Settings built around the checks (as a caller other than the CLI could) are still caught."""
    reserved = dataclasses.replace(SETTINGS, tags=(("aws:team", "ml"),))
    with pytest.raises(validate.InvalidRequest, match=r"CreatePipeline\.Tags\[0\]\.Key: 'aws:team' starts with"):
        plan.make(reserved, rendered_probe(), deployed(), {})
    with pytest.raises(validate.InvalidRequest, match=r"AddTags\.Tags\[0\]\.Key"):
        plan.make(reserved, rendered_probe(), deployed({}), {})


def test_a_plan_whose_steps_aws_would_refuse_is_not_made():
    rendered = rendered_probe()
    definition = with_default(json.loads(rendered.definition), "TrainingInstanceType", "ml.m5.larg")
    broken = dataclasses.replace(rendered, definition=json.dumps(definition))
    with pytest.raises(validate.InvalidRequest, match=r"step Train: CreateTrainingJob\.ResourceConfig\.InstanceType"):
        plan.make(SETTINGS, broken, deployed(), {})


def test_tags_beyond_fifty_on_the_pipeline_are_refused():
    by_hand = {f"by-hand-{i}": "x" for i in range(49)}
    settings = dataclasses.replace(SETTINGS, tags=(("team", "ml"),))
    assert plan.make(settings, rendered_probe(), deployed(by_hand), {}).tags == ({"Key": "team", "Value": "ml"},)
    settings = dataclasses.replace(SETTINGS, tags=(("team", "ml"), ("cost", "1")))
    with pytest.raises(validate.InvalidRequest, match="would carry 51 tags"):
        plan.make(settings, rendered_probe(), deployed(by_hand), {})
