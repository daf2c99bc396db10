"""Where a no-op job's fixed cost goes: ``train-local`` of an empty ``train.py``, phase by phase.

Each run is traced by ``strace -f --seccomp-bpf -e trace=execve,exit_group`` (only those two
calls stop the process, so the trace costs little), and the phases are the gaps between the
process starts and exits of the job's chain: the CLI, its namespace probe, the host's init
(``host_init.py process``, which enters the namespace in the toolkit's process before its exec),
the toolkit (``train``) and the user's script. Medians over ``runs``, next to the plain ``python train.py``.
Run: ``.venv/bin/python benchmarks/job_phases.py [runs]`` (needs strace); the table also goes to
``benchmarks/results-job-phases.md``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from timing import PYTHON, wall_time

RESULTS = Path(__file__).with_name("results-job-phases.md")


@dataclass(frozen=True)
class Event:
    pid: int
    at: float
    call: str


def events(trace: Path) -> list[Event]:
    """The trace's ``execve`` (successful) and ``exit_group`` lines."""
    found = []
    for line in trace.read_text().splitlines():
        pid, at, call = line.split(None, 2)
        if call.startswith("exit_group") or (call.startswith("execve(") and call.endswith("= 0")):
            found.append(Event(int(pid), float(at), call))
    return found


def phases(trace: Path) -> dict[str, float]:
    """Seconds per phase of one traced job."""
    seen = events(trace)

    def first(test) -> Event:
        return next(event for event in seen if test(event))

    def exit_of(start: Event) -> Event:
        return first(lambda e: e.pid == start.pid and e.at >= start.at and e.call.startswith("exit_group"))

    cli = seen[0]
    init = first(lambda e: e.call.startswith("execve") and '"process"' in e.call)
    toolkit = first(lambda e: e.call.startswith("execve") and e.pid != init.pid and e.at > init.at)
    script = first(lambda e: e.call.startswith("execve") and '"train.py"' in e.call)
    done = [e for e in seen if e.pid == cli.pid and e.call.startswith("exit_group")][-1]
    probes = [e for e in seen if e.call.startswith("execve") and '"--probe"' in e.call]  # none once remembered
    probing = sum(exit_of(probe).at - probe.at for probe in probes)
    marks = [
        ("CLI: start, imports, packing, checks, job folder, job venv", cli.at, init.at - probing),
        ("CLI: user-namespace probe (0 once a success is remembered)", 0, probing),
        ("host init and namespace entry (host_init.py process)", init.at, toolkit.at),
        ("toolkit: import, environment, unpacking", toolkit.at, script.at),
        ("the script itself", script.at, exit_of(script).at),
        ("toolkit: after the script", exit_of(script).at, exit_of(toolkit).at),
        ("CLI: artifacts, scratch removal, exit", exit_of(toolkit).at, done.at),
    ]
    return {name: end - start for name, start, end in marks} | {"total": done.at - cli.at}


def main(runs: int) -> None:
    if shutil.which("strace") is None:
        sys.exit("job_phases.py needs strace (apt-get install strace)")
    with tempfile.TemporaryDirectory(prefix="bench-job-phases-") as scratch:
        tmp = Path(scratch)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("")
        job = [PYTHON, "-m", "pipeline", "train-local", "--source-dir", str(tmp / "src"), "--output-dir", str(tmp)]
        trace = ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve,exit_group", "-o", str(tmp / "trace")]
        wall_time(job)  # the job environment and caches are warm before timing
        samples: dict[str, list[float]] = {}
        plain = []
        for _ in range(runs):
            plain.append(wall_time([PYTHON, str(tmp / "src" / "train.py")]))
            subprocess.run([*trace, *job], check=True, capture_output=True)
            for name, seconds in phases(tmp / "trace").items():
                samples.setdefault(name, []).append(seconds)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print(f"\nA no-op job's phases, traced (median of {runs} runs, load average {os.getloadavg()[0]:.1f})\n")
        print("| phase | median s |")
        print("| --- | ---: |")
        for name, values in samples.items():
            print(f"| {name} | {statistics.median(values):.3f} |")
        print(f"| plain `python train.py` (untraced) | {statistics.median(plain):.3f} |")
    RESULTS.write_text(
        f"# Where a no-op job's time goes\n\nWritten by `benchmarks/job_phases.py {runs}`.\n{out.getvalue()}"
    )
    print(out.getvalue())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
