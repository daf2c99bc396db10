"""A stop signal to the processing entry reaches the script, which runs in its own interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import textwrap

import pytest
from servers import wait_until

SCRIPT = """
    import signal, sys, time
    def stop(number, frame):
        print(f"script got signal {number}", flush=True)
        sys.exit(0 if number == signal.SIGTERM else 5)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 5)])
def test_a_stop_signal_to_the_entry_reaches_the_script(tmp_path, stop, status):
    source = tmp_path / "evaluate.py"
    source.write_text(textwrap.dedent(SCRIPT))
    with tarfile.open(tmp_path / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="evaluate.py")
    out = tmp_path / "out.txt"
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    with out.open("w") as sink:
        entry = subprocess.Popen(
            [sys.executable, "-m", "custom_framework_training.processing", "sourcedir.tar.gz", "evaluate.py"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "ready" in out.read_text(), "the script is ready", entry, 60, out)
        entry.send_signal(stop)
        assert entry.wait(timeout=60) == status, out.read_text()
    finally:
        entry.kill()
        entry.wait()
    assert f"script got signal {int(stop)}" in out.read_text()
