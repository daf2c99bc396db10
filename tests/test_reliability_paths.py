"""Paths built from data never leave their folder: S3 keys holding ``../`` in channels and checkpoints."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from support import BUCKET, PROJECT_SRC, REGION, run_cli

ESCAPE = "escaped-by-key.txt"


def put(key: str, body: bytes = b"x,y\n1,2\n") -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.mark.parametrize("flag", ["--train", "--checkpoints"])
def test_a_key_climbing_out_of_its_prefix_is_refused_and_nothing_is_written(aws_env, tmp_path: Path, flag):
    put("data/train/good.csv")
    put(f"data/train/../../../../{ESCAPE}")
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"data/train/../../../../{ESCAPE}" in keys  # S3 (and moto) keep the key as written
    out = tmp_path / "jobs"
    args = ["--train", "s3://test-bucket/data/train/"]
    if flag == "--checkpoints":
        args = ["--checkpoints", "s3://test-bucket/data/train/"]
    done = run_cli(
        "train-local",
        *args,
        "--source-dir",
        str(PROJECT_SRC),
        "--output-dir",
        str(out),
        "--job-name",
        "j",
        cwd=tmp_path,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert lines[-1].startswith("error: ") and "would be written outside" in lines[-1], done.stderr
    assert not any(tmp_path.rglob(ESCAPE)) and not (Path("/tmp") / ESCAPE).exists()
    assert not (out / "j").exists()
