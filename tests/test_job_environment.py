"""The job environment: the image's package set and variables, never the developer's venv or shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import uuid
from pathlib import Path

import pytest
from local_support import process_runner
from support import ROOT, run_cli, source_dir

from pipeline.errors import UserError
from pipeline.local import host_env, runtime

IMAGE = ROOT / "framework_image"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.MULTILINE)


@pytest.fixture(scope="session")
def environment() -> runtime.JobEnvironment:
    return process_runner().environment


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def script(tmp_path: Path, body: str, requirements: str | None = None) -> Path:
    source = source_dir(tmp_path / "src", textwrap.dedent(body))
    if requirements is not None:
        (source / "requirements.txt").write_text(requirements)
    return source


def train(tmp_path: Path, source: Path, *flags: str, env: dict[str, str] | None = None):
    return run_cli(
        "train-local",
        "--source-dir",
        str(source),
        "--output-dir",
        str(tmp_path / "jobs"),
        "--train",
        str(source),
        *flags,
        env=env,
    )


def reported(stdout: str, tag: str):
    (line,) = [line for line in stdout.splitlines() if line.startswith(f"{tag} ")]
    return json.loads(line.split(" ", 1)[1])


LIST_PACKAGES = """\
import importlib.metadata, json, sys
found = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
print("PACKAGES " + json.dumps(found))
print("PYTHON " + json.dumps(sys.version))
"""


def test_the_job_sees_exactly_the_images_packages(tmp_path, environment):
    done = train(tmp_path, script(tmp_path, LIST_PACKAGES))
    assert done.returncode == 0, done.stderr
    seen = {normalized(name): version for name, version in reported(done.stdout, "PACKAGES").items()}
    expected = {normalized(name): version for name, version in PIN.findall((IMAGE / "requirements.txt").read_text())}
    framework = tomllib.loads((IMAGE / "framework" / "pyproject.toml").read_text())["project"]
    expected[normalized(framework["name"])] = framework["version"]
    assert seen == expected  # nothing of the developer's venv (the SDK, moto, pytest) is there
    assert reported(done.stdout, "PYTHON").startswith(environment.version)


def test_a_package_the_image_lacks_fails_as_on_sagemaker(tmp_path, environment):
    import moto  # the developer's venv has it, the image does not

    assert moto
    done = train(tmp_path, script(tmp_path, "import moto\n"))
    assert done.returncode == 1
    assert "training failed (exit 1)" in done.stderr
    assert "ModuleNotFoundError: No module named 'moto'" in done.stderr


def _freeze() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts)


def test_requirements_install_into_a_cached_layer_never_the_developers_venv(tmp_path, environment):
    body = """\
    import json, tomli_w
    print("TOMLI_W " + json.dumps(tomli_w.__file__))
    """
    # A comment unique to this run makes a new layer, so the install itself is exercised.
    requirements = f"# {uuid.uuid4().hex}\ntomli-w==1.2.0\n"
    source = script(tmp_path, body, requirements)
    layer = runtime.cache_dir() / "layers" / runtime.layer_key(environment, requirements.encode())
    before, env_before = _freeze(), _listing(environment.root)
    try:
        first = train(tmp_path, source, "--job-name", "first")
        assert first.returncode == 0, first.stderr
        assert "tomli-w" not in _freeze().lower()
        assert Path(reported(first.stdout, "TOMLI_W")).is_relative_to(layer)
        layer_after_first = _listing(layer)
        second = train(tmp_path, source, "--job-name", "second")
        assert second.returncode == 0, second.stderr
        assert "requirements.txt into a layer" not in second.stderr  # made once, then reused
        assert "Requirement already satisfied: tomli-w==1.2.0" in second.stdout  # the toolkit's own pip run
        assert _listing(layer) == layer_after_first  # which changed nothing
    finally:  # this run's layer is never used again
        shutil.rmtree(layer, ignore_errors=True)
        for leftover in (layer.with_name(f"{layer.name}.log"), layer.with_name(f".{layer.name}.lock")):
            leftover.unlink(missing_ok=True)
    assert _freeze() == before
    assert _listing(environment.root) == env_before


def test_requirements_that_do_not_install_fail_the_job_as_on_sagemaker(tmp_path, environment):
    source = script(tmp_path, "print('never')\n", "no-such-package-for-train-local-tests==1.0\n")
    done = train(tmp_path, source)
    assert done.returncode == 1
    assert "the job installs it itself" in done.stderr
    assert "InstallRequirementsError" in done.stderr  # the toolkit's reason, as SageMaker reports it


DUMP_ENVIRONMENT = """\
import json, os
print("ENVIRON " + json.dumps(dict(os.environ)))
"""
# Set by the toolkit and the framework module for the script, on SageMaker as here.
TOOLKIT_SET = re.compile(
    r"SM_.*|SAGEMAKER_(JOB_NAME|REGION|BASE_DIR)|CURRENT_HOST|PYTHONPATH|LC_CTYPE|"
    r"(OMP|OPENBLAS|MKL|NUMEXPR)_NUM_THREADS"
)


def test_the_job_environment_is_the_images_plus_the_platform_and_the_job(tmp_path, environment):
    caller = {"LEAKED_FROM_THE_SHELL": "1", "AWS_DEFAULT_REGION": "eu-west-1", "HTTPS_PROXY": "http://127.0.0.1:9"}
    source = script(tmp_path, DUMP_ENVIRONMENT)
    done = train(tmp_path, source, "--job-name", "env-job", "--env", "MODE=fast", env=caller)
    assert done.returncode == 0, done.stderr
    seen = reported(done.stdout, "ENVIRON")
    image = host_env.image_environment((IMAGE / "Dockerfile").read_text())
    assert seen["SAGEMAKER_TRAINING_MODULE"] == image["SAGEMAKER_TRAINING_MODULE"]
    assert seen["PYTHONUNBUFFERED"] == image["PYTHONUNBUFFERED"] == "1"
    assert seen["PATH"].split(":")[-6:] == image["PATH"].split(":")[-6:]  # the image's, past its venv
    assert seen["PATH"].startswith(seen["VIRTUAL_ENV"] + "/bin:")
    assert seen["TRAINING_JOB_NAME"] == "env-job"
    # The region train-local picks (AWS_DEFAULT_REGION here) reaches the job as AWS_REGION only.
    assert seen["TRAINING_JOB_ARN"] == "arn:aws:sagemaker:eu-west-1:000000000000:training-job/env-job"
    assert seen["AWS_REGION"] == "eu-west-1"
    assert seen["MODE"] == "fast"
    assert seen["HTTPS_PROXY"] == "http://127.0.0.1:9"  # passed through, as documented
    allowed = set(image) | {"TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "AWS_REGION", "MODE", "SM_STUDIO_LOCAL_MODE"}
    passed = {k for k in os.environ.keys() | caller.keys() if k in host_env.NETWORK + host_env.HOST_FILES}
    passed |= {k for k in os.environ if k.startswith(host_env.HOST_PREFIXES)}
    unexpected = {k for k in seen if k not in allowed | passed and not TOOLKIT_SET.fullmatch(k)}
    assert unexpected == set()
    assert "LEAKED_FROM_THE_SHELL" not in seen and "AWS_DEFAULT_REGION" not in seen


def test_image_environment_reads_the_final_stage():
    dockerfile = textwrap.dedent(
        """\
        FROM base AS build
        ENV BUILD_ONLY=1
        FROM base
        # a comment
        ENV PATH=/opt/venv/bin:/usr/bin \\
            VIRTUAL_ENV=/opt/venv \\
            GREETING="hello world"
        ENV LEGACY form with spaces
        ENV DERIVED=${VIRTUAL_ENV}/lib OTHER=$GREETING
        """
    )
    found = host_env.image_environment(dockerfile)
    assert found == {
        "PATH": "/opt/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/opt/venv",
        "GREETING": "hello world",
        "LEGACY": "form with spaces",
        "DERIVED": "/opt/venv/lib",
        "OTHER": "hello world",
    }
    relocated = host_env.relocate(found, "/job/venv", ["/job/venv/bin", "/cache/env/bin"])
    assert relocated["PATH"] == "/job/venv/bin:/cache/env/bin:/usr/bin"
    assert relocated["VIRTUAL_ENV"] == "/job/venv"


def test_the_arn_names_the_roles_account():
    role = "arn:aws:iam::123456789012:role/Exec"
    assert host_env.training_job_arn("My-Job", "eu-west-1", role) == (
        "arn:aws:sagemaker:eu-west-1:123456789012:training-job/my-job"
    )


def test_the_interpreter_is_the_images_version_when_a_real_one_is_on_path(tmp_path):
    shims, real = tmp_path / "shims", tmp_path / "real"
    shims.mkdir()
    real.mkdir()
    (shims / "python3.99").write_text("#!/bin/sh\nexit 127\n")  # a wrapper script, such as a pyenv shim
    (shims / "python3.99").chmod(0o755)
    current = runtime.choose_interpreter(None, "3.99", str(shims))
    assert current.path == Path(sys._base_executable).resolve()
    assert "put a python3.99 on PATH" in current.why
    (real / "python3.99").symlink_to(Path(sys._base_executable).resolve())
    found = runtime.choose_interpreter(None, "3.99", f"{shims}:{real}")
    assert (found.version, found.path) == ("3.99", Path(sys._base_executable).resolve())
    with pytest.raises(UserError, match="--python /no/such/python"):
        runtime.choose_interpreter("/no/such/python", "3.99", "")


def test_the_key_follows_what_decides_the_content(tmp_path):
    image = tmp_path / "framework_image"
    shutil.copytree(IMAGE / "framework", image / "framework", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(IMAGE / "requirements.txt", image)
    interpreter = runtime.choose_interpreter(None, None, "")
    key = runtime.environment_key(interpreter, image)
    (image / "framework" / "src" / "__pycache__").mkdir()
    (image / "framework" / "src" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert runtime.environment_key(interpreter, image) == key  # caches do not count
    (image / "framework" / "src" / "new.py").write_text("")
    assert runtime.environment_key(interpreter, image) != key
    key = runtime.environment_key(interpreter, image)
    (image / "requirements.txt").write_text("numpy==1.0\n")
    assert runtime.environment_key(interpreter, image) != key


BUILD = """\
import sys, time
from pathlib import Path
from pipeline.local import runtime

def steps(temp, log):
    temp.mkdir()
    with open(sys.argv[2], "a") as count:
        count.write("built\\n")
    time.sleep(1)
    (temp / "content").write_text("done")

runtime.build_once(Path(sys.argv[1]), print, "test", steps)
"""


def test_two_jobs_starting_at_once_build_the_environment_once(tmp_path):
    target, count = tmp_path / "envs" / "key", tmp_path / "count"
    target.parent.mkdir()
    builders = [
        subprocess.Popen([sys.executable, "-c", BUILD, str(target), str(count)], cwd=ROOT, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    assert [b.wait(timeout=60) for b in builders] == [0, 0]
    assert count.read_text() == "built\n"
    assert (target / "content").read_text() == "done"
    assert [p.name for p in target.parent.iterdir() if ".tmp-" in p.name] == []


def test_an_interrupted_build_leaves_nothing_half_made(tmp_path):
    target = tmp_path / "envs" / "key"
    target.parent.mkdir()

    def steps(temp: Path, log: Path) -> None:
        temp.mkdir()
        (temp / "half").write_text("")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runtime.build_once(target, print, "test", steps)
    assert sorted(p.name for p in target.parent.iterdir()) == [".key.lock"]


HOLD = """\
import sys, time
from pathlib import Path
from pipeline.local import runtime

assert runtime.hold(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def built_folders(folder: Path, names: str) -> None:
    """Environments ``names`` in ``folder``, used in that order (the first, longest ago)."""
    folder.mkdir()
    for age, name in enumerate(reversed(names)):
        (folder / name).mkdir()
        (folder / name / "bin").mkdir()
        (folder / f"{name}.log").write_text("")
        lock = folder / f".{name}.lock"
        lock.touch()
        os.utime(lock, (1_000_000 - age, 1_000_000 - age))


def test_a_prune_keeps_the_ones_used_last_and_any_a_job_holds(tmp_path):
    folder = tmp_path / "envs"
    built_folders(folder, "abcdef")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder / "a")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        os.utime(folder / ".a.lock", (1, 1))  # a job that started long ago and runs still
        assert runtime.prune(folder, keep=2) == 3
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["a", "e", "f"]
    assert not list(folder.glob(".*.tmp-*")) and not (folder / "b.log").exists() and (folder / "a.log").exists()
    assert runtime.prune(folder, keep=2) == 1  # the job is over: "a" is the one used longest ago
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["e", "f"]


def test_holding_one_marks_its_use_and_a_missing_one_is_not_held(tmp_path):
    folder = tmp_path / "envs"
    built_folders(folder, "ab")
    assert runtime.hold(folder / "a")
    assert (folder / ".a.lock").stat().st_mtime > (folder / ".b.lock").stat().st_mtime
    assert runtime.prune(folder, keep=0) == 1  # "b"; "a" is held by this process
    assert [p.name for p in folder.iterdir() if p.is_dir()] == ["a"]
    assert not runtime.hold(folder / "gone")
