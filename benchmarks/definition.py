"""Cold start of the CLI: ``definition`` against ``import sagemaker`` (the floor), and ``--help``.

Targets: ``definition --offline --no-cache`` (a full render) at most 1.3x the floor; ``--help`` under 0.3 s,
which holds only while the SDK is imported lazily. Also measures what opting out
of the SDK's telemetry costs (or saves), as a ratio of two in-process renders.
Run: ``.venv/bin/python benchmarks/definition.py [runs]``
"""

from __future__ import annotations

import sys

from timing import PYTHON, interleaved, report, wall_time

# Same environment for every command: no credential search, no v2 banner.
ENV = {"AWS_EC2_METADATA_DISABLED": "true", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}

RENDER = """
import sys
from pathlib import Path
from pipeline.definition import contract, sdk
from pipeline.definition.settings import build_settings
if sys.argv[1] == "on":
    sdk.SDK_DEFAULTS = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": False}}}}
source = Path("user_src")
sdk.render(
    build_settings({}, offline=True), contract.load(source), source, "s3://example-sagemaker-bucket/p/code/0/sourcedir.tar.gz"
)
"""


def main(runs: int) -> None:
    floor = 'python -c "import sagemaker" (floor)'
    medians = interleaved(
        {
            floor: lambda: wall_time([PYTHON, "-c", "import sagemaker"], ENV),
            "python -m pipeline definition --offline --no-cache": lambda: wall_time(
                [PYTHON, "-m", "pipeline", "definition", "--offline", "--no-cache"], ENV
            ),
            "python -m pipeline definition --offline (render cache warm)": lambda: wall_time(
                [PYTHON, "-m", "pipeline", "definition", "--offline"], ENV
            ),
        },
        runs=runs,
    )
    report("Cold `definition` vs importing the SDK", medians, floor, runs)

    bare = 'python -c "pass"'
    medians = interleaved(
        {
            bare: lambda: wall_time([PYTHON, "-c", "pass"]),
            "python -m pipeline --help": lambda: wall_time([PYTHON, "-m", "pipeline", "--help"]),
        },
        runs=runs,
    )
    report("`--help` vs a bare interpreter (target < 0.3 s)", medians, bare, runs)

    off = "render, TelemetryOptOut=true (ours)"
    medians = interleaved(
        {
            off: lambda: wall_time([PYTHON, "-c", RENDER, "off"], ENV),
            "render, telemetry on (SDK default)": lambda: wall_time([PYTHON, "-c", RENDER, "on"], ENV),
        },
        runs=runs,
    )
    report("Telemetry opt-out: cost of the switch", medians, off, runs)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
