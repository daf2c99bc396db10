"""``serve-local``: the image's server and the source dir's handlers, Docker-free, on a trained model."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from local_support import wait_for
from moto_server import free_port
from support import ROOT, run_cli


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
