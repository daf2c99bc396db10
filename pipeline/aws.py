"""The boto3 edge: clients with short timeouts, S3 helpers, and AWS errors as one readable line.

boto3 honours ``AWS_ENDPOINT_URL``, which is how tests point it at a moto server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.definition.settings import region_from_environment
from pipeline.errors import AwsError, UserError

# An endpoint that never answers costs at most ATTEMPTS * (timeout + backoff), about 11 s,
# not botocore's default of minutes. AWS answers these calls within a second or two.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 5
ATTEMPTS = 2
# Below this size s3transfer downloads an object with one GET too, after a HEAD and with a thread pool.
SINGLE_GET_BYTES = 8 * 1024 * 1024
# Objects downloaded at once: many small objects cost a round trip each, which threads overlap.
DOWNLOAD_THREADS = 16
TICK_SECONDS = 0.1  # how often a download in progress looks for a stop

_CLIENTS: dict[tuple[str, str | None, tuple[tuple[str, str], ...], Any], Any] = {}


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client that fails fast instead of retrying for minutes.

    One per service, region, ``AWS_*`` environment (endpoint, credentials, profile) and boto3
    default session in a process: making one costs about 10 ms, and a local run would otherwise
    make a dozen.
    """
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session(botocore_session=_botocore_session())
    region = region or region_from_environment()
    environment = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))
    key = (service, region, environment, boto3.DEFAULT_SESSION)
    if key not in _CLIENTS:
        _CLIENTS[key] = _new_client(boto3.DEFAULT_SESSION, service, region)
    return _CLIENTS[key]


@cache
def _loader() -> Any:
    """One botocore data loader per process, shared by every session made here: it parses each
    service's model once (SageMaker's is about 0.05 s of JSON) for the checks and the clients alike."""
    from botocore.loaders import create_loader

    return create_loader()


def _botocore_session() -> Any:
    import botocore.session

    session = botocore.session.get_session()
    session.register_component("data_loader", _loader())
    return session


@cache
def service_model(service: str) -> Any:
    """botocore's model of ``service`` (its shapes, patterns, enums): a run checks a dozen property
    paths against SageMaker's, and ``upsert`` every request. Loaded as a client loads it (the same
    call, so the loader's cache holds one parse for both)."""
    from botocore.model import ServiceModel

    return ServiceModel(_loader().load_service_model(service, "service-2", api_version=None), service_name=service)


def _new_client(session: Any, service: str, region: str | None) -> Any:
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
    )
    return session.client(service, region_name=region, config=config)


def describe_error(error: Exception) -> str:
    """One line for a boto3/botocore exception, naming the likely fix."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(error, ReadTimeoutError):
        endpoint = _endpoint(error.kwargs.get("endpoint_url"))
        return (
            f"the AWS endpoint {endpoint} did not answer within {READ_TIMEOUT_SECONDS} s ({ATTEMPTS} attempts):"
            " check AWS_ENDPOINT_URL, the region and the network"
        )
    if isinstance(error, EndpointConnectionError):
        endpoint = _endpoint(error.kwargs.get("endpoint_url"))
        return f"cannot reach the AWS endpoint {endpoint}: check AWS_ENDPOINT_URL, the region and the network"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: configure a profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a role"
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"AWS {error.operation_name} failed: {info.get('Code')}: {info.get('Message')}"
    if isinstance(error, AwsError):
        return str(error)
    return f"AWS call failed: {error}"


def _endpoint(url: str | None) -> str | None:
    """The endpoint of a request URL (``scheme://host:port``): its path and query are noise here."""
    if not url:
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def aws_errors() -> tuple[type[Exception], ...]:
    """The exception types :func:`describe_error` turns into one line."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (AwsError, BotoCoreError, ClientError, Boto3Error)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def require_bucket(s3: Any, bucket: str, prefix: str) -> None:
    """Fail with the fix named when the bucket is missing or ``prefix`` cannot be listed.

    Listing under the prefix, not HeadBucket, is what a deploy role scoped to the
    pipeline's prefix (``.github/aws/deploy-role-policy.json``) is allowed to do.
    """
    from botocore.exceptions import ClientError

    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", MaxKeys=1)
    except ClientError as error:
        raise AwsError(
            f"bucket {bucket} does not exist or {prefix}/ in it is not accessible:"
            " create the bucket, or set --bucket / SAGEMAKER_BUCKET"
        ) from error


def object_exists(s3: Any, uri: str) -> bool:
    """Whether the key exists, found by listing (a prefix-scoped role may list but not HEAD)."""
    bucket, key = split_s3_uri(uri)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return any(item["Key"] == key for item in listed)


def put_if_absent(s3: Any, uri: str, body: bytes) -> bool:
    """Upload ``body`` unless the key exists already; True when it uploaded."""
    if object_exists(s3, uri):
        return False
    bucket, key = split_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return True


def _objects(s3: Any, uri: str) -> Iterator[dict[str, Any]]:
    """The listing of an S3 prefix: each object's ``Key``, ``Size``..."""
    bucket, prefix = split_s3_uri(uri)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def list_keys(s3: Any, uri: str) -> Iterator[str]:
    """Keys under an S3 prefix."""
    return (item["Key"] for item in _objects(s3, uri))


def _download(s3: Any, bucket: str, key: str, size: int, target: Path) -> None:
    """One object to ``target``: a small one with one GET (about 10 ms less than ``download_file``),
    a large one in parallel ranges."""
    if size >= SINGLE_GET_BYTES:
        s3.download_file(bucket, key, str(target))
        return
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with target.open("wb") as out:
        shutil.copyfileobj(body, out)


class UnsafeKey(UserError):
    """An S3 key that would place its object outside the folder it is downloaded into."""


def download_prefix(s3: Any, uri: str, destination: Path, between: Callable[[], None] = lambda: None) -> int:
    """Copy every object under an S3 prefix into ``destination``, as SageMaker's File mode does,
    :data:`DOWNLOAD_THREADS` objects at a time (a client is thread-safe).

    Every key is placed first, and the download refused whole if one would land outside
    ``destination`` (``../`` in a key): whoever can write to a data prefix must not be able to
    write any file the user can. ``between`` runs in the calling thread while objects download
    (where a stop may end the copy).
    """
    bucket, prefix = split_s3_uri(uri)
    root = destination.resolve()
    placed = []
    for item in _objects(s3, uri):
        key = item["Key"]
        if key.endswith("/"):
            continue
        relative = key[len(prefix) :].lstrip("/") or Path(key).name
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or target == root:
            raise UnsafeKey(
                f"s3://{bucket}/{key} would be written outside {destination} (its key climbs out of"
                f" {uri}): remove or rename that object"
            )
        placed.append((key, item["Size"], target))
    for folder in {target.parent for _, _, target in placed}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        waiting = {pool.submit(_download, s3, bucket, key, size, target) for key, size, target in placed}
        try:
            while waiting:
                between()
                done, waiting = wait(waiting, timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # the first failure ends the download
        finally:
            for future in waiting:
                future.cancel()  # those not started; the running ones finish their object
    return len(placed)
