"""The linters CI runs, run for real from this venv: ruff on the repository, hadolint on the Dockerfile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "framework_image" / "Dockerfile"


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / name
    assert executable.is_file(), f"{name} is not installed next to {sys.executable}; install the dev extras"
    return subprocess.run([str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_no_errors_in_the_dockerfile() -> None:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE.relative_to(ROOT)} is missing"
    result = run("hadolint", "--failure-threshold", "error", str(DOCKERFILE.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
