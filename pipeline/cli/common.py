"""What every command shares: settings from flags and environment, and the offline switch."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.definition import sourcedir
from pipeline.definition.settings import ENVIRONMENT, Settings, build_settings, region_from_environment
from pipeline.definition.sourcedir import Source

DEFAULT_SOURCE_DIR = Path("user_src")  # relative to where the command runs: the project root
DEFAULT_OUTPUT_DIR = Path("local-jobs")


def settings(args: argparse.Namespace, *, offline: bool = False, fields: tuple[str, ...] | None = None) -> Settings:
    """Settings from flags, else environment variables, checked before any AWS call."""
    values = {field: getattr(args, field, None) or os.environ.get(env) for field, (env, _) in ENVIRONMENT.items()}
    values["region"] = values["region"] or region_from_environment()
    return build_settings(values, offline=offline, fields=fields)


def source(args: argparse.Namespace) -> Source:
    """The source dir the command works on: its contract and archive, read once."""
    return sourcedir.read(args.source_dir, getattr(args, "entry_point", None))


def no_aws() -> None:
    """Offline: the SDK builds a default session at import, and boto3 would then look for
    credentials as far as the EC2 metadata endpoint; stop it there."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
