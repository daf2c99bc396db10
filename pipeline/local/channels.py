"""Fill a training job's channel folders from local folders or ``s3://`` prefixes."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import aws
from pipeline.errors import ChannelError
from pipeline.local import stops
from pipeline.local.files import copy_tree


def _empty(source: str) -> ChannelError:
    return ChannelError(
        f"channel source {source} holds no objects: upload the data (upsert seeds the sample data"
        " at the default prefixes) or point the channel elsewhere"
    )


def _missing(source: str) -> ChannelError:
    return ChannelError(f"channel source {source} does not exist: pass an existing folder or an s3:// URI")


def check(source: str, region: str | None = None) -> None:
    """Refuse a channel :func:`fetch` would refuse, without copying it."""
    if source.startswith("s3://"):
        if next(aws.list_keys(aws.client("s3", region), source), None) is None:
            raise _empty(source)
    elif not Path(source).exists():
        raise _missing(source)


def fetch(source: str, destination: Path, region: str | None = None) -> None:
    """Copy one channel's files into ``destination``; an empty channel is an error, as on SageMaker."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.startswith("s3://"):
        if aws.download_prefix(aws.client("s3", region), source, destination, stops.check) == 0:
            raise _empty(source)
        return
    path = Path(source)
    if not path.exists():
        raise _missing(source)
    if path.is_file():
        shutil.copy2(path, destination / path.name)
    else:
        copy_tree(path, destination)
