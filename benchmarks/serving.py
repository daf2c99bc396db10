"""Serving: latency (p50, p99) and throughput of ``POST /invocations`` against an in-process ``predict``
on the same model, and the server choice (gunicorn, sync workers) against the alternatives.

Every request is one CSV row of the sample model's 8 features, sent from this process over
127.0.0.1 by a keep-alive client (a server that closes after each response, as gunicorn's sync
workers do, makes it reconnect: that cost is part of the numbers); counts are bounded. The
model is ``user_src/train.py``'s, trained on generated data; the handlers are ``user_src/inference.py``.
Run: ``.venv/bin/python benchmarks/serving.py [requests]``
"""

from __future__ import annotations

import csv
import dataclasses
import http.client
import importlib.metadata
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
from pathlib import Path

# As in each server worker: one thread per pool (two workers share the two cores).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from timing import PYTHON, ROOT  # noqa: E402

USER_SRC = ROOT / "user_src"
SERVE = Path(PYTHON).parent / "serve"
ROW = "0.5,-1.2,0.3,0.9,-0.4,1.1,0.0,-0.7\n"
WARMUP = 200
# The alternatives, each serving the same InferenceApp; run by this file with --server KIND.
ALTERNATIVES = ("gunicorn-gthread", "gunicorn-gevent", "gevent-pywsgi", "uvicorn-wsgi")


def train(scratch: Path) -> Path:
    """The sample model, with ``user_src/inference.py`` packed as ``code/`` as SageMaker would have it."""
    rng = random.Random(7)
    for channel, count in (("train", 800), ("validation", 200)):
        (scratch / channel).mkdir(parents=True)
        with (scratch / channel / "data.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*(f"f{i}" for i in range(8)), "label"])
            for _ in range(count):
                x = [round(rng.gauss(0, 1), 4) for _ in range(8)]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start(command: list[str], port: int) -> tuple[subprocess.Popen, float]:
    """A server process and the seconds from spawning it to its first 200 on /ping."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ping(port):
        if process.poll() is not None or time.perf_counter() - started > 120:
            stop(process)
            raise RuntimeError(f"{command} did not start")
        time.sleep(0.01)
    return process, time.perf_counter() - started


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def http_latencies(port: int, count: int) -> tuple[list[float], float]:
    """Seconds per request from one keep-alive client, and the wall time of all of them."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "text/csv", "Accept": "application/json"}
    samples = []
    try:
        for _ in range(WARMUP):
            connection.request("POST", "/invocations", ROW, headers)
            connection.getresponse().read()
        begin = time.perf_counter()
        for _ in range(count):
            start_one = time.perf_counter()
            connection.request("POST", "/invocations", ROW, headers)
            response = connection.getresponse()
            response.read()
            samples.append(time.perf_counter() - start_one)
            assert response.status == 200, response.status
        return samples, time.perf_counter() - begin
    finally:
        connection.close()


def concurrent_throughput(port: int, count: int, connections: int) -> float:
    """Requests per second with ``connections`` clients in parallel (threads: they wait on sockets)."""
    walls: list[float] = []
    threads = [
        threading.Thread(target=lambda: walls.append(http_latencies(port, count // connections)[1]))
        for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / max(walls)


def in_process_latencies(model_dir: Path, count: int) -> dict[str, list[float]]:
    """The baselines: ``predict`` alone, and the whole handler chain, on the model as the server loads it."""
    sys.path.insert(0, str(model_dir / "code"))
    import inference  # the handlers, as the server imports them

    model = inference.model_fn(str(model_dir))
    rows = inference.input_fn(ROW, "text/csv")
    calls: dict[str, Callable[[], object]] = {
        "in-process `estimator.predict` (baseline)": lambda: model.estimator.predict(rows.values),
        "in-process input_fn → predict_fn → output_fn": lambda: inference.output_fn(
            inference.predict_fn(inference.input_fn(ROW, "text/csv"), model), "application/json"
        ),
    }
    results = {}
    for name, call in calls.items():
        for _ in range(WARMUP):
            call()
        samples = []
        for _ in range(count):
            begin = time.perf_counter()
            call()
            samples.append(time.perf_counter() - begin)
        results[name] = samples
    return results


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if q < 100 else max(samples)


def installed_mb(*distributions: str) -> str:
    """On-disk size of installed distributions (their RECORD), or a note when one is not installed here."""
    total = 0
    for name in distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            return f"{name} not installed"
        total += sum(f.locate().stat().st_size for f in files if f.locate().is_file())
    return f"{total / 1e6:.1f} MB"


def serve_alternative(kind: str, port: int, model_dir: Path) -> None:
    """Run one alternative server on the same app and settings as ``serve`` (the --server mode of this file)."""
    from custom_framework_training.serving import environment, server, startup

    settings = dataclasses.replace(environment.from_environ(), model_dir=model_dir)
    startup.limit_threads(settings.workers)
    app = startup.build_app(settings)
    if kind.startswith("gunicorn-"):
        server.run(app, "127.0.0.1", port, settings, worker_class=kind.removeprefix("gunicorn-"))
    elif kind == "gevent-pywsgi":
        from gevent.pywsgi import WSGIServer

        # TCP_NODELAY as gunicorn sets it: without it, keep-alive responses stall 40 ms on delayed ACKs.
        pywsgi = WSGIServer(("127.0.0.1", port), app, log=None)
        pywsgi.init_socket()
        pywsgi.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pywsgi.serve_forever()
    elif kind == "uvicorn-wsgi":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, interface="wsgi", log_level="error")
    else:
        raise SystemExit(f"unknown server {kind}")


def main(requests: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = train(Path(scratch))
        for name, samples in in_process_latencies(model_dir, requests).items():
            rows.append((name, samples, len(samples) / sum(samples)))

        port = free_port()
        process, startup = start(
            [str(SERVE), "--host", "127.0.0.1", "--port", str(port), "--model-dir", str(model_dir)], port
        )
        try:
            samples, wall = http_latencies(port, requests)
            rows.append(("HTTP /invocations, `serve` (gunicorn sync, 2 workers), 1 client", samples, requests / wall))
            parallel = concurrent_throughput(port, requests, connections=2)
        finally:
            stop(process)

        comparison = {"gunicorn-sync (chosen)": (startup, statistics.median(samples), parallel)}
        for kind in ALTERNATIVES:
            port = free_port()
            command = [PYTHON, __file__, "--server", kind, str(port), str(model_dir)]
            process, startup = start(command, port)
            try:
                p50 = statistics.median(http_latencies(port, requests // 2)[0])
                comparison[kind] = (startup, p50, concurrent_throughput(port, requests // 2, connections=2))
            finally:
                stop(process)

    baseline = statistics.median(rows[0][1])
    print(f"\nServing one CSV row ({requests} requests each after {WARMUP} warm-up, {os.cpu_count()} cores)\n")
    print("| what | p50 ms | p99 ms | p50 ratio | throughput req/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, samples, throughput in rows:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"| {name} | {p50 * 1e3:.3f} | {p99 * 1e3:.3f} | {p50 / baseline:.1f}x | {throughput:.0f} |")
    print(f"| HTTP /invocations, 2 clients in parallel | | | | {parallel:.0f} |")

    print("\nServer choice: same app, same model (start-up = spawn to first 200 on /ping, model load included)\n")
    print("| server | start-up s | p50 ms | req/s, 2 clients | new packages in the image, notes |")
    print("| --- | ---: | ---: | ---: | --- |")
    packages = {
        "gunicorn-sync (chosen)": installed_mb("gunicorn"),
        "gunicorn-gthread": f"{installed_mb('gunicorn')}; keep-alive, but the timeout misses a stuck request",
        "gunicorn-gevent": f"{installed_mb('gunicorn', 'packaging')} (gunicorn, packaging); monkey-patches",
        "gevent-pywsgi": "none (gevent, werkzeug are there); one process, no supervision",
        "uvicorn-wsgi": f"{installed_mb('uvicorn', 'h11', 'click')} (uvicorn, h11, click); deprecated WSGI mode",
    }
    for kind, (startup, p50, throughput) in comparison.items():
        print(f"| {kind} | {startup:.2f} | {p50 * 1e3:.3f} | {throughput:.0f} | {packages[kind]} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        serve_alternative(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
