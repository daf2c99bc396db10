"""The local training job, run through the real toolkit ``train`` command in the job environment."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import tarfile
from pathlib import Path

import boto3
import pytest
from local_support import RESUMABLE, assert_all_gone, process_runner, run_init, start_cli, start_probe_job, wait_for
from support import BUCKET, PROJECT_SRC, REGION, make_job, probe_reports, run_cli, source_dir

from custom_framework_training import archives
from pipeline.definition import sample_data
from pipeline.errors import ChannelError
from pipeline.local import failure, job_config
from pipeline.local import job as local_job


@pytest.fixture(scope="session")
def runner():
    return process_runner()


@pytest.fixture
def channels(tmp_path: Path) -> dict[str, str]:
    return {name: str(path) for name, path in sample_data.write(tmp_path / "data").items()}


def run_probe(tmp_path, channels, runner, env=None, **overrides) -> local_job.JobResult:
    job = make_job(tmp_path, channels, environment=env or {}, **overrides)
    return local_job.run_job(job, tmp_path / "job", runner, sink=io.StringIO(), report=lambda line: None)


def only_report(result: local_job.JobResult, host: str = "algo-1") -> dict:
    reports = probe_reports(result.logs[host].read_text())
    assert len(reports) == 1, result.logs[host].read_text()
    return reports[0]


def test_hyperparameters_round_trip_types_lists_and_hyphens(tmp_path, channels, runner):
    values = {
        "learning-rate": 0.05,
        "max-iter": 7,
        "layer-sizes": [64, 32],
        "activation": "relu",
        "use-bias": True,
        "nested_cfg": {"a": 1},
    }
    result = run_probe(tmp_path, channels, runner, hyperparameters=job_config.encode_hyperparameters(values))
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


def test_sm_variables_the_user_script_relies_on(tmp_path, channels, runner):
    result = run_probe(tmp_path, channels, runner)
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
def test_failing_user_script_writes_failure_file_and_exits_non_zero(tmp_path, channels, runner, mode, reason):
    result = run_probe(tmp_path, channels, runner, env={"PROBE_FAIL": mode})
    assert result.exit_code == 1
    assert reason in result.failure_reason
    assert result.model_artifact is None
    assert result.failure_reason.startswith("ExecuteUserScriptError")  # the failure file's text, no host prefix


def test_missing_channel_source_is_a_clear_error_before_launch(tmp_path, channels, runner):
    job = make_job(tmp_path, {**channels, "validation": str(tmp_path / "nope")})
    with pytest.raises(ChannelError, match="does not exist"):
        local_job.run_job(job, tmp_path / "job", runner)


def test_train_py_names_the_missing_channel(tmp_path, channels, runner):
    result = run_probe(tmp_path, {"train": channels["train"]}, runner, source=PROJECT_SRC)
    assert result.exit_code == 1
    assert "no validation channel" in result.failure_reason


def test_malformed_hyperparameters_json_fails_the_job_with_its_reason(tmp_path, channels, runner):
    job = make_job(tmp_path, channels)
    base = tmp_path / "algo-1"
    local_job.prepare_base_dir(base, job, "algo-1", {name: Path(path) for name, path in channels.items()})
    (base / "input" / "config" / "hyperparameters.json").write_text('{"learning-rate": 0.1,')
    host = runner.prepare(job, tmp_path, lambda line: None)("algo-1", base)
    done = run_init(host.init_argv(), env=dict(host.env), cwd=base, timeout=60)
    assert done.returncode == 1
    failure = (base / "output" / "failure").read_text()
    assert "read_hyperparameters" in failure
    assert "JSONDecodeError" in failure


def test_two_hosts_each_get_their_own_base_dir_and_rank(tmp_path, channels, runner):
    result = run_probe(tmp_path, channels, runner, instance_count=2)
    assert result.succeeded, result.failure_reason
    envs = {host: only_report(result, host)["env"] for host in ("algo-1", "algo-2")}
    for rank, (host, env) in enumerate(sorted(envs.items())):
        assert env["SM_CURRENT_HOST"] == host
        assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
        assert env["MASTER_ADDR"] == "algo-1"
        assert env["WORLD_SIZE"] == "2"
        assert env["RANK"] == str(rank)
    # Two hosts share this machine: each gets half its CPUs for the numeric thread pools, not all of them.
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {env["OMP_NUM_THREADS"] for env in envs.values()} == {share}
    # Each host has its own base dir: seen at /opt/ml as on SageMaker, or moved apart without namespaces.
    if getattr(runner, "opt_ml", False):
        assert envs["algo-1"]["SM_MODEL_DIR"] == envs["algo-2"]["SM_MODEL_DIR"] == "/opt/ml/model"
    else:
        assert envs["algo-1"]["SM_MODEL_DIR"] != envs["algo-2"]["SM_MODEL_DIR"]


def test_max_runtime_sends_sigterm_to_the_script_then_stops_the_job(tmp_path, channels, runner):
    pid_file = tmp_path / "pids"
    env = {"PROBE_SLEEP": "60", "PROBE_PID_FILE": str(pid_file), "PROBE_ON_TERM": "7"}
    result = run_probe(tmp_path, channels, runner, env=env, max_runtime_seconds=3)
    assert result.exit_code == 124
    assert result.failure_reason.startswith("MaxRuntimeExceeded")
    log = result.logs["algo-1"].read_text()
    assert "PROBE got SIGTERM" in log  # the script's handler ran: the toolkit was not killed first
    assert "Received 7 from exiting process" in log  # and the toolkit lived to see how it ended
    assert_all_gone(pid_file)


def test_one_failing_host_stops_the_others(tmp_path, channels, runner):
    pid_file = tmp_path / "pids"
    env = {"PROBE_FAIL": "raise", "PROBE_FAIL_HOST": "algo-2", "PROBE_SLEEP": "60", "PROBE_PID_FILE": str(pid_file)}
    result = run_probe(tmp_path, channels, runner, env=env, instance_count=2)
    assert result.exit_code == 1
    assert result.failure_reason.startswith("algo-2: ") and "probe asked to fail" in result.failure_reason
    assert_all_gone(pid_file)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_reaches_the_script_and_leaves_no_process(tmp_path, sig):
    pid_file = tmp_path / "pids"
    cli = start_probe_job(tmp_path, pid_file, "--env", "PROBE_ON_TERM=0", "--env", "PROBE_DAEMON=1")
    cli.send_signal(sig)
    stdout, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130
    assert "training stopped (exit 130): Stopped: interrupted" in stderr
    assert "PROBE got SIGTERM" in stdout
    assert_all_gone(pid_file)  # the script, the toolkit, and a daemon in its own session


def test_a_script_ignoring_sigterm_is_killed_on_a_second_ctrl_c(tmp_path):
    pid_file, said = tmp_path / "pids", tmp_path / "stderr"
    cli = start_probe_job(tmp_path, pid_file, "--env", "PROBE_IGNORE_TERM=1", stderr=said)
    cli.send_signal(signal.SIGINT)
    wait_for(lambda: "SIGTERM sent" in said.read_text(), "the grace period began", cli)  # 120 s by default
    cli.send_signal(signal.SIGINT)
    cli.communicate(timeout=60)
    assert cli.returncode == 130
    assert "the grace period ran out: SIGKILL" in said.read_text()
    assert_all_gone(pid_file)  # the toolkit's train process and the probe


def test_a_script_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    pid_file = tmp_path / "pids"
    cli = start_probe_job(tmp_path, pid_file, "--env", "PROBE_IGNORE_TERM=1", "--stop-grace", "1")
    cli.send_signal(signal.SIGTERM)
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130
    assert "up to 1 s before SIGKILL" in stderr
    assert "the grace period ran out: SIGKILL" in stderr
    assert_all_gone(pid_file)


def test_a_script_that_checkpoints_on_sigterm_resumes_on_the_next_run(tmp_path):
    source = source_dir(tmp_path / "resumable", RESUMABLE)
    store = tmp_path / "store"
    args = ["train-local", "--source-dir", str(source), "--output-dir", str(tmp_path / "jobs"), "--train", str(source)]
    args += ["--checkpoints", str(store)]
    first = start_cli(*args, "--job-name", "first")
    log = tmp_path / "jobs" / "first" / "algo-1.log"
    wait_for(lambda: log.exists() and "STEP 3" in log.read_text(), "a few steps", first)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    saved = json.loads((store / "state.json").read_text())["step"]
    assert f"SAVED at {saved}" in stdout and saved >= 3

    second = start_cli(*args, "--job-name", "second", "--max-runtime", "2")
    stdout, _ = second.communicate(timeout=120)
    assert f"RESUMED at {saved}" in stdout


def test_train_local_cli_trains_the_real_model(tmp_path):
    done = run_cli("train-local", "--output-dir", str(tmp_path), "--job-name", "real", "--hp", "max-iter=20")
    assert done.returncode == 0, done.stderr + done.stdout
    job_dir = tmp_path / "real"
    with tarfile.open(job_dir / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["features.json", "model.joblib"]
    archives.extract(job_dir / "model.tar.gz", tmp_path / "model")  # Pythons before 3.11.4 have no filter=
    with tarfile.open(job_dir / "output.tar.gz") as tar:
        assert tar.getnames() == ["metrics.json"]
    import joblib

    model = joblib.load(tmp_path / "model" / "model.joblib")
    assert model.max_iter == 20
    accuracy = float(next(line for line in done.stdout.splitlines() if "validation:accuracy =" in line).split("=")[1])
    assert 0.7 < accuracy <= 1.0


def test_the_readme_main_command_runs_the_whole_pipeline_then_predicts(tmp_path):
    """``python -m pipeline demo`` as the README runs it, from a project root: defaults only, no AWS
    account (moto stands in), no Docker: train, evaluate, gate, register, then a served prediction."""
    shutil.copytree(PROJECT_SRC, tmp_path / "user_src", ignore=shutil.ignore_patterns("__pycache__"))
    done = run_cli("demo", cwd=tmp_path, env={"AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "created pipeline demo-pipeline",
        "step Train: Succeeded",
        "step Evaluate: Succeeded",
        "step Gate: Succeeded: condition met: running Register-RegisterModel",
        "step Register-RegisterModel: Succeeded: registered arn:aws:sagemaker:",
    ):
        assert line in done.stdout, line
    (model,) = (tmp_path / "local-jobs").glob("*-Train/model.tar.gz")
    assert f"--- serve {model.relative_to(tmp_path)} and predict one row" in done.stdout
    assert "validation:accuracy = " in done.stdout
    (prediction,) = [line for line in done.stdout.splitlines() if line.startswith("prediction: ")]
    assert prediction in ("prediction: 0", "prediction: 1")
    assert "werkzeug" not in done.stderr  # the stand-in's request log stays out


def test_train_local_failure_shows_reason_and_exit_code(tmp_path):
    done = run_cli("train-local", "--output-dir", str(tmp_path), "--hp", "target=nope")
    assert done.returncode == 1
    assert "training failed (exit 1)" in done.stderr
    assert "target column 'nope' not in header" in done.stderr


TRACEBACK = """\
Traceback (most recent call last):
  File "/opt/ml/code/train.py", line 3, in <module>
    import missing
ModuleNotFoundError: No module named 'missing'
"""


@pytest.mark.parametrize(
    "failure_file, log, expected",
    [
        (  # the failure file says it all: its text, unchanged
            'ExecuteUserScriptError:\nErrorMessage "x"\nFile "/opt/ml/code/train.py", line 3',
            TRACEBACK,
            'ExecuteUserScriptError:\nErrorMessage "x"\nFile "/opt/ml/code/train.py", line 3\n'
            "(from the log: ModuleNotFoundError: No module named 'missing')",
        ),
        (  # the toolkit missed the error line (read across two chunks): the log gives it and where
            'ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""',
            TRACEBACK,
            'ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""\n(from the log: ModuleNotFoundError: No module'
            " named 'missing'; File \"/opt/ml/code/train.py\", line 3)",
        ),
        (  # no failure file (killed outright)
            None,
            TRACEBACK,
            "ModuleNotFoundError: No module named 'missing'; File \"/opt/ml/code/train.py\", line 3"
            " (exit 1; no output/failure file was written)",
        ),
        (  # the toolkit echoed the unbuffered writes of the error line as lines of their own
            "",
            "Traceback (most recent call last):\nValueError\n:\nthe real reason\n",
            "ValueError: the real reason (exit 1; the output/failure file is empty)",
        ),
        (  # or split it into the name and the rest
            "",
            "Traceback (most recent call last):\nValueError\n: the real reason\n",
            "ValueError: the real reason (exit 1; the output/failure file is empty)",
        ),
        (  # an empty one and a log without a traceback: its last lines
            "",
            "starting\n\nstep 1\n",
            "exit 1; the output/failure file is empty; the log ends: starting | step 1",
        ),
    ],
)
def test_the_failure_reason_is_the_failure_file_completed_from_the_log(failure_file, log, expected):
    assert failure.reason(failure_file, log, 1) == expected


EMPTY_FAILURE_FILE = """\
import os
open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").close()
raise ValueError("the real reason")
"""


def test_an_empty_failure_file_still_gives_a_reason(tmp_path, channels, runner):
    source = source_dir(tmp_path / "src", EMPTY_FAILURE_FILE)
    result = run_probe(tmp_path, channels, runner, source=source)
    assert result.exit_code == 1
    assert result.failure_reason.startswith("ValueError: the real reason; File ")
    assert 'train.py", line 3' in result.failure_reason


def test_a_syntax_error_names_its_file_and_line(tmp_path, channels, runner):
    """The packer refuses syntax errors, but an archive made elsewhere (a deployed one) may have one."""
    archive = tmp_path / "broken.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in {"train.py": "import helper\n", "helper.py": "x = (\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    job = make_job(tmp_path, channels)
    hyperparameters = {**job.hyperparameters, job_config.SUBMIT_DIRECTORY: json.dumps(str(archive))}
    job = dataclasses.replace(job, hyperparameters=hyperparameters)
    result = local_job.run_job(job, tmp_path / "job", runner, sink=io.StringIO(), report=lambda line: None)
    assert result.exit_code == 1
    assert "SyntaxError" in result.failure_reason
    assert 'helper.py", line 1' in result.failure_reason


CHECKPOINT_THEN_FAIL = """\
import os
folder = os.path.join(os.environ["SAGEMAKER_BASE_DIR"], "checkpoints")
print("RESTORED " + ",".join(sorted(os.listdir(folder))), flush=True)
with open(os.path.join(folder, "epoch-2.pt"), "w") as f:
    f.write("weights")
raise RuntimeError("diverged")
"""


def test_checkpoints_are_restored_and_copied_back_even_when_the_job_fails(tmp_path, channels, runner):
    source = source_dir(tmp_path / "src", CHECKPOINT_THEN_FAIL)
    store = tmp_path / "store"
    (store / "nested").mkdir(parents=True)
    (store / "epoch-1.pt").write_text("old")
    (store / "nested" / "state.json").write_text("{}")
    result = run_probe(tmp_path, channels, runner, source=source, checkpoint_uri=str(store))
    assert result.exit_code == 1 and "diverged" in result.failure_reason
    assert "RESTORED epoch-1.pt,nested" in result.logs["algo-1"].read_text()
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()) == [
        "epoch-1.pt",
        "epoch-2.pt",
        "nested/state.json",
    ]
    assert (store / "epoch-2.pt").read_text() == "weights"


def test_checkpoints_in_s3_are_restored_and_uploaded(tmp_path, channels, runner, aws_env):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="ckpt/epoch-1.pt", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="ckpt-other/unrelated.pt", Body=b"not ours")
    source = source_dir(tmp_path / "src", CHECKPOINT_THEN_FAIL)
    result = run_probe(tmp_path, channels, runner, source=source, checkpoint_uri=f"s3://{BUCKET}/ckpt")
    assert "RESTORED epoch-1.pt" in result.logs["algo-1"].read_text()  # not the other prefix's file
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="ckpt/")["Contents"])
    assert keys == ["ckpt/epoch-1.pt", "ckpt/epoch-2.pt"]
