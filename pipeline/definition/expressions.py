"""Evaluate the expressions and conditions of a pipeline definition as SageMaker does.

``Get`` on parameters, execution variables and the properties of steps that already
ran; ``Std:Join``; ``Std:JsonGet`` on property files (or on an S3 object, through the
scope's reader); and every condition type of a ConditionStep, in the SDK's form and in
the service schema's (``NotEquals``, ``NotIn``). Anything else is an
:class:`UnsupportedExpression` naming it, never a guess. :func:`gets` lists what an
expression refers to, so that a run can be ordered and checked before it starts.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipeline.errors import UnsupportedExpression

# "ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri" -> its parts
_PART = re.compile(r"([^.\[\]]+)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "NotEquals": operator.ne,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
CONDITION_TYPES = (*COMPARISONS, "In", "NotIn", "Not", "Or")


def _to_string(value: Any) -> str:
    """How SageMaker renders a value inside ``Std:Join``: JSON for numbers and booleans."""
    return value if isinstance(value, str) else json.dumps(value)


def parts(path: str) -> list[str | int]:
    """A property path's parts: names, quoted keys and list indexes."""
    found: list[str | int] = []
    for name, quoted, double, index in _PART.findall(path):
        found.append(int(index) if index else name or quoted or double)
    return found


def _named(items: list[Any], key: str) -> Any:
    """A list item addressed by name, as ``Outputs['train']`` or ``FinalMetricDataList['loss']``:
    the item whose ``...Name`` field (OutputName, MetricName, ...) is ``key``."""
    for item in items:
        if isinstance(item, Mapping) and any(k.endswith("Name") and v == key for k, v in item.items()):
            return item
    raise KeyError(key)


def _walk(value: Any, path: list[str | int], what: str) -> Any:
    for part in path:
        try:
            value = _named(value, part) if isinstance(value, list) and isinstance(part, str) else value[part]
        except (KeyError, IndexError, TypeError):
            raise UnsupportedExpression(f"{what}: no {part!r} there") from None
    return value


def json_path(document: Any, path: str, what: str) -> Any:
    """``Std:JsonGet``'s ``Path`` (dots and ``[index]``) in a parsed JSON document."""
    return _walk(document, parts(path), what)


class Scope:
    """What an expression may refer to at one point of a run.

    ``steps`` maps a finished step's name to its properties (as DescribeTrainingJob & co.
    give them); ``files`` maps ``Steps.NAME.PropertyFiles.FILE`` to the parsed JSON; both
    are shared with the run and grow as steps finish. ``read_s3`` reads an object for a
    ``Std:JsonGet`` on an ``S3Uri``; ``current`` adds variables of the step being evaluated
    (``Execution.TrainingJobName``) and callables for values read when used (``CurrentDateTime``).
    """

    def __init__(
        self,
        parameters: Mapping[str, Any],
        execution: Mapping[str, Any],
        steps: Mapping[str, Mapping[str, Any]] | None = None,
        files: Mapping[str, Any] | None = None,
        read_s3: Callable[[str], bytes] | None = None,
    ) -> None:
        self.parameters = parameters
        self.execution = execution
        self.steps = {} if steps is None else steps
        self.files = {} if files is None else files
        self.read_s3 = read_s3

    def get(self, path: str) -> Any:
        scope, _, rest = path.partition(".")
        if scope == "Parameters" and rest in self.parameters:
            return self.parameters[rest]
        if scope == "Execution" and rest in self.execution:
            value = self.execution[rest]
            return value() if callable(value) else value
        if scope == "Steps":
            step, _, tail = rest.partition(".")
            if step in self.steps:
                return _walk(self.steps[step], parts(tail), f"{{'Get': {path!r}}}")
        raise UnsupportedExpression(f"cannot evaluate {{'Get': {path!r}}} locally")

    def json_get(self, spec: Mapping[str, Any]) -> Any:
        if "S3Uri" in spec and self.read_s3 is not None:
            uri = evaluate(spec["S3Uri"], self.parameters, self.execution, self)
            return json_path(json.loads(self.read_s3(uri)), spec["Path"], f"Std:JsonGet {spec['Path']!r} in {uri}")
        source = spec.get("PropertyFile", {})
        source = source.get("Get", "") if isinstance(source, Mapping) else source
        if source not in self.files:
            raise UnsupportedExpression(f"cannot evaluate Std:JsonGet on {source!r} locally")
        return json_path(self.files[source], spec["Path"], f"Std:JsonGet {spec['Path']!r} in {source}")


def evaluate(node: Any, parameters: Mapping[str, Any], execution: Mapping[str, Any], scope: Scope | None = None) -> Any:
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


def gets(node: Any) -> Iterator[str]:
    """Every path ``node`` reads with ``Get`` (a property file's too: ``Steps.X.PropertyFiles.F``)."""
    if isinstance(node, list):
        for item in node:
            yield from gets(item)
    elif isinstance(node, dict):
        if set(node) == {"Get"} and isinstance(node["Get"], str):
            yield node["Get"]
            return
        for value in node.values():
            yield from gets(value)


def step_of(path: str) -> str | None:
    """The step a ``Get`` path reads (``Steps.Train.ModelArtifacts...`` -> ``Train``), if any."""
    scope, _, rest = path.partition(".")
    return rest.partition(".")[0] if scope == "Steps" else None


def _value(condition: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in condition:
            return condition[key]
    raise UnsupportedExpression(f"condition {condition.get('Type')} has none of {', '.join(keys)}")


def condition_holds(condition: Mapping[str, Any], scope: Scope) -> bool:
    """One entry of a ConditionStep's ``Conditions``, as SageMaker evaluates it."""
    kind = condition["Type"]

    def value(node: Any) -> Any:
        return evaluate(node, scope.parameters, scope.execution, scope)

    if kind in COMPARISONS:
        return COMPARISONS[kind](value(condition["LeftValue"]), value(condition["RightValue"]))
    if kind in ("In", "NotIn"):
        found = value(_value(condition, "QueryValue", "Value")) in value(_value(condition, "Values", "In"))
        return found if kind == "In" else not found
    if kind == "Not":
        return not condition_holds(_value(condition, "Condition", "Expression"), scope)
    if kind == "Or":
        return any(condition_holds(inner, scope) for inner in condition["Conditions"])
    raise UnsupportedExpression(f"condition type {kind} cannot be evaluated locally")
