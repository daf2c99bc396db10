"""The local training job against running ``user_src/train.py`` directly on the same data.

Four measurements, each a median over ``runs``:

1. with the job environment cached: ``train-local``'s overhead over the plain script (target ≤ 0.5 s),
   for the sample's ``train.py`` and for a no-op one (the per-job fixed cost, which a script that
   imports little cannot hide behind its own imports);
2. creating the job environment on its own (a fresh cache folder each time; pip's own cache is
   left as it is, so this is the usual "first job after a change to framework_image/" cost);
3. ``train-local --container`` against the SDK's own local mode on the same image (podman's
   Docker API service, as ``tests/sdk_local.py`` runs it), skipped where podman or docker-compose
   is missing. The image is resolved once: without ``--image``, each job also runs
   ``framework_image/build-local.sh`` (its cached rebuild is timed once, on its own).

Run: ``.venv/bin/python benchmarks/local_job.py [runs] [--no-creation] [--no-container]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, until_stamped, wall_time

from pipeline.definition import sample_data

BASELINE = "python user_src/train.py (baseline)"
CREATE = "from pipeline.local import runners; runners.process_runner(None, lambda line: None)"


def cached(runs: int, data: dict[str, Path], tmp: Path) -> None:
    job = [PYTHON, "-m", "pipeline", "train-local", "--train", str(data["train"])]
    job += ["--validation", str(data["validation"]), "--output-dir", str(tmp / "jobs")]
    wall_time([PYTHON, "-c", CREATE])  # the environment exists before timing starts
    medians = interleaved(
        {
            BASELINE: lambda: wall_time([PYTHON, str(ROOT / "user_src" / "train.py")], script_environment(data, tmp)),
            "python -m pipeline train-local": lambda: wall_time(job),
        },
        runs=runs,
    )
    report("train-local, job environment cached, vs the plain script", medians, BASELINE, runs)
    base, local = medians.values()
    print(f"\noverhead: {local - base:.3f} s (target ≤ 0.5 s)")

    noop = tmp / "noop"
    noop.mkdir()
    (noop / "train.py").write_text("")
    plain = "python train.py, an empty script (baseline)"
    job = [PYTHON, "-m", "pipeline", "train-local", "--source-dir", str(noop), "--output-dir", str(tmp / "noop-jobs")]
    medians = interleaved(
        {
            plain: lambda: wall_time([PYTHON, str(noop / "train.py")]),
            "train-local, the empty script": lambda: wall_time(job),
        },
        runs=runs,
    )
    report("The per-job fixed cost: a no-op job", medians, plain, runs)
    base, local = medians.values()
    print(f"\nfixed cost: {local - base:.3f} s (target ≤ 0.5 s)")


def creation(runs: int, tmp: Path) -> None:
    samples = []
    for i in range(runs):
        env = {"XDG_CACHE_HOME": str(tmp / f"cache-{i}")}
        samples.append(wall_time([PYTHON, "-c", CREATE], env))
    lookups = interleaved(
        {
            "import the runner module (baseline)": lambda: wall_time([PYTHON, "-c", CREATE.split(";")[0]]),
            "import it and find the environment cached": lambda: wall_time([PYTHON, "-c", CREATE], env),
        },
        runs=runs,
    )
    print(f"\nJob environment creation (each in a new cache folder; {runs} runs, {os.cpu_count()} cores)\n")
    print(f"median {statistics.median(samples):.1f} s; all: {', '.join(f'{s:.1f}' for s in samples)} s")
    report("Finding the cached environment", lookups, "import the runner module (baseline)", runs)


def _image() -> str:
    if os.environ.get("CONTAINER_IMAGE"):
        return os.environ["CONTAINER_IMAGE"]
    from pipeline.local import container

    started = time.perf_counter()
    image = container.built_image(container.engine())
    print(f"\nframework_image/build-local.sh, nothing changed: {time.perf_counter() - started:.1f} s")
    return image


def containers(runs: int, data: dict[str, Path], tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import sdk_local  # the tests' SDK local mode harness

    missing = sdk_local.missing_tools()
    if missing:
        print(f"\n--container vs SDK local mode: skipped ({'; '.join(missing)})")
        return
    image = _image()
    job = [PYTHON, "-m", "pipeline", "train-local", "--image", image, "--train", str(data["train"])]
    job += ["--validation", str(data["validation"]), "--output-dir", str(tmp / "container-jobs")]
    numbers = iter(range(10_000))
    with sdk_local.podman_docker_api() as docker_host:

        def sdk() -> float:  # as a user's script runs it: import included, container removal not (sdk_as_user)
            command = [PYTHON, str(ROOT / "benchmarks" / "sdk_as_user.py"), str(tmp / "done"), "train"]
            command += ["--image", image, "--docker-host", docker_host, "--source-dir", str(ROOT / "user_src")]
            command += ["--work-dir", str(tmp / f"sdk-{next(numbers)}")]
            command += [f"--channel={name}={path}" for name, path in data.items()]
            return until_stamped(command, tmp / "done")

        medians = interleaved(
            {
                BASELINE: lambda: wall_time(
                    [PYTHON, str(ROOT / "user_src" / "train.py")], script_environment(data, tmp)
                ),
                "python -m pipeline train-local --container (--image given)": lambda: wall_time(job),
                "SDK local mode, fresh process (benchmarks/sdk_as_user.py)": sdk,
            },
            runs=runs,
        )
    report("train-local --container vs SDK local mode, same image", medians, BASELINE, runs)
    _, contained, sdk_seconds = medians.values()
    print(f"\nSDK local mode / train-local --container: {sdk_seconds / contained:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=7)
    parser.add_argument("--no-creation", action="store_true", help="skip timing the environment's creation")
    parser.add_argument("--no-container", action="store_true", help="skip --container and SDK local mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        data = sample_data.write(tmp / "data")
        cached(args.runs, data, tmp)
        if not args.no_creation:
            creation(args.runs, tmp)
        if not args.no_container:
            containers(args.runs, data, tmp)


if __name__ == "__main__":
    main()
