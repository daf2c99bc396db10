"""The files SageMaker writes to ``/opt/ml/input/config`` for a training job, as plain data.

See "How Amazon SageMaker Provides Training Information" in the SageMaker
developer guide: every hyperparameter value is a string, the reserved
``sagemaker_*`` ones JSON-encoded, as the SDK sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
REGION = "sagemaker_region"
JOB_NAME = "sagemaker_job_name"
LOG_LEVEL = "sagemaker_container_log_level"


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """Typed values as the SDK encodes literal hyperparameters: ``json.dumps`` each."""
    return {name: json.dumps(value) for name, value in values.items()}


def hyperparameters(
    user: Mapping[str, str], *, program: str, submit_directory: str, region: str, job_name: str
) -> dict[str, str]:
    """``hyperparameters.json``: the user's (already string) values plus the reserved ones."""
    reserved = encode_hyperparameters(
        {PROGRAM: program, SUBMIT_DIRECTORY: submit_directory, REGION: region, JOB_NAME: job_name}
    )
    reserved[LOG_LEVEL] = "20"
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


def input_data_config(channels: Iterable[str], content_type: str = "text/csv") -> dict[str, Any]:
    """``inputdataconfig.json``: File mode, every channel fully replicated."""
    return {
        name: {
            "ContentType": content_type,
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in channels
    }
