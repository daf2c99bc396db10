"""Pipeline parameters as plain data, and validation of ``Name=Value`` overrides.

Nothing here imports the SageMaker SDK: ``start`` and ``run --local`` check
overrides against this list before any AWS call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pipeline.hyperparameters import HYPERPARAMETERS, Value

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
# An ECR image, or one in a registry on loopback (deploy rehearsals), with a tag or a digest.
ECR_IMAGE = re.compile(
    r"(\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?|(127\.0\.0\.1|localhost):\d{1,5})"
    r"/[a-z0-9][a-z0-9._/-]*(:\w[\w.-]{0,127}|@sha256:[0-9a-f]{64})",
    re.ASCII,
)

TRAIN_DATA = "TrainData"
VALIDATION_DATA = "ValidationData"
INSTANCE_TYPE_PARAM = "TrainingInstanceType"
INSTANCE_COUNT_PARAM = "TrainingInstanceCount"
MAX_RUNTIME_PARAM = "MaxRuntimeSeconds"
IMAGE_URI_PARAM = "ImageUri"


class ParameterError(ValueError):
    """A parameter override that the pipeline would reject."""


def _s3_uri(value: Value) -> str | None:
    return None if str(value).startswith("s3://") else "must be an s3:// URI"


def _instance_type(value: Value) -> str | None:
    return None if INSTANCE_TYPE.fullmatch(str(value)) else "must look like ml.m5.large"


def _image_uri(value: Value) -> str | None:
    if ECR_IMAGE.fullmatch(str(value)) is None:
        return "must be an ECR image URI with a tag or digest: ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG"
    return None


def _at_least(low: int) -> Callable[[Value], str | None]:
    return lambda value: None if isinstance(value, int) and value >= low else f"must be an integer >= {low}"


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter: what Studio shows, and what ``--param`` accepts."""

    name: str
    type: type[int] | type[float] | type[str]
    default: Value
    help: str
    check: Callable[[Value], str | None] | None = None
    hyperparameter: str | None = None  # the train.py flag this parameter feeds


def pipeline_parameters(image_uri: str = "", train_uri: str = "", validation_uri: str = "") -> tuple[Parameter, ...]:
    """Every parameter of the pipeline, in the order Studio lists them.

    The defaults depend on the settings; checking an override needs only names and types.
    """
    return (
        Parameter(IMAGE_URI_PARAM, str, image_uri, "framework image the training job runs", _image_uri),
        Parameter(INSTANCE_TYPE_PARAM, str, "ml.m5.large", "training instance type", _instance_type),
        Parameter(INSTANCE_COUNT_PARAM, int, 1, "number of training instances", _at_least(1)),
        Parameter(MAX_RUNTIME_PARAM, int, 3600, "training job time limit in seconds", _at_least(60)),
        Parameter(TRAIN_DATA, str, train_uri, "S3 prefix of the train channel's CSV files", _s3_uri),
        Parameter(VALIDATION_DATA, str, validation_uri, "S3 prefix of the validation channel's CSV files", _s3_uri),
        *(Parameter(hp.parameter_name, hp.type, hp.default, hp.help, hyperparameter=hp.name) for hp in HYPERPARAMETERS),
    )


def convert(parameter: Parameter, raw: str) -> Value:
    """``raw`` as the parameter's type, or a :class:`ParameterError` saying what was expected."""
    try:
        value: Value = parameter.type(raw)
    except ValueError:
        raise ParameterError(f"parameter {parameter.name} expects {parameter.type.__name__}, got {raw!r}") from None
    problem = parameter.check(value) if parameter.check else None
    if problem:
        raise ParameterError(f"parameter {parameter.name} {problem}, got {raw!r}")
    return value


def parse_overrides(pairs: Iterable[str], parameters: Iterable[Parameter]) -> dict[str, Value]:
    """``["Name=Value", ...]`` as typed values, checked against the pipeline's parameters."""
    known = {p.name: p for p in parameters}
    overrides: dict[str, Value] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ParameterError(f"--param {pair!r} is not Name=Value")
        if name not in known:
            raise ParameterError(f"unknown parameter {name!r}; known: {', '.join(sorted(known))}")
        overrides[name] = convert(known[name], raw)
    return overrides


def resolve(parameters: Iterable[Parameter], overrides: Mapping[str, Value]) -> dict[str, Value]:
    """Every parameter's value: its override if given, else its default."""
    return {p.name: overrides.get(p.name, p.default) for p in parameters}


def parse_hyperparameters(pairs: Iterable[str]) -> dict[str, Value]:
    """``["max-iter=50", ...]`` by ``train.py`` flag name, typed and checked like ``--param``."""
    by_flag = {p.hyperparameter: p for p in pipeline_parameters() if p.hyperparameter}
    values: dict[str, Value] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in by_flag:
            raise ParameterError(f"unknown hyperparameter in --hp {pair!r}; known: {', '.join(by_flag)}")
        values[name] = convert(by_flag[name], raw)
    return values
