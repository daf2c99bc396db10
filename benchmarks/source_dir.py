"""Source dirs of 10 to 10,000 files: ``definition --offline`` and ``train-local``'s own share against ``tar czf``.

Each source dir is a no-op ``train.py`` and ``files - 1`` Python modules of about 1.5 KB (varied
text, so they compress like code, not like copies). Per size, interleaved and as medians:

- ``tar czf`` of the dir (the baseline: packing it with the usual tool);
- ``definition --offline``, cold (a fresh copy of the dir, which the packing cache has never
  seen; the render cache is warm, since a code-only change never misses it) and after a one-file
  edit (one module appended to, the rest cached);
- ``train-local``'s own share, cold and after a one-file edit: its wall time less the toolkit's
  extraction of ``sourcedir.tar.gz`` into ``/opt/ml/code``, which SageMaker runs too (the
  seconds between the toolkit's "is empty, unzipping" log line and its next one).

The copies and edits happen outside the timed region. Targets (issue 22), at 10,000 files after a
one-file edit: ``definition`` <= 0.5 s, ``train-local``'s own share <= 1 s. Also printed: the
archive's size against one gzip stream of the same tar (what packing file by file costs in bytes).
Run: ``.venv/bin/python benchmarks/source_dir.py [runs] [largest]``; the tables also go to
``benchmarks/results-source-dir.md``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from itertools import count, pairwise
from pathlib import Path

from timing import PYTHON, interleaved, report, wall_time

from pipeline.definition import sourcedir

RESULTS = Path(__file__).with_name("results-source-dir.md")
SIZES = (10, 100, 1_000, 10_000)
PER_FOLDER = 100
BASELINE = "tar czf (baseline)"
WORDS = ("model", "data", "batch", "loss", "weight", "layer", "token", "score", "value", "index", "label", "metric")
# The toolkit's log: "<date> <time>,<ms> <logger> INFO <message>"
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
UNZIPPING = "is empty, unzipping"


def module_text(rng: random.Random, index: int) -> str:
    """About 1.5 KB of plausible Python: functions over varied names and numbers."""
    lines = [f'"""Module {index}: {" ".join(rng.choices(WORDS, k=8))}."""', ""]
    while sum(map(len, lines)) < 1500:
        name = "_".join(rng.choices(WORDS, k=3))
        lines += [
            f"def {name}_{rng.randrange(10**6)}(x, scale={rng.random():.6f}):",
            f"    return [v * scale + {rng.randrange(10**4)} for v in x if v != {rng.randrange(100)}]",
            "",
        ]
    return "\n".join(lines) + "\n"


def make_source(folder: Path, files: int) -> Path:
    """A no-op ``train.py`` and ``files - 1`` modules, a hundred per folder."""
    rng = random.Random(files)
    folder.mkdir(parents=True)
    (folder / "train.py").write_text("")
    for i in range(files - 1):
        path = folder / "lib" / f"p{i // PER_FOLDER:03d}" / f"m{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module_text(rng, i))
    return folder


def extraction_seconds(log: Path) -> float:
    """How long the toolkit took to unpack the code, from its log's millisecond timestamps."""
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        found = LOG_LINE.match(line)
        if found:
            stamps.append((datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f"), line))
    for (when, line), (after, _) in pairwise(stamps):
        if UNZIPPING in line:
            return (after - when).total_seconds()
    raise RuntimeError(f"{log}: no '{UNZIPPING}' line followed by another")


def size_cost(source: Path) -> str:
    """The archive's bytes against one gzip stream of the same tar (level 9, as before)."""
    archive = sourcedir.read(source).archive
    one_stream = gzip.compress(gzip.decompress(archive), compresslevel=9, mtime=0)
    ratio = len(archive) / len(one_stream)
    return f"{len(archive) / 1e3:,.0f} KB (one gzip stream: {len(one_stream) / 1e3:,.0f} KB, {ratio:.2f}x)"


def main(runs: int, largest: int) -> None:
    out = io.StringIO()
    header = "# Source dirs: definition and train-local against tar czf\n\n"
    header += f"Written by `.venv/bin/python benchmarks/source_dir.py {runs} {largest}`"
    header += f" (load average at the start: {os.getloadavg()[0]:.1f}).\n"
    with tempfile.TemporaryDirectory(prefix="bench-source-dir-") as scratch:
        for files in (size for size in SIZES if size <= largest):
            with contextlib.redirect_stdout(out):
                measure(Path(scratch) / f"{files}-files", files, runs)
            RESULTS.write_text(header + out.getvalue())  # each size as it ends: a long run shows progress
            print(f"{files:,} files done", file=sys.stderr)
    print(out.getvalue())


def measure(folder: Path, files: int, runs: int) -> None:
    """One size: the five rows, interleaved, then the extraction and size notes."""
    source = make_source(folder / "src", files)
    edited = source / "lib" / "p000" / "m00000.py" if files > 1 else source / "train.py"
    copies, edits, jobs = count(), count(), count()
    extraction: dict[str, list[float]] = {"cold": [], "edit": []}

    def fresh_copy() -> Path:
        copy = folder / f"copy-{next(copies)}"
        shutil.copytree(source, copy)
        return copy

    def edit() -> None:
        with edited.open("a") as out:
            out.write(f"# edit {next(edits)}\n")

    def definition(cold: bool) -> Callable[[], float]:
        def timed() -> float:
            target = fresh_copy() if cold else source
            if not cold:
                edit()
            return wall_time([PYTHON, "-m", "pipeline", "definition", "--offline", "--source-dir", str(target)])

        return timed

    def train_local(cold: bool) -> Callable[[], float]:
        def timed() -> float:
            target = fresh_copy() if cold else source
            if not cold:
                edit()
            name = f"bench-{next(jobs)}"
            command = [PYTHON, "-m", "pipeline", "train-local", "--source-dir", str(target)]
            seconds = wall_time([*command, "--output-dir", str(folder / "jobs"), "--job-name", name])
            unpacked = extraction_seconds(folder / "jobs" / name / "algo-1.log")
            extraction["cold" if cold else "edit"].append(unpacked)
            return seconds - unpacked

        return timed

    tarball = folder / "tar.tgz"
    started = time.perf_counter()
    wall_time([PYTHON, "-m", "pipeline", "definition", "--offline", "--source-dir", str(source)])  # warms both caches
    first = time.perf_counter() - started
    medians = interleaved(
        {
            BASELINE: lambda: wall_time(["tar", "czf", str(tarball), "-C", str(source), "."]),
            "definition --offline, cold": definition(cold=True),
            "definition --offline, one-file edit": definition(cold=False),
            "train-local own share, cold": train_local(cold=True),
            "train-local own share, one-file edit": train_local(cold=False),
        },
        runs=runs,
    )
    report(f"{files:,} files", medians, BASELINE, runs)
    for how, values in extraction.items():
        kept = sorted(values[-runs:])
        print(f"- toolkit's extraction (excluded above), {how}: median {kept[len(kept) // 2]:.3f} s")
    print(f"- first `definition` on the dir (render and pack): {first:.2f} s")
    print(f"- sourcedir.tar.gz: {size_cost(source)}; tar czf: {tarball.stat().st_size / 1e3:,.0f} KB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else SIZES[-1])
