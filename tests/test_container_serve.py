"""The framework image as SageMaker hosts it: ``<image> serve`` with the model at ``/opt/ml/model``
(``model.joblib``, ``features.json`` and ``code/inference.py``, as in a model.tar.gz packed with its
code), answering real HTTP on a port published to 127.0.0.1.

Slow (builds the image with framework_image/build-local.sh), so marked ``container``:
``pytest -m container`` runs it. The engine and image fixtures are tests/conftest.py's.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import uuid
from pathlib import Path

import joblib
import numpy as np
import pytest
from fixtures.inference.acceptance import CASES, SCRIPTS, container_answer, load_script, train_model
from servers import wait_until
from test_serving import ROW, free_port, train_sample_model

from pipeline.local import container

pytestmark = pytest.mark.container

START_TIMEOUT = 180
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inference"
RUN_TIMEOUT = 300


def _remove(engine: str, name: str) -> None:
    subprocess.run([engine, "rm", "--force", name], capture_output=True, timeout=60, check=False)


def _post_csv(port: int, body: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def _ping(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_serves_the_model_over_http(engine, image, tmp_path):
    model_dir = train_sample_model(tmp_path)  # model.joblib, features.json, code/inference.py
    port = free_port()
    name = f"test-serve-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "container.log"
    command = [engine, "run", "--rm", "--name", name, *container.run_flags(engine)]
    command += ["--publish", f"127.0.0.1:{port}:8080", "--volume", f"{model_dir}:/opt/ml/model:ro", image, "serve"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ping(port) == 200, "serve answers /ping", process, START_TIMEOUT, log, 0.2)
        rows = f"{ROW}\n1,1,1,1,1,1,1,1\n"
        status, content_type, answer = _post_csv(port, rows)
        assert (status, content_type) == (200, "application/json"), answer
        expected = joblib.load(model_dir / "model.joblib").predict(
            np.array([[float(v) for v in line.split(",")] for line in rows.split()])
        )
        assert json.loads(answer) == {"predictions": expected.astype(int).tolist()}
    finally:
        _remove(engine, name)
        process.wait(timeout=60)
    assert "/opt/ml/model/code/inference.py" in log.read_text()


def test_serve_without_a_model_exits_with_one_line(engine, image):
    name = f"test-serve-{uuid.uuid4().hex[:12]}"
    command = [engine, "run", "--rm", "--name", name, "--network", "none", *container.run_flags(engine), image, "serve"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    finally:
        _remove(engine, name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == "serve: error: model directory /opt/ml/model does not exist"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_third_party_scripts_answer_in_the_image_as_the_scikit_learn_container(engine, image, tmp_path, script):
    """The acceptance suite through the image's own ``serve``: the image's package set, its server."""
    from pipeline.cli.serve_commands import container_command

    model_dir = train_model(tmp_path / "model")
    module = load_script(script)
    model = module.model_fn(str(model_dir))
    port = free_port()
    command = container_command(engine, image, model_dir, FIXTURES / script, "127.0.0.1", port)
    name = f"test-accept-{uuid.uuid4().hex[:12]}"
    command[2:2] = ["--name", name]
    log = tmp_path / "container.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ping(port) == 200, "serve answers /ping", process, START_TIMEOUT, log, 0.2)
        for case in [c for c in CASES if c.script == script]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/invocations", body=case.body, headers=case.headers)
            response = connection.getresponse()
            got = (response.status, response.getheader("Content-Type", ""), response.read())
            connection.close()
            expected = container_answer(module, model, case)
            assert got[0] == expected[0] if expected[0] != 200 else got == expected, case.name
    finally:
        _remove(engine, name)
        process.wait(timeout=60)
