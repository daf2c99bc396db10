"""Shared fixtures: a real moto server on loopback and a clean account per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto_server import account_environment, moto_server, reset
from support import BUCKET, IMAGE_URI, REGION, ROLE_ARN


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server process on 127.0.0.1: boto3 reaches it over real HTTP."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean moto account with one bucket; the environment points boto3 and the CLI at it."""
    reset(moto_endpoint)
    env = {
        **account_environment(moto_endpoint),
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "SAGEMAKER_BUCKET": BUCKET,
        "IMAGE_URI": IMAGE_URI,
        "PIPELINE_NAME": "test-pipeline",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return env
