"""Metrics found in a job's log by its metric definitions, as SageMaker finds them.

SageMaker applies each definition's regex to the log and keeps the last match; the
local runner does the same, so both report the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


def parse_metrics(log: str, definitions: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Last value each definition's regex finds in ``log``."""
    found: dict[str, float] = {}
    for definition in definitions:
        matches = re.findall(definition["Regex"], log)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    return found
