"""The local training job, run through the real toolkit ``train`` command."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from support import PROBE_SRC, ROOT, make_job, probe_reports, run_cli

from pipeline.definition import sample_data
from pipeline.errors import ChannelError
from pipeline.local import job as local_job
from pipeline.local import job_config


@pytest.fixture
def channels(tmp_path: Path) -> dict[str, str]:
    return {name: str(path) for name, path in sample_data.write(tmp_path / "data").items()}


def run_probe(tmp_path, channels, monkeypatch, env=None, **overrides) -> local_job.JobResult:
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    job = make_job(tmp_path, channels, **overrides)
    return local_job.run_job(job, tmp_path / "job", sink=io.StringIO())


def only_report(result: local_job.JobResult, host: str = "algo-1") -> dict:
    reports = probe_reports(result.logs[host].read_text())
    assert len(reports) == 1, result.logs[host].read_text()
    return reports[0]


def test_hyperparameters_round_trip_types_lists_and_hyphens(tmp_path, channels, monkeypatch):
    values = {
        "learning-rate": 0.05,
        "max-iter": 7,
        "layer-sizes": [64, 32],
        "activation": "relu",
        "use-bias": True,
        "nested_cfg": {"a": 1},
    }
    result = run_probe(tmp_path, channels, monkeypatch, hyperparameters=job_config.encode_hyperparameters(values))
    assert result.succeeded, result.failure_reason
    report = only_report(result)
    argv = report["argv"]
    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    # The toolkit passes --name value, sorted, values as str() of the decoded JSON.
    assert pairs == {
        "--activation": "relu",
        "--layer-sizes": "[64, 32]",
        "--learning-rate": "0.05",
        "--max-iter": "7",
        "--nested_cfg": "a=1",
        "--use-bias": "True",
    }
    # SM_HPS keeps the JSON types; reserved sagemaker_* names are not passed on.
    assert json.loads(report["env"]["SM_HPS"]) == values
    assert json.loads(report["env"]["SM_HP_LAYER-SIZES"]) == [64, 32]


def test_sm_variables_the_user_script_relies_on(tmp_path, channels, monkeypatch):
    result = run_probe(tmp_path, channels, monkeypatch)
    assert result.succeeded, result.failure_reason
    env = only_report(result)["env"]
    base = Path(env["SM_MODEL_DIR"]).parent
    assert env["SM_MODEL_DIR"] == str(base / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(base / "input" / "data" / "validation")
    assert env["SM_OUTPUT_DATA_DIR"] == str(base / "output" / "data")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert int(env["SM_NUM_CPUS"]) == os.cpu_count()
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["OMP_NUM_THREADS"] == str(os.cpu_count())
    assert "MASTER_ADDR" not in env  # one host: no rendezvous
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == "test-job"
    # the model the probe wrote was packed as the platform packs it
    with tarfile.open(result.model_artifact) as tar:
        assert tar.getnames() == ["probe.txt"]


@pytest.mark.parametrize("mode, reason", [("raise", "probe asked to fail"), ("exit", "ExitCode 3")])
def test_failing_user_script_writes_failure_file_and_exits_non_zero(tmp_path, channels, monkeypatch, mode, reason):
    result = run_probe(tmp_path, channels, monkeypatch, env={"PROBE_FAIL": mode})
    assert result.exit_code == 1
    assert reason in result.failure_reason
    assert result.model_artifact is None
    assert "ExecuteUserScriptError" in result.failure_reason


def test_missing_channel_source_is_a_clear_error_before_launch(tmp_path, channels):
    job = make_job(tmp_path, {**channels, "validation": str(tmp_path / "nope")})
    with pytest.raises(ChannelError, match="does not exist"):
        local_job.run_job(job, tmp_path / "job")


def test_train_py_names_the_missing_channel(tmp_path, channels, monkeypatch):
    result = run_probe(tmp_path, {"train": channels["train"]}, monkeypatch, source=ROOT / "user_src")
    assert result.exit_code == 1
    assert "no validation channel" in result.failure_reason


def test_malformed_hyperparameters_json_fails_the_job_with_its_reason(tmp_path, channels):
    job = make_job(tmp_path, channels)
    base = tmp_path / "algo-1"
    data = {name: Path(path) for name, path in channels.items()}
    local_job.prepare_base_dir(base, job, "algo-1", data)
    (base / "input" / "config" / "hyperparameters.json").write_text('{"learning-rate": 0.1,')
    done = subprocess.run(
        local_job.TRAIN_COMMAND, env=local_job.host_environment(base, job), capture_output=True, timeout=60
    )
    assert done.returncode == 1
    failure = (base / "output" / "failure").read_text()
    assert "read_hyperparameters" in failure
    assert "JSONDecodeError" in failure


def test_two_hosts_each_get_their_own_base_dir_and_rank(tmp_path, channels, monkeypatch):
    result = run_probe(tmp_path, channels, monkeypatch, instance_count=2)
    assert result.succeeded, result.failure_reason
    envs = {host: only_report(result, host)["env"] for host in ("algo-1", "algo-2")}
    for rank, (host, env) in enumerate(sorted(envs.items())):
        assert env["SM_CURRENT_HOST"] == host
        assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
        assert env["MASTER_ADDR"] == "algo-1"
        assert env["WORLD_SIZE"] == "2"
        assert env["RANK"] == str(rank)
    assert envs["algo-1"]["SM_MODEL_DIR"] != envs["algo-2"]["SM_MODEL_DIR"]


def test_max_runtime_stops_the_job(tmp_path, channels, monkeypatch):
    pid_file = tmp_path / "pids"
    result = run_probe(
        tmp_path,
        channels,
        monkeypatch,
        env={"PROBE_SLEEP": "60", "PROBE_PID_FILE": str(pid_file)},
        max_runtime_seconds=3,
    )
    assert result.exit_code == 124
    assert "MaxRuntimeExceeded" in result.failure_reason
    assert_all_gone(pid_file)


def assert_all_gone(pid_file: Path, within: float = 10) -> None:
    pids = [int(line) for line in pid_file.read_text().split()]
    assert pids
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert not alive, f"orphaned user processes: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status != "Z"


def start_train_local(tmp_path: Path, pid_file: Path, **env: str) -> subprocess.Popen:
    """``train-local`` on the probe, returning once the probe has started."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train-local", "--source-dir", str(PROBE_SRC), "--output-dir", tmp_path],
        cwd=ROOT,
        env={**os.environ, "PROBE_SLEEP": "60", "PROBE_PID_FILE": str(pid_file), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and cli.poll() is None, "probe never started"
        time.sleep(0.1)
    return cli


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_leaves_no_orphan_process(tmp_path, sig):
    pid_file = tmp_path / "pids"
    cli = start_train_local(tmp_path, pid_file)
    cli.send_signal(sig)
    _, stderr = cli.communicate(timeout=30)
    assert cli.returncode == 130
    assert "interrupted" in stderr
    assert_all_gone(pid_file)


def test_a_script_ignoring_sigterm_is_killed_even_on_a_second_ctrl_c(tmp_path):
    pid_file = tmp_path / "pids"
    cli = start_train_local(tmp_path, pid_file, PROBE_IGNORE_TERM="1")
    cli.send_signal(signal.SIGINT)
    time.sleep(1)  # inside the grace period: the probe ignored SIGTERM
    cli.send_signal(signal.SIGINT)
    cli.communicate(timeout=30)
    assert cli.returncode == 130
    assert_all_gone(pid_file)  # the toolkit's train process and the probe


def test_one_failing_host_stops_the_others(tmp_path, channels, monkeypatch):
    pid_file = tmp_path / "pids"
    env = {"PROBE_FAIL": "raise", "PROBE_FAIL_HOST": "algo-2", "PROBE_SLEEP": "60", "PROBE_PID_FILE": str(pid_file)}
    started = time.monotonic()
    result = run_probe(tmp_path, channels, monkeypatch, env=env, instance_count=2)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert result.failure_reason.startswith("algo-2: ") and "probe asked to fail" in result.failure_reason
    assert_all_gone(pid_file)


def test_train_local_cli_trains_the_real_model(tmp_path):
    done = run_cli("train-local", "--output-dir", str(tmp_path), "--job-name", "real", "--hp", "max-iter=20")
    assert done.returncode == 0, done.stderr + done.stdout
    job_dir = tmp_path / "real"
    with tarfile.open(job_dir / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["features.json", "model.joblib"]
        tar.extractall(tmp_path / "model", filter="data")
    with tarfile.open(job_dir / "output.tar.gz") as tar:
        assert tar.getnames() == ["metrics.json"]
    import joblib

    model = joblib.load(tmp_path / "model" / "model.joblib")
    assert model.max_iter == 20
    accuracy = float(next(line for line in done.stdout.splitlines() if "validation:accuracy =" in line).split("=")[1])
    assert 0.7 < accuracy <= 1.0


def test_the_readme_main_command_trains_and_prints_the_definition(tmp_path):
    """``python -m pipeline demo`` as the README runs it, from a project root: defaults only, no AWS."""
    shutil.copytree(ROOT / "user_src", tmp_path / "user_src", ignore=shutil.ignore_patterns("__pycache__"))
    done = run_cli("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (model,) = (tmp_path / "local-jobs").glob("*/model.tar.gz")
    assert f"model: {model}" in done.stdout
    assert "validation:accuracy = " in done.stdout
    definition = json.loads(done.stdout.split("--- pipeline definition (offline, example account values) ---", 1)[1])
    assert definition["Steps"][0]["Type"] == "Training"


def test_train_local_failure_shows_reason_and_exit_code(tmp_path):
    done = run_cli("train-local", "--output-dir", str(tmp_path), "--hp", "target=nope")
    assert done.returncode == 1
    assert "training failed (exit 1)" in done.stderr
    assert "target column 'nope' not in header" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hp", "max-iter=ten"], "hyperparameter max-iter expects int, got 'ten'"),
        (["--hp", "depth"], "--hp 'depth' is not NAME=VALUE"),
        (["--hp", "seed=1", "--hp", "seed=2"], "--hp seed is given twice"),
        (["--train", ""], "--channel train= is empty"),
        (["--channel", "train=s3://"], "names no bucket"),
        (["--content-type", "test=text/csv"], "--content-type test names no channel"),
        (["--metric", "loss=loss: [0-9.]+"], "--metric loss: the regex must have exactly one capture group"),
        (["--env", "1X=y"], "--env 1X: a variable name is letters"),
        (["--job-name", "../../x"], "job name '../../x': use letters, digits and hyphens"),
        (["--train", "/does/not/exist"], "channel source /does/not/exist does not exist"),
        (["--source-dir", "/does/not/exist"], "source dir /does/not/exist is not a folder"),
        (["--source-dir", "tests"], "source dir tests has no train.py"),
    ],
)
def test_train_local_bad_input_is_one_line(tmp_path, args, message):
    done = run_cli("train-local", "--output-dir", str(tmp_path), *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
