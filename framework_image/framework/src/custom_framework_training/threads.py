"""Thread-pool sizes for the numeric libraries, derived from the CPU count."""

from __future__ import annotations

from collections.abc import Mapping

# Each BLAS/OpenMP runtime reads its own variable; setting all of them keeps
# libraries from oversubscribing the instance when several are loaded.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_settings(num_cpus: int, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables to export so every pool uses all CPUs, leaving user-set values alone."""
    count = str(max(1, num_cpus))
    return {name: count for name in THREAD_VARIABLES if name not in environ}
