"""Print metrics as ``name=value;`` so SageMaker metric-definition regexes can match them."""

from __future__ import annotations

from collections.abc import Mapping


def format_metrics(metrics: Mapping[str, float]) -> str:
    """One line, ``name=value;`` per metric, in a fixed order and precision."""
    return " ".join(f"{name}={value:.6f};" for name, value in sorted(metrics.items()))
