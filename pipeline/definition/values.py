"""Typed values as the command line gives them, as pipeline parameters carry them, and as
``hyperparameters.json`` holds them.

One set of rules for ``--hp``, ``--param`` and the definition, so that ``train-local``,
``run --local`` and SageMaker hand the script byte-identical strings. The toolkit
``json.loads`` each hyperparameter string (falling back to the raw string), so:

- a literal value (undeclared ``--hp``) is ``json.dumps``-ed, as the SDK does for an estimator;
- a declared one travels through a pipeline parameter: numbers and booleans are joined
  into text (``Std:Join``), strings and JSON text pass through as they are.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pipeline.errors import ParameterError

INTEGER = re.compile(r"[-+]?[0-9]+", re.ASCII)
FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", re.ASCII)
BOOLEANS = {"true": True, "false": False}


# A 64-bit integer has at most 19 digits; anything longer is a typo (and past 4,300 digits Python
# refuses to convert it at all).
MAX_INT_DIGITS = 18


def parse(kind: str, raw: str, what: str) -> Any:
    """``raw`` (command-line text) as a value of the declared ``kind``; ``what`` names it in errors."""
    if kind == "int" and INTEGER.fullmatch(raw):
        digits = len(raw.lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            raise ParameterError(f"{what} expects int of at most {MAX_INT_DIGITS} digits, got {digits} digits")
        return int(raw)
    if kind == "float" and FLOAT.fullmatch(raw) and math.isfinite(float(raw)):
        return float(raw)
    if kind == "bool" and raw.lower() in BOOLEANS:
        return BOOLEANS[raw.lower()]
    if kind == "str":
        return raw
    if kind == "json":
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, list | dict):
            return value
    expected = {"bool": "true or false", "json": "a JSON list or object", "float": "a finite float"}.get(kind, kind)
    raise ParameterError(f"{what} expects {expected}, got {raw!r}")


def decode_literal(raw: str) -> Any:
    """An undeclared ``--hp`` value as the SDK would send it: valid JSON is that JSON, else a string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def as_text(kind: str, value: Any) -> str:
    """How a declared value reads as text: a parameter value for StartPipelineExecution, or the
    hyperparameter string the pipeline's ``Get``/``Std:Join`` produces from it."""
    if kind == "str":
        return value
    return json.dumps(value)


def literal_hyperparameter(value: Any) -> str:
    """An undeclared hyperparameter as the SDK encodes literal values."""
    return json.dumps(value)
