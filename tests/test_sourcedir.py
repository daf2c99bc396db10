"""What the code archive holds: the ignore rules, the warnings, and byte-reproducible packing."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import boto3
import pytest
from support import BUCKET, PROJECT_SRC, REGION, run_cli

from pipeline.definition import sourcedir
from pipeline.errors import SettingsError

TRAIN = "print('training')\n"


def make_source(tmp_path: Path, files: dict[str, str]) -> Path:
    source = tmp_path / "src"
    for name, text in {"train.py": TRAIN, **files}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    return source


def packed(source: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(sourcedir.pack(source, "train.py"))) as tar:
        return tar.getnames()


@pytest.mark.parametrize(
    "junk",
    [
        ".env",
        ".env.production",
        "conf/.env.local",
        ".git/config",
        ".hg/store",
        ".svn/entries",
        ".train.py.swp",
        ".train.py.swo",
        "train.py~",
        ".#train.py",
        "#train.py#",
        ".DS_Store",
        "sub/.DS_Store",
        "._train.py",
        "Thumbs.db",
        "__pycache__/train.cpython-311.pyc",
        "sub/__pycache__/x.pyc",
        "stray.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".ipynb_checkpoints/train-checkpoint.py",
        ".sagemakerignore",
    ],
)
def test_the_defaults_leave_junk_out_and_the_hash_alone(tmp_path, junk):
    clean = sourcedir.pack(make_source(tmp_path, {}), "train.py")
    source = make_source(tmp_path, {junk: ""})
    assert Path(junk) not in sourcedir.included_files(source)
    assert sourcedir.pack(source, "train.py") == clean


def test_the_ignore_file_takes_gitignore_rules(tmp_path):
    source = make_source(
        tmp_path,
        {
            ".sagemakerignore": "# local data\ndata/\n*.csv\n!keep.csv\n/top.txt\n",
            "data/big.bin": "x",
            "a.csv": "1",
            "keep.csv": "2",
            "top.txt": "t",
            "sub/top.txt": "t",
            "lib/util.py": "X = 1\n",
        },
    )
    assert packed(source) == ["keep.csv", "lib/util.py", "sub/top.txt", "train.py"]


def test_defaults_cannot_be_re_included_nor_files_in_an_ignored_folder(tmp_path):
    source = make_source(
        tmp_path, {".sagemakerignore": "!.env\nnotes/\n!notes/keep.txt\n", ".env": "SECRET=1", "notes/keep.txt": "n"}
    )
    assert packed(source) == ["train.py"]


def test_gitignore_is_not_read(tmp_path):
    """It says what git should not track (data, models), which a job often needs."""
    source = make_source(tmp_path, {".gitignore": "model.json\n", "model.json": "{}"})
    assert packed(source) == [".gitignore", "model.json", "train.py"]


def test_packing_is_byte_reproducible(tmp_path):
    source = make_source(tmp_path, {"lib/a.py": "A = 1\n", "run.sh": "#!/bin/sh\n"})
    (source / "run.sh").chmod(0o775)
    first = sourcedir.pack(source, "train.py")
    for path in source.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    (source / "lib" / "a.py").chmod(0o600)  # only the owner's execute bit travels
    assert sourcedir.pack(source, "train.py") == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: (m.mode, m.mtime, m.uid, m.gid, m.uname) for m in tar.getmembers()}
    assert members == {
        "lib/a.py": (0o644, 0, 0, 0, ""),
        "run.sh": (0o755, 0, 0, 0, ""),
        "train.py": (0o644, 0, 0, 0, ""),
    }


def test_the_archive_packs_what_the_folder_holds_but_the_pipeline_module():
    """A source dir's definition changes only with its content: its archive is exactly its files, by
    the same packing as before the ignore rules existed, less the pipeline module (the DAG, not code)."""
    source = sourcedir.read(PROJECT_SRC)
    expected = sorted(p.relative_to(PROJECT_SRC) for p in PROJECT_SRC.rglob("*") if p.is_file())
    expected = [p for p in expected if "__pycache__" not in p.parts and p.as_posix() != "workflow.py"]
    assert (PROJECT_SRC / "workflow.py").is_file() and Path("workflow.py") not in source.files
    assert list(source.files) == expected
    assert source.archive == sourcedir.pack_files(PROJECT_SRC, expected)


def test_the_entry_point_and_the_contract_must_ship(tmp_path):
    source = make_source(tmp_path, {".sagemakerignore": "*.py\n"})
    with pytest.raises(SettingsError, match=r"train\.py is excluded by the ignore rules"):
        sourcedir.pack(source, "train.py")
    source = make_source(tmp_path, {".sagemakerignore": "*.toml\n", "training.toml": ""})
    with pytest.raises(SettingsError, match=r"training\.toml is excluded by the ignore rules"):
        sourcedir.read(source)


def test_a_syntax_error_names_its_file_and_line(tmp_path):
    source = make_source(tmp_path, {"lib/broken.py": "x = 1\ndef f(:\n"})
    with pytest.raises(SettingsError, match=r"lib/broken\.py:2: .*fix the code"):
        sourcedir.pack(source, "train.py")


def test_an_unreadable_ignore_file_is_one_error(tmp_path):
    source = make_source(tmp_path, {})
    (source / ".sagemakerignore").write_bytes(b"\xff\xfe*.py\n")
    with pytest.raises(SettingsError, match=r"\.sagemakerignore is not UTF-8"):
        sourcedir.pack(source, "train.py")


def test_a_malformed_ignore_line_is_one_error(tmp_path):
    source = make_source(tmp_path, {".sagemakerignore": "data/\nfoo\\\n"})
    with pytest.raises(SettingsError, match=r"\.sagemakerignore: Invalid git pattern: 'foo\\\\': fix the line"):
        sourcedir.pack(source, "train.py")


def test_secret_looking_names_are_found():
    files = [Path(p) for p in ("train.py", "certs/server.pem", "id_rsa", "id_ed25519.pub", "aws/credentials", "a.key")]
    assert [p.as_posix() for p in sourcedir.secret_looking(files)] == [
        "certs/server.pem",
        "id_rsa",
        "id_ed25519.pub",
        "aws/credentials",
        "a.key",
    ]


# --- through the CLI -------------------------------------------------------------------------------


def test_a_packed_secret_is_one_warning_and_an_ignored_one_none(tmp_path):
    source = make_source(tmp_path, {"deploy.pem": "KEY", "id_rsa": "KEY"})
    done = run_cli("describe", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("warning: packing secret-looking files of ") and "deploy.pem, id_rsa;" in line
    assert ".sagemakerignore" in line
    (source / ".sagemakerignore").write_text("*.pem\nid_rsa\n")
    assert run_cli("describe", "--source-dir", str(source)).stderr == ""


def test_verbose_lists_what_is_packed(tmp_path):
    source = make_source(tmp_path, {"lib/a.py": "", ".env": "X=1"})
    done = run_cli("--verbose", "describe", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    key = sourcedir.content_key(sourcedir.pack(source, "train.py"))
    assert lines == [f"packing 2 files of {source} (sourcedir.tar.gz {key}):", "  lib/a.py", "  train.py"]
    assert run_cli("describe", "--source-dir", str(source)).stderr == ""


def code_archives() -> dict[str, list[str]]:
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    archives = {}
    for key in keys:
        if key.endswith("/sourcedir.tar.gz"):
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                archives[key] = tar.getnames()
    return archives


def test_an_empty_swap_file_changes_nothing_deployed_and_a_env_never_reaches_s3(aws_env, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / ".env").write_text("AWS_SECRET_ACCESS_KEY=do-not-ship\n")
    assert run_cli("upsert", "--source-dir", str(source)).returncode == 0
    sm = boto3.client("sagemaker", region_name=REGION)
    before = sm.describe_pipeline(PipelineName="test-pipeline")
    (archive,) = code_archives().values()
    assert ".env" not in archive and "train.py" in archive

    (source / ".train.py.swp").write_bytes(b"")
    done = run_cli("upsert", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    assert "nothing changed" in done.stdout and "uploaded" not in done.stdout
    after = sm.describe_pipeline(PipelineName="test-pipeline")
    assert after["LastModifiedTime"] == before["LastModifiedTime"]  # no UpdatePipeline
    assert all(".env" not in names and ".train.py.swp" not in names for names in code_archives().values())
