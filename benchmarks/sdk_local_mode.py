"""The SageMaker SDK's own local mode (the framework image, through docker-compose) against the plain script.

Every row trains ``user_src/train.py`` on the sample data. ``train-local`` (the project's job
without a container) is measured in the same run, so the three compare directly. The engine is
podman's Docker API service, started once before timing, as a Docker daemon would already be
running; ``DOCKER_HOST=unix://...`` uses a running engine instead. SDK local mode is timed as a
user runs it, in a fresh process (``benchmarks/sdk_as_user.py``: interpreter start and SDK import
included), and in this process (SDK already imported), both calling ``fit()`` with its default
``logs``: with ``logs="None"`` local mode polls the finished job after a fixed 5 s sleep. Fair to
the SDK: the timed region ends when ``fit()`` returns (the harness's container removal is after
it), and the project's SDK config is not schema-checked on every lookup, which a user without a
config file never pays (:mod:`sdk_as_user`). Every sample is printed too, since container starts on
a shared 2-core machine vary more than the medians show.
Run: ``.venv/bin/python benchmarks/sdk_local_mode.py [runs]`` (``CONTAINER_IMAGE=<ref>`` skips
``framework_image/build-local.sh``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, until_stamped, wall_time

sys.path.insert(0, str(ROOT / "tests"))
import sdk_as_user
import sdk_local  # the tests' SDK local mode helper

BASELINE = "python user_src/train.py (baseline)"


def framework_image() -> str:
    """``CONTAINER_IMAGE``, else what build-local.sh builds with ``ENGINE`` (podman by default; cached
    when nothing changed)."""
    if os.environ.get("CONTAINER_IMAGE"):
        return os.environ["CONTAINER_IMAGE"]
    from pipeline.local import container

    return container.built_image(os.environ.get("ENGINE", "podman"))


@contextlib.contextmanager
def docker_api() -> Iterator[str]:
    """``DOCKER_HOST`` if set, else podman's Docker API service for the run."""
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
    else:
        with sdk_local.podman_docker_api() as host:
            yield host


def _recorded(samples: list[float], timed: Callable[[], float]) -> Callable[[], float]:
    """``timed``, keeping every sample, for the spread the medians hide."""

    def run() -> float:
        samples.append(timed())
        return samples[-1]

    return run


def main(runs: int) -> None:
    for name in ("sagemaker", "sagemaker.config"):  # the compose file and config notes, once per job
        logging.getLogger(name).setLevel(logging.WARNING)
    image = framework_image()
    with docker_api() as docker_host, tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        data = sdk_local.write_sample_data(tmp / "data")
        plain_env = script_environment(data, tmp)
        train_local = [PYTHON, "-m", "pipeline", "train-local", "--train", str(data["train"])]
        train_local += ["--validation", str(data["validation"]), "--output-dir", str(tmp / "jobs")]
        numbers = count()

        def fresh_process() -> float:
            command = [str(ROOT / "benchmarks" / "sdk_as_user.py"), str(tmp / "done"), "train"]
            command += ["--image", image, "--docker-host", docker_host, "--source-dir", str(ROOT / "user_src")]
            command += ["--work-dir", str(tmp / f"cold-{next(numbers)}")]
            command += [f"--channel={name}={path}" for name, path in data.items()]
            return until_stamped([PYTHON, *command], tmp / "done")

        done: list[float] = []
        sdk_as_user.as_a_user_configures_it()
        sdk_as_user.stamped_before_cleanup(done)

        def in_process() -> float:
            start = time.monotonic()
            result = sdk_local.run_training(
                image,
                ROOT / "user_src",
                hyperparameters={},
                channels=data,
                docker_host=docker_host,
                work_dir=tmp / f"warm-{next(numbers)}",
            )
            if not result.succeeded:  # as wall_time does for a failing command
                raise RuntimeError(f"SDK local mode failed: {result.error}\n{result.log[-2000:]}")
            return done[-1] - start

        samples: dict[str, list[float]] = {}
        commands = {
            BASELINE: lambda: wall_time([PYTHON, str(ROOT / "user_src" / "train.py")], plain_env),
            "python -m pipeline train-local": lambda: wall_time(train_local),
            "SDK local mode, fresh process": fresh_process,
            "SDK local mode, SDK already imported": in_process,
        }
        medians = interleaved({name: _recorded(samples.setdefault(name, []), t) for name, t in commands.items()}, runs)
    report("SDK local mode (framework image, podman) vs the plain script", medians, BASELINE, runs)
    print()
    for name, values in samples.items():
        kept = sorted(values[-runs:])  # the first call of each was the warm-up
        print(f"{name}: min {kept[0]:.2f} s, max {kept[-1]:.2f} s, all {', '.join(f'{v:.2f}' for v in kept)}")
    sdk, local = medians["SDK local mode, fresh process"], medians["python -m pipeline train-local"]
    print(f"\nSDK local mode / train-local: {sdk / local:.2f}x ({sdk - local:.2f} s more per job)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
