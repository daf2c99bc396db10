"""Local hosts run the toolkit's own ``train`` entry with paramiko deferred (``toolkit_train.py``)."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from local_support import process_runner

from pipeline.local import runners

CHECK = """
import runpy, sys
launcher = runpy.run_path({path!r})  # as a module, not as __main__: defines, runs nothing
launcher["defer"]()
import sagemaker_training.trainer  # imports sagemaker_training.mpi, which imports paramiko
from sagemaker_training import mpi, smdataparallel
assert "invoke" not in sys.modules and "paramiko.transport" not in sys.modules, "paramiko loaded at start"
client = mpi.paramiko.SSHClient  # an MPI job's first SSH call
assert client.__module__ == "paramiko.client", client
assert mpi.paramiko.AutoAddPolicy.__module__ == "paramiko.client"
import paramiko
assert paramiko.SSHClient is client is smdataparallel.paramiko.SSHClient
print("ok")
"""


@pytest.fixture(scope="module")
def python() -> str:
    return str(process_runner().environment.root / "bin" / "python")


def test_paramiko_loads_at_its_first_use_not_at_the_toolkits_start(python):
    check = textwrap.dedent(CHECK.format(path=str(runners.TOOLKIT_TRAIN)))
    done = subprocess.run([python, "-P", "-c", check], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_the_launcher_calls_what_the_toolkits_train_command_calls(python):
    entry = subprocess.run(
        [python, "-c", "from importlib.metadata import entry_points; print(entry_points(name='train')['train'].value)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    module, function = entry.split(":")
    assert f"from {module} import {function}" in runners.TOOLKIT_TRAIN.read_text()
