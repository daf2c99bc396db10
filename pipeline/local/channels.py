"""Fill a training job's channel folders from local folders or ``s3://`` prefixes."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import aws
from pipeline.errors import ChannelError


def fetch(source: str, destination: Path, region: str | None = None) -> None:
    """Copy one channel's files into ``destination``; an empty channel is an error, as on SageMaker."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.startswith("s3://"):
        if aws.download_prefix(aws.client("s3", region), source, destination) == 0:
            raise ChannelError(
                f"channel source {source} holds no objects: upload the data (upsert seeds the sample data"
                " at the default prefixes) or point the channel elsewhere"
            )
        return
    path = Path(source)
    if not path.exists():
        raise ChannelError(f"channel source {source} does not exist: pass an existing folder or an s3:// URI")
    if path.is_file():
        shutil.copy2(path, destination / path.name)
    else:
        shutil.copytree(path, destination, dirs_exist_ok=True)
