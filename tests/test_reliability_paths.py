"""Paths built from data never leave their folder: S3 keys holding ``../`` in channels and checkpoints."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from support import BUCKET, PROJECT_SRC, REGION, run_cli, source_dir

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


def test_a_symlink_in_the_source_dir_is_refused_never_followed(aws_env, tmp_path: Path):
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = do-not-ship\n")
    source = source_dir(tmp_path / "src", "print(1)\n")
    (source / "settings.ini").symlink_to(secret)
    done = run_cli("upsert", "--source-dir", str(source))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "settings.ini is a symbolic link" in lines[0] and ".sagemakerignore" in lines[0]
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    (source / ".sagemakerignore").write_text("settings.ini\n")
    assert run_cli("definition", "--offline", "--source-dir", str(source)).returncode == 0


def test_a_virtual_environment_in_the_source_dir_is_refused_before_it_is_read(tmp_path: Path):
    source = tmp_path / "project"
    (source / ".venv" / "lib").mkdir(parents=True)
    (source / "train.py").write_text("print(1)\n")
    (source / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (source / ".venv" / "lib" / "broken.py").write_text("def (:\n")  # never compiled: refused first
    done = run_cli("definition", "--offline", "--source-dir", str(source))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "is a Python virtual environment" in lines[0] and ".venv/ in .sagemakerignore" in lines[0]


def test_an_entry_point_outside_the_source_dir_names_the_right_fix(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    out = tmp_path / "jobs"
    for entry in (str(tmp_path / "train.py"), "../train.py"):
        done = run_cli(
            "train-local", "--source-dir", str(tmp_path / "src"), "--entry-point", entry, "--output-dir", str(out)
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "is outside the source dir" in lines[0] and "move the script into it" in lines[0]
    assert not out.exists()
