"""Wall-time helpers: commands run interleaved in one session, reported as medians and ratios.

Machines are noisy, so every candidate is compared with a baseline measured in
the same run, alternating the two so drift hits both alike.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# The project's bytecode, as a user's first run leaves it. Where PYTHONDONTWRITEBYTECODE is set
# (this machine's shells set it), every timed CLI run would otherwise compile the modules it
# imports (about 0.07 s), which no user pays after their first run.
compileall.compile_dir(ROOT / "pipeline", quiet=1)


def wall_time(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> float:
    """Seconds one run of ``command`` takes; a failing command aborts the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = done.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{tail}")
    return seconds


def until_stamped(command: Sequence[str], stamp: Path) -> float:
    """Seconds from spawning ``command`` to the ``time.monotonic()`` it writes to ``stamp`` (a clock all
    processes share): what a user waits for, without the clean-up the command does after it."""
    stamp.unlink(missing_ok=True)
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode or not stamp.is_file():
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return float(stamp.read_text()) - start


def interleaved(commands: Mapping[str, Callable[[], float]], runs: int = 7, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each timed callable, calling them in turn ``runs`` times."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(warmup + runs):
        for name, timed in commands.items():
            seconds = timed()
            if i >= warmup:
                samples[name].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: Mapping[str, float], baseline: str, runs: int) -> None:
    """A markdown table: median seconds, and the ratio to the baseline."""
    print(f"\n{title} (median of {runs} runs, {os.cpu_count()} cores)\n")
    print("| command | median s | ratio to baseline |")
    print("| --- | ---: | ---: |")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {seconds / medians[baseline]:.2f}x |")


def script_environment(channels: Mapping[str, Path], scratch: Path) -> dict[str, str]:
    """What running ``train.py`` by hand needs: the SM_* paths the toolkit would set."""
    return {
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_MODEL_DIR": str(scratch / "model"),
        "SM_OUTPUT_DATA_DIR": str(scratch / "output"),
    }
