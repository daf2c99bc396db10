"""``stand-in``: the AWS stand-in the demo uses, kept running for trying commands by hand.

moto's server on 127.0.0.1 with throwaway credentials and a bucket; the command prints the
variables that point the CLI at it (``eval`` them in another shell), then serves until
Ctrl-C. Nothing reaches a real account.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import threading

from pipeline.cli.demo import ACCOUNT, aws_stand_in
from pipeline.errors import ExitStatus


def exports(endpoint: str, names: list[str]) -> list[str]:
    """``export NAME=VALUE`` lines for the variables the stand-in set."""
    return [f"export {name}={shlex.quote(os.environ[name])}" for name in names] + [
        f"# AWS stand-in at {endpoint}: stop it with Ctrl-C"
    ]


def cmd_stand_in(args: argparse.Namespace) -> int:
    import boto3

    with aws_stand_in(port=args.port) as endpoint:
        boto3.client("s3").create_bucket(Bucket=ACCOUNT["SAGEMAKER_BUCKET"])
        names = [*ACCOUNT, "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        print("\n".join(exports(endpoint, names)), flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop serving, exit 0
            threading.Event().wait()
    return ExitStatus.OK
