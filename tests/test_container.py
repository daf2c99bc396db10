"""The framework image, built with framework_image/build-local.sh and run as SageMaker runs it:
``<image> train`` with a prepared ``/opt/ml`` mounted and no network.

Slow (the first build makes a base image and installs wheels), so marked ``container``:
``pytest -m container`` runs it.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pipeline.definition import sample_data, sourcedir
from pipeline.local import job as local_job
from pipeline.local import job_config

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "framework_image" / "build-local.sh"
# A fresh build took about 75 s here; generous, since CI may first apt-get install podman.
BUILD_TIMEOUT = 1800
RUN_TIMEOUT = 300
IMAGE_SIZE_LIMIT = 600_000_000
METRIC_LINE = re.compile(r"validation:accuracy=(\d+\.\d+);")


def _engine() -> str | None:
    """The engine build-local.sh picks: docker if a Docker engine answers, else podman."""
    if os.environ.get("ENGINE"):
        return os.environ["ENGINE"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return "docker"
    # build-local.sh installs podman where it is missing; only CI is sure to allow that.
    return "podman" if shutil.which("podman") or os.environ.get("CI") else None


def _hard_limit(which: int, cap: int) -> int:
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def _run_flags(engine: str) -> list[str]:
    """podman here needs runc (crun refuses the hybrid cgroups) and ulimits within the host's
    hard limits (its default nofile is above them and runc then fails to start the container)."""
    if engine != "podman":
        return []
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 1_048_576)
    nproc = _hard_limit(resource.RLIMIT_NPROC, 32768)
    return ["--runtime", "runc", "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@pytest.fixture(scope="module")
def engine() -> str:
    found = _engine()
    if found is None:
        pytest.skip("neither podman nor a Docker engine here (CI installs podman)")
    return found


@pytest.fixture(scope="module")
def image(engine: str) -> str:
    """Built once per module; a failing build fails the tests instead of skipping them.

    ``CONTAINER_IMAGE`` names an image built elsewhere instead, such as the one the
    deploy workflow has just pushed: it is trained in before the pipeline may use it.
    """
    if os.environ.get("CONTAINER_IMAGE"):
        return os.environ["CONTAINER_IMAGE"]
    build = subprocess.run(
        [str(BUILD_SCRIPT)],
        env={**os.environ, "ENGINE": engine},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"build-local.sh exited {build.returncode}:\n{build.stderr[-4000:]}", pytrace=False)
    return build.stdout.strip().splitlines()[-1]


def _container(engine: str, image: str, *command: str, volume: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in a fresh container; on a timeout the container is removed, not left running."""
    name = f"test-container-{uuid.uuid4().hex[:12]}"
    mount = ["--volume", f"{volume}:/opt/ml"] if volume else []
    args = [engine, "run", "--rm", "--name", name, "--network", "none", *_run_flags(engine), *mount]
    # SM_STUDIO_LOCAL_MODE: algo-1 resolves only on SageMaker's network; this skips the toolkit's wait for it.
    args += ["--env", "SM_STUDIO_LOCAL_MODE=true", "--env", "TRAINING_JOB_NAME=container-test", image, *command]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        subprocess.run([engine, "rm", "--force", name], capture_output=True, timeout=60, check=False)
        raise


def _base_dir(tmp_path: Path, source: Path) -> Path:
    """``/opt/ml`` as SageMaker lays it out, with the code as a tarball the toolkit unpacks itself."""
    base = tmp_path / "opt-ml"
    data = sample_data.write(tmp_path / "data")
    tarball = "/opt/ml/input/sourcedir.tar.gz"  # as seen inside the container
    hyperparameters = job_config.hyperparameters(
        {}, program="train.py", submit_directory=tarball, region="us-east-1", job_name="container-test"
    )
    job = local_job.LocalJob(
        name="container-test", hyperparameters=hyperparameters, channels={c: str(p) for c, p in data.items()}
    )
    local_job.prepare_base_dir(base, job, "algo-1", data)
    (base / "input" / "sourcedir.tar.gz").write_bytes(sourcedir.pack(source))
    return base


def test_image_is_small_has_no_compiler_and_names_the_framework(engine, image):
    inspect = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(inspect.stdout.strip()) < IMAGE_SIZE_LIMIT
    probe = _container(
        engine,
        image,
        "python",
        "-c",
        "import os, shutil; print(os.environ['SAGEMAKER_TRAINING_MODULE'], shutil.which('gcc'), shutil.which('cc'))",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["custom_framework_training.training:main", "None", "None"]


def test_trains_the_user_code(engine, image, tmp_path):
    base = _base_dir(tmp_path, ROOT / "user_src")
    result = _container(engine, image, "train", volume=base)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert (base / "model" / "model.joblib").is_file()
    match = METRIC_LINE.search(log)
    assert match, log[-4000:]
    assert 0.5 < float(match.group(1)) <= 1.0


def test_failing_user_code_exits_non_zero_with_a_reason(engine, image, tmp_path):
    source = tmp_path / "failing_src"
    source.mkdir()
    (source / "train.py").write_text('raise ValueError("deliberate failure: no usable rows")\n')
    base = _base_dir(tmp_path, source)
    result = _container(engine, image, "train", volume=base)
    assert result.returncode != 0
    failure = base / "output" / "failure"
    assert failure.is_file(), (result.stdout + result.stderr)[-4000:]
    assert "deliberate failure: no usable rows" in failure.read_text()
