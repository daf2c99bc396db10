"""Batch transform here (:mod:`pipeline.local.transform`): a real model and script from S3 (the moto server),
the image's server in the job environment, records split and batched, ``<key>.out`` objects written."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from pathlib import Path

import boto3
import joblib
import numpy as np
import pytest
from fixtures.inference.acceptance import ROWS, train_model
from moto_server import REGION, free_port
from support import BUCKET

from pipeline.errors import UnsupportedExpression
from pipeline.local import runners, transform

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inference"


def _tar(files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, path in files.items():
            tar.add(path, arcname=name)
    return buffer.getvalue()


@pytest.fixture
def deployed(aws_env, tmp_path) -> tuple[dict, object]:
    """model.tar.gz (model.joblib) and sourcedir.tar.gz (a default-handlers script) on S3, as CreateModel names
    them, and the model itself to compute the expected predictions."""
    model_dir = train_model(tmp_path / "trained")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="models/model.tar.gz", Body=_tar({"model.joblib": model_dir / "model.joblib"}))
    code = {"inference.py": FIXTURES / "sklearn_default" / "inference.py"}
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=_tar(code))
    container = {
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:test",
        "ModelDataUrl": f"s3://{BUCKET}/models/model.tar.gz",
        "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/code/sourcedir.tar.gz",
        },
    }
    return container, joblib.load(model_dir / "model.joblib")


def _request(**changes) -> dict:
    request = {
        "TransformJobName": "local-transform",
        "ModelName": "model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/batch/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/batch/out", "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in changes.items():
        request[key] = value
    return request


@pytest.fixture(scope="module")
def runner():
    return runners.process_runner(None, print)


def _csv(rows) -> bytes:
    return "".join(",".join(map(str, row)) + "\n" for row in rows).encode()


def test_a_transform_job_writes_one_out_object_per_input(deployed, runner, tmp_path):
    container, model = deployed
    s3 = boto3.client("s3", region_name=REGION)
    many = np.random.default_rng(5).normal(size=(2000, 4)).round(4).tolist()
    s3.put_object(Bucket=BUCKET, Key="batch/in/small.csv", Body=_csv(ROWS))
    s3.put_object(Bucket=BUCKET, Key="batch/in/sub/many.csv", Body=_csv(many))
    request = _request(BatchStrategy="MultiRecord", MaxPayloadInMB=1)
    result = transform.run_transform(container, request, tmp_path / "work", runner, REGION, print)
    assert sorted(result.outputs) == [
        f"s3://{BUCKET}/batch/out/small.csv.out",
        f"s3://{BUCKET}/batch/out/sub/many.csv.out",
    ]
    assert result.records == len(ROWS) + len(many)
    for key, rows in (("small.csv", ROWS), ("sub/many.csv", many)):
        body = s3.get_object(Bucket=BUCKET, Key=f"batch/out/{key}.out")["Body"].read().decode()
        expected = model.predict(np.asarray(rows, dtype=np.float32)).tolist()
        assert [int(line) for line in body.splitlines()] == expected


def test_single_record_gzip_and_the_servers_execution_parameters(deployed, runner, tmp_path):
    container, model = deployed
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="batch/in/rows.csv.gz", Body=gzip.compress(_csv(ROWS)))
    request = _request(BatchStrategy="SingleRecord")
    request["TransformInput"]["CompressionType"] = "Gzip"
    request["TransformOutput"] = {"S3OutputPath": f"s3://{BUCKET}/batch/out", "Accept": "application/json"}
    result = transform.run_transform(container, request, tmp_path / "work", runner, REGION, print)
    assert result.requests == len(ROWS)  # one request per record
    body = s3.get_object(Bucket=BUCKET, Key="batch/out/rows.csv.gz.out")["Body"].read()
    expected = [[label] for label in model.predict(np.asarray(ROWS, dtype=np.float32)).tolist()]
    assert body.decode().count("[") == len(ROWS)  # AssembleWith None: the JSON answers back to back
    assert json.loads("[" + body.decode().replace("][", "],[") + "]") == expected


def test_a_record_the_server_refuses_fails_the_job_naming_the_object(deployed, runner, tmp_path):
    container, _ = deployed
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="batch/in/bad.csv", Body=b"1,2\n")
    with pytest.raises(transform.TransformError, match=r"bad.csv: the model server answered 400: the model rejected"):
        transform.run_transform(container, _request(), tmp_path / "work", runner, REGION, print)


def test_the_server_stops_on_its_first_sigterm_even_while_its_workers_boot(runner, tmp_path):
    """``Server.stop()`` right after gunicorn forked the workers (a short job's end): the master and every worker
    exit on that one SIGTERM, the master with 0 (a SIGKILL to the process group would show as -9)."""
    workers = 4
    arguments = ["--host", "127.0.0.1", "--port", str(free_port()), "--model-dir", str(train_model(tmp_path / "m"))]
    argv, env = transform.server_process(
        runner, FIXTURES / "sklearn_default", tmp_path, print, [*arguments, "--workers", str(workers)]
    )
    lines: list[bytes] = []
    forked = threading.Event()

    def sink(line: bytes) -> None:  # in the server's stderr reader, so the stop follows the last fork at once
        lines.append(line)
        if sum(b"Booting worker" in seen for seen in lines) == workers:
            forked.set()

    server = transform.start(argv, env, sink)
    try:
        assert forked.wait(timeout=120), b"".join(lines).decode()
    finally:
        code = server.stop()
    log = b"".join(lines).decode()
    assert code == 0, log
    assert log.count("Worker exiting") == workers, log


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DataProcessing": {"InputFilter": "$[1:]"}}, "DataProcessing.InputFilter"),
        ({"DataProcessing": {"JoinSource": "Input"}}, "JoinSource"),
    ],
)
def test_what_does_not_run_here_is_refused_by_name_before_any_download(tmp_path, change, message):
    with pytest.raises(UnsupportedExpression, match=message):
        transform.run_transform({}, _request(**change), tmp_path, None, REGION, print)
    assert list(tmp_path.iterdir()) == []


def test_batches_split_lines_within_the_payload_limit():
    data = b"1,2\n3,4\n\n5,6\n"
    assert transform.batches(data, "None", "MultiRecord", 100) == [data]
    assert transform.batches(data, "Line", "SingleRecord", 100) == [b"1,2\n", b"3,4\n", b"5,6\n"]
    assert transform.batches(data, "Line", "MultiRecord", 8) == [b"1,2\n3,4\n", b"5,6\n"]
    assert transform.assemble([b"1", b"2\n"], "Line") == b"1\n2\n"
    assert transform.assemble([b"1", b"2"], "None") == b"12"
