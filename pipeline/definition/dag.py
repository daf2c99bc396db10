"""The step graph of a definition: which steps each step needs, in an order that respects it.

SageMaker orders a pipeline's steps by their data dependencies (``Get: Steps.X...``, a JsonGet
on X's property file) and ``DependsOn``, not by their place in the list. A graph SageMaker
would refuse (a cycle, a reference to a step that does not exist, a JsonGet on a property file
its step does not declare, two steps of one name) is one error naming the step and the fix,
before anything is uploaded or run. Pure: a definition in, names out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pipeline.errors import WorkflowError

STEP_REFERENCE = re.compile(r"Steps\.([^.\[]+)")


def all_steps(steps: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every step, those inside a condition's branches included."""
    for step in steps:
        yield step
        arguments = step.get("Arguments", {})
        yield from all_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])


def _references(node: Any) -> Iterator[tuple[str, str | None]]:
    """(step name, property file or None) for every step property a value reads."""
    if isinstance(node, dict):
        target = node.get("Get")
        if isinstance(target, str) and (match := STEP_REFERENCE.match(target)):
            yield match.group(1), None
        json_get = node.get("Std:JsonGet")
        if isinstance(json_get, dict):
            holder = json_get.get("PropertyFile", {})
            target = holder.get("Get", "") if isinstance(holder, dict) else ""
            if match := re.match(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", target):
                yield match.group(1), match.group(2)
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def needs(definition: Mapping[str, Any]) -> dict[str, set[str]]:
    """Each step's name -> the steps it needs: its data references and DependsOn, and for a step in a
    condition's branch, the condition. Raises :class:`WorkflowError` on a graph SageMaker refuses."""
    steps = list(all_steps(definition.get("Steps", [])))
    names = [s.get("Name") for s in steps]
    for name in names:
        if names.count(name) > 1:
            raise WorkflowError(f"two steps are named {name!r}: give each step its own name")
    by_name = {s["Name"]: s for s in steps}
    files = {s["Name"]: {f.get("PropertyFileName") for f in s.get("PropertyFiles", [])} for s in steps}
    graph: dict[str, set[str]] = {}
    for step in steps:
        name = step["Name"]
        body = {k: v for k, v in step.items() if k not in ("DependsOn",)}
        if step.get("Type") == "Condition":  # its branches' references are their own
            body["Arguments"] = {
                k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps")
            }
        needed = set(step.get("DependsOn", []))
        for target, property_file in _references(body):
            needed.add(target)
            if target in by_name and property_file is not None and property_file not in files[target]:
                raise WorkflowError(
                    f"step {name} reads property file {property_file} of step {target}, which declares"
                    f" {', '.join(sorted(files[target])) or 'none'}: add it to {target}'s property_files"
                )
        for target in needed:
            if target not in by_name:
                raise WorkflowError(
                    f"step {name} refers to step {target}, which is not in the pipeline: add it, or fix the name"
                )
        graph[name] = needed - {name}
        if name in needed:
            raise WorkflowError(f"step {name} depends on itself: remove the reference")
    for step in steps:
        if step.get("Type") == "Condition":
            for inner in [*step["Arguments"].get("IfSteps", []), *step["Arguments"].get("ElseSteps", [])]:
                graph[inner["Name"]].add(step["Name"])
    return graph


def order(definition: Mapping[str, Any]) -> list[str]:
    """The steps in an order SageMaker could run them (every step after the ones it needs)."""
    graph = needs(definition)
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise WorkflowError(f"the steps form a cycle: {cycle}: remove one of these dependencies") from None
