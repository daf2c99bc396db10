"""What changed between two pipeline definitions, as a plan-like list of JSON paths."""

from __future__ import annotations

import json
from typing import Any


def _key(item: Any, index: int) -> str:
    """Name list items by their ``Name`` (steps, parameters) so reordering reads well."""
    if isinstance(item, dict) and isinstance(item.get("Name"), str):
        return f"[{item['Name']}]"
    return f"[{index}]"


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _flatten(child, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            _flatten(child, path + _key(child, index), out)
    else:
        out[path] = value


def flatten(document: Any) -> dict[str, Any]:
    """Leaf path to value, e.g. ``Steps[Train].Arguments.RoleArn``."""
    out: dict[str, Any] = {}
    _flatten(document, "", out)
    return out


def changes(old: Any, new: Any) -> list[str]:
    """``+``/``-``/``~`` lines for every leaf that was added, removed or changed."""
    before, after = flatten(old) if old is not None else {}, flatten(new)
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            lines.append(f"+ {path}: {json.dumps(after[path])}")
        elif path not in after:
            lines.append(f"- {path}: {json.dumps(before[path])}")
        elif before[path] != after[path]:
            lines.append(f"~ {path}: {json.dumps(before[path])} -> {json.dumps(after[path])}")
    return lines
