"""``serve-local``: the image's server and the source dir's handlers, Docker-free, on a trained model."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixtures.inference.acceptance import CASES, SCRIPTS, Case, container_answer, load_script, train_model
from local_support import wait_for
from moto_server import free_port
from support import ROOT, run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inference"


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("jobs")
    done = run_cli("train-local", "--output-dir", str(folder), "--job-name", "served", "--hp", "max-iter=10")
    assert done.returncode == 0, done.stdout + done.stderr
    return str(folder / "served" / "model.tar.gz")


def test_serve_local_answers_csv_and_json_and_refuses_bad_requests(model):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve-local", "--model", model, "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/ping"), "serve-local answers", server, timeout=60)
        row = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8"
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
        csv = urllib.request.Request(f"{url}/invocations", data=row.encode(), headers=headers)
        assert urllib.request.urlopen(csv, timeout=30).read().decode().strip() in ("0", "1")
        body = json.dumps({"instances": [[0.1] * 8, [2.0] * 8]}).encode()
        request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert len(answer["predictions"]) == 2
        wrong = urllib.request.Request(f"{url}/invocations", data=b"1,2", headers={"Content-Type": "text/csv"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=30)
        assert refused.value.code == 400
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_missing_model_is_one_error_line(tmp_path):
    done = run_cli("serve-local", "--output-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no model.tar.gz under {tmp_path}: run train-local first, or pass --model"
    ]


def test_a_new_archive_at_the_same_path_is_served_not_the_old_one(tmp_path):
    import io
    import tarfile

    from pipeline.cli.serve_commands import model_dir

    archive = tmp_path / "model.tar.gz"

    def write(text: str) -> None:
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("model.txt")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))

    write("model A")
    assert (model_dir(archive) / "model.txt").read_text() == "model A"
    write("model B")
    assert (model_dir(archive) / "model.txt").read_text() == "model B"


# --- the acceptance suite: third-party style scripts answer as SageMaker's scikit-learn container -------


def _post(port: int, case: Case) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=case.body, headers=case.headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@contextmanager
def serve_local(model: Path, source_dir: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """``serve-local`` on a free port, one worker, yielded once /ping answers; stopped by its PID."""
    port = free_port()
    argv = ["serve-local", "--model", str(model), "--source-dir", str(source_dir), "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *argv, "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/ping"), "serve-local answers", server, timeout=120)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def acceptance_model(tmp_path_factory) -> Path:
    return train_model(tmp_path_factory.mktemp("acceptance") / "model")


@pytest.mark.parametrize("script", SCRIPTS)
def test_third_party_scripts_answer_as_the_scikit_learn_container(acceptance_model, script):
    module = load_script(script)
    model = module.model_fn(str(acceptance_model))
    cases = [case for case in CASES if case.script == script]
    with serve_local(acceptance_model, FIXTURES / script) as port:
        answers = {case.name: _post(port, case) for case in cases}
    for case in cases:
        status, content_type, body = container_answer(module, model, case)
        got = answers[case.name]
        if status != 200:
            assert got[0] == status, (case.name, got)
        else:
            assert got == (status, content_type, body), case.name


def test_a_script_importing_a_package_the_image_lacks_fails_at_start(acceptance_model):
    done = run_cli(
        "serve-local",
        "--model",
        str(acceptance_model),
        "--source-dir",
        str(FIXTURES / "missing_package"),
        "--port",
        str(free_port()),
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "No module named 'xgboost'" in errors[0] and "requirements.txt" in errors[0]


def _wheel(folder: Path, name: str, module_text: str) -> Path:
    """A pure-Python wheel made by hand (no build backend, no index): ``name`` 1.0 with one module."""
    path = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": module_text,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in [*files, f"{info}/RECORD"]))
    return path


def test_requirements_txt_beside_the_script_is_installed_at_start(acceptance_model, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    package = f"extra_{uuid.uuid4().hex[:8]}"
    wheel = _wheel(tmp_path, package, "def double(x):\n    return 2 * x\n")
    (code / "requirements.txt").write_text(f"{wheel}\n")
    (code / "inference.py").write_text(
        f"import {package}\nimport joblib, os\n\n"
        "def model_fn(model_dir):\n    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n\n"
        f"def predict_fn(data, model):\n    return {package}.double(model.predict(data))\n"
    )
    with serve_local(acceptance_model, code) as port:
        status, _, body = _post(port, Case("", "", b"[[0, 0, 0, 5]]", {"Content-Type": "application/json"}))
    assert (status, body) == (200, b"[0]")
    with serve_local(acceptance_model, code) as port:
        status, _, body = _post(port, Case("", "", b"[[5, 0, 0, 0]]", {"Content-Type": "application/json"}))
    assert (status, body) == (200, b"[2]")
