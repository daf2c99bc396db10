"""A loggable summary of the toolkit's training environment, with secrets redacted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
# Names that commonly carry credentials; their values never reach a log line.
_SECRET_NAME = re.compile(
    r"(pass(word)?|secret|token|credential|api[-_]?key|access[-_]?key|private|(^|[-_])key([-_]|$))", re.I
)


def is_secret(name: str) -> bool:
    """True when a hyperparameter or variable name looks like it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``values`` with every secret-looking entry replaced by a marker."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in values.items()}


def summary(
    *,
    job_name: str,
    hosts: list[str],
    current_host: str,
    channels: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    num_cpus: int,
    num_gpus: int,
) -> dict[str, Any]:
    """The parts of the environment worth one log line at start-up."""
    return {
        "job_name": job_name,
        "hosts": list(hosts),
        "current_host": current_host,
        "channels": dict(channels),
        "hyperparameters": redact(hyperparameters),
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
    }


def redact_args(args: list[str]) -> list[str]:
    """Command-line arguments with the value after each secret-looking ``--flag`` hidden."""
    redacted = list(args)
    for i, arg in enumerate(args[:-1]):
        if arg.startswith("-") and is_secret(arg):
            redacted[i + 1] = REDACTED
    return redacted


def hide_values(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with the value of every secret-looking entry of ``values`` replaced by the marker."""
    secrets = sorted({str(v) for k, v in values.items() if is_secret(k) and str(v)}, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
