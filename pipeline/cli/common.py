"""What every command shares: settings from flags and environment, the source dir, and the offline switch."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from pipeline.definition import contract, sourcedir
from pipeline.definition.contract import Contract
from pipeline.definition.settings import ENVIRONMENT, Settings, build_settings, region_from_environment
from pipeline.definition.sourcedir import Source

DEFAULT_SOURCE_DIR = Path("user_src")  # relative to where the command runs: the project root
DEFAULT_OUTPUT_DIR = Path("local-jobs")
SECRETS_NAMED = 5  # a warning names this many files at most


def settings(args: argparse.Namespace, *, offline: bool = False, fields: tuple[str, ...] | None = None) -> Settings:
    """Settings from flags, else environment variables, checked before any AWS call.

    A flag given empty stays empty (and is refused where a value is needed); an empty
    variable counts as unset.
    """
    values: dict[str, str | None] = {}
    for field, (env, _) in ENVIRONMENT.items():
        flag = getattr(args, field, None)
        values[field] = flag if flag is not None else os.environ.get(env) or None
    if values["region"] is None:
        values["region"] = region_from_environment() or None
    return build_settings(values, offline=offline, fields=fields)


def source(args: argparse.Namespace) -> Source:
    """The source dir the command works on: its contract and archive, read once.

    ``--verbose`` lists what the archive holds; a secret-looking file in it is a warning.
    """
    from pipeline.local import runtime

    image_python = runtime.image_python((runtime.FRAMEWORK_IMAGE / "Dockerfile").read_text())
    read = sourcedir.read(args.source_dir, getattr(args, "entry_point", None), image_python)
    for note in read.notes:
        print(note, file=sys.stderr)
    if getattr(args, "verbose", False):
        key = sourcedir.content_key(read.archive)
        print(f"packing {len(read.files)} files of {read.path} (sourcedir.tar.gz {key}):", file=sys.stderr)
        for relative in read.files:
            print(f"  {relative.as_posix()}", file=sys.stderr)
    secrets = [f.as_posix() for f in sourcedir.secret_looking(read.files)]
    if secrets:
        named = ", ".join(secrets[:SECRETS_NAMED]) + (
            f" and {len(secrets) - SECRETS_NAMED} more" if len(secrets) > SECRETS_NAMED else ""
        )
        print(
            f"warning: packing secret-looking files of {read.path}: {named};"
            f" if they hold secrets, list them in {read.path / sourcedir.IGNORE_FILE}",
            file=sys.stderr,
        )
    return read


def training_contract(args: argparse.Namespace) -> Contract:
    """The source dir's contract alone, for a command that packs nothing (``start``)."""
    declared = contract.load(args.source_dir)
    sourcedir.check(args.source_dir, declared.entry_point)
    return declared


def no_aws() -> None:
    """Offline: the SDK builds a default session at import, and boto3 would then look for
    credentials as far as the EC2 metadata endpoint; stop it there."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def cli_command() -> str:
    """This CLI as a command to print in hints, runnable as printed from the current folder without an
    activated venv: ``.venv/bin/python -m pipeline`` in a clone's root after the README's set-up."""
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    return f"{shlex.quote(str(python))} -m pipeline"
