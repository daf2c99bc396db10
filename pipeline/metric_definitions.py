"""The metrics ``train.py`` prints, and the regexes that find them in a training log.

SageMaker applies these regexes to the job's log and shows the values in Studio;
the local runner applies the same ones, so both report the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

METRIC_NAMES = ("train:accuracy", "validation:accuracy", "validation:f1", "validation:log_loss")
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_definitions(names: Iterable[str] = METRIC_NAMES) -> list[dict[str, str]]:
    """``[{"Name": ..., "Regex": ...}]`` as the training job API takes them."""
    return [{"Name": name, "Regex": f"{re.escape(name)}={_NUMBER};"} for name in names]


def parse_metrics(log: str, definitions: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Last value each definition's regex finds in ``log``, as SageMaker reports it."""
    found: dict[str, float] = {}
    for definition in definitions:
        matches = re.findall(definition["Regex"], log)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    return found
