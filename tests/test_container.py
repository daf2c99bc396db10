"""The framework image, built with framework_image/build-local.sh and run as SageMaker runs it
(``<image> train``, ``/opt/ml`` mounted, no network), by hand and through ``train-local --container``.

Slow (the first build makes a base image and installs wheels), so marked ``container``:
``pytest -m container`` runs it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
from local_support import RESUMABLE, start_cli, wait_for
from support import PROBE_SRC, run_cli, source_dir

from pipeline.local import container

pytestmark = pytest.mark.container

RUN_TIMEOUT = 300
IMAGE_SIZE_LIMIT = 600_000_000
METRIC_LINE = re.compile(r"validation:accuracy = (\d+\.\d+)")


def containers(engine: str, job: str) -> list[str]:
    listed = subprocess.run(
        [engine, "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60, check=True
    )
    return [name for name in listed.stdout.split() if name.startswith(f"train-local-{job}-")]


def train_local(image: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("train-local", "--image", image, "--output-dir", str(tmp_path), *args, timeout=RUN_TIMEOUT)


def test_image_is_small_has_no_compiler_and_names_the_framework(engine, image):
    inspect = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(inspect.stdout.strip()) < IMAGE_SIZE_LIMIT
    name = f"test-container-{uuid.uuid4().hex[:12]}"
    code = "import os, shutil; print(os.environ['SAGEMAKER_TRAINING_MODULE'], shutil.which('gcc'), shutil.which('cc'))"
    command = [engine, "run", "--rm", "--name", name, "--network", "none", *container.run_flags(engine), image]
    probe = subprocess.run([*command, "python", "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["custom_framework_training.training:main", "None", "None"]


def test_train_local_container_trains_the_user_code(image, tmp_path):
    done = train_local(image, tmp_path, "--job-name", "real", "--hp", "max-iter=20")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert f"container: {image} through" in done.stdout
    with tarfile.open(tmp_path / "real" / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["features.json", "model.joblib"]
    match = METRIC_LINE.search(done.stdout)
    assert match, done.stdout[-4000:]
    assert 0.5 < float(match.group(1)) <= 1.0


def test_failing_user_code_exits_non_zero_with_the_failure_files_reason(image, tmp_path):
    source = source_dir(tmp_path / "failing_src", 'raise ValueError("deliberate failure: no usable rows")\n')
    done = train_local(image, tmp_path, "--source-dir", str(source), "--train", str(source))
    assert done.returncode == 1
    assert "training failed (exit 1): ExecuteUserScriptError" in done.stderr
    assert "deliberate failure: no usable rows" in done.stderr


def test_a_package_the_image_lacks_fails_in_the_container_too(image, tmp_path):
    source = source_dir(tmp_path / "src", "import moto\n")
    done = train_local(image, tmp_path, "--source-dir", str(source), "--train", str(source))
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'moto'" in done.stderr


def test_a_stop_reaches_the_script_in_the_container_and_leaves_nothing_running(engine, image, tmp_path):
    cli = start_cli(
        "train-local",
        "--image",
        image,
        "--source-dir",
        str(PROBE_SRC),
        "--output-dir",
        str(tmp_path),
        "--job-name",
        "stopped",
        "--env",
        "PROBE_SLEEP=60",
        "--env",
        "PROBE_ON_TERM=5",
    )
    log = tmp_path / "stopped" / "algo-1.log"
    wait_for(lambda: log.exists() and "PROBE {" in log.read_text(), "the probe started", cli, RUN_TIMEOUT)
    cli.send_signal(signal.SIGINT)
    stdout, stderr = cli.communicate(timeout=RUN_TIMEOUT)
    assert cli.returncode == 130, stderr
    assert "PROBE got SIGTERM" in stdout
    # The toolkit (PID 1) saw the script end: an INFO line, folded in the terminal, whole in the log.
    assert "Received 5 from exiting process" in log.read_text()
    assert containers(engine, "stopped") == []


def test_sigkill_of_the_cli_leaves_no_container(engine, image, tmp_path):
    (tmp_path / "tmp").mkdir()
    cli = start_cli(
        "train-local",
        "--image",
        image,
        "--source-dir",
        str(PROBE_SRC),
        "--output-dir",
        str(tmp_path),
        "--job-name",
        "orphan",
        "--env",
        "PROBE_SLEEP=120",
        env={"TMPDIR": str(tmp_path / "tmp")},
    )
    log = tmp_path / "orphan" / "algo-1.log"
    wait_for(lambda: log.exists() and "PROBE {" in log.read_text(), "the probe started", cli, RUN_TIMEOUT)
    cli.send_signal(signal.SIGKILL)
    cli.communicate(timeout=60)
    wait_for(lambda: containers(engine, "orphan") == [], "the container was removed", None, 60)
    wait_for(lambda: list((tmp_path / "tmp").iterdir()) == [], "the temp folder was removed", None, 60)


def test_a_script_resumes_from_its_checkpoint_in_the_container(image, tmp_path):
    source = source_dir(tmp_path / "resumable", RESUMABLE)
    store = tmp_path / "store"
    args = ["train-local", "--image", image, "--source-dir", str(source), "--output-dir", str(tmp_path / "jobs")]
    args += ["--train", str(source), "--checkpoints", str(store)]
    first = start_cli(*args, "--job-name", "first")
    log = tmp_path / "jobs" / "first" / "algo-1.log"
    wait_for(lambda: log.exists() and "STEP 3" in log.read_text(), "a few steps", first, RUN_TIMEOUT)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=RUN_TIMEOUT)
    saved = json.loads((store / "state.json").read_text())["step"]
    second = start_cli(*args, "--job-name", "second", "--max-runtime", "5")
    stdout, _ = second.communicate(timeout=RUN_TIMEOUT)
    assert f"RESUMED at {saved}" in stdout  # /opt/ml/checkpoints, restored from the store


def test_two_hosts_run_as_two_containers_and_one_failing_stops_the_other(engine, image, tmp_path):
    env = ["--env", "PROBE_SLEEP=120", "--env", "PROBE_FAIL=raise", "--env", "PROBE_FAIL_HOST=algo-2"]
    done = train_local(
        image, tmp_path, "--source-dir", str(PROBE_SRC), "--instance-count", "2", "--job-name", "pair", *env
    )
    assert done.returncode == 1
    assert "[algo-1] PROBE {" in done.stdout and "[algo-2] PROBE {" in done.stdout
    assert "training failed (exit 1): algo-2: ExecuteUserScriptError" in done.stderr
    assert containers(engine, "pair") == []


def test_the_processing_entry_runs_the_script_and_reports_a_failure(engine, image, tmp_path):
    """``python3 -m custom_framework_training.processing`` on the image's own Python, as an Evaluate job runs it:
    the script's output is complete, its thread and atexit handler finish, and the reason is the end of stderr."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "neighbour.py").write_text("def fail():\n    raise ValueError('no held-out rows')\n")
    (source / "evaluate.py").write_text(
        "import atexit, json, sys, threading, time\n"
        "import neighbour\n"
        "report = open(sys.argv[1], 'w')\n"  # left open: complete after the exit all the same
        "report.write(json.dumps({'written': True}))\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done', file=sys.stderr))).start()\n"
        "atexit.register(lambda: print('atexit done', file=sys.stderr))\n"
        "neighbour.fail()\n"
    )
    base = tmp_path / "ml"
    base.mkdir()
    with tarfile.open(base / "sourcedir.tar.gz", "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    command = [engine, "run", "--rm", "--name", f"test-processing-{uuid.uuid4().hex[:12]}", "--network", "none"]
    command += [*container.run_flags(engine), "--volume", f"{base}:/opt/ml", image]
    command += ["python3", "-m", "custom_framework_training.processing", "/opt/ml/sourcedir.tar.gz", "evaluate.py"]
    done = subprocess.run([*command, "/opt/ml/report.json"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 1, done.stderr
    assert json.loads((base / "report.json").read_text()) == {"written": True}
    message = (base / "output" / "message").read_text()
    assert message.startswith('evaluate.py exited 1: Traceback (most recent call last):\n  File "/tmp/code-')
    assert "custom_framework_training" not in message  # the script's frames only, as python prints them
    assert message.endswith("ValueError: no held-out rows\nthread done\natexit done")
