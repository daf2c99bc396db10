"""Serving speed: ``POST /invocations`` through the image's ``serve`` against the same handlers called in-process
and against the stack SageMaker's scikit-learn container serves with, on the same model, in the same run.

The reference is what ``sagemaker-containers`` runs in that container: a plain Flask app whose
``/invocations`` calls ``input_fn`` → ``predict_fn`` → ``output_fn`` and wraps the result, on
gunicorn with gevent workers (``-k gevent``, ``--worker-connections 1000 * workers``), without
its nginx (``serve`` has none either). Both servers get the same workers (one per CPU),
thread-pool sizes, model and handlers (``user_src/inference.py`` on the model
``user_src/train.py`` saves), loaded before the fork. A third server is the transport floor:
an app that answers ``[]`` on the same gunicorn workers, once at once and once after holding
the CPU as long as the handlers take in-process. Requests are CSV, one row or 1,000 rows,
answered in JSON; each client is a thread holding one keep-alive ``http.client`` connection to
127.0.0.1, the connections spread evenly over a server's workers. Rounds interleave the targets
so that drift on this shared machine hits them alike; counts are bounded. Writes
``benchmarks/results-serving.md``.
Run: ``.venv/bin/python benchmarks/serving.py [rounds]``
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# As in each server worker (one thread per pool, the workers sharing the CPUs); before numpy is imported.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from timing import PYTHON, ROOT  # noqa: E402

USER_SRC = ROOT / "user_src"
SERVE = Path(PYTHON).parent / "serve"
RESULTS = Path(__file__).with_name("results-serving.md")
FEATURES = 8
HEADERS = {"Content-Type": "text/csv", "Accept": "application/json"}
# (rows per request, clients): each client sends REQUESTS[rows] a round after WARMUP[rows] once.
SCENARIOS = ((1, 1), (1, 4), (1000, 1), (1000, 4))
REQUESTS = {1: 150, 1000: 15}
WARMUP = {1: 200, 1000: 10}
WARMUP_PER_BLOCK = 3  # requests on each new connection before the timed ones
IN_PROCESS, REFERENCE, SERVE_NAME = "in-process handlers", "Flask + gunicorn gevent (reference)", "`serve`"
FLOOR = "gunicorn gevent, an app answering `[]` (transport floor)"
SPIN = "the floor, spinning as long as the handlers take in-process"
START_TIMEOUT_SECONDS = 120


@dataclass
class Samples:
    """Latencies of every request of a target in a scenario, and the wall time of the rounds."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


def train(scratch: Path) -> Path:
    """The sample model, with ``user_src/inference.py`` packed as ``code/`` as SageMaker would have it."""
    rng = random.Random(7)
    for channel, count in (("train", 800), ("validation", 200)):
        (scratch / channel).mkdir(parents=True)
        with (scratch / channel / "data.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*(f"f{i}" for i in range(FEATURES)), "label"])
            for _ in range(count):
                x = [round(rng.gauss(0, 1), 4) for _ in range(FEATURES)]
                writer.writerow([*x, int(x[0] * x[1] + x[2] > 0)])
    model = scratch / "model"
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(scratch / "train"),
        "SM_CHANNEL_VALIDATION": str(scratch / "validation"),
        "SM_MODEL_DIR": str(model),
        "SM_OUTPUT_DATA_DIR": str(scratch / "output"),
    }
    subprocess.run([PYTHON, str(USER_SRC / "train.py")], env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
    (model / "code").mkdir()
    shutil.copy(USER_SRC / "inference.py", model / "code")
    return model


def csv_body(rows: int) -> str:
    rng = random.Random(rows)
    return "".join(",".join(f"{rng.gauss(0, 1):.4f}" for _ in range(FEATURES)) + "\n" for _ in range(rows))


# --- the reference and the floor (this file run with --reference or --floor, PORT MODEL_DIR) --------------


def reference_app(model_dir: Path) -> Any:
    """sagemaker-containers' serving app, reduced to its request path: Flask, the user's handlers (defaults
    where the module has none, as ``serve`` fills them), a ``(body, content_type)`` result as the response."""
    import flask

    from custom_framework_training.serving import handlers

    found = handlers.load(model_dir / "code", "inference.py")
    model = handlers.load_model(found, model_dir)
    app = flask.Flask("reference")

    @app.route("/ping", methods=["GET"])
    def ping() -> flask.Response:
        return flask.Response(status=200)

    @app.route("/invocations", methods=["POST"])
    def invocations() -> flask.Response:
        request = flask.request
        content_type = request.headers.get("ContentType") or request.content_type or "application/json"
        accept = request.headers.get("Accept") or "application/json"
        body = request.get_data(as_text=content_type in ("application/json", "text/csv"))
        result = found.output_fn(found.predict_fn(found.input_fn(body, content_type), model), accept)
        if isinstance(result, tuple):
            return flask.Response(response=result[0], status=200, mimetype=result[1])
        return flask.Response(response=result, status=200, mimetype=accept)

    return app


def floor_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """What the same workers and clients cost with no handler at all: the body read, a two-byte answer; after
    holding the CPU for ``X-Spin-Seconds`` if sent (the handlers' time, without their use of the caches)."""
    environ["wsgi.input"].read()
    end = time.perf_counter() + float(environ.get("HTTP_X_SPIN_SECONDS") or 0)
    while time.perf_counter() < end:
        pass
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"[]"]


def serve_reference(port: int, model_dir: Path, floor: bool) -> None:
    from gunicorn.app.base import BaseApplication

    from custom_framework_training.serving import environment, startup

    settings = environment.from_environ()
    startup.limit_threads(settings.workers)
    app = floor_app if floor else reference_app(model_dir)

    class Reference(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": [f"127.0.0.1:{port}"],
                "workers": settings.workers,
                "worker_class": "gevent",
                "worker_connections": 1000 * settings.workers,
                "timeout": settings.timeout_seconds,
                "preload_app": True,
                "control_socket_disable": True,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Reference().run()


# --- clients ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int) -> subprocess.Popen:
    """A server process, once ``/ping`` answers 200."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{command} did not start")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Client:
    """One keep-alive connection; each request's answer is checked, so a fast error cannot pass for speed."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.headers = headers
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, body: str, count: int, latencies: list[float]) -> None:
        for _ in range(count):
            started = time.perf_counter()
            self.connection.request("POST", "/invocations", body, self.headers)
            response = self.connection.getresponse()
            answer = response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200 or response.will_close:
                raise RuntimeError(f"answered {response.status} (closing: {response.will_close}): {answer[:200]!r}")


def worker_pids(server: subprocess.Popen) -> list[int]:
    """The gunicorn workers of a server (the process started is its master)."""
    return [int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]


def serving_worker(port: int, client: Client, workers: list[int]) -> int:
    """The worker holding the server end of ``client``'s connection, found through /proc."""
    client_port = client.connection.sock.getsockname()[1]
    inodes = {
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if int(fields[1].rsplit(":", 1)[1], 16) == port and int(fields[2].rsplit(":", 1)[1], 16) == client_port
    }
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return pid
    raise RuntimeError(f"no worker of {workers} holds the connection from port {client_port}")


def balanced_clients(
    server: subprocess.Popen, port: int, count: int, body: str, headers: dict[str, str]
) -> list[Client]:
    """``count`` warmed connections spread evenly over the server's workers.

    Which worker accepts a connection is the kernel's draw (the same for both stacks, gunicorn's
    gevent worker in each), and with few kept-alive connections an uneven draw decides the
    latency; so each connection is kept only while its worker holds no more than its share.
    """
    workers = worker_pids(server)
    share = -(-count // len(workers))
    held: dict[int, int] = dict.fromkeys(workers, 0)
    clients: list[Client] = []
    for _ in range(100 * count):
        client = Client(port, headers)
        client.send(body, WARMUP_PER_BLOCK, [])
        worker = serving_worker(port, client, workers)
        if held[worker] < share:
            held[worker] += 1
            clients.append(client)
            if len(clients) == count:
                return clients
        else:
            client.connection.close()
    raise RuntimeError(f"could not spread {count} connections over {len(workers)} workers")


def over_http(
    server: subprocess.Popen,
    port: int,
    clients: int,
    body: str,
    count: int,
    samples: Samples,
    headers: dict[str, str] = HEADERS,
) -> None:
    """``count`` requests from each of ``clients`` clients at once, each in its own thread on a connection of its
    own, opened and warmed first (the servers close connections left idle between blocks)."""
    connected = balanced_clients(server, port, clients, body, headers)
    per_client: list[list[float]] = [[] for _ in connected]
    errors: list[BaseException] = []
    gate = threading.Barrier(clients + 1)

    def run(client: Client, latencies: list[float]) -> None:
        try:
            gate.wait()
            client.send(body, count, latencies)
        except BaseException as e:  # reported by the main thread
            gate.abort()
            errors.append(e)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(connected, per_client, strict=True)]
    try:
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        samples.seconds += time.perf_counter() - started
    finally:
        for client in connected:
            client.connection.close()
    if errors:
        raise errors[0]
    for latencies in per_client:
        samples.latencies.extend(latencies)


def in_process(call: Callable[[], object], count: int, samples: Samples) -> None:
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        call()
        samples.latencies.append(time.perf_counter() - begin)
    samples.seconds += time.perf_counter() - started


def handler_chain(model_dir: Path, body: str) -> Callable[[], object]:
    """What ``serve`` runs for a request, called directly: the handlers as the server loads them."""
    from custom_framework_training.serving import handlers

    found = handlers.load(model_dir / "code", "inference.py")
    model = handlers.load_model(found, model_dir)
    return lambda: found.output_fn(found.predict_fn(found.input_fn(body, "text/csv"), model), "application/json")


# --- the run and its report -------------------------------------------------------------------------------


Results = dict[tuple[int, int], dict[str, list[Samples]]]  # (rows, clients) -> target -> one Samples a round


def measure(model_dir: Path, rounds: int) -> Results:
    bodies = {rows: csv_body(rows) for rows, _ in SCENARIOS}
    ports = {SERVE_NAME: free_port(), REFERENCE: free_port(), FLOOR: free_port()}
    commands = {
        SERVE_NAME: [
            str(SERVE),
            "--host",
            "127.0.0.1",
            "--port",
            str(ports[SERVE_NAME]),
            "--model-dir",
            str(model_dir),
        ],
        REFERENCE: [PYTHON, __file__, "--reference", str(ports[REFERENCE]), str(model_dir)],
        FLOOR: [PYTHON, __file__, "--floor", str(ports[FLOOR]), str(model_dir)],
    }
    servers = {}
    try:
        for name, command in commands.items():
            servers[name] = start(command, ports[name])
        chains = {rows: handler_chain(model_dir, body) for rows, body in bodies.items()}
        for rows, call in chains.items():
            in_process(call, WARMUP[rows], Samples())
            for name, port in ports.items():
                over_http(servers[name], port, 1, bodies[rows], WARMUP[rows], Samples())
        results: Results = {
            scenario: {name: [] for name in (IN_PROCESS, FLOOR, SPIN, REFERENCE, SERVE_NAME)} for scenario in SCENARIOS
        }
        for round_number in range(rounds):
            order = [FLOOR, REFERENCE, SERVE_NAME] if round_number % 2 == 0 else [SERVE_NAME, REFERENCE, FLOOR]
            for rows, count in SCENARIOS:
                targets = results[rows, count]
                if count == 1:
                    targets[IN_PROCESS].append(Samples())
                    in_process(chains[rows], REQUESTS[rows], targets[IN_PROCESS][-1])
                    targets[SPIN].append(Samples())
                    spin = {**HEADERS, "X-Spin-Seconds": str(targets[IN_PROCESS][-1].p(50))}
                    over_http(servers[FLOOR], ports[FLOOR], 1, bodies[rows], REQUESTS[rows], targets[SPIN][-1], spin)
                for name in order:
                    targets[name].append(Samples())
                    over_http(servers[name], ports[name], count, bodies[rows], REQUESTS[rows], targets[name][-1])
        return results
    finally:
        for process in servers.values():
            stop(process)


def pooled(rounds: list[Samples]) -> Samples:
    return Samples([latency for samples in rounds for latency in samples.latencies], sum(s.seconds for s in rounds))


def paired(rounds: list[Samples], baselines: list[Samples], metric: Callable[[Samples], float]) -> float:
    """The median over rounds of ``metric`` against the baseline measured back to back with it in that round."""
    return statistics.median(metric(s) / metric(b) for s, b in zip(rounds, baselines, strict=True))


def p50(samples: Samples) -> float:
    return samples.p(50)


def throughput(samples: Samples) -> float:
    return samples.throughput


def report(results: Results, rounds: int) -> None:
    """The table, then each goal with its ratio and whether it was met."""
    print(
        f"\nServing CSV in, JSON out: {rounds} rounds, a round being {REQUESTS[1]} one-row or {REQUESTS[1000]} "
        f"1,000-row requests per client and target; {os.cpu_count()} cores, 2 workers a server. p50 and p99 over all "
        "rounds; the ratios are medians over rounds of each round's ratio (targets measured back to back).\n"
    )
    print(
        "| rows | clients | target | p50 ms | p99 ms | req/s | p50 / reference | req/s / reference | p50 / in-process |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (rows, clients), targets in results.items():
        for name, samples in targets.items():
            if not samples:
                continue
            whole = pooled(samples)
            reference = targets[REFERENCE]
            versus = f"{paired(samples, reference, p50):.2f}x | {paired(samples, reference, throughput):.2f}x"
            floor = f"{paired(samples, targets[IN_PROCESS], p50):.2f}x" if targets[IN_PROCESS] else "—"
            print(
                f"| {rows:,} | {clients} | {name} | {whole.p(50) * 1e3:.3f} | {whole.p(99) * 1e3:.3f} | "
                f"{whole.throughput:.0f} | {versus} | {floor} |"
            )
    one, four, many = results[1, 1], results[1, 4], results[1000, 1]
    goals = [
        ("one row, 1 client: p50 <= 1.2x the reference", paired(one[SERVE_NAME], one[REFERENCE], p50), 1.2),
        ("one row, 4 clients: p50 <= 1.2x the reference", paired(four[SERVE_NAME], four[REFERENCE], p50), 1.2),
        ("one row, 4 clients: req/s >= the reference", paired(four[SERVE_NAME], four[REFERENCE], throughput), 1.0),
        ("1,000 rows, 1 client: p50 within 5% of in-process", paired(many[SERVE_NAME], many[IN_PROCESS], p50), 1.05),
    ]
    print("\nGoals:\n")
    for text, ratio, bound in goals:
        met = ratio >= bound if ">=" in text else ratio <= bound
        print(f"- {text}: **{ratio:.2f}x** ({'met' if met else 'missed'})")
    print("\nWhat a request adds to the handlers called in-process, 1 client (p50, median over rounds):\n")
    for rows in (1, 1000):
        targets = results[rows, 1]
        added = {
            name: statistics.median(s.p(50) - b.p(50) for s, b in zip(targets[name], targets[IN_PROCESS], strict=True))
            for name in (SERVE_NAME, REFERENCE)
        }
        floor = statistics.median(s.p(50) for s in targets[FLOOR])
        spun = statistics.median(s.p(50) - b.p(50) for s, b in zip(targets[SPIN], targets[IN_PROCESS], strict=True))
        print(
            f"- {rows:,} row{'s' * (rows > 1)}: `serve` {added[SERVE_NAME] * 1e3:.3f} ms, the reference "
            f"{added[REFERENCE] * 1e3:.3f} ms; the transport floor answers in {floor * 1e3:.3f} ms, and adds "
            f"{spun * 1e3:.3f} ms when its app holds the CPU as long as the handlers"
        )


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        results = measure(train(Path(scratch)), rounds)
    out = io.StringIO()
    with redirect_stdout(out):
        report(results, rounds)
    text = out.getvalue()
    print(text)
    RESULTS.write_text(f"# Serving results\n\nWritten by `benchmarks/serving.py {rounds}`.\n{text}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--reference", "--floor"):
        serve_reference(int(sys.argv[2]), Path(sys.argv[3]), floor=sys.argv[1] == "--floor")
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
