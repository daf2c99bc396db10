"""The local training job's overhead over running ``user_src/train.py`` directly on the same data.

Target: the framework's overhead (toolkit, framework module, CLI) stays under 1 s.
Run: ``.venv/bin/python benchmarks/local_job.py [runs]``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, wall_time

from pipeline.definition import sample_data


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        data = sample_data.write(tmp / "data")
        plain_env = script_environment(data, tmp)
        job = [PYTHON, "-m", "pipeline", "train-local", "--train", str(data["train"])]
        job += ["--validation", str(data["validation"]), "--output-dir", str(tmp / "jobs")]
        medians = interleaved(
            {
                "python user_src/train.py (baseline)": lambda: wall_time(
                    [PYTHON, str(ROOT / "user_src" / "train.py")], plain_env
                ),
                "python -m pipeline train-local": lambda: wall_time(job),
            },
            runs=runs,
        )
    report("Local training job vs the plain script", medians, "python user_src/train.py (baseline)", runs)
    base, local = medians.values()
    print(f"\noverhead: {local - base:.3f} s (target < 1 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
