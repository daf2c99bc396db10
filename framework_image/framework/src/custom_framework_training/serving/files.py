"""Where the model and the inference code live, made local folders before the handlers are imported.

SageMaker passes the code in one of two ways, both handled as its framework containers do:
packed with the model (``model.tar.gz`` holds ``code/``, unpacked to ``/opt/ml/model/code``),
or as ``SAGEMAKER_SUBMIT_DIRECTORY``, a folder or ``sourcedir.tar.gz`` (local or ``s3://``),
such as the content-addressed archive the training step ran.

Archives come from users, so :func:`unpack` writes nothing outside its folder (no member
path or link escapes it, no device files) and refuses one that would unpack to more than
:data:`MAX_UNPACKED_BYTES` or :data:`MAX_MEMBERS` files: a tar bomb is refused from its
headers, before it fills the disk.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from custom_framework_training import archives
from custom_framework_training.serving.errors import StartupError

MAX_UNPACKED_BYTES = 32 * 2**30
MAX_MEMBERS = 1_000_000
# Room left on the disk after unpacking, so a model that barely fits still leaves space to run.
DISK_RESERVE_BYTES = 256 * 2**20


class ArchiveTooLarge(tarfile.TarError):
    """The archive would unpack to more than the limit or the free disk space."""


def code_dir(submit_directory: str | None, model_dir: Path) -> Path:
    """The folder to import the handlers from; an archive is unpacked into a fresh temporary folder."""
    if submit_directory is None:
        return model_dir / "code"
    location = submit_directory.removeprefix("file://")
    if location.startswith("s3://"):
        return _unpack_code(_download(location))
    if Path(location).is_file():
        return _unpack_code(Path(location))
    if not Path(location).is_dir():
        raise StartupError(f"SAGEMAKER_SUBMIT_DIRECTORY {submit_directory} is neither a folder nor an archive")
    return Path(location)


def _download(uri: str) -> Path:
    import boto3  # in the image for the toolkit; imported only when the code is on S3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    target = Path(tempfile.mkdtemp(prefix="inference-code-archive-")) / "sourcedir.tar.gz"
    try:
        boto3.client("s3").download_file(bucket, key, str(target))
    except Exception as e:
        raise StartupError(f"cannot download the inference code {uri}: {type(e).__name__}: {e}") from e
    return target


def _unpack_code(archive: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="inference-code-"))
    try:
        unpack(archive, target)
    except (OSError, tarfile.TarError) as e:
        raise StartupError(f"cannot unpack the inference code from {archive}: {e}") from e
    return target


def unpacked_size(archive: Path, limit: int, max_members: int = MAX_MEMBERS) -> int:
    """The bytes ``archive`` unpacks to, read from its headers; :class:`ArchiveTooLarge` as soon as it passes
    ``limit`` or ``max_members``, so a bomb is not read to its end."""
    total = members = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            members += 1
            total += member.size if member.isfile() else 0
            if total > limit:
                raise ArchiveTooLarge(
                    f"{archive} unpacks to more than {limit} bytes (the limit, or the free disk space)"
                )
            if members > max_members:
                raise ArchiveTooLarge(f"{archive} holds more than {max_members} members")
    return total


def unpack(archive: Path, into: Path, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Every member of ``archive`` under ``into`` (made if missing), after checking its size against ``limit``
    and the free space; raises ``tarfile.TarError`` for a member that would escape ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(into).free - DISK_RESERVE_BYTES
    unpacked_size(archive, min(limit, max(free, 0)))
    archives.extract(archive, into)
