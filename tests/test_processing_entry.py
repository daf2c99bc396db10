"""The image's processing entry, ``python3 -m custom_framework_training.processing ARCHIVE SCRIPT ARGS``:
the script runs exactly as ``python SCRIPT ARGS`` would run it, and a
failure leaves the end of stderr in ``/opt/ml/output/message``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

ENTRY = [sys.executable, "-m", "custom_framework_training.processing"]

# Reports what `python SCRIPT` promises a script.
PROBE = """
    import json, os, sys
    from neighbour import VALUE
    print("REPORT " + json.dumps({
        "argv": sys.argv, "name": __name__, "file": __file__, "cwd": os.getcwd(), "path0": sys.path[0],
        "neighbour": VALUE,
    }))
"""


def _entry(tmp_path: Path, files: dict[str, str], script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Pack ``files`` as the code archive and run the entry on it, ``SAGEMAKER_BASE_DIR`` standing for /opt/ml."""
    source = tmp_path / "source"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(textwrap.dedent(text))
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    return subprocess.run(
        [*ENTRY, str(archive), script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def _report(done: subprocess.CompletedProcess[str]) -> dict:
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    return json.loads(line.removeprefix("REPORT "))


def _message(tmp_path: Path) -> str | None:
    message = tmp_path / "ml" / "output" / "message"
    return message.read_text() if message.exists() else None


def _plain(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT`` from the unpacked code, the reference for what the entry reports."""
    return subprocess.run([sys.executable, script], cwd=tmp_path / "source", capture_output=True, text=True, timeout=60)


def test_the_script_runs_as_python_script_would(tmp_path):
    done = _entry(tmp_path, {"evaluate.py": PROBE, "neighbour.py": "VALUE = 42\n"}, "evaluate.py", "--x", "1")
    assert done.returncode == 0, done.stderr
    report = _report(done)
    code_dir = report["cwd"]
    assert report["argv"] == ["evaluate.py", "--x", "1"]
    assert report["name"] == "__main__"
    assert report["file"] == f"{code_dir}/evaluate.py" and report["path0"] == code_dir
    assert report["neighbour"] == 42
    assert not Path(code_dir).exists()  # the unpacked code is removed
    assert _message(tmp_path) is None


def test_after_a_requirements_install_the_script_runs_as_well(tmp_path):
    files = {"evaluate.py": PROBE, "neighbour.py": "VALUE = 7\n", "requirements.txt": "# nothing to install\n"}
    done = _entry(tmp_path, files, "evaluate.py")
    assert done.returncode == 0, done.stderr
    report = _report(done)
    assert report["argv"] == ["evaluate.py"] and report["neighbour"] == 7


@pytest.mark.parametrize(
    "text",
    [
        "import neighbour\nneighbour.fail()\n",  # an exception raised in another module
        "def broken(:\n",  # a syntax error: no traceback header, as python prints it
        "from neighbour import missing\n",
    ],
    ids=["exception", "syntax-error", "import-error"],
)
def test_an_uncaught_error_is_reported_as_python_reports_it(tmp_path, text):
    neighbour = "def fail():\n    raise ValueError('the model file is empty')\n"
    done = _entry(tmp_path, {"evaluate.py": text, "neighbour.py": neighbour}, "evaluate.py")
    assert done.returncode == 1
    plain = _plain(tmp_path, "evaluate.py")
    assert plain.returncode == 1
    # The same report, from the script's frames on; only the folder differs (the entry unpacks elsewhere).
    expected = plain.stderr.replace(str(tmp_path / "source"), "CODE")
    reported = done.stderr.replace(_code_dir(done.stderr), "CODE")
    assert reported.startswith(expected)
    message = _message(tmp_path)
    assert message is not None
    assert message.replace(_code_dir(message), "CODE") == f"evaluate.py exited 1: {expected.rstrip()}"


def _code_dir(report: str) -> str:
    """The folder the entry unpacked the code to, as a traceback names it."""
    line = next(line for line in report.splitlines() if "evaluate.py" in line and '"' in line)
    return line.split('"')[1].rsplit("/", 1)[0]


@pytest.mark.parametrize(
    ("text", "status", "reason"),
    [
        ("import sys\nsys.exit(3)\n", 3, "evaluate.py exited 3: "),
        ("import sys\nsys.exit('no held-out rows')\n", 1, "evaluate.py exited 1: no held-out rows"),
        ("import sys\nsys.exit(None)\n", 0, None),
        ("raise KeyboardInterrupt\n", 130, "evaluate.py exited 130: Traceback"),
    ],
    ids=["int", "message", "none", "keyboard-interrupt"],
)
def test_the_exit_status_is_the_one_python_would_give(tmp_path, text, status, reason):
    done = _entry(tmp_path, {"evaluate.py": text}, "evaluate.py")
    assert done.returncode == status
    # python itself dies by SIGINT after an uncaught KeyboardInterrupt: 128 + 2 to a shell, and here
    assert _plain(tmp_path, "evaluate.py").returncode == (-signal.SIGINT if status == 130 else status)
    message = _message(tmp_path)
    assert message == reason if reason is None else message.startswith(reason)


def test_threads_and_atexit_handlers_finish_before_the_reason_is_written(tmp_path):
    """As at the end of `python SCRIPT`: non-daemon threads are waited for, then atexit handlers run;
    what they print is in the reason, and the code folder is still there for them."""
    text = """
        import atexit, concurrent.futures, os, sys, threading, time
        here = os.getcwd()
        def late(what):
            time.sleep(0.3)
            # One write per line: print() writes the text and the newline apart, so two threads
            # printing at once may interleave ("pool: ...thread: ...", "") in any Python.
            sys.stderr.write(f"{what}: still writing\\n")
        threading.Thread(target=late, args=("thread",)).start()
        concurrent.futures.ThreadPoolExecutor(1).submit(late, "pool")  # never shut down by the script
        atexit.register(lambda: print(f"atexit: code folder there: {os.path.isdir(here)}", file=sys.stderr))
        sys.exit(4)
    """
    done = _entry(tmp_path, {"evaluate.py": text}, "evaluate.py")
    assert done.returncode == 4
    reason = _message(tmp_path).removeprefix("evaluate.py exited 4: ").splitlines()
    assert sorted(reason[:2]) == ["pool: still writing", "thread: still writing"]
    assert reason[2:] == ["atexit: code folder there: True"]


def test_the_reason_keeps_the_last_20_lines_of_stderr_from_any_writer(tmp_path):
    """Lines from a child process and from C code (os.write on fd 2) count as the script's own."""
    text = """
        import os, subprocess, sys
        for i in range(25):
            print(f"line {i}", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "import sys; print('from a child', file=sys.stderr)"], check=True)
        os.write(2, b"from fd 2\\n")
        raise SystemExit(2)
    """
    done = _entry(tmp_path, {"evaluate.py": text}, "evaluate.py")
    assert done.returncode == 2
    lines = _message(tmp_path).removeprefix("evaluate.py exited 2: ").splitlines()
    assert lines == [f"line {i}" for i in range(7, 25)] + ["from a child", "from fd 2"]
    assert "line 0\n" in done.stderr and done.stderr.index("line 24") < done.stderr.index("from fd 2")


def test_a_file_the_script_left_open_is_complete_after_the_exit(tmp_path):
    text = """
        import json, sys
        report = open(sys.argv[1], "w")
        report.write(json.dumps({"accuracy": 0.9}))
    """
    out = tmp_path / "evaluation.json"
    done = _entry(tmp_path, {"evaluate.py": text}, "evaluate.py", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"accuracy": 0.9}


def test_a_script_missing_from_the_archive_is_named(tmp_path):
    done = _entry(tmp_path, {"train.py": "print(1)\n"}, "evaluate.py")
    assert done.returncode == 2
    assert _message(tmp_path) == "evaluate.py is not in sourcedir.tar.gz: name the evaluation script in training.toml"
