r"""Requests checked against AWS's own published constraints, before anything is written.

botocore ships the model every SageMaker and S3 call is described by: each member's type,
the required members, string patterns, lengths, ranges and enums. :func:`problems` walks a
request through its operation's input shape and names every violation by its path
(``CreatePipeline.Tags[3].Key``), so a plan AWS would refuse halfway is refused whole,
before its first upload. botocore itself checks little of this (types and minimums only).

The patterns are Java regexes. Their Java-only constructs are translated, and matching is
``re.fullmatch`` with ASCII classes, as in the project's own checks: ``\p{L}`` reads as an
ASCII letter, so a tag with a non-ASCII letter is refused here although AWS would take it.
The few copies of the model's facts that the offline path checks without loading it live in
``pipeline/definition/aws_rules.py`` (tests compare them with the model). On top of the model
come the rules AWS enforces without stating them in it: tag keys under the reserved ``aws:``
prefix, or given twice (:func:`settings.tag_key_problem`); and the rule
the image's toolkit (sagemaker-training 5.1.4) applies to entry point names when a job starts
(:func:`entry_point_problem`), which would otherwise fail the job minutes after a clean upsert.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from typing import Any

from pipeline import aws
from pipeline.definition.contract import entry_point_problem
from pipeline.definition.dag import all_steps
from pipeline.definition.expressions import evaluate
from pipeline.definition.sdk import PROCESSING_MODULE
from pipeline.definition.settings import fix, shown, tag_key_problem
from pipeline.errors import AwsError


class InvalidRequest(AwsError):
    """A request AWS would refuse, found before anything was written."""


RUNTIME = object()  # a value known only when the pipeline runs (another step's output): not checked

# What a pipeline fills in for a step, as placeholders that satisfy the model's patterns.
EXECUTION_ID = "0123456789ab"
JOB_NAME = f"pipelines-{EXECUTION_ID}-step-0123456789"
STEP_OPERATIONS = {
    "Training": ("CreateTrainingJob", {"TrainingJobName": JOB_NAME}),
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": JOB_NAME}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Transform": ("CreateTransformJob", {"TransformJobName": JOB_NAME}),
}
# Where a step names the script the image runs (see _entry_points).
ENTRY_POINT_FIELDS = {
    "Training": "HyperParameters.sagemaker_program",
    "Processing": "the processing script",
}

# The setting to change when a pipeline-level field is refused; steps say STEP_FIX.
FIXES = {
    "PipelineName": f"set {fix('pipeline_name')}",
    "PipelineDisplayName": f"set {fix('pipeline_name')}",
    "RoleArn": f"set {fix('role_arn')}",
    "Tags": f"set {fix('tags')}",
    "PipelineParameters": "fix the --param value",
    "MaxResults": "pass a smaller --limit",
}
STEP_FIX = "fix the source dir's training.toml or workflow.py, or the settings the step is built from"

# Java-only constructs in the models' patterns, as ASCII classes Python's re understands.
JAVA_CLASSES = {
    r"\p{L}": "a-zA-Z",
    r"\p{N}": "0-9",
    r"\p{Alnum}": "a-zA-Z0-9",
    r"\p{Z}": " ",
    r"\p{M}": "",
    r"\p{S}": re.escape("$+<=>^`|~"),
    r"\p{P}": re.escape("!\"#%&'()*,-./:;?@[\\]_{}"),
    # A UTF-16 surrogate pair range: every code point above the Basic Multilingual Plane.
    r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010FFFF",
}
REPEATED_ANCHOR = re.compile(r"\$\{\d+,\d+\}")  # "(...)${1,128}": Java repeats the anchor, a no-op


@cache
def _pattern(java: str) -> re.Pattern[str] | None:
    """A model's pattern as a Python regex; None for a construct Python lacks (lengths still apply)."""
    python = REPEATED_ANCHOR.sub("$", java)
    for construct, ascii_class in JAVA_CLASSES.items():
        python = python.replace(construct, ascii_class)
    try:
        return re.compile(python, re.ASCII)
    except re.error:
        return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _count(shape: Any, count: int, path: str, unit: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and count < low:
        yield f"{path}: {count} {unit}, at least {low}"
    if high is not None and count > high:
        yield f"{path}: {count} {unit}, at most {high}"


def _structure(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, Mapping):
        yield f"{path}: expected an object, got {_kind(value)}"
        return
    for name in shape.required_members:
        if name not in value and not shape.members[name].metadata.get("idempotencyToken"):  # botocore fills those
            yield f"{path}.{name}: required"
    if shape.metadata.get("union") and len(value) != 1:
        yield f"{path}: exactly one of {', '.join(shape.members)} must be set"
    for name, item in value.items():
        member = shape.members.get(name)
        if member is None:
            yield f"{path}.{name}: not a field of {shape.name}"
        else:
            yield from _walk(member, item, f"{path}.{name}")


def _list(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, list | tuple):
        yield f"{path}: expected a list, got {_kind(value)}"
        return
    yield from _count(shape, len(value), path, "items")
    for i, item in enumerate(value):
        yield from _walk(shape.member, item, f"{path}[{i}]")
    if shape.name == "TagList":
        keys = [str(tag.get("Key")) if isinstance(tag, Mapping) else "" for tag in value]
        for i, key in enumerate(keys):
            problem = tag_key_problem(key, keys[:i])
            if problem:
                yield f"{path}[{i}].Key: {shown(key)} {problem}"


def _map(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, Mapping):
        yield f"{path}: expected an object, got {_kind(value)}"
        return
    yield from _count(shape, len(value), path, "entries")
    for key, item in value.items():
        yield from _walk(shape.key, key, f"{path} key {shown(str(key))}")
        yield from _walk(shape.value, item, f"{path}[{json.dumps(key)}]")


def _string(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, str):
        yield f"{path}: expected a string, got {_kind(value)} {value!r}"
        return
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        limits = f"{low or 0} to {high}" if high is not None else f"at least {low}"
        yield f"{path}: {len(value)} characters; allowed: {limits}"
        return
    if shape.enum and value not in shape.enum:
        yield f"{path}: {shown(value)} is not {_one_of(shape, value)}"
        return
    pattern = shape.metadata.get("pattern")
    compiled = _pattern(pattern) if pattern else None
    if compiled and not compiled.fullmatch(value):
        yield f"{path}: {shown(value)} does not match {pattern}"


def _one_of(shape: Any, value: str) -> str:
    """The allowed values; for a long list, its size and the closest ones."""
    import botocore

    if len(shape.enum) <= 6:
        return f"one of {', '.join(shape.enum)}"
    close = difflib.get_close_matches(value, shape.enum, n=3)
    hint = f" (closest: {', '.join(close)})" if close else ""
    # An enum grows with every new instance type: a newer boto3 knows the newest values.
    return f"one of the {len(shape.enum)} values botocore {botocore.__version__} lists for {shape.name}{hint}"


def _integer(shape: Any, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        yield f"{path}: expected a whole number, got {_kind(value)} {value!r}"
        return
    yield from _range(shape, value, path)


def _float(shape: Any, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        yield f"{path}: expected a finite number, got {_kind(value)} {value!r}"
        return
    yield from _range(shape, value, path)


def _range(shape: Any, value: float, path: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        yield f"{path}: {value} is below the minimum {low}"
    if high is not None and value > high:
        yield f"{path}: {value} is above the maximum {high}"


def _boolean(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, bool):
        yield f"{path}: expected true or false, got {_kind(value)} {value!r}"


def _timestamp(shape: Any, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, date | str | int | float):
        yield f"{path}: expected a time, got {_kind(value)}"


def _blob(shape: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, bytes | bytearray | str) and not hasattr(value, "read"):
        yield f"{path}: expected bytes, got {_kind(value)}"


CHECKS = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
}


def _walk(shape: Any, value: Any, path: str) -> Iterator[str]:
    if value is RUNTIME:
        return
    check = CHECKS.get(shape.type_name)
    if check:
        yield from check(shape, value, path)


def problems(operation: str, request: Mapping[str, Any], service: str = "sagemaker", root: str = "") -> list[str]:
    """Every way ``request`` breaks ``operation``'s input shape, each as ``path: what is wrong``."""
    shape = aws.service_model(service).operation_model(operation).input_shape
    return list(_walk(shape, request, root + operation))


def _refuse(found: list[str], fix_text: str, outcome: str = "AWS would refuse it") -> None:
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InvalidRequest(f"{found[0]}{more}: {fix_text}; {outcome}, so nothing was written")


def check(operation: str, request: Mapping[str, Any], service: str = "sagemaker") -> None:
    """Refuse ``request`` unless AWS would take it, naming the first problem and the setting to fix."""
    found = problems(operation, request, service)
    if found:
        member = re.match(r"\w+\.(\w+)", found[0])  # "CreatePipeline.Tags[3].Key: ..." -> Tags
        field = member.group(1) if member else operation
        _refuse(found, FIXES.get(field, f"fix {operation}'s {field}"))


# --- a definition's steps, as the calls the pipeline will make -----------------------------------


def _mark_runtime(node: Any, parameters: Mapping[str, Any], execution: Mapping[str, str]) -> Any:
    """``node`` with every expression that cannot be evaluated yet (another step's properties, a
    JSON path into its output, a parameter without a value) replaced by :data:`RUNTIME`."""
    if isinstance(node, list):
        return [_mark_runtime(item, parameters, execution) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Get"}:
        scope, _, name = str(node["Get"]).partition(".")
        known = (scope == "Parameters" and name in parameters) or (scope == "Execution" and name in execution)
        return node if known else RUNTIME
    if any(key.startswith("Std:") and key != "Std:Join" for key in node):
        return RUNTIME
    marked = {key: _mark_runtime(value, parameters, execution) for key, value in node.items()}
    if set(node) == {"Std:Join"} and any(value is RUNTIME for value in marked["Std:Join"].get("Values", [])):
        return RUNTIME
    return marked


def _execution(pipeline_name: str) -> dict[str, str]:
    """Execution variables as placeholders shaped like the real ones."""
    arn = f"arn:aws:sagemaker:us-east-1:111122223333:pipeline/{pipeline_name.lower()}"
    return {
        "ExecutionId": EXECUTION_ID,
        "PipelineExecutionId": EXECUTION_ID,
        "PipelineExecutionArn": f"{arn}/execution/{EXECUTION_ID}",
        "PipelineName": pipeline_name,
        "PipelineArn": arn,
        "StartDateTime": "2024-01-01T00:00:00Z",
        "CurrentDateTime": "2024-01-01T00:00:00Z",
        "TrainingJobName": JOB_NAME,
        "ProcessingJobName": JOB_NAME,
    }


def _parameter_values(definition: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter's value for a run: its override, else its default (none: known at run time)."""
    defaults = {p["Name"]: p["DefaultValue"] for p in definition.get("Parameters", []) if "DefaultValue" in p}
    return {**defaults, **overrides}


def _hyperparameter(text: str) -> Any:
    """A hyperparameter as the toolkit reads it: JSON, else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _entry_points(step: Mapping[str, Any], arguments: Mapping[str, Any]) -> Iterator[Any]:
    """The names a step's job gives the image for the script to run, as the image reads them: a training job's
    ``sagemaker_program``, and the script after the archive in ``python3 -m
    custom_framework_training.processing ARCHIVE SCRIPT`` (ContainerEntrypoint, then ContainerArguments)."""
    if step.get("Type") == "Training":
        hyperparameters = arguments.get("HyperParameters")
        program = hyperparameters.get("sagemaker_program") if isinstance(hyperparameters, Mapping) else None
        if isinstance(program, str):
            yield _hyperparameter(program)
    elif step.get("Type") == "Processing":
        app = arguments.get("AppSpecification")
        app = app if isinstance(app, Mapping) else {}
        argv = [item for key in ("ContainerEntrypoint", "ContainerArguments") for item in _items(app.get(key))]
        if PROCESSING_MODULE in argv:
            after = argv[argv.index(PROCESSING_MODULE) + 1 :]
            yield after[1] if len(after) > 1 else ""


def _entry_point_problems(step: Mapping[str, Any], arguments: Mapping[str, Any]) -> Iterator[str]:
    """The toolkit's rules that would fail the job at start, checked on the names the definition gives."""
    where = ENTRY_POINT_FIELDS.get(step.get("Type"), "entry point")
    for name in _entry_points(step, arguments):
        if name is RUNTIME:
            continue
        if not isinstance(name, str):
            problem = f"the entry point {json.dumps(name)} is not a file name: name the script"
        else:
            problem = entry_point_problem(name) if name else "no entry point is named: name the script"
        if problem:
            yield f"step {step.get('Name')}: {where}: {problem}"


def _problems_by_kind(
    definition: Mapping[str, Any], overrides: Mapping[str, Any], pipeline_name: str
) -> tuple[list[str], list[str]]:
    """The steps' problems AWS would refuse, and those the image's toolkit would fail a job for."""
    values = _parameter_values(definition, overrides)
    execution = _execution(pipeline_name)
    refused: list[str] = []
    failing: list[str] = []
    for step in all_steps(definition.get("Steps", [])):
        if step.get("Type") not in STEP_OPERATIONS:
            continue
        operation, filled = STEP_OPERATIONS[step["Type"]]
        arguments = evaluate(_mark_runtime(step.get("Arguments", {}), values, execution), values, execution)
        refused += problems(operation, {**filled, **arguments}, root=f"step {step.get('Name')}: ")
        failing += _entry_point_problems(step, arguments)
    return refused, failing


def step_problems(definition: Mapping[str, Any], overrides: Mapping[str, Any], pipeline_name: str) -> list[str]:
    """Every problem of the calls the steps make (CreateTrainingJob, CreateProcessingJob,
    CreateModelPackage, CreateTransformJob), with the parameters at ``overrides``, else their
    defaults, and the expressions evaluated as SageMaker does; then every entry point name the
    image's toolkit would refuse when the job starts (:func:`entry_point_problem`)."""
    refused, failing = _problems_by_kind(definition, overrides, pipeline_name)
    return refused + failing


def check_steps(
    definition: Mapping[str, Any], overrides: Mapping[str, Any], pipeline_name: str, fix_text: str = STEP_FIX
) -> None:
    """Refuse a definition whose steps would make a call AWS refuses, or start a job the image's
    toolkit fails at once (see :func:`step_problems`)."""
    refused, failing = _problems_by_kind(definition, overrides, pipeline_name)
    _refuse(refused, fix_text)
    _refuse(failing, fix_text, "the job would fail as it starts")
