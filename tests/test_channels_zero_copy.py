"""Channel data reaches each host without its bytes copied where a private namespace allows it, and
no job can change the user's files: a script that writes, appends and deletes in its channel
changes only its own view (SageMaker's File mode gives each host its own copy), with a namespace
(an overlay) and without one (a copy, reflinked where the filesystem can). ``s3://`` channels are
downloaded once per job, whatever the host count.

Run as root and as an unprivileged user (CI runs the suite as one).
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import tempfile
from pathlib import Path

import boto3
import pytest
from local_support import process_runner
from support import BUCKET, REGION, make_job

from pipeline import aws
from pipeline.local import channels, processing, runners
from pipeline.local import job as local_job
from pipeline.local.channels import Way

# Reads, appends, overwrites, creates and deletes in its channel; reports what it saw, as one JSON line.
SCRIPT = """\
import errno, json, os
folder = os.environ["SM_CHANNEL_TRAIN"]
seen = {"host": json.loads(os.environ["SM_HOSTS"]).index(os.environ["SM_CURRENT_HOST"])}
seen["files"] = sorted(os.path.relpath(os.path.join(p, n), folder) for p, _, ns in os.walk(folder) for n in ns)
seen["inode"] = os.stat(os.path.join(folder, "rows.csv")).st_ino
seen["rows"] = open(os.path.join(folder, "rows.csv")).read()
changes = {}
for name, change in (
    ("append", lambda: open(os.path.join(folder, "rows.csv"), "a").write("3,4\\n")),
    ("overwrite", lambda: open(os.path.join(folder, "sub", "more.csv"), "w").write("gone")),
    ("create", lambda: open(os.path.join(folder, "new.csv"), "w").write("new")),
    ("delete", lambda: os.remove(os.path.join(folder, "sub", "old.csv"))),
):
    try:
        change()
        changes[name] = 0
    except OSError as error:
        changes[name] = error.errno
seen["changes"] = changes
seen["after"] = open(os.path.join(folder, "rows.csv")).read()
print("SEEN " + json.dumps(seen), flush=True)
"""


@pytest.fixture(scope="module")
def runner():
    return process_runner()


@pytest.fixture(scope="module")
def namespaced(runner):
    problem = runners.namespace_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"no user namespace for /opt/ml: {problem}", pytrace=False)
        pytest.skip(f"no user namespace for /opt/ml: {problem}")
    assert runner.opt_ml
    return runner


def user_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "rows.csv").write_text("1,2\n")
    (data / "sub" / "more.csv").write_text("5,6\n")
    (data / "sub" / "old.csv").write_text("7,8\n")
    return data


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, inode and mtime: what no job may change."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run(tmp_path: Path, runner, channel: str, **overrides) -> list[dict]:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(SCRIPT)
    job = make_job(tmp_path, {"train": channel}, source=source, **overrides)
    result = local_job.run_job(job, tmp_path / "job", runner, sink=io.StringIO(), report=lambda line: None)
    assert result.succeeded, result.failure_reason
    seen = []
    for log in result.logs.values():
        (line,) = [line for line in log.read_text().splitlines() if line.startswith("SEEN ")]
        seen.append(json.loads(line[len("SEEN ") :]))
    return sorted(seen, key=lambda report: report["host"])


ALL_CHANGED = {"append": 0, "overwrite": 0, "create": 0, "delete": 0}
AFTER = ["new.csv", "rows.csv", "sub/more.csv"]


def test_with_a_namespace_each_host_sees_the_original_bytes_and_changes_only_its_own_view(
    tmp_path, namespaced, monkeypatch
):
    data = user_data(tmp_path)
    before = snapshot(data)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the job's scratch goes
    seen = run(tmp_path, namespaced, str(data), instance_count=2)
    assert list((tmp_path / "tmp").iterdir()) == []  # the overlays' changes went with the scratch
    assert [report["host"] for report in seen] == [0, 1]
    for report in seen:
        assert report["files"] == ["rows.csv", "sub/more.csv", "sub/old.csv"]
        assert report["inode"] == before["rows.csv"][1]  # the original file itself: no byte copied
        assert report["changes"] == ALL_CHANGED  # writable, as File mode's copy is
        assert (report["rows"], report["after"]) == ("1,2\n", "1,2\n3,4\n")  # host 2 never sees host 1's change
    assert snapshot(data) == before


def test_without_a_namespace_each_host_gets_a_copy_and_the_original_stays(tmp_path, runner):
    data = user_data(tmp_path)
    before = snapshot(data)
    seen = run(tmp_path, dataclasses.replace(runner, opt_ml=False), str(data), instance_count=2)
    for report in seen:
        assert report["files"] == ["rows.csv", "sub/more.csv", "sub/old.csv"]
        assert report["inode"] != before["rows.csv"][1]
        assert report["changes"] == ALL_CHANGED
        assert (report["rows"], report["after"]) == ("1,2\n", "1,2\n3,4\n")
    assert snapshot(data) == before


def test_a_one_file_channel_is_read_only_in_a_namespace(tmp_path, namespaced):
    data = user_data(tmp_path)
    before = snapshot(data)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(
        "import os\nfolder = os.environ['SM_CHANNEL_TRAIN']\n"
        "print(f'SEEN {sorted(os.listdir(folder))} {os.stat(folder + \"/rows.csv\").st_ino}', flush=True)\n"
        "open(f'{folder}/new.csv', 'w').write('new')\n"  # the channel's folder is the host's own
        "try:\n    open(f'{folder}/rows.csv', 'a').write('3,4')\nexcept OSError as error:\n"
        "    print(f'SEEN {error.errno}', flush=True)\n"  # one piece: the toolkit may split a line printed in parts
    )
    job = make_job(tmp_path, {"train": str(data / "rows.csv")}, source=tmp_path / "src")
    said: list[str] = []
    result = local_job.run_job(job, tmp_path / "job", namespaced, sink=io.StringIO(), report=said.append)
    assert result.succeeded, result.failure_reason
    lines = [line for line in result.logs["algo-1"].read_text().splitlines() if line.startswith("SEEN ")]
    assert lines == [f"SEEN ['rows.csv'] {before['rows.csv'][1]}", f"SEEN {errno.EROFS}"]
    assert [line for line in said if line.startswith("note: ")] == [
        "note: channel train is read-only in the job (a one-file channel, files that are not all yours,"
        " or a path holding , : or \\ cannot be an overlay): writes into it fail"
    ]
    assert snapshot(data) == before


def test_the_way_a_channel_is_given_follows_what_it_holds(tmp_path):
    data = user_data(tmp_path)
    assert channels.way(data, namespace=False) is Way.COPY
    assert channels.way(data, namespace=True) is Way.OVERLAY
    assert channels.way(data / "rows.csv", namespace=True) is Way.READ_ONLY
    (data / "sub" / "link.csv").symlink_to(data / "rows.csv")  # File mode sees a plain file: copied
    assert channels.way(data, namespace=True) is Way.COPY
    (data / "sub" / "link.csv").unlink()
    odd = tmp_path / "a,b"
    data.rename(odd)  # a path overlay's options cannot carry
    assert channels.way(odd, namespace=True) is Way.READ_ONLY


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's takes root")
def test_files_of_another_user_are_read_only_for_an_unprivileged_job(tmp_path, monkeypatch):
    data = user_data(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 4321)  # the walk as an unprivileged caller sees it
    assert channels.way(data, namespace=True) is Way.READ_ONLY
    monkeypatch.setattr(os, "getegid", lambda: 4321)
    for path in [data, *data.rglob("*")]:
        os.chown(path, 4321, 4321)
    assert channels.way(data, namespace=True) is Way.OVERLAY


def test_an_s3_channel_is_downloaded_once_for_every_host(aws_env, tmp_path, runner):
    s3 = boto3.client("s3", region_name=REGION)
    objects = {f"data/train/part-{i}.csv": f"{i},{i}\n".encode() for i in range(20)}
    objects["data/train/rows.csv"] = b"1,2\n"
    objects["data/train/sub/more.csv"] = b"5,6\n"
    objects["data/train/sub/old.csv"] = b"7,8\n"
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    gets: list[str] = []
    client = aws.client("s3", REGION)
    client.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    seen = run(tmp_path, runner, f"s3://{BUCKET}/data/train/", instance_count=3)
    assert sorted(gets) == sorted(objects)  # each object once, not once per host
    expected = sorted(key.removeprefix("data/train/") for key in objects)
    for report in seen:
        assert report["files"] == expected
        assert report["changes"] == ALL_CHANGED
        assert (report["rows"], report["after"]) == ("1,2\n", "1,2\n3,4\n")


PROCESS = """\
rows = open("/opt/ml/processing/data/rows.csv").read()
open("/opt/ml/processing/data/rows.csv", "a").write("3,4\\n")  # its own copy or view: writable
open("/opt/ml/processing/data/out/result.csv", "w").write(rows.upper())
"""


def test_a_processing_output_inside_an_input_is_uploaded(aws_env, tmp_path, runner):
    """An input holding the output folder is copied, not mounted: what the script writes there is
    on the host's disk, where the upload reads it."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="in/data/rows.csv", Body=b"a,b\n")
    s3.put_object(Bucket=BUCKET, Key="in/code/run.py", Body=PROCESS.encode())
    request = {
        "AppSpecification": {"ImageUri": "image", "ContainerEntrypoint": ["python3", "/opt/ml/processing/code/run.py"]},
        "ProcessingInputs": [
            {
                "InputName": name,
                "S3Input": {"S3Uri": f"s3://{BUCKET}/in/{name}", "LocalPath": f"/opt/ml/processing/{name}"},
            }
            for name in ("data", "code")
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {"S3Uri": f"s3://{BUCKET}/out", "LocalPath": "/opt/ml/processing/data/out"},
                }
            ]
        },
    }
    job = processing.from_request(request, name="nested", region=REGION, where="test")
    result = processing.run_processing(job, tmp_path / "job", runner, report=lambda line: None)
    assert result.succeeded, result.log.read_text()
    assert s3.get_object(Bucket=BUCKET, Key="out/result.csv")["Body"].read() == b"A,B\n"
    assert s3.get_object(Bucket=BUCKET, Key="in/data/rows.csv")["Body"].read() == b"a,b\n"
