"""The files SageMaker writes to ``/opt/ml/input/config`` for a training job, as plain data.

See "How Amazon SageMaker Provides Training Information" in the SageMaker
developer guide: every hyperparameter value is a string, the reserved
``sagemaker_*`` ones JSON-encoded, as the SDK sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.definition import values
from pipeline.definition.contract import Channel

PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
REGION = "sagemaker_region"
LOG_LEVEL = "sagemaker_container_log_level"


def encode_hyperparameters(typed: Mapping[str, Any]) -> dict[str, str]:
    """Typed values as the SDK encodes literal hyperparameters."""
    return {name: values.literal_hyperparameter(value) for name, value in typed.items()}


def hyperparameters(user: Mapping[str, str], *, program: str, submit_directory: str, region: str) -> dict[str, str]:
    """``hyperparameters.json``: the user's (already string) values plus the reserved ones that a
    pipeline's training step carries (no ``sagemaker_job_name``: it would defeat step caching)."""
    reserved = encode_hyperparameters(
        {PROGRAM: program, SUBMIT_DIRECTORY: submit_directory, REGION: region, LOG_LEVEL: 20}
    )
    return {**user, **reserved}


def host_names(count: int) -> list[str]:
    """SageMaker's host names: ``algo-1`` to ``algo-N``."""
    return [f"algo-{i}" for i in range(1, count + 1)]


def resource_config(hosts: list[str], current_host: str, instance_type: str) -> dict[str, Any]:
    """``resourceconfig.json`` for one host of the cluster."""
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }


def input_data_config(channels: Mapping[str, Channel]) -> dict[str, Any]:
    """``inputdataconfig.json``: each channel's mode and distribution, and its content type if it has one."""
    config: dict[str, Any] = {}
    for name, channel in channels.items():
        entry = {
            "TrainingInputMode": channel.input_mode,
            "S3DistributionType": channel.distribution,
            "RecordWrapperType": "None",
        }
        if channel.content_type:
            entry["ContentType"] = channel.content_type
        config[name] = entry
    return config
