"""The pipeline definition: schema, structure, reproducibility and agreement with train.py."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from support import PROJECT_SRC, ROOT, run_cli

from pipeline.definition import contract, diff, parameters, sourcedir
from pipeline.definition.render import render
from pipeline.definition.settings import build_settings

CONTRACT = contract.load(PROJECT_SRC)


def render_source(source_dir: Path = PROJECT_SRC) -> dict:
    """The offline definition of a source dir."""
    return json.loads(render(build_settings({}, offline=True), sourcedir.read(source_dir)).definition)


# Copied from ../shared/data/pipeline-definition.schema.json, itself from the public
# aws-sagemaker-mlops repository (SageMaker Pipeline Definition JSON Schema, Draft-07).
SCHEMA = json.loads((Path(__file__).parent / "data" / "pipeline-definition.schema.json").read_text())


def _drop_null_experiment_config(d: dict) -> None:
    # null turns the SDK's default experiment/trial per run off; the schema wants an object.
    assert d["PipelineExperimentConfig"] is None
    del d["PipelineExperimentConfig"]


def _drop_profiler_config(d: dict) -> None:
    # DisableProfiler=true is how the SDK turns the profiler off; CreateTrainingJob accepts it.
    del d["Steps"][0]["Arguments"]["ProfilerConfig"]


def _drop_environment(d: dict) -> None:
    # Environment is a CreateTrainingJob field (the data fingerprint for step caching travels
    # there, unseen by the script's argv); the schema's training step omits it.
    del d["Steps"][0]["Arguments"]["Environment"]


def _unwrap_join_in_hyperparameters(d: dict) -> None:
    # Numeric parameters become strings through Std:Join (hyperparameters are strings);
    # the schema allows only Get there. A one-value join on "" is that Get, as a string.
    hps = d["Steps"][0]["Arguments"]["HyperParameters"]
    joins = {k: v["Std:Join"] for k, v in hps.items() if isinstance(v, dict) and "Std:Join" in v}
    assert joins
    for name, join in joins.items():
        assert join["On"] == "" and len(join["Values"]) == 1
        hps[name] = join["Values"][0]


def _step(d: dict, name: str) -> dict:
    """A step by name, at the top level or inside a condition's branches."""
    for step in d["Steps"]:
        if step["Name"] == name:
            return step
        for branch in ("IfSteps", "ElseSteps"):
            for inner in step.get("Arguments", {}).get(branch, []):
                if inner["Name"] == name:
                    return inner
    raise KeyError(name)


def _drop_app_managed(d: dict) -> None:
    # AppManaged is a CreateProcessingJob field of every input and output; the schema omits it.
    args = _step(d, "Evaluate")["Arguments"]
    for item in args["ProcessingInputs"] + args["ProcessingOutputConfig"]["Outputs"]:
        assert item.pop("AppManaged") is False


def _drop_property_files(d: dict) -> None:
    # PropertyFiles declares evaluation.json so the gate can JsonGet from it: a documented field of
    # processing steps that the schema's ProcessingStep lacks.
    assert _step(d, "Evaluate").pop("PropertyFiles") == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def _functions_where_the_schema_takes_only_get(d: dict) -> None:
    # SageMaker evaluates Std:Join and Std:JsonGet wherever a value may be an expression; the schema
    # allows only Get in these four places. A Get stands in for each, to check the rest.
    output = _step(d, "Evaluate")["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    gate = _step(d, "Gate")["Arguments"]["Conditions"][0]
    statistics = _step(d, "Register-RegisterModel")["Arguments"]["ModelMetrics"]["ModelQuality"]["Statistics"]
    fail = _step(d, "Fail")["Arguments"]
    for holder, key in ((output, "S3Uri"), (gate, "LeftValue"), (statistics, "S3Uri"), (fail, "ErrorMessage")):
        assert set(holder[key]) <= {"Std:Join", "Std:JsonGet"}, key
        holder[key] = {"Get": "Parameters.Stand-in"}


def _drop_register_model_fields(d: dict) -> None:
    # CreateModelPackage's ModelApprovalStatus and SkipModelValidation, and the serving container's
    # Environment (SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY): valid fields the schema predates.
    args = _step(d, "Register-RegisterModel")["Arguments"]
    del args["ModelApprovalStatus"], args["SkipModelValidation"]
    (container,) = args["InferenceSpecification"]["Containers"]
    assert set(container.pop("Environment")) == {"SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY"}


def _retry_policy_exception_types_are_lists(d: dict) -> None:
    # SageMaker's RetryPolicies take a list of exception types (one policy retries several); the
    # schema allows one string. Each step the blocks make carries them.
    steps = [
        *d["Steps"],
        *(s for step in d["Steps"] for b in ("IfSteps", "ElseSteps") for s in step["Arguments"].get(b, [])),
    ]
    policies = [p for step in steps for p in step.get("RetryPolicies", [])]
    assert policies
    for policy in policies:
        assert isinstance(policy["ExceptionType"], list)
        policy["ExceptionType"] = policy["ExceptionType"][0]


# Fields SageMaker accepts that the schema rejects. Each entry fails loudly if the
# deviation disappears, and each is checked to be needed, so the list cannot outlive its reason.
KNOWN_DEVIATIONS = (
    _drop_null_experiment_config,
    _drop_profiler_config,
    _drop_environment,
    _drop_app_managed,
    _drop_property_files,
    _functions_where_the_schema_takes_only_get,
    _drop_register_model_fields,
    _unwrap_join_in_hyperparameters,
    _retry_policy_exception_types_are_lists,
)


@pytest.fixture(scope="module")
def definition() -> dict:
    return render_source()


def test_definition_matches_the_official_schema_with_listed_deviations(definition):
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert list(validator.iter_errors(definition)), "the raw definition should show the known deviations"
    patched = copy.deepcopy(definition)
    for deviation in KNOWN_DEVIATIONS:
        deviation(patched)
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(patched)]
    assert errors == []


@pytest.mark.parametrize("needed", KNOWN_DEVIATIONS, ids=lambda deviation: deviation.__name__)
def test_each_listed_deviation_is_still_needed(definition, needed):
    """Every other deviation applied, the schema still refuses the definition: this one's reason stands."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    patched = copy.deepcopy(definition)
    for deviation in KNOWN_DEVIATIONS:
        if deviation is not needed:
            deviation(patched)
    assert list(validator.iter_errors(patched)), f"{needed.__name__} is no longer needed: remove it"


def test_structure_is_parameterised(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    step = _step(definition, "Train")
    args = step["Arguments"]
    assert step["Type"] == "Training"
    assert args["AlgorithmSpecification"]["TrainingImage"] == {"Get": "Parameters.ImageUri"}
    assert args["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert args["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    assert args["StoppingCondition"]["MaxRuntimeInSeconds"] == {"Get": "Parameters.MaxRuntimeSeconds"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in args["InputDataConfig"]}
    assert channels == {"train": {"Get": "Parameters.TrainData"}, "validation": {"Get": "Parameters.ValidationData"}}
    hps = args["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]).endswith("/sourcedir.tar.gz")
    for hp in CONTRACT.hyperparameters:
        bound = json.dumps(hps[hp.name])
        assert f'{{"Get": "Parameters.{hp.parameter_name}"}}' in bound, hp.name
        expected = {"int": "Integer", "float": "Float", "str": "String"}[hp.type]
        assert params[hp.parameter_name]["Type"] == expected
        assert params[hp.parameter_name]["DefaultValue"] == hp.default
    assert args["AlgorithmSpecification"]["MetricDefinitions"] == CONTRACT.metric_definitions()
    assert args["Environment"] == {"PIPELINE_DATA_FINGERPRINT": {"Get": "Parameters.DataFingerprint"}}
    assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    assert args["OutputDataConfig"]["S3OutputPath"] == "s3://example-sagemaker-bucket/custom-framework-training/models"
    module_own = {"EvaluationInstanceType", "MinAccuracy", "ModelPackageGroupName", "ModelApprovalStatus"}
    assert set(params) == {p.name for p in parameters.pipeline_parameters(CONTRACT)} | module_own
    assert [s["Name"] for s in definition["Steps"]] == ["Train", "Evaluate", "Gate"]
    assert definition["PipelineExperimentConfig"] is None  # no experiment and trial per run
    # Nothing volatile may enter the step, or caching never hits.
    assert "sagemaker_job_name" not in hps and "TrainingJobName" not in args


def test_two_builds_from_the_same_tree_are_byte_identical():
    first = run_cli("definition", "--offline")
    second = run_cli("definition", "--offline")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stderr == ""  # SDK noise stays out without --verbose


def test_pycache_does_not_change_the_code_hash(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    before = sourcedir.read(source).archive
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    assert sourcedir.read(source).archive == before


def test_a_code_change_changes_exactly_the_code_uri_everywhere(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    before = render_source(source)
    with (source / "train.py").open("a") as f:
        f.write("\n# a change\n")
    after = render_source(source)
    changes = diff.changes(before, after)
    new_uri = json.loads(_step(after, "Train")["Arguments"]["HyperParameters"]["sagemaker_submit_directory"])
    assert [line.split(":")[0] for line in changes] == [
        "~ Steps[Evaluate].Arguments.ProcessingInputs[0].S3Input.S3Uri",
        "~ Steps[Gate].Arguments.IfSteps[Register-RegisterModel].Arguments.InferenceSpecification.Containers[0]"
        ".Environment.SAGEMAKER_SUBMIT_DIRECTORY",
        "~ Steps[Train].Arguments.HyperParameters.sagemaker_submit_directory",
    ]
    assert all(new_uri in line for line in changes)


def test_evaluate_gate_register_or_fail(definition):
    """Evaluate on the held-out channel with the same image and code, then register or fail."""
    params = {p["Name"]: p for p in definition["Parameters"]}
    code = json.loads(_step(definition, "Train")["Arguments"]["HyperParameters"]["sagemaker_submit_directory"])
    evaluate = _step(definition, "Evaluate")
    args = evaluate["Arguments"]
    assert evaluate["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    assert args["AppSpecification"]["ImageUri"] == {"Get": "Parameters.ImageUri"}
    assert args["AppSpecification"]["ContainerEntrypoint"][:3] == [
        "python3",
        "-m",
        "custom_framework_training.processing",
    ]
    assert args["AppSpecification"]["ContainerEntrypoint"][-1] == "evaluate.py"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in args["ProcessingInputs"]}
    assert inputs == {
        "code": code,
        "model": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
        "validation": {"Get": "Parameters.ValidationData"},
    }
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    assert {"Get": "Steps.Train.TrainingJobName"} in output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    gate = _step(definition, "Gate")["Arguments"]
    (condition,) = gate["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "binary_classification_metrics.accuracy.value"
    assert condition["RightValue"] == {"Get": "Parameters.MinAccuracy"}
    assert params["MinAccuracy"] == {"Name": "MinAccuracy", "Type": "Float", "DefaultValue": 0.7}
    register = _step(definition, "Register-RegisterModel")["Arguments"]
    assert register["ModelPackageGroupName"] == {"Get": "Parameters.ModelPackageGroupName"}
    assert params["ModelPackageGroupName"]["DefaultValue"] == "custom-framework-training"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["Image"] == {"Get": "Parameters.ImageUri"}
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": code}
    assert "ModelQuality" in register["ModelMetrics"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["Register-RegisterModel"]
    (fail,) = gate["ElseSteps"]
    assert fail["Type"] == "Fail"
    values = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert values[1] == condition["LeftValue"] and values[-1] == {"Get": "Parameters.MinAccuracy"}


def test_offline_definition_opens_no_socket():
    """Telemetry is opted out and no STS/S3 call is made: not even a DNS lookup happens."""
    probe = (
        "import sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda event, args: seen.append((event, str(args[1:])))"
        " if event in ('socket.connect', 'socket.getaddrinfo') else None)\n"
        "from pipeline.cli import main\n"
        "code = main(['definition', '--offline'])\n"
        "print('SOCKETS', seen, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "SOCKETS []" in done.stderr


def test_sdk_defaults_are_a_valid_sdk_config():
    """sdk.py skips the SDK's per-lookup validation of this constant; it is checked here once."""
    from sagemaker.config import validate_sagemaker_config

    from pipeline.definition import sdk

    validate_sagemaker_config(sdk.SDK_DEFAULTS)
    assert sdk.SDK_DEFAULTS["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is True
