"""The serving contract, run for real: the ``serve`` command on 127.0.0.1 against a model trained by
``user_src/train.py``, answering HTTP from this test; plus the pure parts (formats, ``Accept``).

Each server is a subprocess stopped by its PID; a module-scoped one serves the sample model.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
from moto_server import free_port
from servers import wait_until
from support import PROJECT_SRC

from custom_framework_training.serving import StartupError, content, environment, errors, serve

USER_SRC = PROJECT_SRC  # the project's fixture source dir, not the user's user_src/
SERVE = Path(sys.executable).parent / "serve"  # the console script, as the image has it in /opt/venv/bin
START_TIMEOUT = 60
FEATURES = 8
ROW = "0.5,-1.2,0.3,0.9,-0.4,1.1,0.0,-0.7"
MB = 2**20


def write_sample_data(folder: Path, seed: int = 7) -> dict[str, Path]:
    """Headered CSV channels shaped like the project's sample data: f0..f7 and a label depending on them."""
    rng = random.Random(seed)
    channels = {}
    for channel, count in (("train", 400), ("validation", 100)):
        path = folder / channel / f"{channel}.csv"
        path.parent.mkdir(parents=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*(f"f{i}" for i in range(FEATURES)), "label"])
            for _ in range(count):
                x = [round(rng.gauss(0, 1), 4) for _ in range(FEATURES)]
                writer.writerow([*x, int(x[0] * x[1] + x[2] > 0)])
        channels[channel] = path.parent
    return channels


def train_sample_model(scratch: Path) -> Path:
    """``user_src/train.py`` run as the toolkit would (SM_* variables), then the handlers packed as ``code/``."""
    channels = write_sample_data(scratch / "data")
    model_dir = scratch / "model"
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(scratch / "output"),
    }
    result = subprocess.run(
        [sys.executable, str(USER_SRC / "train.py"), "--max-iter", "30"],
        cwd=USER_SRC,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (model_dir / "code").mkdir()
    shutil.copy(USER_SRC / "inference.py", model_dir / "code" / "inference.py")
    return model_dir


@dataclass
class Server:
    port: int
    log: Path
    process: subprocess.Popen

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def invoke(self, body: bytes | str, content_type: str, accept: str | None = None):
        headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
        return self.request("POST", "/invocations", body, headers)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server we started (gunicorn stops its workers), SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_server(log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``serve --host 127.0.0.1 --port <free> ARGS``, yielded once ``/ping`` answers 200."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(SERVE), "--host", "127.0.0.1", "--port", str(port), *args],
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, log, process)
    try:
        wait_until(lambda: server.request("GET", "/ping")[0] == 200, "serve answers /ping", process, START_TIMEOUT, log)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_sample_model(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("log") / "serve.log", "--model-dir", str(model_dir)) as running:
        yield running


def expected_labels(model_dir: Path, rows: list[list[float]]) -> list[int]:
    """What the trained model predicts in this process, as the server should answer."""
    return joblib.load(model_dir / "model.joblib").predict(np.asarray(rows)).astype(int).tolist()


def csv_rows(text: str) -> list[list[float]]:
    return [[float(v) for v in line.split(",")] for line in text.strip().splitlines()]


# --- the contract over HTTP ---------------------------------------------------------------


def test_ping_is_200_once_the_model_is_loaded(server):
    assert server.request("GET", "/ping")[0] == 200
    assert "model loaded from" in server.log.read_text()  # loading finished before the port answered
    cpus = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + 10  # the first worker may answer before the others have booted
    while server.log.read_text().count("Booting worker") < cpus and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log.read_text().count("Booting worker") == cpus  # one worker per CPU by default


def test_csv_rows_in_json_predictions_out(server, model_dir):
    rows = csv_rows(f"{ROW}\n1,1,1,1,1,1,1,1\n-1,2,-3,0,0,0,0,0\n")
    body = "".join(",".join(map(str, row)) + "\n" for row in rows)
    status, headers, answer = server.invoke(body, "text/csv")
    assert status == 200, answer
    assert headers["content-type"] == "application/json"
    assert json.loads(answer) == {"predictions": expected_labels(model_dir, rows)}


@pytest.mark.parametrize("wrap", [lambda rows: rows, lambda rows: {"instances": rows}], ids=["list", "instances"])
def test_json_rows_in_csv_out_when_accept_asks(server, model_dir, wrap):
    rows = csv_rows(f"{ROW}\n1,1,1,1,1,1,1,1\n")
    status, headers, answer = server.invoke(json.dumps(wrap(rows)), "application/json", accept="text/csv")
    assert status == 200, answer
    assert headers["content-type"] == "text/csv"
    assert answer.decode().splitlines() == [str(label) for label in expected_labels(model_dir, rows)]


def test_probabilities_when_the_json_body_asks(server, model_dir):
    rows = csv_rows(f"{ROW}\n1,1,1,1,1,1,1,1\n")
    status, _, answer = server.invoke(json.dumps({"instances": rows, "probabilities": True}), "application/json")
    assert status == 200, answer
    result = json.loads(answer)
    assert result["predictions"] == expected_labels(model_dir, rows)
    assert len(result["probabilities"]) == 2
    assert all(abs(sum(p) - 1) < 1e-9 for p in result["probabilities"])
    status, _, answer = server.invoke(
        json.dumps({"instances": rows, "probabilities": True}), "application/json", accept="text/csv"
    )
    assert status == 200
    assert [len(line.split(",")) for line in answer.decode().splitlines()] == [3, 3]  # label, p(0), p(1)


@pytest.mark.parametrize(
    ("accept", "expected_type"),
    [
        ("*/*", "application/json"),
        ("text/csv; q=0.5, application/json", "application/json"),
        ("text/csv, application/json; q=0.5", "text/csv"),
    ],
)
def test_accept_header_is_honoured(server, accept, expected_type):
    status, headers, _ = server.invoke(ROW, "text/csv", accept=accept)
    assert (status, headers["content-type"]) == (200, expected_type)


@pytest.mark.parametrize(
    ("content_type", "body", "accept", "status", "message"),
    [
        ("application/xml", "<row/>", None, 415, "Content-Type 'application/xml' is not supported"),
        ("text/csv", ROW, "image/png", 406, "cannot answer with 'image/png'"),
        ("text/csv", "f0,f1,f2,f3,f4,f5,f6,f7\n" + ROW, None, 400, "without a header"),
        ("text/csv", "1,2,3", None, 400, "each row needs 8 values"),
        ("text/csv", "", None, 400, "the request body is empty"),
        ("text/csv", b"\xff\xfe1,2", None, 400, "must be UTF-8"),
        ("application/json", '{"rows": [[1]]}', None, 400, '"instances"'),
        ("application/json", '[["a", 1, 2, 3, 4, 5, 6, 7]]', None, 400, "numbers only"),
    ],
    ids=["content-type", "accept", "header", "shape", "empty", "utf8", "no-instances", "strings"],
)
def test_a_bad_request_gets_one_4xx_line_saying_what_to_fix(server, content_type, body, accept, status, message):
    got, headers, answer = server.invoke(body, content_type, accept=accept)
    text = answer.decode()
    assert got == status, text
    assert headers["content-type"].startswith("text/plain")
    assert message in text
    assert len(text.strip().splitlines()) == 1


def test_a_user_input_fns_valueerror_is_a_500_as_in_both_toolkits(server):
    """user_src's input_fn parses JSON itself: its ValueError is the handler's, 500 as the containers answer."""
    status, _, answer = server.invoke("[[1, 2,", "application/json")
    assert status == 500
    assert answer.decode().strip().startswith("input_fn raised JSONDecodeError: Expecting value")


def test_a_flat_list_is_one_row_and_no_content_type_is_json(server, model_dir):
    row = csv_rows(ROW)[0]
    status, _, answer = server.invoke(json.dumps(row), "application/json")
    assert (status, json.loads(answer)) == (200, {"predictions": expected_labels(model_dir, [row])})
    status, _, answer = server.request("POST", "/invocations", json.dumps([row]), {"Accept": "application/json"})
    assert (status, json.loads(answer)) == (200, {"predictions": expected_labels(model_dir, [row])})
    status, headers, _ = server.request("POST", "/invocations", ROW, {"ContentType": "text/csv", "Accept": "text/csv"})
    assert (status, headers["content-type"]) == (200, "text/csv")


def test_execution_parameters_for_batch_transform(server):
    status, headers, answer = server.request("GET", "/execution-parameters")
    assert (status, headers["content-type"]) == (200, "application/json")
    cpus = len(os.sched_getaffinity(0))
    assert json.loads(answer) == {"MaxConcurrentTransforms": cpus, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_slow_clients_do_not_starve_ping(server):
    """Connections that send half a request and stall hold a greenlet each, not a worker."""
    stalled = []
    try:
        for _ in range(4 * len(os.sched_getaffinity(0)) + 4):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n1,"
            )
            stalled.append(sock)
        assert server.request("GET", "/ping")[0] == 200
        assert server.invoke(ROW, "text/csv")[0] == 200
    finally:
        for sock in stalled:
            sock.close()


def test_clients_sending_byte_by_byte_do_not_starve_ping(server, model_dir):
    """More connections than workers each send a request one byte at a time, interleaved (a bounded
    slowloris, loopback only): /ping answers between the rounds, and every dribbled request is answered."""
    request = (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nAccept: application/json\r\n"
        f"Content-Length: {len(ROW)}\r\n\r\n{ROW}"
    ).encode()
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4 * _cpus() + 2)]
    pinger = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # kept alive across the rounds
    pings = []
    try:
        for sock in slow:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one segment per byte
        for offset in range(len(request)):
            for sock in slow:
                sock.sendall(request[offset : offset + 1])
            if offset % 16 == 0:
                pinger.request("GET", "/ping")
                response = pinger.getresponse()
                response.read()
                pings.append(response.status)
        answers = [_read_response(sock) for sock in slow]
    finally:
        pinger.close()
        for sock in slow:
            sock.close()
    assert pings == [200] * len(range(0, len(request), 16))
    expected = json.dumps({"predictions": expected_labels(model_dir, csv_rows(ROW))}).encode()
    assert answers == [(200, expected)] * len(slow)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def test_payload_over_6_mb_is_413_and_just_under_is_served(server):
    status, _, answer = server.invoke(b"0" * (6 * MB + 1), "text/csv")
    assert status == 413, answer
    assert b"SAGEMAKER_MAX_PAYLOAD_IN_MB" in answer
    row = (ROW + "\n").encode()
    body = row * ((6 * MB) // len(row))
    status, _, answer = server.invoke(body, "text/csv")
    assert status == 200, answer[:200]
    assert len(json.loads(answer)["predictions"]) == len(body) // len(row)


def test_unknown_route_and_wrong_method(server):
    assert server.request("GET", "/predict")[0] == 404
    status, headers, _ = server.request("GET", "/invocations")
    assert (status, headers["allow"]) == (405, "POST")


# --- SageMaker's environment variables ----------------------------------------------------


def test_environment_settings_and_code_from_a_sourcedir_archive(model_dir, tmp_path):
    """As a SageMaker Model created by the SDK without repacking: the code is a sourcedir.tar.gz named by
    SAGEMAKER_SUBMIT_DIRECTORY and SAGEMAKER_PROGRAM, not code/ in the model."""
    bare_model = tmp_path / "model"
    shutil.copytree(model_dir, bare_model, ignore=shutil.ignore_patterns("code"))
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(USER_SRC / "inference.py", arcname="serving_handlers.py")
    env = {
        "SAGEMAKER_SUBMIT_DIRECTORY": str(archive),
        "SAGEMAKER_PROGRAM": "serving_handlers.py",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
    }
    with running_server(tmp_path / "serve.log", "--model-dir", str(bare_model), env=env) as running:
        status, headers, answer = running.invoke(ROW, "text/csv")
        assert (status, headers["content-type"]) == (200, "text/csv"), answer
        assert running.invoke(b"0" * (MB + 1), "text/csv")[0] == 413
        assert running.invoke((ROW + "\n") * 1000, "text/csv")[0] == 200  # 37 KB: well under 1 MB
    log = running.log.read_text()
    assert "serving_handlers.py" in log
    assert log.count("Booting worker") == 1


# --- start-up failures: one line, naming the path, non-zero exit, nothing listening --------


def _fails_to_start(*args: str, env: dict[str, str] | None = None) -> str:
    port = free_port()
    result = subprocess.run(
        [str(SERVE), "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("serve: error: ")
    return lines[0]


def test_missing_model_dir_fails_at_start(tmp_path):
    missing = tmp_path / "no-model"
    assert f"model directory {missing} does not exist" in _fails_to_start("--model-dir", str(missing))


def test_missing_model_file_fails_at_start(tmp_path):
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    shutil.copy(USER_SRC / "inference.py", model / "code")
    line = _fails_to_start("--model-dir", str(model))
    assert f"model_fn could not load the model from {model}" in line
    assert "FileNotFoundError" in line


def test_missing_handlers_fail_at_start(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    line = _fails_to_start("--model-dir", str(model))
    assert f"no inference handlers: {model / 'code' / 'inference.py'} does not exist" in line


def test_handlers_without_model_fn_fail_at_start(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("def predict_fn(data, model):\n    return data\n")
    line = _fails_to_start("--model-dir", str(tmp_path), "--code-dir", str(code))
    assert f"{code / 'inference.py'} defines no model_fn(model_dir)" in line


def test_a_bad_setting_fails_at_start_naming_the_variable(model_dir):
    line = _fails_to_start("--model-dir", str(model_dir), env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "soon"})
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT='soon' is not a positive int" in line


def test_serve_function_raises_before_binding(tmp_path, monkeypatch):
    """The Docker-free entry point (``serve-local``) reports the same one-line error, as an exception."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # serve() sizes thread pools only where unset: keep this process as it is
    with pytest.raises(StartupError, match="does not exist"):
        serve(tmp_path / "no-model", None, "127.0.0.1", free_port(), 1)


# --- handler bugs and input errors raised by user handlers ----------------------------------

BUGGY_HANDLERS = """
import time

def model_fn(model_dir):
    return "model"

def predict_fn(data, model):
    first = data[0][0]
    if first == 1:
        return 1 / 0  # a bug: 500
    if first == 2:
        raise ValueError("the first value must not be 2")  # a handler's exception: 500, as in the toolkits
    if first == 3:
        time.sleep(120)  # stuck: cut off after SAGEMAKER_MODEL_SERVER_TIMEOUT (504)
    if first == 6:
        while True:  # holds the CPU, so the heartbeat stops: the master aborts the worker (504), forks another
            pass
    return data.sum(axis=1)
"""


@pytest.fixture
def buggy_server(tmp_path: Path) -> Iterator[Server]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(BUGGY_HANDLERS)
    args = ("--model-dir", str(tmp_path), "--code-dir", str(code))
    with running_server(tmp_path / "serve.log", *args, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}) as running:
        yield running


def test_a_handler_bug_is_a_500_with_its_traceback_in_the_log(buggy_server):
    status, _, answer = buggy_server.invoke("4,4\n5,6\n", "text/csv")
    assert (status, answer) == (200, b"[8.0, 11.0]")
    status, _, answer = buggy_server.invoke("1,4\n", "text/csv")
    assert status == 500
    assert answer.decode().strip() == "predict_fn raised ZeroDivisionError: division by zero"
    status, _, answer = buggy_server.invoke("2,4\n", "text/csv")
    assert (status, answer.decode().strip()) == (500, "predict_fn raised ValueError: the first value must not be 2")
    assert buggy_server.request("GET", "/ping")[0] == 200  # the worker survived
    log = buggy_server.log.read_text()
    assert "Traceback" in log and "ZeroDivisionError: division by zero" in log


def test_a_stuck_request_is_cut_off_by_the_model_server_timeout(buggy_server):
    # The handler sleeps 120 s, past this client's 60 s timeout: an answer at all is the server's deadline.
    status, _, answer = buggy_server.invoke("3,4\n", "text/csv")
    assert (status, answer) == (504, b"the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=2 s\n")
    status, _, answer = buggy_server.invoke("3.5,4\n", "text/csv")
    assert (status, answer) == (200, b"[7.5]")


def test_a_handler_holding_the_cpu_is_cut_off_and_its_worker_replaced(buggy_server):
    """A CPU-bound handler never yields to the gevent timeout: past SAGEMAKER_MODEL_SERVER_TIMEOUT without a
    heartbeat the master aborts its worker, which answers that request 504 and is replaced by a fresh fork;
    the other workers answer meanwhile, and the server after."""
    stuck = http.client.HTTPConnection("127.0.0.1", buggy_server.port, timeout=120)
    try:
        stuck.request("POST", "/invocations", "6,4\n", {"Content-Type": "text/csv"})
        _wait_for_log(buggy_server, lambda log: "WORKER TIMEOUT" in log)
        assert buggy_server.request("GET", "/ping")[0] == 200
        response = stuck.getresponse()
        assert (response.status, response.read()) == (
            504,
            b"the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=2 s\n",
        )
    finally:
        stuck.close()
    _wait_for_log(buggy_server, lambda log: "Booting worker" in log.split("WORKER TIMEOUT", 1)[1])  # its successor
    for row, total in (("4,4\n", b"[8.0]"), ("5,1\n", b"[6.0]"), ("7,0\n", b"[7.0]")):
        status, _, answer = buggy_server.invoke(row, "text/csv")
        assert (status, answer) == (200, total)


def _wait_for_log(server: Server, condition: Callable[[str], bool]) -> None:
    wait_until(lambda: condition(server.log.read_text()), "the log shows it", server.process, START_TIMEOUT, server.log)


def test_a_stop_while_the_workers_boot_is_taken_by_every_worker(model_dir, tmp_path):
    """SIGTERM right after the workers are forked (a short batch transform, a test's teardown): each worker
    takes it and exits by itself, and so does the master, on that one signal. gunicorn used to drop it in a
    worker still booting, which the master SIGKILLed only after its 30 s graceful timeout."""
    workers = 2 * _cpus()
    log = tmp_path / "serve.log"
    args = ("--host", "127.0.0.1", "--port", str(free_port()), "--model-dir", str(model_dir), "--workers", str(workers))
    with log.open("wb") as sink:
        process = subprocess.Popen([str(SERVE), *args], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(  # "Booting worker" is logged right after each fork, before boot
            lambda: log.read_text().count("Booting worker") >= workers,
            "workers forked",
            process,
            START_TIMEOUT,
            log,
            0.002,
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)  # past gunicorn's graceful timeout, so a dropped stop shows in the log
    finally:
        _stop(process)
    text = log.read_text()
    assert code == 0, text
    assert text.count("Worker exiting") == workers, text
    assert "SIGKILL" not in text


def test_the_serve_function_serves_the_same_app(model_dir, tmp_path):
    """``serve(model_dir, code_dir, host, port, workers)`` in a plain Python process: the serve-local path."""
    port = free_port()
    script = (
        "import sys; from pathlib import Path; from custom_framework_training.serving import serve; "
        "serve(Path(sys.argv[1]), Path(sys.argv[2]), '127.0.0.1', int(sys.argv[3]), 1)"
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(model_dir), str(model_dir / "code"), str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        running = Server(port, log, process)
        status, _, answer = wait_until(
            lambda: running.invoke(ROW, "text/csv"), "an answer", process, START_TIMEOUT, log
        )
        assert status == 200
        assert json.loads(answer) == {"predictions": expected_labels(model_dir, csv_rows(ROW))}
    finally:
        _stop(process)
    assert process.returncode == 0  # SIGTERM is a clean shutdown


# --- settings, formats and negotiation, in process -----------------------------------------


def test_settings_default_to_sagemakers():
    settings = environment.from_environ({})
    assert settings.model_dir == Path("/opt/ml/model")
    assert (settings.port, settings.timeout_seconds, settings.max_payload_bytes) == (8080, 60, 6 * MB)
    assert (settings.program, settings.default_accept) == ("inference.py", "application/json")
    assert settings.workers == len(os.sched_getaffinity(0))


def test_settings_from_the_environment():
    settings = environment.from_environ(
        {
            "SAGEMAKER_BASE_DIR": "/srv/ml",
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "5",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
        }
    )
    assert settings.model_dir == Path("/srv/ml/model")
    assert (settings.port, settings.workers, settings.timeout_seconds) == (9000, 3, 5)
    assert settings.max_payload_bytes == 2 * MB
    assert environment.from_environ({"SM_MODEL_DIR": "/m", "SAGEMAKER_BASE_DIR": "/srv"}).model_dir == Path("/m")
    with pytest.raises(StartupError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB='-1' is not a positive float"):
        environment.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "-1"})


@pytest.mark.parametrize(
    ("header", "offered", "expected"),
    [
        (None, content.DEFAULT_TYPES, "application/json"),
        ("", content.DEFAULT_TYPES, "application/json"),
        ("*/*", ("text/csv",), "text/csv"),
        ("text/*", content.DEFAULT_TYPES, "text/csv"),
        ("application/json;q=0.1, text/csv;q=0.9", content.DEFAULT_TYPES, "text/csv"),
        ("text/csv;q=0.1, application/x-npy", None, "application/x-npy"),
        ("*/*", None, "application/json"),
    ],
)
def test_negotiate(header, offered, expected):
    assert content.negotiate(header, offered, "application/json") == expected


def test_negotiate_refuses_what_no_handler_writes():
    with pytest.raises(errors.NotAcceptable, match="application/json or text/csv or application/x-npy"):
        content.negotiate("image/png", content.DEFAULT_TYPES, "application/json")


def test_default_formats_round_trip():
    assert content.decode("1,2\n3,4\n", "text/csv").tolist() == [[1, 2], [3, 4]]
    assert content.decode(b'{"instances": [[1, 2]]}', "application/json").tolist() == [[1, 2]]
    assert content.encode(np.array([1, 0]), "text/csv") == b"1\n0\n"
    assert content.encode(np.array([[0.25, 0.75]]), "text/csv") == b"0.25,0.75\n"
    assert content.encode({"p": np.array([1.5])}, "application/json") == b'{"p": [1.5]}'
    with pytest.raises(errors.BadRequest, match="different numbers of values"):
        content.decode("[[1, 2], [3]]", "application/json")


def test_npy_and_jsonlines_round_trip_and_a_pickle_or_a_lying_header_is_refused():
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([1.5, 2.5]))
    assert content.decode(buffer.getvalue(), "application/x-npy").tolist() == [[1.5, 2.5]]  # one row
    assert np.load(io.BytesIO(content.encode(np.array([1, 0]), "application/x-npy"))).tolist() == [1, 0]
    assert content.decode(b"[1, 2]\n\n[3, 4]\n", "application/jsonlines").tolist() == [[1, 2], [3, 4]]
    assert content.encode(np.array([[1, 2], [3, 4]]), "application/jsonlines") == b"[1, 2]\n[3, 4]\n"
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(errors.BadRequest, match="pickle"):
        content.decode(pickled.getvalue(), "application/x-npy")
    header = buffer.getvalue().replace(b"(2,)", b"(9999999999,)", 1)
    with pytest.raises(errors.BadRequest, match="more than the body holds"):
        content.decode(header, "application/x-npy")


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    import io

    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def test_an_archive_writes_nothing_outside_its_folder(tmp_path):
    from custom_framework_training import archives

    link = tarfile.TarInfo("model/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    for bad in (tarfile.TarInfo("../escape.txt"), link):
        archive = _archive(tmp_path / "bad.tar.gz", [(bad, b"x")])
        target = tmp_path / f"into-{bad.name.replace('/', '-')}"
        with pytest.raises(tarfile.TarError):
            archives.extract(archive, target)
        assert not (tmp_path / "escape.txt").exists()
        assert not (target / "model" / "link").is_symlink()


def test_a_tar_bomb_is_refused_from_its_headers(tmp_path):
    from custom_framework_training import archives

    archive = _archive(tmp_path / "bomb.tar.gz", [(tarfile.TarInfo(f"f{i}"), b"0" * 4096) for i in range(4)])
    with pytest.raises(archives.ArchiveTooLarge, match="more than 10000 bytes"):
        archives.extract(archive, tmp_path / "into", limit=10_000)
    assert not (tmp_path / "into").exists()
    archives.extract(archive, tmp_path / "fits", limit=20_000)
    assert len(list((tmp_path / "fits").iterdir())) == 4


def test_unpacked_inference_code_is_removed_when_the_server_exits_not_when_a_worker_does(tmp_path):
    """The server's master unpacks ``sourcedir.tar.gz`` into a temp folder; a worker (a fork) exiting
    leaves it for the others, the master exiting removes it: serve-local runs leave no temp folders."""
    archive = _archive(tmp_path / "sourcedir.tar.gz", [(tarfile.TarInfo("inference.py"), b"x = 1\n")])
    temp = tmp_path / "temp"
    temp.mkdir()
    code = (
        "import os, sys\nfrom pathlib import Path\nfrom custom_framework_training.serving import files\n"
        "folder = files.code_dir(sys.argv[1], Path('.'))\n"
        "pid = os.fork()\nif pid == 0:\n    sys.exit(0)\n"
        "os.waitpid(pid, 0)\nprint(folder, (folder / 'inference.py').is_file())\n"
    )
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run([sys.executable, "-c", code, str(archive)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    folder, present = done.stdout.split()
    assert present == "True" and Path(folder).parent == temp  # still there after the fork exited
    assert list(temp.iterdir()) == []  # gone with the master
