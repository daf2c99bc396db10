"""Bad input and faults for the local jobs (train-local, run --local): refused before anything is
written, and nothing truncated, orphaned or left behind whatever stops the CLI.

Every row is refused the same way: exit 2, stderr exactly one ``error:`` line holding the
expected fragment, no job folder, and nothing left in ``TMPDIR`` (pointed at a test folder).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from local_support import assert_all_gone, process_runner, start_cli, start_probe_job, wait_for
from support import BUCKET, PROBE_SRC, REGION, run_cli

from pipeline.local import files


@dataclass(frozen=True)
class Case:
    args: list[str]
    fragment: str
    setup: Callable[[Path], None] | None = None  # given the test folder, before the run
    kept: list[str] = field(default_factory=list)  # what the setup made in the output folder, left as it was


def case(*args: str, fragment: str, **options) -> Case:
    return Case(list(args), fragment, **options)


def existing_job(work: Path) -> None:
    (work / "out" / "taken").mkdir(parents=True)
    (work / "out" / "taken" / "model.tar.gz").write_text("the earlier job's model")


def symlink_loop(work: Path) -> None:
    (work / "data" / "deeper").mkdir(parents=True)
    (work / "data" / "train.csv").write_text("a,b\n1,2\n")
    (work / "data" / "deeper" / "loop").symlink_to(work / "data")


def broken_link(work: Path) -> None:
    (work / "data").mkdir()
    (work / "data" / "gone.csv").symlink_to(work / "nowhere.csv")


def a_file(work: Path) -> None:
    (work / "file").write_text("not a folder")


TRAIN_LOCAL = [
    case("--hp", "max-iter=ten", fragment="hyperparameter max-iter expects int, got 'ten'"),
    case("--hp", "depth", fragment="--hp 'depth' is not NAME=VALUE"),
    case("--hp", "seed=1", "--hp", "seed=2", fragment="--hp seed is given twice"),
    case("--train", "", fragment="--channel train= is empty"),
    case("--train", "   ", fragment="--channel train= is empty"),
    case("--channel", "train=s3://", fragment="names no bucket"),
    case("--channel", "train=s3:///prefix", fragment="names no bucket"),
    case("--channel", "bad name=data", fragment="channel name 'bad name'"),
    case("--channel", "train=a", "--train", "b", fragment="channel train is given by both --train and --channel"),
    case("--content-type", "test=text/csv", fragment="--content-type test names no channel"),
    case("--metric", "loss=loss: [0-9.]+", fragment="--metric loss: the regex must have exactly one capture group"),
    case("--metric", "loss=(", fragment="--metric loss: the regex"),
    case("--env", "1X=y", fragment="--env 1X: a variable name is letters"),
    case("--env", "NOVALUE", fragment="--env 'NOVALUE' is not NAME=VALUE"),
    case("--job-name", "../../x", fragment="job name '../../x': use letters, digits and hyphens"),
    case("--job-name", "a" * 64, fragment="at most 63"),
    case("--job-name", "taken", fragment="exists already", setup=existing_job, kept=["taken"]),
    case("--job-name", "a", "--job-name", "b", fragment="--job-name is given twice"),
    case("--train", "/does/not/exist", fragment="channel source /does/not/exist does not exist"),
    case("--train", "{work}/data", fragment="data/deeper/loop is a symlink loop", setup=symlink_loop),
    case("--train", "{work}/data", fragment="data/gone.csv is a broken symlink", setup=broken_link),
    case("--source-dir", "/does/not/exist", fragment="source dir /does/not/exist is not a folder"),
    case("--source-dir", "{work}/src", fragment="has no train.py", setup=lambda work: (work / "src").mkdir()),
    case("--source-dir", "{work}", fragment="is inside the source dir"),
    case("--entry-point", "nope.py", fragment="nope.py"),
    case("--checkpoints", "", fragment="--checkpoints is empty"),
    case("--checkpoints", "s3://", fragment="--checkpoints s3:// names no bucket"),
    case("--checkpoints", "{work}/file", fragment="is a file: give a folder", setup=a_file),
    case("--python", "/no/such/python", fragment="--python /no/such/python is not an interpreter"),
    case("--python", "{work}/file", fragment="does not run", setup=a_file),
    case("--container", "--python", sys.executable, fragment="--python is for a job without --container"),
    case("--instance-count", "0", fragment="argument --instance-count: invalid int value: '0'"),
    case("--max-runtime", "nan", fragment="argument --max-runtime"),
    case("--stop-grace", "-1", fragment="argument --stop-grace"),
    case("--stop-grace", "inf", fragment="argument --stop-grace"),
    case("--no-such-flag", fragment="unrecognized arguments: --no-such-flag"),
]


@pytest.fixture(scope="module", autouse=True)
def environment_ready():
    """Made once here, so that no row pays for it (and a --python row's refusal comes first)."""
    process_runner()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    return tmp_path


def assert_refused(done, work: Path, fragment: str, kept: list[str]) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert fragment in lines[0], lines[0]
    out = work / "out"
    assert sorted(p.name for p in out.iterdir()) == kept if out.exists() else not kept
    assert list((work / "tmp").iterdir()) == []


@pytest.mark.parametrize("row", TRAIN_LOCAL, ids=lambda row: " ".join(row.args)[:60])
def test_train_local_refuses_bad_input_writing_nothing(row: Case, work: Path):
    if row.setup:
        row.setup(work)
    before = {p: p.read_bytes() for p in (work / "out").rglob("*") if p.is_file()} if row.kept else {}
    args = [a.replace("{work}", str(work)) for a in row.args]
    source = [] if "--source-dir" in args else ["--source-dir", str(PROBE_SRC)]
    done = run_cli("train-local", *source, "--output-dir", str(work / "out"), *args)
    assert_refused(done, work, row.fragment.replace("{work}", str(work)), row.kept)
    assert {p: p.read_bytes() for p in before} == before  # an earlier job is never touched


RUN_LOCAL = [
    case("--param", "Nope=1", fragment="unknown parameter 'Nope'"),
    case("--param", "MaxIter=ten", fragment="expects int"),
    case("--python", "/no/such/python", fragment="--python /no/such/python is not an interpreter"),
    case("--stop-grace", "nan", fragment="argument --stop-grace"),
    case("--output-dir", "a", "--output-dir", "b", fragment="--output-dir is given twice"),
    case(fragment="holds no objects: upload the data"),  # the channels' prefixes are empty
]


@pytest.mark.parametrize("row", RUN_LOCAL, ids=lambda row: " ".join(row.args)[:60] or "empty-channels")
def test_run_local_refuses_bad_input_writing_nothing(row: Case, work: Path, aws_env):
    args = ["run", "--local", "--source-dir", str(PROBE_SRC), "--output-dir", str(work / "out"), *row.args]
    done = run_cli(*args)
    assert_refused(done, work, row.fragment, [])
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []  # not even the code archive


def test_sigkill_of_the_cli_leaves_no_host_process(work: Path):
    pid_file = work / "pids"
    cli = start_probe_job(work / "out", pid_file, "--env", "PROBE_DAEMON=1")
    cli.send_signal(signal.SIGKILL)  # as the OOM killer does: no handler runs
    cli.communicate(timeout=30)
    assert_all_gone(pid_file)  # the toolkit, the script, and a process in a session of its own
    wait_for(lambda: list((work / "tmp").iterdir()) == [], "the hosts' init removed the temp folder", None, 30)


def test_sigterm_while_packing_leaves_no_truncated_model(work: Path):
    job = work / "out" / "packing"
    cli = start_cli(
        "train-local",
        "--source-dir",
        str(PROBE_SRC),
        "--output-dir",
        str(work / "out"),
        "--job-name",
        "packing",
        "--env",
        "PROBE_MODEL_MB=300",  # random bytes: gzip takes seconds
    )
    wait_for(lambda: (job / ".model.tar.gz.partial").exists(), "packing began", cli)
    cli.send_signal(signal.SIGTERM)
    _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 130
    assert "interrupted while copying checkpoints or packing the artifacts" in stderr
    assert sorted(p.name for p in job.iterdir()) == ["algo-1.log", "sample-data", "sourcedir.tar.gz"]
    assert list((work / "tmp").iterdir()) == []


def test_ctrl_c_during_channel_download_leaves_no_temp_folder(work: Path, aws_env):
    s3 = boto3.client("s3", region_name=REGION)
    body = os.urandom(1 << 20)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=BUCKET, Key=f"big/part-{i:04d}", Body=body), range(200)))
    cli = start_cli(
        "train-local",
        "--source-dir",
        str(PROBE_SRC),
        "--output-dir",
        str(work / "out"),
        "--channel",
        f"train=s3://{BUCKET}/big/",
        "--job-name",
        "downloading",
    )
    wait_for(lambda: any((work / "tmp").glob("train-local-downloading-*/channels/train/part-*")), "download began", cli)
    cli.send_signal(signal.SIGINT)
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130
    assert stderr.strip().splitlines()[-1] == "interrupted"
    assert list((work / "tmp").iterdir()) == []
    assert list((work / "out").iterdir()) == []  # the job never started: no folder


def test_a_full_disk_names_the_file(tmp_path: Path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_bytes(os.urandom(1 << 16))
    archive = tmp_path / "model.tar.gz"
    (tmp_path / ".model.tar.gz.partial").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(OSError) as raised:
        files.pack_dir(tmp_path / "model", archive)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(archive)
    assert not archive.exists()


def test_an_interrupted_pack_leaves_no_file(tmp_path: Path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_bytes(b"w")
    archive = tmp_path / "model.tar.gz"
    with pytest.raises(KeyboardInterrupt), files.written_atomically(archive) as partial:
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(tmp_path / "model" / "weights", arcname="weights")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
