"""One error family and the exit statuses the CLI returns: the only place that maps one to the other.

Every error a user can fix derives from :class:`UserError`; its message is the one
``error:`` line the CLI prints. Anything else is a bug, and its traceback is shown.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitStatus(IntEnum):
    """What ``python -m pipeline`` exits with; scripts (CI, deploy) branch on these."""

    OK = 0
    CHANGED = 1  # diff: the plan is not empty
    JOB_FAILED = 1  # train-local / run --local: the user's job failed
    BAD_INPUT = 2  # refused before anything was written
    TIMEOUT = 124  # --max-runtime, as timeout(1) reports it
    INTERRUPTED = 130  # Ctrl-C or a stop signal: 128 + SIGINT


class UserError(Exception):
    """Input or an environment the user can fix; the message names the fix."""

    status = ExitStatus.BAD_INPUT


class ContractError(UserError):
    """A training contract (``training.toml``) that cannot be used as written."""


class SettingsError(UserError):
    """A setting that is missing or malformed; the message names the flag and variable to fix."""


class ParameterError(UserError):
    """A parameter or hyperparameter value that the pipeline or the job would reject."""


class ChannelError(UserError):
    """A channel whose data cannot be found or read."""


class WorkflowError(UserError):
    """A pipeline module (``workflow.py``) that cannot build a pipeline, or builds one SageMaker refuses."""


class UnsupportedExpression(UserError):
    """A construct of a pipeline definition that cannot run on this machine."""


class AwsError(UserError):
    """An AWS call failed, or AWS would refuse a request; the message says what to check."""


# Errors of the machine, not of the code: a write() reports them without a file name.
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


def describe_os_error(error: OSError) -> str:
    """An I/O error as one line that always names the path (or, for a full disk, the fix), so the
    user knows where to look."""
    what = error.strerror or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    if paths:
        return f"{what}: {' -> '.join(paths)}"
    if error.errno in FULL_DISK:
        return f"{what}: free some space on that disk, or pass --output-dir on another one (nothing was kept)"
    return what
