"""The expressions and conditions of a definition, evaluated as SageMaker does (pure: no AWS)."""

from __future__ import annotations

import json

import pytest

from pipeline.definition import expressions
from pipeline.definition.expressions import Scope, condition_holds, evaluate
from pipeline.errors import UnsupportedExpression

STEPS = {
    "Prep": {
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
            ]
        }
    },
    "Train": {"FinalMetricDataList": [{"MetricName": "loss", "Value": 0.25}], "HyperParameters": {"lr": "0.1"}},
}
FILES = {"Steps.Eval.PropertyFiles.Report": {"metrics": {"mse": {"value": 4.5}}, "classes": ["a", "b"]}}


def scope(**execution) -> Scope:
    objects = {"s3://b/report.json": json.dumps({"score": 0.9}).encode()}
    return Scope({"Threshold": 6.0, "Mode": "full"}, execution, STEPS, FILES, objects.__getitem__)


@pytest.mark.parametrize(
    "path, value",
    [
        ("Steps.Prep.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri", "s3://b/test"),
        ("Steps.Prep.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri", "s3://b/train"),
        ("Steps.Train.FinalMetricDataList['loss'].Value", 0.25),
        ("Steps.Train.HyperParameters['lr']", "0.1"),
    ],
)
def test_step_properties_by_name_and_by_index(path, value):
    assert evaluate({"Get": path}, {}, {}, scope()) == value


def test_jsonget_on_a_property_file_and_on_an_s3_object():
    on_file = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "classes[1]"}}
    assert evaluate(on_file, {}, {}, scope()) == "b"
    on_object = {
        "Std:JsonGet": {"S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://b", "report.json"]}}, "Path": "score"}
    }
    assert evaluate(on_object, {}, {}, scope()) == 0.9
    missing = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "metrics.rmse"}}
    with pytest.raises(UnsupportedExpression, match="no 'rmse' there"):
        evaluate(missing, {}, {}, scope())


def test_join_renders_numbers_and_booleans_as_json_and_reads_execution_variables_when_used():
    clock = iter(["t1", "t2"])
    joined = {
        "Std:Join": {
            "On": "/",
            "Values": [{"Get": "Execution.CurrentDateTime"}, 3, True, 0.5, {"Get": "Parameters.Mode"}],
        }
    }
    variables = {"CurrentDateTime": lambda: next(clock)}
    assert evaluate(joined, {}, {}, scope(**variables)) == "t1/3/true/0.5/full"
    assert evaluate(joined, {}, {}, scope(**variables)).startswith("t2/")


JSONGET = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "metrics.mse.value"}}
THRESHOLD = {"Get": "Parameters.Threshold"}


@pytest.mark.parametrize(
    "condition, holds",
    [
        ({"Type": "LessThanOrEqualTo", "LeftValue": JSONGET, "RightValue": THRESHOLD}, True),
        ({"Type": "LessThan", "LeftValue": JSONGET, "RightValue": 4.5}, False),
        ({"Type": "GreaterThan", "LeftValue": JSONGET, "RightValue": 4}, True),
        ({"Type": "GreaterThanOrEqualTo", "LeftValue": JSONGET, "RightValue": THRESHOLD}, False),
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "full"}, True),
        ({"Type": "NotEquals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "full"}, False),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Mode"}, "Values": ["fast", "full"]}, True),  # the SDK's
        ({"Type": "In", "Value": {"Get": "Parameters.Mode"}, "In": ["fast"]}, False),  # the service schema's
        ({"Type": "NotIn", "Value": {"Get": "Parameters.Mode"}, "In": ["fast"]}, True),
        ({"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, False),
        ({"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 2}}, True),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "fast"},
                    {
                        "Type": "LessThan",
                        "LeftValue": {"Get": "Steps.Train.FinalMetricDataList['loss'].Value"},
                        "RightValue": 1,
                    },
                ],
            },
            True,
        ),
    ],
)
def test_every_condition_type(condition, holds):
    assert condition_holds(condition, scope()) is holds


def test_what_an_expression_refers_to():
    node = {"a": [{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, {"Get": "Parameters.P"}], "b": JSONGET}
    assert sorted(expressions.gets(node)) == [
        "Parameters.P", "Steps.Eval.PropertyFiles.Report", "Steps.Train.ModelArtifacts.S3ModelArtifacts"
    ]  # fmt: skip
    assert [expressions.step_of(p) for p in sorted(expressions.gets(node))] == [None, "Eval", "Train"]
