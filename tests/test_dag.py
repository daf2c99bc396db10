"""The step graph: SageMaker's order (data references and DependsOn), and the graphs it refuses."""

from __future__ import annotations

import pytest

from pipeline.definition import dag
from pipeline.errors import WorkflowError


def step(name: str, kind: str = "Fail", **fields) -> dict:
    return {"Name": name, "Type": kind, "Arguments": fields.pop("Arguments", {}), **fields}


def get(target: str) -> dict:
    return {"Get": target}


def test_order_follows_references_not_the_list():
    train = step(
        "Train", "Training", Arguments={"In": get("Steps.Prep.ProcessingOutputConfig.Outputs['a'].S3Output.S3Uri")}
    )
    prep = step("Prep", "Processing", PropertyFiles=[{"PropertyFileName": "Report"}])
    json_get = {"Std:JsonGet": {"PropertyFile": get("Steps.Prep.PropertyFiles.Report"), "Path": "x"}}
    register = step("Register", "RegisterModel", Arguments={"M": get("Steps.Train.ModelArtifacts.S3ModelArtifacts")})
    gate = step("Gate", "Condition", Arguments={"Conditions": [{"LeftValue": json_get}], "IfSteps": [register]})
    last = step("Last", DependsOn=["Gate"])
    order = dag.order({"Steps": [last, gate, train, prep]})
    assert order.index("Prep") < order.index("Train") < order.index("Register")
    assert order.index("Prep") < order.index("Gate") < order.index("Register") < len(order)
    assert order.index("Gate") < order.index("Last")


BAD = [
    ("cycle", [step("A", DependsOn=["B"]), step("B", DependsOn=["A"])], "the steps form a cycle"),
    ("self", [step("A", DependsOn=["A"])], "step A depends on itself"),
    ("missing step", [step("A", Arguments={"X": get("Steps.Gone.Name")})], "step A refers to step Gone"),
    ("missing depends", [step("A", DependsOn=["Gone"])], "step A refers to step Gone"),
    ("duplicate", [step("A"), step("A")], "two steps are named 'A'"),
    (
        "missing property file",
        [
            step("P", "Processing", PropertyFiles=[{"PropertyFileName": "Report"}]),
            step("C", Arguments={"V": {"Std:JsonGet": {"PropertyFile": get("Steps.P.PropertyFiles.Other")}}}),
        ],
        "step C reads property file Other of step P, which declares Report",
    ),
]


@pytest.mark.parametrize("steps, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_graph_sagemaker_refuses_is_one_error_naming_the_step(steps, message):
    with pytest.raises(WorkflowError, match=message):
        dag.order({"Steps": steps})
