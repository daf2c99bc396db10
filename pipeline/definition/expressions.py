"""Evaluate the expressions of a pipeline definition (``Get``, ``Std:Join``) as SageMaker does.

Only what can be resolved before a step runs is supported; anything else, such
as a reference to another step's properties, is an :class:`UnsupportedExpression`
naming it, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.errors import UnsupportedExpression


def _to_string(value: Any) -> str:
    """How SageMaker renders a value inside ``Std:Join``: JSON for numbers and booleans."""
    return value if isinstance(value, str) else json.dumps(value)


def _get(path: str, parameters: Mapping[str, Any], execution: Mapping[str, str]) -> Any:
    scope, _, name = path.partition(".")
    if scope == "Parameters" and name in parameters:
        return parameters[name]
    if scope == "Execution" and name in execution:
        return execution[name]
    raise UnsupportedExpression(f"cannot evaluate {{'Get': {path!r}}} locally")


def evaluate(node: Any, parameters: Mapping[str, Any], execution: Mapping[str, str]) -> Any:
    """``node`` with every expression replaced by its value."""
    if isinstance(node, list):
        return [evaluate(item, parameters, execution) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Get"}:
        return _get(node["Get"], parameters, execution)
    if set(node) == {"Std:Join"}:
        join = node["Std:Join"]
        values = evaluate(join["Values"], parameters, execution)
        return str(join["On"]).join(_to_string(v) for v in values)
    functions = [key for key in node if key.startswith("Std:")]
    if functions:
        raise UnsupportedExpression(f"cannot evaluate {functions[0]} locally")
    return {key: evaluate(value, parameters, execution) for key, value in node.items()}
