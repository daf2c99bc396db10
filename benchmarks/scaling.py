"""How the local job's costs grow with the work: model size, emulated hosts and channel data.

    .venv/bin/python benchmarks/scaling.py [RUNS] [models|hosts|channels ...]

- **Models, 1 → 500 MB** (float32 weights, which barely compress): ``tar czf`` (the
  baseline), tarfile's zlib at level 6 (what ``model.tar.gz`` used before) and
  ``pipeline.local.files.pack_dir`` (ISA-L, level 1, every CPU).
- **Hosts, 1 → 4** on this machine: ``train-local --instance-count N`` of a script that does a
  fixed amount of BLAS work per host, against N plain copies of the script run at once with
  the thread pools at their defaults (the baseline a user would try by hand).
- **Channels, 1 MB → 1 GB and 10 → 10,000 files**, 1 and 4 hosts: ``train-local --train DATA``
  of a script that lists its channel and reads one byte of each file, against the same script
  run by hand on the data (the baseline) and ``cp -r`` of the data; the overhead per GB above
  the 1 MB case is what the data's size costs the job.

Results go to ``benchmarks/results-scaling.md`` (a run of some sections replaces only those);
the README quotes them.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from timing import PYTHON, ROOT, interleaved, report, wall_time

from pipeline.local.files import pack_dir

RESULTS = Path(__file__).with_name("results-scaling.md")
BLAS_WORK = """
import numpy as np
a = np.random.default_rng(0).standard_normal((1500, 1500))
for _ in range(12):
    a = np.tanh(a @ a / 1500)
print("done")
"""
# What a job does with its channel: every file found, one byte of each read (the data's size alone costs nothing).
CHANNEL_WORK = """
import os
folder = os.environ["SM_CHANNEL_TRAIN"]
count = 0
for parent, _, names in os.walk(folder):
    for name in names:
        with open(os.path.join(parent, name), "rb") as data:
            count += len(data.read(1))
print(count)
"""
MB = 1024 * 1024
# (label, total megabytes, files): sizes at a few files each, then many small files.
CHANNEL_CASES = (
    ("1 MB", 1, 4),
    ("100 MB", 100, 4),
    ("1 GB", 1024, 4),
    ("10 files", 1, 10),
    ("10,000 files", 10, 10_000),
)
PER_GB = ("1 MB", "1 GB")  # the cases whose difference is the cost of a gigabyte (1023 MB)


def model(folder: Path, megabytes: int) -> Path:
    folder.mkdir(parents=True)
    weights = np.random.default_rng(0).standard_normal(megabytes * 262_144).astype(np.float32)
    (folder / "weights.bin").write_bytes(weights.tobytes())
    return folder


def zlib6(folder: Path, archive: Path) -> float:
    import time

    start = time.perf_counter()
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return time.perf_counter() - start


def timed_pack(folder: Path, archive: Path) -> float:
    import time

    start = time.perf_counter()
    pack_dir(folder, archive)
    return time.perf_counter() - start


def models(tmp: Path, runs: int) -> None:
    out = tmp / "out.tar.gz"
    for megabytes in (1, 100, 500):
        folder = model(tmp / f"model-{megabytes}", megabytes)
        baseline = f"tar czf, {megabytes} MB (baseline)"
        medians = interleaved(
            {
                baseline: lambda folder=folder: wall_time(["tar", "czf", str(out), "-C", str(folder), "."]),
                f"tarfile zlib 6 (before), {megabytes} MB": lambda folder=folder: zlib6(folder, out),
                f"pack_dir (ISA-L 1), {megabytes} MB": lambda folder=folder: timed_pack(folder, out),
            },
            runs=runs,
        )
        report(f"Packing a {megabytes} MB model", medians, baseline, runs)


def hosts(tmp: Path, runs: int) -> None:
    source = tmp / "blas"
    source.mkdir()
    (source / "train.py").write_text(BLAS_WORK)
    script = str(source / "train.py")
    numbers = iter(range(10_000))
    for count in (1, 4):
        baseline = f"{count} plain script(s) at once (baseline)"
        parallel = " & ".join([f"{PYTHON} {script} >/dev/null"] * count) + " & wait"

        def local(count: int = count) -> float:
            command = [PYTHON, "-m", "pipeline", "train-local", "--source-dir", str(source)]
            command += ["--instance-count", str(count), "--output-dir", str(tmp / "jobs"), "--job-name"]
            return wall_time([*command, f"h{next(numbers)}"])

        medians = interleaved(
            {
                baseline: lambda parallel=parallel: wall_time(["bash", "-c", parallel]),
                f"train-local, {count} host(s)": local,
            },
            runs=runs,
        )
        report(f"{count} host(s) of BLAS work", medians, baseline, runs)


def channel_data(folder: Path, megabytes: int, files: int) -> Path:
    """``files`` files of random bytes, ``megabytes`` in all, in a few subfolders."""
    rng = np.random.default_rng(0)
    size = megabytes * MB // files
    for i in range(files):
        path = folder / f"part-{i % 10}" / f"{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for start in range(0, size, 64 * MB):
                out.write(rng.bytes(min(64 * MB, size - start)))
    return folder


def copied(source: Path, target: Path) -> float:
    """``cp -r``'s time; the copy is removed, and written back, outside the timed region (the next
    command would otherwise pay for its writeback)."""
    seconds = wall_time(["cp", "-r", str(source), str(target)])
    shutil.rmtree(target)
    os.sync()
    return seconds


def channels(tmp: Path, runs: int) -> None:
    code = tmp / "channel-src"
    code.mkdir()
    (code / "train.py").write_text(CHANNEL_WORK)
    numbers = iter(range(100_000))
    jobs = tmp / "channel-jobs"

    def local(count: int, data: Path) -> float:
        command = [PYTHON, "-m", "pipeline", "train-local", "--source-dir", str(code), "--train", str(data)]
        command += ["--instance-count", str(count), "--output-dir", str(jobs), "--job-name"]
        seconds = wall_time([*command, f"c{next(numbers)}"])
        shutil.rmtree(jobs)
        return seconds

    kept = {}
    for label, megabytes, files in CHANNEL_CASES:
        data = channel_data(tmp / f"channel-data-{megabytes}-{files}", megabytes, files)
        baseline = f"plain script, {label} (baseline)"
        script = ["env", f"SM_CHANNEL_TRAIN={data}", PYTHON, str(code / "train.py")]
        timed: dict[str, Callable[[], float]] = {
            baseline: lambda script=script: wall_time(script),
            f"cp -r, {label}": lambda data=data: copied(data, tmp / "channel-copy"),
            f"train-local, {label}, 1 host": lambda data=data: local(1, data),
            f"train-local, {label}, 4 hosts": lambda data=data: local(4, data),
        }
        report(f"A {label} channel ({files} files)", interleaved(timed, runs=runs), baseline, runs)
        if label in PER_GB:
            kept[label] = data
        else:
            shutil.rmtree(data)
    # The per-GB cost: the two sizes interleaved in one loop (no copy between them), so that drift
    # over the minutes above, and the writeback of cp's gigabyte, weigh on neither.
    small, large = PER_GB
    timed = {
        f"train-local, {label}, {count} host(s)": lambda count=count, data=kept[label]: local(count, data)
        for count in (1, 4)
        for label in PER_GB
    }
    medians = interleaved(timed, runs=runs)
    for data in kept.values():
        shutil.rmtree(data)  # a gigabyte is not left behind
    print(f"\nCost per GB of channel data above the {small} case ({small} and {large} interleaved, median of {runs})\n")
    print(f"| hosts | {small} s | {large} s | s per GB |")
    print("| ---: | ---: | ---: | ---: |")
    for count in (1, 4):
        low, high = (medians[f"train-local, {label}, {count} host(s)"] for label in PER_GB)
        print(f"| {count} | {low:.3f} | {high:.3f} | {(high - low) / (1023 / 1024):.3f} |")


SECTIONS = {"models": ("Models", models), "hosts": ("Hosts", hosts), "channels": ("Channels", channels)}
TITLE = "# Scaling: model packing, emulated hosts and channel data\n"


def merged(previous: str, sections: dict[str, str]) -> str:
    """The results file with ``sections`` (heading -> body) replaced or added, the others kept."""
    kept: dict[str, str] = {}
    for chunk in previous.split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        kept[heading] = body
    kept.update(sections)
    return TITLE + "".join(f"\n## {heading}\n{body.rstrip()}\n" for heading, body in kept.items())


def main(runs: int, chosen: list[str]) -> None:
    done = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in chosen or list(SECTIONS):
            heading, measure = SECTIONS[name]
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                measure(Path(scratch), runs)
            done[heading] = out.getvalue()
            print(out.getvalue())
    RESULTS.write_text(merged(RESULTS.read_text() if RESULTS.exists() else "", done))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    main(int(numbers[0]) if numbers else 3, [arg for arg in sys.argv[1:] if not arg.isdigit()])
