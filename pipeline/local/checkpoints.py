"""Checkpoints as SageMaker keeps them: the checkpoint folder (``/opt/ml/checkpoints``) is filled from
the job's checkpoint location before the script starts, and copied back to it when the job ends,
whether it succeeded, failed or was stopped, so the next run can resume.

SageMaker also uploads while the job runs; here the copy happens once, at the end.
The location is a folder or an ``s3://`` prefix; files are added or replaced, never deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import aws
from pipeline.errors import ParameterError
from pipeline.local import stops
from pipeline.local.files import copy_tree, written_atomically

DEFAULT_LOCAL_PATH = "/opt/ml/checkpoints"


def check_location(location: str) -> str:
    """A usable location, before anything is written: an ``s3://BUCKET/PREFIX`` or a folder path."""
    if not location.strip():
        raise ParameterError("--checkpoints is empty: give a folder or an s3://BUCKET/PREFIX")
    if location.startswith("s3://"):
        if len(location) <= len("s3://") or location[len("s3://")] == "/":
            raise ParameterError(f"--checkpoints {location} names no bucket: use s3://BUCKET/PREFIX")
    elif Path(location).exists() and not Path(location).is_dir():
        raise ParameterError(f"--checkpoints {location} is a file: give a folder (it is made if missing)")
    return location


def restore(location: str, folder: Path, region: str) -> int:
    """Fill ``folder`` from the location; a location with nothing in it yet is a first run. Returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    if location.startswith("s3://"):
        prefix = location.rstrip("/") + "/"  # a folder: s3://b/ckpt must not match s3://b/ckpt-old/
        return aws.download_prefix(aws.client("s3", region), prefix, folder, stops.check)
    return copy_tree(Path(location), folder) if Path(location).is_dir() else 0


def sync(folder: Path, location: str, region: str) -> int:
    """Copy ``folder``'s files to the location, each one whole or not at all. Returns the count."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if location.startswith("s3://"):
        s3 = aws.client("s3", region)
        bucket, prefix = aws.split_s3_uri(location)
        for path in files:
            stops.check()
            key = "/".join(part for part in (prefix.rstrip("/"), path.relative_to(folder).as_posix()) if part)
            s3.upload_file(str(path), bucket, key)
        return len(files)
    for path in files:
        stops.check()
        target = Path(location) / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        with written_atomically(target) as partial:
            shutil.copyfile(path, partial)
    return len(files)
