"""How the local job's costs grow with the work: model size and emulated hosts.

    .venv/bin/python benchmarks/scaling.py [RUNS]

- **Models, 1 → 500 MB** (float32 weights, which barely compress): ``tar czf`` (the
  baseline), tarfile's zlib at level 6 (what ``model.tar.gz`` used before) and
  ``pipeline.local.files.pack_dir`` (ISA-L, level 1, every CPU).
- **Hosts, 1 → 4** on this machine: ``train-local --instance-count N`` of a script that does a
  fixed amount of BLAS work per host, against N plain copies of the script run at once with
  the thread pools at their defaults (the baseline a user would try by hand).

Results go to ``benchmarks/results-scaling.md``; the README quotes them.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
import tempfile
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


def main(runs: int) -> None:
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
        models(Path(scratch), runs)
        hosts(Path(scratch), runs)
    RESULTS.write_text("# Scaling: model packing and emulated hosts\n" + out.getvalue())
    print(out.getvalue())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
