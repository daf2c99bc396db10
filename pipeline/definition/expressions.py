"""Evaluate the expressions and conditions of a pipeline definition as SageMaker does.

``Get`` on parameters, execution variables and the properties of steps that already
ran; ``Std:Join``; ``Std:JsonGet`` on property files; and the condition types of a
ConditionStep. Anything else is an :class:`UnsupportedExpression` naming it, never a guess.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import UnsupportedExpression

# "ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri" -> its parts
_PART = re.compile(r"([^.\[\]]+)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}


def _to_string(value: Any) -> str:
    """How SageMaker renders a value inside ``Std:Join``: JSON for numbers and booleans."""
    return value if isinstance(value, str) else json.dumps(value)


def _parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, quoted, double, index in _PART.findall(path):
        parts.append(int(index) if index else name or quoted or double)
    return parts


def _walk(value: Any, parts: list[str | int], what: str) -> Any:
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise UnsupportedExpression(f"{what}: no {part!r} there") from None
    return value


class Scope:
    """What an expression may refer to at one point of a run."""

    def __init__(
        self,
        parameters: Mapping[str, Any],
        execution: Mapping[str, str],
        steps: Mapping[str, Mapping[str, Any]] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> None:
        self.parameters = parameters
        self.execution = execution
        # step name -> its properties (as DescribeTrainingJob & co. give them); shared, grows during a run
        self.steps = {} if steps is None else steps
        self.files = {} if files is None else files  # "Steps.NAME.PropertyFiles.FILE" -> the parsed JSON

    def get(self, path: str) -> Any:
        scope, _, rest = path.partition(".")
        if scope == "Parameters" and rest in self.parameters:
            return self.parameters[rest]
        if scope == "Execution" and rest in self.execution:
            return self.execution[rest]
        if scope == "Steps":
            step, _, tail = rest.partition(".")
            if step in self.steps:
                return _walk(self.steps[step], _parts(tail), f"{{'Get': {path!r}}}")
        raise UnsupportedExpression(f"cannot evaluate {{'Get': {path!r}}} locally")

    def json_get(self, spec: Mapping[str, Any]) -> Any:
        source = spec.get("PropertyFile", {}).get("Get", "")
        if source not in self.files:
            raise UnsupportedExpression(f"cannot evaluate Std:JsonGet on {source!r} locally")
        return _walk(self.files[source], _parts(spec["Path"]), f"Std:JsonGet {spec['Path']!r} in {source}")


def evaluate(node: Any, parameters: Mapping[str, Any], execution: Mapping[str, str], scope: Scope | None = None) -> Any:
    """``node`` with every expression replaced by its value (``scope`` adds step properties and files)."""
    scope = scope or Scope(parameters, execution)
    if isinstance(node, list):
        return [evaluate(item, parameters, execution, scope) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Get"}:
        return scope.get(node["Get"])
    if set(node) == {"Std:Join"}:
        join = node["Std:Join"]
        values = evaluate(join["Values"], parameters, execution, scope)
        return str(join["On"]).join(_to_string(v) for v in values)
    if set(node) == {"Std:JsonGet"}:
        return scope.json_get(node["Std:JsonGet"])
    functions = [key for key in node if key.startswith("Std:")]
    if functions:
        raise UnsupportedExpression(f"cannot evaluate {functions[0]} locally")
    return {key: evaluate(value, parameters, execution, scope) for key, value in node.items()}


def condition_holds(condition: Mapping[str, Any], scope: Scope) -> bool:
    """One entry of a ConditionStep's ``Conditions``, as SageMaker evaluates it."""
    kind = condition["Type"]
    if kind in COMPARISONS:
        left = evaluate(condition["LeftValue"], scope.parameters, scope.execution, scope)
        right = evaluate(condition["RightValue"], scope.parameters, scope.execution, scope)
        return COMPARISONS[kind](left, right)
    if kind == "Not":
        return not condition_holds(condition["Expression"], scope)
    if kind == "Or":
        return any(condition_holds(inner, scope) for inner in condition["Conditions"])
    if kind == "In":
        value = evaluate(condition["QueryValue"], scope.parameters, scope.execution, scope)
        return value in evaluate(condition["Values"], scope.parameters, scope.execution, scope)
    raise UnsupportedExpression(f"condition type {kind} cannot be evaluated locally")
