"""The SDK's own local mode as the oracle: the probe run through it, through ``train-local --container``
and through ``train-local`` sees the same argv, SM_* variables, config files and channel data, and
fails the same way. Every difference kept is listed here, with why (and in the README).

Slow (image, podman's Docker API service, three jobs per case), so marked ``container``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sdk_local
from support import PROBE_SRC, probe_reports, run_cli

from pipeline.local import container

pytestmark = pytest.mark.container

HOST = re.compile(r"algo-1-[a-z0-9]{5}")  # SDK local mode's host names carry a random suffix
# What each way gives the probe; the declared ones with the contract's defaults (train-local always
# passes those, as the pipeline does), one undeclared.
HYPERPARAMETERS: dict[str, Any] = {
    "max-iter": 7,
    "learning-rate": 0.25,
    "activation": "tanh",
    "use-bias": False,
    "layer-sizes": [8, 4],
    "optimizer": {"name": "adam", "beta": 0.9},
}
HP_FLAGS = [
    "--hp=max-iter=7",
    "--hp=learning-rate=0.25",
    "--hp=activation=tanh",
    "--hp=use-bias=false",
    "--hp=layer-sizes=[8, 4]",
    '--hp=optimizer={"name": "adam", "beta": 0.9}',
]
# SM_* variables that differ from SDK local mode on purpose: train-local gives what SageMaker gives.
SDK_DIFFERENCES = {
    "SM_CURRENT_INSTANCE_TYPE": "SDK local mode says 'local'; train-local the job's instance type",
    "SM_RESOURCE_CONFIG": "SDK local mode writes no instance groups; train-local writes SageMaker's",
    "SM_CURRENT_INSTANCE_GROUP_HOSTS": "derived from the instance groups above",
    "SM_INSTANCE_GROUPS": "derived from the instance groups above",
    "SM_INSTANCE_GROUPS_DICT": "derived from the instance groups above",
    "SM_INPUT_DATA_CONFIG": "train-local adds RecordWrapperType and S3DistributionType, as SageMaker writes them",
    "SM_MODULE_DIR": "SDK local mode mounts the source dir at /opt/ml/code; train-local hands the toolkit the archive",
    "SM_STUDIO_LOCAL_MODE": "train-local sets it: other hosts' names do not resolve on one machine",
    "SM_TRAINING_ENV": "holds all of the above",
}
# Only these may differ between train-local with and without a container (paths mapped to /opt/ml).
CONTAINER_DIFFERENCES = {"SM_MODULE_DIR": "the archive's path", "SM_TRAINING_ENV": "holds it"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sdk_local.write_sample_data(tmp_path_factory.mktemp("parity-data"))


def _one_probe(log: str) -> dict[str, Any]:
    reports = probe_reports(log)
    assert len(reports) == 1, log[-4000:]
    return reports[0]


def sdk_probe(image: str, docker_host: str, data: dict[str, Path], work: Path, environment: dict[str, str]):
    result = sdk_local.run_training(
        image,
        PROBE_SRC,
        hyperparameters=HYPERPARAMETERS,
        channels=data,
        environment=environment,
        content_type="text/csv",
        docker_host=docker_host,
        work_dir=work,
    )
    return result


def train_local(work: Path, data: dict[str, Path], environment: dict[str, str], *flags: str):
    args = ["train-local", "--source-dir", str(PROBE_SRC), "--output-dir", str(work), "--job-name", "parity"]
    args += [f"--channel={name}={path}" for name, path in data.items()] + HP_FLAGS
    args += [f"--env={name}={value}" for name, value in environment.items()]
    return run_cli(*args, *flags, timeout=600)


def _base(report: dict[str, Any]) -> str:
    return str(Path(report["env"]["SM_INPUT_DIR"]).parent)


def normalized(report: dict[str, Any]) -> dict[str, Any]:
    """The report with the paths that legitimately differ mapped to SageMaker's: the base dir to
    /opt/ml, SDK local mode's host name to algo-1."""
    base, host = _base(report), None
    found = HOST.search(report["env"].get("SM_CURRENT_HOST", ""))
    if found:
        host = found.group(0)
    text = json.dumps(report)
    if base != "/opt/ml":
        text = text.replace(base, "/opt/ml")
    if host:
        text = text.replace(host, "algo-1")
    return json.loads(text)


def _differing(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {k for k in a.keys() | b.keys() if k.startswith("SM_") and a.get(k) != b.get(k)}


@pytest.fixture(scope="module")
def seen(image, docker_host, data, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """What the probe saw, three ways, with its dump of config files, the base dir and the channels."""
    env = {"PROBE_DUMP": "1"}
    sdk = sdk_probe(image, docker_host, data, tmp_path_factory.mktemp("sdk"), env)
    assert sdk.succeeded, f"{sdk.error}\n{sdk.log[-4000:]}"
    contained = train_local(tmp_path_factory.mktemp("container"), data, env, "--image", image)
    assert contained.returncode == 0, contained.stderr[-4000:]
    local = train_local(tmp_path_factory.mktemp("local"), data, env)
    assert local.returncode == 0, local.stderr[-4000:]
    return {
        "sdk": normalized(_one_probe(sdk.container_log)),
        "container": normalized(_one_probe(contained.stdout)),
        "local": normalized(_one_probe(local.stdout)),
    }


def test_argv_and_hyperparameters_are_identical(seen):
    assert seen["sdk"]["argv"] == seen["container"]["argv"] == seen["local"]["argv"]
    for name in ("SM_HPS", "SM_USER_ARGS"):
        assert seen["sdk"]["env"][name] == seen["container"]["env"][name] == seen["local"]["env"][name]
    hp = {k: v for k, v in seen["sdk"]["env"].items() if k.startswith("SM_HP_")}
    assert hp == {k: v for k, v in seen["local"]["env"].items() if k.startswith("SM_HP_")}
    assert len(hp) == len(HYPERPARAMETERS)


def test_sm_variables_differ_from_sdk_local_mode_only_as_listed(seen):
    assert _differing(seen["sdk"]["env"], seen["container"]["env"]) == set(SDK_DIFFERENCES)
    assert _differing(seen["container"]["env"], seen["local"]["env"]) == set(CONTAINER_DIFFERENCES)
    assert seen["sdk"]["cwd"] == seen["container"]["cwd"] == seen["local"]["cwd"] == "/opt/ml/code"


def test_the_training_env_differs_only_in_the_listed_fields(seen):
    envs = {way: json.loads(report["env"]["SM_TRAINING_ENV"]) for way, report in seen.items()}
    # The SM_* differences above, and distribution_hosts (SDK local mode's resourceconfig.json has no
    # instance groups, so the toolkit counts every host as a distribution host; SageMaker's has them).
    listed = {"current_instance_type", "resource_config", "current_instance_group_hosts", "instance_groups"}
    listed |= {"instance_groups_dict", "input_data_config", "module_dir", "job_name", "distribution_hosts"}
    differing = {k for k in envs["sdk"].keys() | envs["container"].keys() if envs["sdk"][k] != envs["container"][k]}
    assert differing <= listed, {k: (envs["sdk"][k], envs["container"][k]) for k in differing - listed}
    assert {k for k in envs["container"] if envs["container"][k] != envs["local"][k]} == {"module_dir"}


def test_config_files_base_dir_and_channel_contents(seen):
    sdk, contained, local = seen["sdk"], seen["container"], seen["local"]
    assert sdk["data"] == contained["data"] == local["data"]  # the same bytes under the same names
    assert contained["config"] == local["config"] | {
        "hyperparameters.json": {
            **local["config"]["hyperparameters.json"],
            "sagemaker_submit_directory": json.dumps(container.CODE_ARCHIVE),
        }
    }
    sdk_hps = dict(sdk["config"]["hyperparameters.json"])
    # SDK local mode adds the job name (a pipeline's step leaves it out, for step caching) and
    # points at the mounted code. A declared str hyperparameter reaches hyperparameters.json as
    # the pipeline passes it (raw text), where the SDK's estimator JSON-quotes a literal; the
    # toolkit decodes both to the same value (SM_HPS above). Every other value is byte-identical.
    assert json.loads(sdk_hps.pop("sagemaker_job_name")).startswith("sdk-local-")
    assert sdk_hps.pop("sagemaker_submit_directory") == '"/opt/ml/code"'
    ours = dict(contained["config"]["hyperparameters.json"])
    ours.pop("sagemaker_submit_directory")
    assert sdk_hps == ours | {"activation": json.dumps(ours["activation"])}
    assert sdk["config"]["inputdataconfig.json"] == {
        c: {k: v for k, v in entry.items() if k in ("ContentType", "TrainingInputMode")}
        for c, entry in contained["config"]["inputdataconfig.json"].items()
    }
    # The base dir: the same layout; SDK local mode's extra entries are its own scratch mounts.
    assert set(contained["tree"]) == set(local["tree"])
    assert set(contained["tree"]) <= set(sdk["tree"])


def test_a_failing_script_fails_the_same_way(image, docker_host, data, tmp_path):
    env = {"PROBE_FAIL": "raise"}
    sdk = sdk_probe(image, docker_host, data, tmp_path / "sdk", env)
    assert list(sdk.exit_codes.values()) == [1]
    assert sdk.failure is not None
    for flags, name in (((), "local"), (("--image", image), "container")):
        done = train_local(tmp_path / name, data, env, *flags)
        assert done.returncode == 1
        reason = done.stderr.split("training failed (exit 1): ", 1)[1]
        # The failure file's text, as SageMaker reports it. Its ErrorMessage is the toolkit's echo of
        # the script's stderr, which it reads in chunks: line breaks inside it vary from run to run.
        for text in (reason, sdk.failure):
            assert text.startswith("ExecuteUserScriptError:\nExitCode 1\nErrorMessage "), text
            assert "probe asked to fail" in text
