"""Promotion of an approved model package to a stage's endpoint, as pure data: which package, which
names, which calls, and what a smoke test sends and accepts.

``promote STAGE --plan`` prints the plan, ``promote STAGE`` applies it: what one shows is what the
other does. Every call is checked against botocore's model (:mod:`pipeline.deploy.validate`)
before the first write. Names are content-addressed: the same package on the same stage settings
is the same Model and EndpointConfig, so a promotion that changes nothing plans nothing, and a
rollback whose config still exists is one UpdateEndpoint. Tags record what serves what: an
EndpointConfig's ``promotion:model-package`` is the package it serves (a fact that never changes),
an endpoint's ``promotion:previous-model-package`` the package it served before its last update.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.definition.settings import Settings, shown
from pipeline.deploy import validate
from pipeline.errors import ExitStatus, SettingsError, UserError

MAX_NAME = 63  # CreateModel/CreateEndpointConfig/CreateEndpoint names
DIGEST = 8
STAGE_NAME = re.compile(r"[a-z0-9](-?[a-z0-9]){0,19}", re.ASCII)
VARIANT = "AllTraffic"  # blue/green needs the same variant name in the old and the new config
TAG_PREFIX = "promotion:"
PACKAGE_TAG = f"{TAG_PREFIX}model-package"
PREVIOUS_TAG = f"{TAG_PREFIX}previous-model-package"
ENDPOINT_TAG = f"{TAG_PREFIX}endpoint"
STAGE_TAG = f"{TAG_PREFIX}stage"
APPROVED = "Approved"
# An update SageMaker is running: another update now would be refused, so the plan waits for none.
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
MAX_UPDATE_SECONDS = 3600  # MaximumExecutionTimeoutInSeconds of a blue/green update
MAX_BAKE_SECONDS = 3600  # its TerminationWaitInSeconds


class SmokeTestFailed(UserError):
    """The endpoint answered a smoke-test request wrongly: the promotion failed after its writes."""

    status = ExitStatus.JOB_FAILED


@dataclass(frozen=True)
class Stage:
    """What an endpoint of a stage runs on; the defaults below, overridden by flags."""

    name: str
    instance_type: str
    instance_count: int
    data_capture_percent: int = 0  # 0: off; else the share of requests and answers kept in S3
    bake_seconds: int = 0  # blue/green: how long the old fleet stays ready after the switch
    alarms: tuple[str, ...] = ()  # CloudWatch alarms that roll an update back


# Both on ml.m5.large (a CPU model, the smallest general-purpose size SageMaker's free tier names);
# prod keeps two instances (AWS's advice for availability), captures every request and bakes 10 min.
DEFAULT_STAGES = {
    "staging": Stage("staging", "ml.m5.large", 1),
    "prod": Stage("prod", "ml.m5.large", 2, data_capture_percent=100, bake_seconds=600),
}


def stage(
    name: str,
    instance_type: str | None = None,
    instance_count: int | None = None,
    data_capture_percent: int | None = None,
    bake_seconds: int | None = None,
    alarms: Sequence[str] = (),
) -> Stage:
    """The stage ``name``: its defaults with the given flags on top; another name needs --instance-type."""
    if not STAGE_NAME.fullmatch(name):
        raise SettingsError(
            f"stage {shown(name)}: use 1-20 lowercase letters, digits and single hyphens (staging, prod, qa-eu)"
        )
    base = DEFAULT_STAGES.get(name)
    if base is None:
        if instance_type is None:
            raise SettingsError(
                f"stage {name} has no defaults (only {', '.join(DEFAULT_STAGES)} do): pass --instance-type"
            )
        base = Stage(name, instance_type, 1)
    given = {
        "instance_type": instance_type,
        "instance_count": instance_count,
        "data_capture_percent": data_capture_percent,
        "bake_seconds": bake_seconds,
        "alarms": tuple(alarms) or None,
    }
    if data_capture_percent is not None and not 0 <= data_capture_percent <= 100:
        raise SettingsError(f"--data-capture {data_capture_percent}: a percentage from 0 (off) to 100")
    if bake_seconds is not None and not 0 <= bake_seconds <= MAX_BAKE_SECONDS:
        raise SettingsError(f"--bake-seconds {bake_seconds}: SageMaker allows 0 to {MAX_BAKE_SECONDS}")
    return Stage(**{**base.__dict__, **{k: v for k, v in given.items() if v is not None}})


# --- names ---------------------------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:DIGEST]


def endpoint_name(pipeline_name: str, stage_name: str) -> str:
    """``PIPELINE-STAGE``; a pipeline name too long for that keeps its start and a hash of the whole."""
    name = f"{pipeline_name}-{stage_name}"
    if len(name) <= MAX_NAME:
        return name
    keep = MAX_NAME - len(stage_name) - DIGEST - 2
    return f"{pipeline_name[:keep]}-{_digest(pipeline_name)}-{stage_name}"


def resource_name(endpoint: str, content: Any) -> str:
    """A Model's or EndpointConfig's name: the endpoint's, then a hash of what the resource holds."""
    return f"{endpoint[: MAX_NAME - DIGEST - 1]}-{_digest(content)}"


# --- packages ------------------------------------------------------------------------------------


def _status(package: Mapping[str, Any]) -> str:
    return str(package.get("ModelApprovalStatus", "unknown"))


def _version(package: Mapping[str, Any]) -> int:
    return int(package.get("ModelPackageVersion") or 0)


def newest_approved(group: str, summaries: Sequence[Mapping[str, Any]]) -> str:
    """The ARN of the group's newest Approved package, else an error naming what to approve."""
    if not summaries:
        raise SettingsError(
            f"model package group {group} holds no package: run the pipeline, or pass --model-package-group"
        )
    ordered = sorted(summaries, key=_version)
    approved = [p for p in ordered if _status(p) == APPROVED]
    if approved:
        return str(approved[-1]["ModelPackageArn"])
    newest = ordered[-1]
    raise SettingsError(
        f"model package group {group} has no Approved package (newest: version {_version(newest)},"
        f" {_status(newest)}): approve it in Studio or with aws sagemaker update-model-package"
        f" --model-package-arn {newest['ModelPackageArn']} --model-approval-status Approved; nothing was written"
    )


def require_approved(package: Mapping[str, Any]) -> None:
    """Refuse a package that is not Approved (pending, or rejected since)."""
    if _status(package) != APPROVED:
        raise SettingsError(
            f"model package {package['ModelPackageArn']} is {_status(package)}, not Approved: approve it first"
            " (or promote another); nothing was written"
        )


def container(package: Mapping[str, Any]) -> dict[str, Any]:
    """The package's one inference container: image, artifact and environment."""
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1:
        raise SettingsError(
            f"model package {package['ModelPackageArn']} has {len(containers)} inference containers;"
            " promote deploys packages with exactly one"
        )
    return containers[0]


# --- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """The stage's endpoint as read: DescribeEndpoint's answer (None: no endpoint), its tags, the
    tags of the config it serves, and which of this endpoint's models and configs exist."""

    endpoint: dict[str, Any] | None
    endpoint_tags: dict[str, str]
    config_tags: dict[str, str]
    models: frozenset[str]
    configs: frozenset[str]

    @property
    def serving(self) -> str | None:
        """The package the endpoint serves now, by its config's tag."""
        return self.config_tags.get(PACKAGE_TAG)

    @property
    def config_name(self) -> str | None:
        return self.endpoint["EndpointConfigName"] if self.endpoint else None


@dataclass(frozen=True)
class Plan:
    """Every write of a promotion, in order; ``after`` once the endpoint serves the new config."""

    stage: Stage
    endpoint: str
    package_arn: str
    model_name: str
    config_name: str
    calls: tuple[tuple[str, dict[str, Any]], ...]
    after: tuple[tuple[str, dict[str, Any]], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.calls or self.after)

    def lines(self) -> list[str]:
        """The plan as ``promote --plan`` prints it."""
        out = []
        for operation, request in self.calls:
            if operation == "CreateModel":
                spec = request["PrimaryContainer"]
                out.append(f"+ create model {request['ModelName']} ({spec['Image']}, {spec['ModelDataUrl']})")
            elif operation == "CreateEndpointConfig":
                (variant,) = request["ProductionVariants"]
                capture = request.get("DataCaptureConfig")
                kept = f", data capture {capture['InitialSamplingPercentage']}%" if capture else ""
                out.append(
                    f"+ create endpoint config {request['EndpointConfigName']}"
                    f" ({variant['InitialInstanceCount']} x {variant['InstanceType']}{kept})"
                )
            elif operation == "CreateEndpoint":
                out.append(f"+ create endpoint {request['EndpointName']} on {request['EndpointConfigName']}")
            elif operation == "UpdateEndpoint":
                out.append(
                    f"~ update endpoint {request['EndpointName']} to {request['EndpointConfigName']} (blue/green)"
                )
        for _, request in self.after:
            out += [f"~ Tags.{t['Key']}: {json.dumps(t['Value'])}" for t in request["Tags"]]
        return out


def _model_request(settings: Settings, endpoint: str, package: Mapping[str, Any]) -> dict[str, Any]:
    spec = container(package)
    primary = {
        "Image": spec["Image"],
        "ModelDataUrl": spec["ModelDataUrl"],
        "Environment": dict(spec.get("Environment", {})),
    }
    content = {"container": primary, "role": settings.role_arn, "package": package["ModelPackageArn"]}
    return {
        "ModelName": resource_name(endpoint, content),
        "ExecutionRoleArn": settings.role_arn,
        "PrimaryContainer": primary,
        "Tags": [*_tags(settings, endpoint), {"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}],
    }


def _capture(settings: Settings, stage_: Stage, package: Mapping[str, Any]) -> dict[str, Any] | None:
    """Data capture of requests and answers to ``s3://BUCKET/PIPELINE/data-capture/STAGE``, with the
    package's content types named, so that captured CSV and JSON stay readable."""
    if not stage_.data_capture_percent:
        return None
    types = package.get("InferenceSpecification", {}).get("SupportedContentTypes", [])
    header = {
        "CsvContentTypes": [t for t in types if "csv" in t][:10],
        "JsonContentTypes": [t for t in types if "json" in t][:10],
    }
    config = {
        "EnableCapture": True,
        "InitialSamplingPercentage": stage_.data_capture_percent,
        "DestinationS3Uri": f"s3://{settings.bucket}/{settings.prefix}/data-capture/{stage_.name}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    header = {key: value for key, value in header.items() if value}
    return {**config, "CaptureContentTypeHeader": header} if header else config


def _config_request(
    settings: Settings, stage_: Stage, endpoint: str, model: str, package: Mapping[str, Any]
) -> dict[str, Any]:
    variant = {
        "VariantName": VARIANT,
        "ModelName": model,
        "InitialInstanceCount": stage_.instance_count,
        "InstanceType": stage_.instance_type,
    }
    capture = _capture(settings, stage_, package)
    content = {"variant": variant, "capture": capture}
    request = {
        "EndpointConfigName": resource_name(endpoint, content),
        "ProductionVariants": [variant],
        "Tags": [*_tags(settings, endpoint), {"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}],
    }
    return {**request, "DataCaptureConfig": capture} if capture else request


def _tags(settings: Settings, endpoint: str) -> list[dict[str, str]]:
    """The configured tags, and the endpoint a resource belongs to (what teardown deletes by)."""
    return [*settings.aws_tags, {"Key": ENDPOINT_TAG, "Value": endpoint}]


def deployment_config(stage_: Stage) -> dict[str, Any]:
    """Blue/green: the new fleet is provisioned beside the old, traffic switches at once, and the old
    fleet stays for the stage's baking period; alarms, if any, roll the update back."""
    policy = {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": stage_.bake_seconds,
        "MaximumExecutionTimeoutInSeconds": MAX_UPDATE_SECONDS,
    }
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if stage_.alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in stage_.alarms]}
    return config


def make(settings: Settings, stage_: Stage, package: Mapping[str, Any], observed: Observed) -> Plan:
    """The calls that make the stage's endpoint serve ``package`` (which must be Approved) on the
    stage's settings; raises :class:`validate.InvalidRequest` if AWS would refuse any of them."""
    require_approved(package)
    endpoint = endpoint_name(settings.pipeline_name, stage_.name)
    status = observed.endpoint.get("EndpointStatus") if observed.endpoint else None
    if status in BUSY:
        raise SettingsError(f"endpoint {endpoint} is {status}: wait until it is InService, then promote again")
    if status == "Failed":
        raise SettingsError(
            f"endpoint {endpoint} is Failed ({observed.endpoint.get('FailureReason', 'no reason given')}):"
            f" delete it with promote {stage_.name} --delete, then promote again"
        )
    model = _model_request(settings, endpoint, package)
    config = _config_request(settings, stage_, endpoint, model["ModelName"], package)
    calls: list[tuple[str, dict[str, Any]]] = []
    if model["ModelName"] not in observed.models:
        calls.append(("CreateModel", model))
    if config["EndpointConfigName"] not in observed.configs:
        calls.append(("CreateEndpointConfig", config))
    after: list[tuple[str, dict[str, Any]]] = []
    if observed.endpoint is None:
        tags = [*_tags(settings, endpoint), {"Key": STAGE_TAG, "Value": stage_.name}]
        calls.append(
            (
                "CreateEndpoint",
                {"EndpointName": endpoint, "EndpointConfigName": config["EndpointConfigName"], "Tags": tags},
            )
        )
    elif observed.config_name != config["EndpointConfigName"]:
        update = {
            "EndpointName": endpoint,
            "EndpointConfigName": config["EndpointConfigName"],
            "DeploymentConfig": deployment_config(stage_),
        }
        calls.append(("UpdateEndpoint", update))
        if observed.serving and observed.serving != package["ModelPackageArn"]:
            previous = [{"Key": PREVIOUS_TAG, "Value": observed.serving}]
            after.append(("AddTags", {"ResourceArn": observed.endpoint["EndpointArn"], "Tags": previous}))
    planned = Plan(
        stage_,
        endpoint,
        package["ModelPackageArn"],
        model["ModelName"],
        config["EndpointConfigName"],
        tuple(calls),
        tuple(after),
    )
    for operation, request in (*planned.calls, *planned.after):
        validate.check(operation, request)
    return planned


def rollback_package(stage_name: str, observed: Observed) -> str:
    """The package the endpoint served before its last update, else an error saying there is none."""
    if observed.endpoint is None:
        raise SettingsError(f"stage {stage_name} has no endpoint: nothing to roll back; promote it first")
    previous = observed.endpoint_tags.get(PREVIOUS_TAG)
    if not previous:
        raise SettingsError(
            f"endpoint {observed.endpoint['EndpointName']} records no previous package (its first promotion?):"
            " nothing to roll back to"
        )
    return previous


# --- teardown ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Teardown:
    """The stage's endpoint, then every config and model promote made for it."""

    endpoint: str
    calls: tuple[tuple[str, dict[str, Any]], ...]

    @property
    def empty(self) -> bool:
        return not self.calls

    def lines(self) -> list[str]:
        kinds = {"DeleteEndpoint": "endpoint", "DeleteEndpointConfig": "endpoint config", "DeleteModel": "model"}
        return [f"- delete {kinds[op]} {next(iter(request.values()))}" for op, request in self.calls]


def teardown(endpoint: str, observed: Observed) -> Teardown:
    """Deletes of the endpoint (if it exists) and of the configs and models tagged as its own."""
    calls: list[tuple[str, dict[str, Any]]] = []
    if observed.endpoint is not None:
        calls.append(("DeleteEndpoint", {"EndpointName": endpoint}))
    calls += [("DeleteEndpointConfig", {"EndpointConfigName": name}) for name in sorted(observed.configs)]
    calls += [("DeleteModel", {"ModelName": name}) for name in sorted(observed.models)]
    return Teardown(endpoint, tuple(calls))


# --- the smoke test ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One smoke-test request: a registered content type, the answer type asked for, a body."""

    content_type: str
    accept: str
    body: bytes


def default_samples() -> dict[str, bytes]:
    """Two rows of the sample data's features (label left out), as CSV and as a JSON list of rows:
    what the sample model answers. Another model's requests come from ``--sample TYPE=FILE``."""
    import csv
    import io

    from pipeline.definition import sample_data

    header, *rows = csv.reader(io.StringIO(sample_data.channel_files()["validation"]))
    features = [
        [float(v) for name, v in zip(header, row, strict=True) if name != sample_data.TARGET] for row in rows[:2]
    ]
    return {
        "text/csv": "".join(",".join(map(str, row)) + "\n" for row in features).encode(),
        "application/json": json.dumps(features).encode(),
    }


def probes(package: Mapping[str, Any], samples: Mapping[str, bytes]) -> list[Probe]:
    """One request per registered content type, asking for the same type back when it is registered
    as an answer type, else the first answer type; a type without a sample is an error naming the flag."""
    spec = package.get("InferenceSpecification", {})
    types = list(spec.get("SupportedContentTypes", []))
    answers = list(spec.get("SupportedResponseMIMETypes", []))
    if not types:
        raise SettingsError(f"model package {package['ModelPackageArn']} registers no content type to smoke-test")
    missing = [t for t in types if t not in samples]
    if missing:
        raise SettingsError(f"no smoke-test sample for content type {missing[0]}: pass --sample {missing[0]}=FILE")
    return [Probe(t, t if t in answers or not answers else answers[0], samples[t]) for t in types]


def answer_problem(probe: Probe, status: int, content_type: str | None, body: bytes) -> str | None:
    """What is wrong with an answer to ``probe``: not 200, empty, another type, or unreadable as its type."""
    if status != 200:
        return f"HTTP {status}: {' '.join(body[:300].decode(errors='replace').split())}"
    if not body.strip():
        return "an empty answer"
    answered = (content_type or "").split(";")[0].strip()
    if answered and answered != probe.accept:
        return f"answered {answered}, asked for {probe.accept}"
    text = body.decode(errors="replace")
    if "json" in probe.accept:
        try:
            json.loads(text)
        except ValueError:
            return f"not JSON: {' '.join(text[:200].split())}"
    return None
