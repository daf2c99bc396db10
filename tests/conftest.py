"""Shared fixtures: a real moto server on loopback and a clean account per test."""

from __future__ import annotations

import os
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


# --- the container tier: one engine and one image for every module ----------------------------


def _missing(reason: str) -> None:
    """A tool the container tier needs is missing: skip here; CI installs them all, so there fail."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> str:
    """docker where a Docker engine answers, else podman, as build-local.sh picks it (``ENGINE`` overrides).
    Missing here, the container tests skip; CI installs podman, so there they fail."""
    from pipeline.local import container

    try:
        return container.engine()
    except container.ContainerError as missing:
        _missing(str(missing))


@pytest.fixture(scope="session")
def image(engine: str) -> str:
    """Built once per session by build-local.sh (cached); a failing build fails the tests.

    ``CONTAINER_IMAGE`` names an image built elsewhere instead, such as the one the
    deploy has just pulled from its registry: it is tested before it gets its tag.
    """
    from pipeline.local import container

    if os.environ.get("CONTAINER_IMAGE"):
        return os.environ["CONTAINER_IMAGE"]
    try:
        return container.built_image(engine)
    except container.ContainerError as failed:
        pytest.fail(str(failed), pytrace=False)


@pytest.fixture(scope="session")
def docker_host(engine: str) -> Iterator[str]:
    """The Docker API SDK local mode's docker-compose talks to: a podman service, stopped after the
    session, or the Docker engine. Missing tools skip here and fail in CI, as for ``engine``."""
    import sdk_local

    missing = [tool for tool in sdk_local.missing_tools() if engine == "podman" or not tool.startswith("podman")]
    if missing:
        _missing("SDK local mode needs " + "; ".join(missing))
    if engine == "docker":
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    with sdk_local.podman_docker_api() as host:
        yield host
