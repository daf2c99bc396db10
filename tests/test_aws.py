"""The boto3 edge: one client per service and environment, and prefixes copied whole whatever the size."""

from __future__ import annotations

import boto3
import pytest
from support import BUCKET, REGION

from pipeline import aws


def test_a_client_is_made_once_per_service_region_and_environment(aws_env, monkeypatch):
    s3 = aws.client("s3", REGION)
    assert aws.client("s3", REGION) is s3 and aws.client("s3") is s3  # the region from AWS_REGION
    assert aws.client("sagemaker", REGION) is not s3
    assert aws.client("s3", "eu-west-1") is not s3
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # another endpoint: another client
    elsewhere = aws.client("s3", REGION)
    assert elsewhere is not s3 and elsewhere.meta.endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env["AWS_ENDPOINT_URL"])
    assert aws.client("s3", REGION) is s3


def test_a_new_default_session_gets_new_clients(aws_env, monkeypatch):
    """A caller that hooks the default session's events (as the deploy role test does) sees every call."""
    aws.client("s3", REGION).list_buckets()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    called = []
    boto3.DEFAULT_SESSION.events.register("before-call", lambda model, **_: called.append(model.name))
    aws.client("s3", REGION).list_buckets()
    assert called == ["ListBuckets"]


@pytest.mark.parametrize("single_get_bytes", [aws.SINGLE_GET_BYTES, 1], ids=["get-object", "download-file"])
def test_download_prefix_copies_every_object_under_the_prefix(aws_env, tmp_path, monkeypatch, single_get_bytes):
    monkeypatch.setattr(aws, "SINGLE_GET_BYTES", single_get_bytes)
    s3 = boto3.client("s3", region_name=REGION)
    objects = {"data/train/part-0.csv": b"a,b\n1,2\n", "data/train/sub/part-1.csv": b"", "data/train-old/x": b"x"}
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    count = aws.download_prefix(aws.client("s3", REGION), f"s3://{BUCKET}/data/train/", tmp_path)
    assert count == 2
    assert (tmp_path / "part-0.csv").read_bytes() == b"a,b\n1,2\n"
    assert (tmp_path / "sub" / "part-1.csv").read_bytes() == b""
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "part-0.csv",
        "sub/part-1.csv",
    ]
