"""The SageMaker Python SDK's own local mode running the framework image: the oracle for ``train-local``.

What the probe sees here is what the SDK gives a training container, asserted field by field so
``train-local`` can be compared with it. The engine is podman's Docker API service (or a Docker
engine, with ``ENGINE=docker``); see ``sdk_local.py``. Slow, so marked ``container``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import sdk_local
from support import PROBE_SRC, probe_reports

pytestmark = pytest.mark.container

# One of each JSON type, and names with dashes, as user_src/train.py's flags have.
HYPERPARAMETERS: dict[str, Any] = {
    "max-iter": 7,
    "learning-rate": 0.25,
    "target": "label",
    "early-stopping": True,
    "layers": [64, 32],
    "optimizer": {"name": "adam", "beta": 0.9},
}
# The toolkit's argv: keys sorted, bool and list through str(), a dict as sorted k=v pairs.
EXPECTED_ARGV = [
    "--early-stopping", "True",
    "--layers", "[64, 32]",
    "--learning-rate", "0.25",
    "--max-iter", "7",
    "--optimizer", "beta=0.9,name=adam",
    "--target", "label",
]  # fmt: skip
CONTENT_TYPE = "text/csv"  # as the pipeline's TrainingInputs declare
HOST = re.compile(r"algo-1-[a-z0-9]{5}")  # local mode's host names carry a random suffix

# The only file of a source dir: prints what the probe does not (config files, all variables, the tree).
DUMP_SCRIPT = """\
import json, os, sys
config = "/opt/ml/input/config"
files = {name: json.load(open(os.path.join(config, name))) for name in sorted(os.listdir(config))}
tree = sorted(os.path.join(d, n) for d, dirs, names in os.walk("/opt/ml") for n in dirs + names)
report = {"files": files, "environ": dict(os.environ), "tree": tree, "argv": sys.argv[1:], "uid": os.getuid()}
print("CONFIG " + json.dumps(report), flush=True)
"""


class _NetworkAudit:
    """Records every IP connection and name lookup this process makes while ``calls`` is a list.

    An audit hook cannot be removed, so one is installed per process and switched on and off.
    """

    calls: list[tuple[str, Any]] | None = None
    installed = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.calls is None:
            return
        if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
            cls.calls.append((event, args[1]))
        elif event == "socket.getaddrinfo":
            cls.calls.append((event, args[:2]))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sdk_local.write_sample_data(tmp_path_factory.mktemp("sdk-local-data"))


@pytest.fixture(scope="module")
def probe_run(
    image: str, docker_host: str, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[sdk_local.TrainingResult, list[tuple[str, Any]]]:
    """One successful probe job, shared by the assertions below, with the network calls it made."""
    if not _NetworkAudit.installed:
        sys.addaudithook(_NetworkAudit.hook)
        _NetworkAudit.installed = True
    _NetworkAudit.calls = []
    try:
        result = sdk_local.run_training(
            image,
            PROBE_SRC,
            hyperparameters=HYPERPARAMETERS,
            channels=data,
            content_type=CONTENT_TYPE,
            docker_host=docker_host,
            work_dir=tmp_path_factory.mktemp("sdk-local-probe"),
        )
        calls = _NetworkAudit.calls
    finally:
        _NetworkAudit.calls = None
    assert result.succeeded, f"{result.error}\n{result.log[-4000:]}"
    return result, calls


def _only_host(result: sdk_local.TrainingResult) -> str:
    (host,) = result.exit_codes
    assert HOST.fullmatch(host), host
    return host


def _probe(result: sdk_local.TrainingResult) -> dict[str, Any]:
    reports = probe_reports(result.container_log)
    assert len(reports) == 1, result.log[-4000:]
    return reports[0]


def _members(archive: Path | None) -> set[str]:
    assert archive is not None and archive.is_file()
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


def test_probe_argv_and_hyperparameters(probe_run):
    result, _ = probe_run
    probe = _probe(result)
    env = probe["env"]
    assert probe["argv"] == EXPECTED_ARGV
    assert json.loads(env["SM_HPS"]) == HYPERPARAMETERS
    assert json.loads(env["SM_USER_ARGS"]) == EXPECTED_ARGV
    # One SM_HP_ variable per hyperparameter: upper case, dashes to underscores, compact JSON.
    hp_variables = {k: v for k, v in env.items() if k.startswith("SM_HP_")}
    assert hp_variables == {
        "SM_HP_MAX-ITER": "7",
        "SM_HP_LEARNING-RATE": "0.25",
        "SM_HP_TARGET": "label",
        "SM_HP_EARLY-STOPPING": "true",
        "SM_HP_LAYERS": "[64,32]",
        "SM_HP_OPTIMIZER": '{"beta":0.9,"name":"adam"}',
    }, hp_variables


def test_probe_hosts_channels_and_paths(probe_run):
    result, _ = probe_run
    host = _only_host(result)
    probe = _probe(result)
    env = probe["env"]
    assert env["SM_CURRENT_HOST"] == host
    assert json.loads(env["SM_HOSTS"]) == [host]
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "local"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CHANNEL_VALIDATION"] == "/opt/ml/input/data/validation"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == {
        channel: {"ContentType": CONTENT_TYPE, "TrainingInputMode": "File"} for channel in ("train", "validation")
    }
    paths = {
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_INPUT_DIR": "/opt/ml/input",
        "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
        "SM_OUTPUT_DIR": "/opt/ml/output",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
        "SM_OUTPUT_INTERMEDIATE_DIR": "/opt/ml/output/intermediate",
        "SM_MODULE_DIR": "/opt/ml/code",
    }
    assert {name: env.get(name) for name in paths} == paths
    assert probe["cwd"] == "/opt/ml/code"
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == result.job_name
    assert training_env["master_hostname"] == host
    assert training_env["is_master"] is True
    # Local mode is not Studio: the toolkit resolved the host name on the compose network.
    assert "SM_STUDIO_LOCAL_MODE" not in env


def test_container_environment_and_artifacts(probe_run):
    result, _ = probe_run
    host = _only_host(result)
    environment = result.container_environment[host]
    assert environment["TRAINING_JOB_NAME"] == result.job_name
    assert environment["AWS_REGION"] == sdk_local.REGION
    # Local mode hands the session's credentials to the container, whatever they are.
    assert environment["AWS_ACCESS_KEY_ID"] == "sdk-local"
    assert result.job_name.startswith("sdk-local-")
    assert result.sdk_status == "Completed"
    assert json.loads(result.hyperparameters["sagemaker_program"]) == "train.py"
    assert json.loads(result.hyperparameters["sagemaker_submit_directory"]) == f"file://{PROBE_SRC}"
    # file:// output: the archives land at output_path itself, with no <job>/output/ prefix.
    assert result.model_artifact is not None and result.model_artifact.parent.name == "output"
    assert "probe.txt" in _members(result.model_artifact)
    assert {"success", "data"} <= _members(result.output_artifact)
    assert result.failure is None


def test_local_mode_makes_no_network_call(probe_run):
    _, calls = probe_run
    assert calls == []


def test_input_config_files(image, docker_host, data, tmp_path):
    source = tmp_path / "dump_src"
    source.mkdir()
    (source / "dump.py").write_text(DUMP_SCRIPT)
    result = sdk_local.run_training(
        image,
        source,
        hyperparameters=HYPERPARAMETERS,
        channels=data,
        entry_point="dump.py",
        content_type=CONTENT_TYPE,
        docker_host=docker_host,
        work_dir=tmp_path / "job",
    )
    assert result.succeeded, f"{result.error}\n{result.log[-4000:]}"
    host = _only_host(result)
    reports = [
        json.loads(line.split("CONFIG ", 1)[1]) for line in result.container_log.splitlines() if "CONFIG {" in line
    ]
    assert len(reports) == 1, result.log[-4000:]
    files = reports[0]["files"]
    assert set(files) == {"hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"}
    # Every value a JSON document in a string; the code directory is the mounted source_dir.
    assert files["hyperparameters.json"] == {
        **{name: json.dumps(value) for name, value in HYPERPARAMETERS.items()},
        "sagemaker_program": '"dump.py"',
        "sagemaker_submit_directory": '"/opt/ml/code"',
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(result.job_name),
        "sagemaker_region": json.dumps(sdk_local.REGION),
    }
    assert files["resourceconfig.json"] == {
        "current_host": host,
        "hosts": [host],
        "network_interface_name": "eth0",
        "current_instance_type": "local",
    }
    assert files["inputdataconfig.json"] == {
        channel: {"TrainingInputMode": "File", "ContentType": CONTENT_TYPE} for channel in ("train", "validation")
    }
    assert "/opt/ml/code/dump.py" in reports[0]["tree"]
    assert "/opt/ml/input/data/train/train.csv" in reports[0]["tree"]


def test_failing_probe_fails_the_job(image, docker_host, data, tmp_path):
    result = sdk_local.run_training(
        image,
        PROBE_SRC,
        hyperparameters={"max-iter": 1},
        channels=data,
        environment={"PROBE_FAIL": "raise"},
        docker_host=docker_host,
        work_dir=tmp_path,
    )
    host = _only_host(result)
    assert not result.succeeded
    assert result.exit_codes == {host: 1}
    assert result.failure is not None and "probe asked to fail" in result.failure
    assert result.failure.startswith("ExecuteUserScriptError")
    assert "probe asked to fail" in result.container_log
    # The SDK still packs the artifacts of a failed job; output.tar.gz holds the reason.
    assert "failure" in _members(result.output_artifact)
    if result.error is not None:
        assert "Process exited with code: 1" in str(result.error)
        assert result.sdk_status is None
    else:
        # docker-compose v1 exits 0 when the container's "die" event beats the end of its log
        # stream (often, under podman); only then may local mode miss a failure.
        assert sdk_local.compose_version().startswith("1."), result.log[-4000:]
        assert result.sdk_status == "Completed"


def test_two_hosts(image, docker_host, data, tmp_path):
    # Local mode stops every container when the first one exits (compose --abort-on-container-exit):
    # a master still running then fails. The worker outlasts the master here (and is stopped, with a
    # status that depends on the engine), so the outcome does not depend on which script ends first.
    result = sdk_local.run_training(
        image,
        PROBE_SRC,
        hyperparameters={"max-iter": 1},
        channels=data,
        instance_count=2,
        environment={"PROBE_WORKER_SLEEP": "30"},
        docker_host=docker_host,
        work_dir=tmp_path,
    )
    hosts = sorted(result.exit_codes)
    assert result.error is None and hosts and result.exit_codes[hosts[0]] == 0, f"{result.error}\n{result.log[-4000:]}"
    # One random suffix per job, shared by its hosts; each host resolves the others by name.
    assert len(hosts) == 2 and re.fullmatch(r"algo-1-(\w{5})", hosts[0]) and hosts[1] == "algo-2-" + hosts[0][-5:]
    seen = {}
    for host, lines in sdk_local.container_lines(result.log).items():
        (probe,) = probe_reports("\n".join(lines))
        seen[host] = probe["env"]
    assert sorted(seen) == hosts
    for host, env in seen.items():
        assert env["SM_CURRENT_HOST"] == host
        assert json.loads(env["SM_HOSTS"]) == hosts
        training_env = json.loads(env["SM_TRAINING_ENV"])
        assert training_env["master_hostname"] == hosts[0]
        assert training_env["is_master"] is (host == hosts[0])
    # Both hosts mount the same model dir: model.tar.gz has one probe.txt, the last one written.
    assert _members(result.model_artifact) == {"probe.txt"}


def _pipeline(image: str, data: dict[str, Path], output: Path, environment: dict[str, str] | None = None) -> Any:
    return sdk_local.training_pipeline(
        image,
        PROBE_SRC,
        hyperparameters=HYPERPARAMETERS,
        channels=data,
        output_dir=output,
        environment=environment,
        content_type=CONTENT_TYPE,
    )


def test_one_step_pipeline_succeeds(image, docker_host, data, tmp_path):
    result = sdk_local.run_pipeline(
        _pipeline(image, data, tmp_path / "output"), images=(image,), docker_host=docker_host, work_dir=tmp_path
    )
    assert result.error is None, result.error
    assert result.status == "Succeeded", result.failure_reason
    assert result.step_statuses == {"Train": "Succeeded"}
    assert list(result.exit_codes.values()) == [0]
    (host,) = result.exit_codes
    (probe,) = probe_reports("\n".join(sdk_local.container_lines(result.log)[host]))
    assert json.loads(probe["env"]["SM_HPS"]) == HYPERPARAMETERS
    assert probe["argv"] == EXPECTED_ARGV
    assert "probe.txt" in _members(tmp_path / "output" / "model.tar.gz")


def test_one_step_pipeline_with_a_failing_step(image, docker_host, data, tmp_path):
    result = sdk_local.run_pipeline(
        _pipeline(image, data, tmp_path / "output", {"PROBE_FAIL": "raise"}),
        images=(image,),
        docker_host=docker_host,
        work_dir=tmp_path,
    )
    assert result.error is None, result.error
    assert list(result.exit_codes.values()) == [1]
    if result.step_statuses == {"Train": "Failed"}:
        assert result.status == "Failed"
        assert "Process exited with code: 1" in result.steps["Train"]["FailureReason"]
    else:
        # As for a single job: with docker-compose v1 the step can pass although its container failed.
        assert sdk_local.compose_version().startswith("1."), result.log[-4000:]
        assert result.step_statuses == {"Train": "Succeeded"}
