"""CreateTrainingJob requests: the one model of a job, whether ``train-local`` builds it from
flags and the contract or ``run --local`` evaluates it from a pipeline step.

Reading a request into a :class:`LocalJob` is the only way a local job is made, so
both commands hand the script the same files and variables for the same request.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pipeline.definition.contract import CHANNEL_NAME, Channel
from pipeline.errors import UnsupportedExpression
from pipeline.local import checkpoints
from pipeline.local.job import BASE_DIR, LocalJob

# CreateTrainingJob arguments the local runner honours, or that change nothing on one machine.
HONOURED = {
    "AlgorithmSpecification",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "RoleArn",
    "Environment",
    "Tags",
    "DebugHookConfig",
    "ProfilerConfig",
    "CheckpointConfig",
}


def training_request(
    *,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Channel],
    metric_definitions: list[dict[str, str]],
    environment: Mapping[str, str],
    instance_type: str,
    instance_count: int,
    max_runtime_seconds: int | None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """A request as a pipeline step's arguments read once evaluated; channel sources may be folders."""
    request: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingInputMode": "File", "MetricDefinitions": metric_definitions},
        "HyperParameters": dict(hyperparameters),
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": channel.source,
                        "S3DataDistributionType": channel.distribution,
                    }
                },
                "InputMode": channel.input_mode,
                **({"ContentType": channel.content_type} if channel.content_type else {}),
            }
            for name, channel in channels.items()
        ],
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": instance_count, "VolumeSizeInGB": 30},
        "Environment": dict(environment),
    }
    if max_runtime_seconds is not None:
        request["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime_seconds}
    if checkpoint_uri is not None:
        request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": checkpoints.DEFAULT_LOCAL_PATH}
    return request


def _channel(entry: Mapping[str, Any], where: str) -> Channel:
    """One channel; its name becomes a folder, so it must be one SageMaker accepts and not ``.`` or ``..``."""
    if not CHANNEL_NAME.fullmatch(str(entry["ChannelName"])):
        raise UnsupportedExpression(
            f"{where}: channel name {entry['ChannelName']!r}: use letters, digits, '.', '-' and '_', at most 64,"
            " and not . or .."
        )
    source = entry["DataSource"].get("S3DataSource")
    if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise UnsupportedExpression(f"{where}: channel {entry['ChannelName']}: only S3Prefix data sources run locally")
    return Channel(
        name=str(entry["ChannelName"]),
        source=source["S3Uri"],
        content_type=entry.get("ContentType"),
        input_mode=entry.get("InputMode", "File"),
        distribution=source.get("S3DataDistributionType", "FullyReplicated"),
    )


def _checkpoint_local_path(config: Mapping[str, Any], where: str) -> str:
    """``LocalPath``, which must lie under ``/opt/ml``: the base dir stands for it here."""
    path = str(config.get("LocalPath") or checkpoints.DEFAULT_LOCAL_PATH)
    if not PurePosixPath(path).is_relative_to(BASE_DIR) or ".." in PurePosixPath(path).parts:
        raise UnsupportedExpression(f"{where}: CheckpointConfig.LocalPath {path} is outside {BASE_DIR}")
    return path


def local_job(request: Mapping[str, Any], *, name: str, region: str, where: str = "training job") -> LocalJob:
    """The job a request describes; an argument it cannot honour here is named, never ignored."""
    unknown = sorted(set(request) - HONOURED)
    if unknown:
        raise UnsupportedExpression(f"{where}: argument {unknown[0]} is not supported locally")
    resources = request["ResourceConfig"]
    runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    checkpoint = request.get("CheckpointConfig") or {}
    return LocalJob(
        name=name,
        hyperparameters=dict(request.get("HyperParameters", {})),
        channels={entry["ChannelName"]: _channel(entry, where) for entry in request.get("InputDataConfig", [])},
        instance_type=resources["InstanceType"],
        instance_count=int(resources["InstanceCount"]),
        max_runtime_seconds=None if runtime is None else float(runtime),
        region=region,
        metric_definitions=list(request.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])),
        environment=dict(request.get("Environment", {})),
        role_arn=request.get("RoleArn"),
        checkpoint_uri=checkpoint.get("S3Uri"),
        checkpoint_local_path=_checkpoint_local_path(checkpoint, where),
    )
