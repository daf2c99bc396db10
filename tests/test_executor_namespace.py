"""Scripts see SageMaker's paths: each host runs in a private user and mount namespace where
``/opt/ml`` is its base dir (``host_init.py enter``), without root and without writing the host's
``/opt``. Where no user namespace is allowed, hosts fall back to ``SAGEMAKER_BASE_DIR`` and moved
paths, with one warning line naming what to enable.

Run as root and as an unprivileged user (the module is what CI's unprivileged runner runs).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from local_support import process_runner, run_init
from moto_server import REGION
from support import BUCKET, make_job, source_dir

from pipeline.local import job as local_job
from pipeline.local import processing, runners
from pipeline.local.processes import HOST_INIT

SCRIPT = """\
from pathlib import Path
data = Path("/opt/ml/processing/input/data/rows.csv").read_text()
Path("/opt/ml/model").mkdir(parents=True, exist_ok=True)
Path("/opt/ml/model/x").write_text("seen " + data)
"""


@pytest.fixture(scope="module")
def namespaces():
    problem = runners.namespace_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"no user namespace for /opt/ml: {problem}", pytrace=False)
        pytest.skip(f"no user namespace for /opt/ml: {problem}")


@pytest.fixture(scope="module")
def runner(namespaces):
    found = process_runner()
    assert found.opt_ml
    return found


def host_opt() -> tuple[list[str], bool]:
    return sorted(os.listdir("/opt")) if os.path.isdir("/opt") else [], os.path.exists("/opt/ml")


def test_a_script_writes_and_reads_opt_ml_and_the_host_opt_is_untouched(namespaces, tmp_path):
    base = tmp_path / "algo-1"
    (base / "processing" / "input" / "data").mkdir(parents=True)
    (base / "processing" / "input" / "data" / "rows.csv").write_text("1,2\n")
    before = host_opt()
    seen = run_init(
        [sys.executable, "-I", "-S", str(HOST_INIT), "process", "--opt-ml", str(base), "--",
         sys.executable, "-c", SCRIPT + "import os; print(sorted(os.listdir('/opt')), os.getuid())"],
        text=True, check=True,
    )  # fmt: skip
    assert (base / "model" / "x").read_text() == "seen 1,2\n"
    assert host_opt() == before and not before[1]
    listed, uid = seen.stdout.rsplit(" ", 1)
    assert eval(listed) == sorted([*before[0], "ml"])  # /opt's own entries are still there
    assert int(uid) == os.getuid()  # the caller's own id: its files keep their owner
    assert (base / "model" / "x").stat().st_uid == os.getuid()


RUN_SH = """\
cat /opt/ml/processing/rows/a.csv /opt/ml/processing/rows/sub/b.csv > "$1/all.csv"
python3 -c "import sys; print(sys.prefix)" >> "$1/all.csv"
"""


def s3_input(name: str, uri: str, path: str) -> dict:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": path, "S3DataType": "S3Prefix"}}


def test_a_processing_job_with_several_inputs_and_a_shell_entrypoint(aws_env, runner, tmp_path):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="in/rows/a.csv", Body=b"1,2\n")
    s3.put_object(Bucket=BUCKET, Key="in/rows/sub/b.csv", Body=b"3,4\n")
    s3.put_object(Bucket=BUCKET, Key="code/run.sh", Body=RUN_SH.encode())
    request = {
        "AppSpecification": {
            "ImageUri": "image",
            "ContainerEntrypoint": ["/bin/bash", "/opt/ml/processing/code/run.sh"],
            "ContainerArguments": ["/opt/ml/processing/out"],
        },
        "ProcessingInputs": [
            s3_input("rows", f"s3://{BUCKET}/in/rows", "/opt/ml/processing/rows"),
            s3_input("code", f"s3://{BUCKET}/code/run.sh", "/opt/ml/processing/code"),  # one object
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {"S3Uri": f"s3://{BUCKET}/out", "LocalPath": "/opt/ml/processing/out"},
                }
            ]
        },
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"}},
    }
    job = processing.from_request(request, name="shell-job", region=REGION, where="test")
    before = host_opt()
    result = processing.run_processing(job, tmp_path / "job", runner, report=print)
    assert result.succeeded, (tmp_path / "job" / "algo-1.log").read_text()
    lines = s3.get_object(Bucket=BUCKET, Key="out/all.csv")["Body"].read().decode().splitlines()
    assert lines[:2] == ["1,2", "3,4"]
    assert "venv" in lines[2]  # the script's python3 is the job's, first on PATH
    assert host_opt() == before


def test_a_training_script_writes_opt_ml_model(aws_env, runner, tmp_path):
    source = source_dir(
        tmp_path / "src",
        'import os\nopen("/opt/ml/model/x", "w").write(os.environ["SM_MODEL_DIR"])\n'
        'assert open("/opt/ml/input/data/train/rows.csv").read() == "5,6\\n"\n',
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("5,6\n")
    job = make_job(tmp_path, {"train": str(data)}, source=source)
    result = local_job.run_job(job, tmp_path / "job", runner, report=print)
    assert result.succeeded, result.failure_reason
    with tarfile.open(result.model_artifact) as archive:
        assert archive.extractfile("x").read() == b"/opt/ml/model"  # the toolkit's own paths, as on SageMaker
    assert not Path("/opt/ml").exists()


CODE_ON_TMPFS = """\
import os
mounts = [line.split() for line in open("/proc/self/mountinfo")]
kinds = [fields[fields.index("-") + 1] for fields in mounts if fields[4] == "/opt/ml/code"]
open("/opt/ml/model/code", "w").write(" ".join([kinds[-1], *sorted(os.listdir("/opt/ml/code"))]))
"""


def test_the_unpacked_code_lives_in_memory_and_goes_with_the_host(aws_env, runner, tmp_path):
    """The toolkit unpacks the code into /opt/ml/code, a tmpfs of the host's namespace: nothing of it
    is written to the base dir on disk, so nothing is deleted file by file after the job."""
    source = source_dir(tmp_path / "src", CODE_ON_TMPFS)
    (source / "helper.py").write_text("")
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("5,6\n")
    job = make_job(tmp_path, {"train": str(data)}, source=source)
    bases = []
    prepare = local_job.prepare_base_dir

    def keep(base, *args, **kwargs):
        bases.append(base)
        return prepare(base, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_job, "prepare_base_dir", keep)
        result = local_job.run_job(job, tmp_path / "job", runner, report=print)
    assert result.succeeded, result.failure_reason
    with tarfile.open(result.model_artifact) as archive:
        assert archive.extractfile("code").read().decode().split() == ["tmpfs", "helper.py", "train.py"]
    assert bases and not any(base.exists() for base in bases)  # the scratch is gone too


def test_without_user_namespaces_hosts_get_moved_paths_and_one_warning(monkeypatch, tmp_path):
    lines: list[str] = []
    monkeypatch.setattr(runners, "namespace_problem", lambda: "unshare: Operation not permitted")
    fallback = runners.process_runner(None, lines.append)
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in warning and "--container" in warning
    assert not fallback.opt_ml
    job = processing.ProcessingJob(
        "j", ("python3", "/opt/ml/processing/code/x.py", "--out", "/opt/ml/processing/out"), (), (), REGION
    )
    base = tmp_path / "algo-1"
    command = fallback.processing(job, tmp_path)("algo-1", base)
    assert command.argv[1:] == [f"{base}/processing/code/x.py", "--out", f"{base}/processing/out"]
    assert command.env["SAGEMAKER_BASE_DIR"] == str(base)
    isolated = dataclasses.replace(fallback, opt_ml=True).processing(job, tmp_path / "2")("algo-1", base)
    init = isolated.init_argv()
    assert init[init.index("--opt-ml") + 1] == str(base) and init.index("--opt-ml") < init.index("--")
    assert isolated.argv[1:] == list(job.argv[1:]) and isolated.env["SAGEMAKER_BASE_DIR"] == "/opt/ml"


def test_a_namespace_that_cannot_be_entered_is_one_line_and_status_127(namespaces, tmp_path):
    done = run_init(
        [sys.executable, "-I", "-S", str(HOST_INIT), "process", "--opt-ml", str(tmp_path / "missing"), "--",
         sys.executable, "-c", "open('/opt/ml/ran', 'w')"],
        text=True,
    )  # fmt: skip
    assert done.returncode == 127
    (line,) = done.stderr.splitlines()
    assert line.startswith("[train-local] host init: ") and "missing" in line
    assert not (tmp_path / "missing").exists()
