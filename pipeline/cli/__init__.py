"""``python -m pipeline``: parse the command line, run the command, and map errors to exit statuses.

Heavy imports (the SageMaker SDK, boto3) happen inside the commands that need them,
so ``--help`` and local runs start fast.
"""

from __future__ import annotations

import sys

from pipeline.errors import FULL_DISK, ExitStatus, UserError, describe_os_error

# Commands that run jobs or servers here: hosts are Linux processes (prctl, /proc, user namespaces).
LINUX_ONLY = ("train-local", "run", "serve-local", "demo", "promote")


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli.parser import parser

    args = parser().parse_args(argv)
    if args.command in LINUX_ONLY and not sys.platform.startswith("linux") and _runs_here(args):
        print(
            f"error: {args.command} runs jobs and servers as Linux processes (prctl, /proc, namespaces), not on"
            f" {sys.platform}: use a Linux machine, WSL 2 or a dev container; definition, diff, upsert and start"
            " work here",
            file=sys.stderr,
        )
        return ExitStatus.BAD_INPUT
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO)
    else:
        from pipeline.definition.sdk import quiet_sdk_logs

        quiet_sdk_logs()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as error:
        message, status = _one_line(error)
        if message is None:
            raise  # a bug: the traceback is the useful output
        print(f"error: {message}", file=sys.stderr)
        return status


def _runs_here(args: object) -> bool:
    """Whether the command runs anything on this machine (``promote`` only with ``--local``)."""
    return getattr(args, "command", "") != "promote" or bool(getattr(args, "local", False))


def _one_line(error: Exception) -> tuple[str | None, int]:
    """The message and exit status for an error the user can fix; ``(None, _)`` for a bug."""
    if isinstance(error, UserError):
        return str(error), error.status
    if isinstance(error, OSError) and (error.filename is not None or error.errno in FULL_DISK):
        return describe_os_error(error), ExitStatus.BAD_INPUT
    if "botocore" in sys.modules:  # only commands that reached AWS can fail there
        from pipeline import aws

        if isinstance(error, aws.aws_errors()):
            return aws.describe_error(error), ExitStatus.BAD_INPUT
    return None, ExitStatus.BAD_INPUT
