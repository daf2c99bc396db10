"""Hyperparameter encoding: train-local writes hyperparameters.json as the SDK and the pipeline make
it, for every type, so the script sees the same argv and SM_HPS locally and on SageMaker."""

from __future__ import annotations

import json

import pytest
from support import PROBE_SRC, probe_reports, run_cli

from pipeline.definition import contract, sourcedir, values
from pipeline.definition.expressions import evaluate
from pipeline.definition.render import render
from pipeline.definition.settings import build_settings
from pipeline.errors import ParameterError
from pipeline.local import job_inputs
from pipeline.local.executor import check_runnable

# type, command-line text, the value it means
CASES = [
    ("int", "7", 7),
    ("int", "-3", -3),
    ("float", "0.05", 0.05),
    ("float", "1e-3", 0.001),
    ("float", "2", 2.0),
    ("bool", "true", True),
    ("bool", "False", False),
    ("str", "relu", "relu"),
    ("str", "two words", "two words"),
    ("str", "true", "true"),
    ("str", '{"a": 1}', '{"a": 1}'),
    ("json", "[64, 32]", [64, 32]),
    ("json", '{"a": {"b": null}}', {"a": {"b": None}}),
]


@pytest.mark.parametrize("kind, raw, value", CASES)
def test_command_line_text_parses_to_the_declared_type(kind, raw, value):
    assert values.parse(kind, raw, "x") == value


@pytest.mark.parametrize(
    "kind, raw",
    [
        ("int", "1.5"),
        ("int", "\u0661"),
        ("float", "nan"),
        ("float", "inf"),
        ("bool", "yes"),
        ("json", "3"),
        ("json", "["),
    ],
)
def test_text_of_another_type_is_refused(kind, raw):
    with pytest.raises(ParameterError, match="x expects"):
        values.parse(kind, raw, "x")


@pytest.mark.parametrize("kind, raw, value", CASES)
def test_declared_values_reach_hyperparameters_json_as_the_pipeline_sends_them(kind, raw, value):
    """Render a definition declaring the hyperparameter, evaluate its step with the value, and
    compare with what train-local writes for the same --hp."""
    declared = contract.from_data({"hyperparameters": {"x": {"type": kind, "default": value}}})
    source = sourcedir.Source(PROBE_SRC, declared, sourcedir.pack(PROBE_SRC, "train.py"))
    definition = json.loads(render(build_settings({}, offline=True), source).definition)
    resolved = check_runnable(definition, [f"X={raw}"])
    pipeline_text = evaluate(definition["Steps"][0]["Arguments"]["HyperParameters"]["x"], resolved, {})
    assert job_inputs.hyperparameters([f"x={raw}"], declared)["x"] == pipeline_text


@pytest.mark.parametrize("raw", ["7", "0.5", "true", "null", "relu", "[1, 2]", '{"a": 1}', "two words", ""])
def test_undeclared_values_are_encoded_as_the_sdk_encodes_literal_hyperparameters(raw):
    from sagemaker.estimator import EstimatorBase

    decoded = values.decode_literal(raw)
    sdk = EstimatorBase._json_encode_hyperparameters({"x": decoded})
    assert job_inputs.hyperparameters([f"x={raw}"], contract.Contract()) == sdk


def test_train_local_and_run_local_hand_the_script_the_same_arguments(aws_env, tmp_path):
    """The probe declares one hyperparameter of each type: the same overrides through both commands
    give byte-identical argv, SM_HPS and SM_HP_* variables."""
    overrides = {"max-iter": "7", "learning-rate": "0.5", "activation": "tanh", "use-bias": "false"}
    overrides["layer-sizes"] = "[8, 4]"
    hp_flags = [arg for name, raw in overrides.items() for arg in ("--hp", f"{name}={raw}")]
    param_flags = [arg for name, raw in overrides.items() for arg in ("--param", f"{contract.pascal_case(name)}={raw}")]
    local = run_cli("train-local", "--source-dir", str(PROBE_SRC), "--output-dir", str(tmp_path), *hp_flags)
    assert local.returncode == 0, local.stdout + local.stderr
    assert run_cli("upsert", "--source-dir", str(PROBE_SRC)).returncode == 0
    pipeline = run_cli("run", "--local", "--deployed", "--output-dir", str(tmp_path), *param_flags)
    assert pipeline.returncode == 0, pipeline.stdout + pipeline.stderr
    (seen_local,) = probe_reports(local.stdout)
    (seen_pipeline,) = probe_reports(pipeline.stdout)
    assert seen_local["argv"] == seen_pipeline["argv"]
    assert seen_local["argv"][seen_local["argv"].index("--use-bias") + 1] == "False"
    for name in ("SM_HPS", "SM_HP_MAX-ITER", "SM_HP_LEARNING-RATE", "SM_HP_ACTIVATION", "SM_HP_USE-BIAS"):
        assert seen_local["env"][name] == seen_pipeline["env"][name], name
    assert json.loads(seen_local["env"]["SM_HPS"])["layer-sizes"] == [8, 4]


def test_an_integer_of_thousands_of_digits_is_one_error_not_a_traceback():
    from pipeline.errors import ParameterError

    with pytest.raises(ParameterError, match="expects int of at most 18 digits, got 5000 digits"):
        values.parse("int", "9" * 5000, "parameter MaxIter")
    assert values.parse("int", "-" + "9" * 18, "x") == -int("9" * 18)
