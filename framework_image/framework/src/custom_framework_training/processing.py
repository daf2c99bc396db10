"""The framework's processing entry: ``python3 -m custom_framework_training.processing ARCHIVE SCRIPT [ARGS...]``.

A processing job (the pipeline's evaluation step) gets the user's ``sourcedir.tar.gz``
as an input, as a training job gets ``sagemaker_submit_directory``. This unpacks it,
installs its ``requirements.txt`` if it has one, and runs the script with the job's
arguments from the code folder, so the script imports its neighbours as in training.
A failure leaves its reason where SageMaker reads a processing job's exit message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from custom_framework_training import archives

USAGE = "usage: python3 -m custom_framework_training.processing ARCHIVE SCRIPT [ARGS...]"


def _message_file() -> Path:
    """``/opt/ml/output/message`` (``SAGEMAKER_BASE_DIR`` replaces ``/opt/ml``, as for training)."""
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "output" / "message"


def _fail(reason: str, code: int) -> int:
    path = _message_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason[-1024:])  # SageMaker keeps the first 1 KiB; the tail holds the error
    print(reason, file=sys.stderr)
    return code


def unpack(archive: Path, into: Path) -> None:
    """The code archive's files, refusing any member that would land outside ``into``."""
    archives.extract(archive, into)


def run(archive: Path, script: str, arguments: list[str]) -> int:
    """Unpack, install requirements, run ``script``; its exit code is the job's."""
    with tempfile.TemporaryDirectory(prefix="code-") as unpacked:
        return _run_in(Path(unpacked), archive, script, arguments)


def _run_in(code_dir: Path, archive: Path, script: str, arguments: list[str]) -> int:
    unpack(archive, code_dir)
    if not (code_dir / script).is_file():
        return _fail(f"{script} is not in {archive.name}: name the evaluation script in training.toml", 2)
    if (code_dir / "requirements.txt").is_file():
        install = [sys.executable, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"]
        if subprocess.run(install, cwd=code_dir, check=False).returncode:
            return _fail(f"pip install -r requirements.txt failed in {archive.name}", 1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")]))}
    tail: deque[str] = deque(maxlen=20)  # the error is at the end of stderr
    with subprocess.Popen([sys.executable, script, *arguments], cwd=code_dir, env=env, stderr=subprocess.PIPE) as job:
        assert job.stderr is not None
        for line in job.stderr:  # passed on as it comes, so the log shows progress
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
            tail.append(line.decode(errors="replace").rstrip())
    if job.returncode:
        return _fail(f"{script} exited {job.returncode}: " + "\n".join(tail), job.returncode)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    return run(Path(args[0]), args[1], args[2:])


if __name__ == "__main__":
    sys.exit(main())
