"""The training contract: what the code in a source dir declares about itself, in ``training.toml``.

The file sits beside the entry point, ships inside ``sourcedir.tar.gz``, and is the one
source of the entry point, hyperparameters, channels, metrics and default resources of the
training script: the training step's parameters and metric definitions (built by
:class:`pipeline.definition.sdk.Project`), ``train-local --hp`` and the sample data. What
runs before and after training is the pipeline module's (:data:`WORKFLOW_FILE`). A source dir without the
file is valid: it declares nothing, and the command line supplies the rest.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.definition.sample_data import CHANNEL_ROWS as SAMPLE_SPLITS
from pipeline.errors import ContractError

CONTRACT_FILE = "training.toml"
# The user's pipeline module beside it: builds the DAG, and never ships in the code archive.
WORKFLOW_FILE = "workflow.py"
DEFAULT_ENTRY_POINT = "train.py"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_INSTANCE_COUNT = 1
DEFAULT_MAX_RUNTIME_SECONDS = 3600

# Declared type -> the pipeline parameter type that carries it. "json" values (lists,
# dicts) travel as a String parameter holding JSON text, which the toolkit decodes.
PARAMETER_TYPES = {"int": "Integer", "float": "Float", "str": "String", "bool": "Boolean", "json": "String"}
INPUT_MODES = ("File", "Pipe", "FastFile")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
# CreateTrainingJob's ChannelName pattern (botocore), and names that map onto pipeline parameters.
CHANNEL_NAME = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9.\-_]{1,64}", re.ASCII)  # not "." or "..": a folder of its own
HYPERPARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}", re.ASCII)
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


# sagemaker-training 5.1.4's rule for entry point names (sagemaker_training.process.validate_entry_point),
# checked against the toolkit itself by tests/test_workflow_module.py: importing the toolkit in the CLI
# would create its /opt/ml stand-in folders under $HOME.
SAFE_ENTRY_POINT = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+)*", re.ASCII)


def entry_point_problem(name: Any) -> str | None:
    """Why the image's toolkit would refuse ``name`` as an entry point when the job starts: letters,
    digits and ``. _ + - /`` only, relative, not starting with ``-``, no ``.`` or ``..`` segments."""
    text = str(name)
    if not SAFE_ENTRY_POINT.fullmatch(text) or text.startswith("-"):
        return (
            f"the entry point {text!r} would be refused by the toolkit when the job starts: use only letters,"
            " digits, '.', '_', '+', '-' and '/', not starting with '-' or '/'; rename the script"
        )
    if any(segment in (".", "..") for segment in text.split("/")):
        return f"the entry point {text!r} has a '.' or '..' segment, which the toolkit refuses: name the file plainly"
    return None


def pascal_case(name: str) -> str:
    """``max-leaf-nodes`` -> ``MaxLeafNodes``: how a declared name becomes a pipeline parameter."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", name) if part)


def convention_regex(metric: str) -> str:
    """The regex for a metric printed as ``name=value;``, the project's convention."""
    return f"{re.escape(metric)}={NUMBER};"


@dataclass(frozen=True)
class Hyperparameter:
    """One ``--name value`` flag of the entry point."""

    name: str
    type: str  # a key of PARAMETER_TYPES
    default: Any
    help: str = ""

    @property
    def parameter_name(self) -> str:
        return pascal_case(self.name)


@dataclass(frozen=True)
class Channel:
    """One input channel: ``/opt/ml/input/data/<name>``. Declared in the contract it is fed from an S3
    prefix parameter; in a job it has a ``source`` (a folder or an ``s3://`` prefix) and the same settings."""

    name: str
    content_type: str | None = None
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    sample: str | None = None  # the embedded sample split that seeds it by default
    help: str = ""
    source: str = ""  # a job's: where its data comes from

    @property
    def parameter_name(self) -> str:
        return pascal_case(self.name) + "Data"


@dataclass(frozen=True)
class Metric:
    """A metric SageMaker finds in the job's log with ``regex`` (one capture group)."""

    name: str
    regex: str

    def definition(self) -> dict[str, str]:
        """As CreateTrainingJob's ``MetricDefinitions`` takes it."""
        return {"Name": self.name, "Regex": self.regex}


@dataclass(frozen=True)
class Contract:
    """Everything a source dir declares; the defaults stand for an undeclared source dir."""

    entry_point: str = DEFAULT_ENTRY_POINT
    hyperparameters: tuple[Hyperparameter, ...] = ()
    channels: tuple[Channel, ...] = ()
    metrics: tuple[Metric, ...] = ()
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS
    environment: Mapping[str, str] = field(default_factory=dict)

    def hyperparameter(self, name: str) -> Hyperparameter | None:
        return next((hp for hp in self.hyperparameters if hp.name == name), None)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def metric_definitions(self) -> list[dict[str, str]]:
        return [metric.definition() for metric in self.metrics]


# --- parsing: plain data in, a Contract or one ContractError naming the key out ------------------


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where} must be a table")
    return value


def _keys(table: Mapping[str, Any], allowed: set[str], where: str, hint: str = "") -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ContractError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}{hint}")


def _text(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip() or (pattern and not pattern.fullmatch(value)):
        expected = f"matching {pattern.pattern}" if pattern else "non-empty"
        raise ContractError(f"{where} must be a {expected} string, got {value!r}")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ContractError(f"{where} must be a whole number >= 1, got {value!r}")
    return value


def check_value(kind: str, value: Any) -> Any:
    """``value`` if it is of the declared type (an int counts as a float), else ``ValueError``."""
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):  # JSON, and so SageMaker's definition, has no NaN or Infinity
            raise ValueError(f"expected a finite float, got {value!r}")
        return float(value)
    if (kind == "str" and isinstance(value, str)) or (kind == "bool" and isinstance(value, bool)):
        return value
    if kind == "json" and isinstance(value, list | dict):
        json.dumps(value)  # TOML dates and times are not JSON: fail here, not at render time
        return value
    raise ValueError(f"expected {kind}, got {value!r}")


def _hyperparameter(name: str, spec: Any, where: str) -> Hyperparameter:
    _text(name, f"{where} name", HYPERPARAMETER_NAME)
    table = _table(spec, where)
    _keys(table, {"type", "default", "help"}, where)
    kind = table.get("type")
    if kind not in PARAMETER_TYPES:
        raise ContractError(f"{where}.type must be one of {', '.join(PARAMETER_TYPES)}, got {kind!r}")
    if "default" not in table:
        raise ContractError(f"{where} needs a default (Studio shows it, and runs use it)")
    try:
        default = check_value(kind, table["default"])
    except (TypeError, ValueError) as error:
        raise ContractError(f"{where}.default: {error}") from None
    return Hyperparameter(name, kind, default, str(table.get("help", "")))


def _channel(name: str, spec: Any, where: str) -> Channel:
    _text(name, f"{where} name", CHANNEL_NAME)
    table = _table(spec, where)
    _keys(table, {"content_type", "input_mode", "distribution", "sample", "help"}, where)
    channel = Channel(
        name,
        content_type=_text(table["content_type"], f"{where}.content_type") if "content_type" in table else None,
        input_mode=table.get("input_mode", "File"),
        distribution=table.get("distribution", "FullyReplicated"),
        sample=_text(table["sample"], f"{where}.sample") if "sample" in table else None,
        help=str(table.get("help", "")),
    )
    if channel.sample is not None and channel.sample not in SAMPLE_SPLITS:
        raise ContractError(f"{where}.sample must name a sample split: {', '.join(SAMPLE_SPLITS)}")
    if channel.input_mode not in INPUT_MODES:
        raise ContractError(f"{where}.input_mode must be one of {', '.join(INPUT_MODES)}")
    if channel.distribution not in DISTRIBUTIONS:
        raise ContractError(f"{where}.distribution must be one of {', '.join(DISTRIBUTIONS)}")
    return channel


def _metric(spec: Any, where: str) -> Metric:
    table = _table(spec, where)
    _keys(table, {"name", "regex"}, where)
    name = _text(table.get("name"), f"{where}.name")
    if "regex" not in table:
        return Metric(name, convention_regex(name))
    regex = _text(table["regex"], f"{where}.regex")
    problem = regex_problem(regex)
    if problem:
        raise ContractError(f"{where}.regex {problem}")
    return Metric(name, regex)


def regex_problem(regex: str) -> str | None:
    """Why ``regex`` cannot be a metric definition's (it must compile, with one group: the value)."""
    try:
        groups = re.compile(regex).groups
    except re.error as error:
        return f"does not compile: {error}"
    return None if groups == 1 else f"must have exactly one capture group (the value), has {groups}"


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ContractError(f"{what} {name!r} is declared twice")
        seen.add(name)


def from_data(data: Mapping[str, Any], origin: str = CONTRACT_FILE) -> Contract:
    """A contract from parsed TOML; every problem is a :class:`ContractError` naming the key."""
    _keys(
        data,
        {"entry_point", "hyperparameters", "channels", "metrics", "resources", "environment"},
        origin,
        f"; the steps after training are the pipeline module's ({WORKFLOW_FILE})",
    )
    resources = _table(data.get("resources", {}), f"{origin}: resources")
    _keys(resources, {"instance_type", "instance_count", "max_runtime_seconds"}, f"{origin}: resources")
    environment = _table(data.get("environment", {}), f"{origin}: environment")
    for key, value in environment.items():
        _text(value, f"{origin}: environment.{key}")
    metrics = data.get("metrics", [])
    if not isinstance(metrics, list):
        raise ContractError(f"{origin}: metrics must be a list of {{ name = ..., regex = ... }} tables")
    hyperparameters = _table(data.get("hyperparameters", {}), f"{origin}: hyperparameters")
    channels = _table(data.get("channels", {}), f"{origin}: channels")
    declared_channels = tuple(_channel(name, spec, f"{origin}: channels.{name}") for name, spec in channels.items())
    contract = Contract(
        entry_point=_text(data.get("entry_point", DEFAULT_ENTRY_POINT), f"{origin}: entry_point"),
        hyperparameters=tuple(
            _hyperparameter(name, spec, f"{origin}: hyperparameters.{name}") for name, spec in hyperparameters.items()
        ),
        channels=declared_channels,
        metrics=tuple(_metric(spec, f"{origin}: metrics[{i}]") for i, spec in enumerate(metrics)),
        instance_type=_text(
            resources.get("instance_type", DEFAULT_INSTANCE_TYPE), f"{origin}: resources.instance_type"
        ),
        instance_count=_positive_int(
            resources.get("instance_count", DEFAULT_INSTANCE_COUNT), f"{origin}: resources.instance_count"
        ),
        max_runtime_seconds=_positive_int(
            resources.get("max_runtime_seconds", DEFAULT_MAX_RUNTIME_SECONDS),
            f"{origin}: resources.max_runtime_seconds",
        ),
        environment=dict(environment),
    )
    _unique([m.name for m in contract.metrics], f"{origin}: metric")
    _unique(
        [hp.parameter_name for hp in contract.hyperparameters] + [c.parameter_name for c in contract.channels],
        f"{origin}: pipeline parameter",
    )
    return contract


def parse(text: str, origin: str = CONTRACT_FILE) -> Contract:
    """A contract from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(f"{origin} is not valid TOML: {error}") from None
    return from_data(data, origin)


def load(source_dir: Path) -> Contract:
    """The contract of ``source_dir``, or the empty one when it declares none."""
    path = source_dir / CONTRACT_FILE
    if not path.exists() and not path.is_symlink():
        return Contract()
    if not path.is_file():  # a folder, a device, a broken link: never read as "no contract"
        raise ContractError(f"{path} is not a regular file: make it one (or remove it to use the defaults)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{path} is not UTF-8 text") from None
    return parse(text, str(path))
