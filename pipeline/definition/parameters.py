"""Pipeline parameters as plain data, built from the settings and the training contract, and the
checking of ``Name=Value`` overrides.

Nothing here imports the SageMaker SDK: ``start`` and ``run --local`` check overrides
against this list before any AWS call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.definition import aws_rules, values
from pipeline.definition.aws_rules import APPROVAL_STATUSES, MAX_INSTANCE_COUNT, MAX_RUNTIME_LIMIT, MIN_RUNTIME
from pipeline.definition.contract import Contract
from pipeline.errors import ParameterError

IMAGE_URI = "ImageUri"
INSTANCE_TYPE_PARAMETER = "TrainingInstanceType"
INSTANCE_COUNT = "TrainingInstanceCount"
MAX_RUNTIME = "MaxRuntimeSeconds"
# Step caching keys on the step's arguments, where a channel is only its S3 prefix: new data
# under the same prefix would return the cached model. This value, a hash of what the prefixes
# hold, reaches the arguments (as an environment variable) so that changed data misses the cache.
DATA_FINGERPRINT = "DataFingerprint"
FINGERPRINT_VARIABLE = "PIPELINE_DATA_FINGERPRINT"
FINGERPRINT_HELP = (
    "hash of the channels' S3 objects, so that changed data is not served a cached model;"
    " `python -m pipeline start` fills it in; from Studio, after changing data in place, enter any new value"
)
EVALUATION_INSTANCE_TYPE = "EvaluationInstanceType"
MODEL_PACKAGE_GROUP = "ModelPackageGroupName"
APPROVAL_STATUS = "ModelApprovalStatus"


def check_s3_uri(value: Any) -> str | None:
    return None if aws_rules.S3_URI.fullmatch(str(value)) else "must be an s3://BUCKET/PREFIX URI"


def _instance_type(value: Any) -> str | None:
    return None if aws_rules.INSTANCE_TYPE.fullmatch(str(value)) else "must look like ml.m5.large"


def _image_uri(value: Any) -> str | None:
    if aws_rules.parse_image_uri(str(value)) is None:
        return f"must be an ECR image URI with a tag or digest: {aws_rules.IMAGE_URI_FORM}"
    return None


def _approval_status(value: Any) -> str | None:
    return None if value in APPROVAL_STATUSES else f"must be one of {', '.join(APPROVAL_STATUSES)}"


def _group_name(value: Any) -> str | None:
    ok = aws_rules.MODEL_PACKAGE_GROUP_NAME.fullmatch(str(value))
    return None if ok else f"must be letters, digits and hyphens, at most {aws_rules.MAX_MODEL_PACKAGE_GROUP_NAME}"


def _between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter: what Studio shows, and what ``--param`` accepts."""

    name: str
    type: str  # a contract type: int, float, str, bool or json
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None
    hyperparameter: str | None = None  # the entry point's flag this parameter feeds
    channel: str | None = None  # the channel this parameter's S3 prefix feeds


def pipeline_parameters(
    contract: Contract, image_uri: str = "", data_uri: Callable[[str], str] = lambda channel: ""
) -> tuple[Parameter, ...]:
    """The parameters of a training step on the contract, in the order Studio lists them.

    ``data_uri`` gives a channel's default prefix. The pipeline module may add its own
    (:class:`pipeline.definition.sdk.Project`); the definition lists them all.
    """
    return (
        Parameter(IMAGE_URI, "str", image_uri, "framework image the jobs run", _image_uri),
        Parameter(INSTANCE_TYPE_PARAMETER, "str", contract.instance_type, "training instance type", _instance_type),
        Parameter(
            INSTANCE_COUNT,
            "int",
            contract.instance_count,
            "number of training instances",
            _between(1, MAX_INSTANCE_COUNT),
        ),
        Parameter(
            MAX_RUNTIME,
            "int",
            contract.max_runtime_seconds,
            "training job time limit in seconds",
            _between(MIN_RUNTIME, MAX_RUNTIME_LIMIT),
        ),
        *(
            Parameter(
                c.parameter_name,
                "str",
                data_uri(c.name),
                f"S3 prefix of the {c.name} channel" + (f": {c.help}" if c.help else ""),
                check_s3_uri,
                channel=c.name,
            )
            for c in contract.channels
        ),
        *((Parameter(DATA_FINGERPRINT, "str", "", FINGERPRINT_HELP),) if contract.channels else ()),
        *(
            Parameter(hp.parameter_name, hp.type, hp.default, hp.help, hyperparameter=hp.name)
            for hp in contract.hyperparameters
        ),
    )


# Checks for the names the building blocks give their parameters; any parameter whose default is an
# S3 URI must stay one, any *InstanceType must look like an instance type.
KNOWN_CHECKS: dict[str, Callable[[Any], str | None]] = {
    IMAGE_URI: _image_uri,
    INSTANCE_COUNT: _between(1, MAX_INSTANCE_COUNT),
    MAX_RUNTIME: _between(MIN_RUNTIME, MAX_RUNTIME_LIMIT),
    MODEL_PACKAGE_GROUP: _group_name,
    APPROVAL_STATUS: _approval_status,
}
# Definition parameter types and the value types the CLI parses them as.
DEFINITION_TYPES = {"String": "str", "Integer": "int", "Float": "float", "Boolean": "bool"}


def known_check(name: str, default: Any) -> Callable[[Any], str | None] | None:
    """The project's check for a parameter of a definition, by its name or its default."""
    if name in KNOWN_CHECKS:
        return KNOWN_CHECKS[name]
    if name.endswith("InstanceType"):
        return _instance_type
    return check_s3_uri if str(default).startswith("s3://") else None


def from_definition(definition: Mapping[str, Any], help: Mapping[str, str] | None = None) -> list[Parameter]:
    """A definition's parameters, typed, with the project's checks where it knows them: what Studio
    shows, and what ``start --param`` and ``run --local --param`` accept, for any DAG."""
    found = []
    for item in definition.get("Parameters", []):
        kind = DEFINITION_TYPES.get(item["Type"])
        if kind is None:
            raise ParameterError(f"parameter {item['Name']} has type {item['Type']}, which runs only on SageMaker")
        default = item.get("DefaultValue", "")
        text = (help or {}).get(item["Name"], "")
        found.append(Parameter(item["Name"], kind, default, text, known_check(item["Name"], default)))
    return found


def step_parameters(definition: Mapping[str, Any]) -> set[str]:
    """The names of the parameters some step reads (``Get: Parameters.NAME`` anywhere in its steps)."""
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("Get")
            if isinstance(target, str) and target.startswith("Parameters."):
                used.add(target.removeprefix("Parameters."))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition.get("Steps", []))
    return used


def convert(parameter: Parameter, raw: str) -> Any:
    """``raw`` as the parameter's type, or a :class:`ParameterError` saying what was expected."""
    value = values.parse(parameter.type, raw, f"parameter {parameter.name}")
    problem = parameter.check(value) if parameter.check else None
    if problem:
        raise ParameterError(f"parameter {parameter.name} {problem}, got {raw!r}")
    return value


def split_pair(pair: str, flag: str) -> tuple[str, str]:
    """``Name=Value`` as its two halves, or one error naming the flag's form."""
    name, sep, raw = pair.partition("=")
    if not sep or not name:
        raise ParameterError(f"{flag} {pair!r} is not NAME=VALUE")
    return name, raw


def parse_overrides(pairs: Iterable[str], parameters: Iterable[Parameter]) -> dict[str, Any]:
    """``["Name=Value", ...]`` as typed values, checked against the pipeline's parameters."""
    known = {p.name: p for p in parameters}
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, raw = split_pair(pair, "--param")
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ParameterError(f"unknown parameter {name!r}; known: {listed}")
        if name in overrides:
            raise ParameterError(f"--param {name} is given twice; give it once")
        overrides[name] = convert(known[name], raw)
    return overrides


def resolve(parameters: Iterable[Parameter], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value: its override if given, else its default."""
    return {p.name: overrides.get(p.name, p.default) for p in parameters}


def execution_values(parameters: Iterable[Parameter], overrides: Mapping[str, Any]) -> list[dict[str, str]]:
    """Overrides as StartPipelineExecution's ``PipelineParameters``: every value is text."""
    kinds = {p.name: p.type for p in parameters}
    return [{"Name": name, "Value": values.as_text(kinds[name], value)} for name, value in overrides.items()]
