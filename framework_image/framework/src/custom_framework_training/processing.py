"""The framework's processing entry: ``python3 -m custom_framework_training.processing ARCHIVE SCRIPT [ARGS...]``.

A processing job (the pipeline's evaluation step) gets the user's ``sourcedir.tar.gz``
as an input, as a training job gets ``sagemaker_submit_directory``. This unpacks it,
installs its ``requirements.txt`` if it has one, and runs the script with the job's
arguments from the code folder, so the script imports its neighbours as in training.
A failure leaves its reason where SageMaker reads a processing job's exit message: the
last lines of stderr, where the error is.

The script runs in this process, as ``python SCRIPT ARGS...`` would run it
(:mod:`custom_framework_training.main_script`): one interpreter start instead of two,
and no final garbage collection at the exit. After a ``requirements.txt`` install it runs
in a new interpreter instead, which sees the new packages as any later process would.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from custom_framework_training import archives, main_script
from custom_framework_training.stderr_tail import stderr_tail

USAGE = "usage: python3 -m custom_framework_training.processing ARCHIVE SCRIPT [ARGS...]"
TAIL_LINES = 20


def _message_file() -> Path:
    """``/opt/ml/output/message`` (``SAGEMAKER_BASE_DIR`` replaces ``/opt/ml``, as for training)."""
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "output" / "message"


def _fail(reason: str, code: int) -> int:
    path = _message_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason[-1024:])  # SageMaker keeps the first 1 KiB; the tail holds the error
    print(reason, file=sys.stderr)
    return code


def run(archive: Path, script: str, arguments: list[str]) -> int:
    """Unpack, install requirements, run ``script``; its exit code is the job's. Once the script
    has run here, this process ends as the interpreter would (:func:`main_script.shut_down`)."""
    code_dir = Path(tempfile.mkdtemp(prefix="code-"))
    try:
        return _run_in(code_dir, archive, script, arguments)
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)


def _run_in(code_dir: Path, archive: Path, script: str, arguments: list[str]) -> int:
    archives.extract(archive, code_dir)  # refusing any member that would land outside it
    if not (code_dir / script).is_file():
        return _fail(f"{script} is not in {archive.name}: name the evaluation script in training.toml", 2)
    installed = (code_dir / "requirements.txt").is_file()
    if installed:
        install = [sys.executable, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"]
        if subprocess.run(install, cwd=code_dir, check=False).returncode:
            return _fail(f"pip install -r requirements.txt failed in {archive.name}", 1)
    # The code folder is on PYTHONPATH, for the script and the processes it starts.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")]))
    os.chdir(code_dir)
    with stderr_tail(TAIL_LINES) as tail:
        if installed:
            code = subprocess.run([sys.executable, script, *arguments], check=False).returncode
        else:
            sys.path.insert(0 if sys.flags.safe_path else 1, str(code_dir))  # where PYTHONPATH's entries go
            code = main_script.run_as_main(code_dir / script, [script, *arguments])
            main_script.shut_down()
    if code:
        return _fail(f"{script} exited {code}: " + "\n".join(tail), code)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    return run(Path(args[0]), args[1], args[2:])


if __name__ == "__main__":
    status = main()
    gc.freeze()  # what the script left is not collected one object at a time before the exit
    sys.exit(status)
