"""Metrics found in a job's log by its metric definitions, as SageMaker finds them.

SageMaker applies each definition's regex to the log and keeps the last match; the
local runner does the same, so both report the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping


def _number(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_metrics(log: str, definitions: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Last number each definition's regex finds in ``log``; a match that is not a finite number (a
    regex whose group catches ``ok`` or nothing) records no value, as SageMaker skips it, instead of
    failing a job that has already run."""
    found: dict[str, float] = {}
    for definition in definitions:
        values = [v for v in map(_number, re.findall(definition["Regex"], log)) if v is not None]
        if values:
            found[definition["Name"]] = values[-1]
    return found
