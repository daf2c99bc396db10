"""Where the model and the inference code live, made local folders before the handlers are imported.

SageMaker passes the code in one of two ways, both handled as its framework containers do:
packed with the model (``model.tar.gz`` holds ``code/``, unpacked to ``/opt/ml/model/code``),
or as ``SAGEMAKER_SUBMIT_DIRECTORY``, a folder or ``sourcedir.tar.gz`` (local or ``s3://``),
such as the content-addressed archive the training step ran.

Archives come from users: :func:`custom_framework_training.archives.extract` unpacks them
(nothing outside the folder, no tar bomb).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from custom_framework_training import archives
from custom_framework_training.serving.errors import StartupError


def code_dir(submit_directory: str | None, model_dir: Path) -> Path:
    """The folder to import the handlers from; an archive is unpacked into a fresh temporary folder,
    removed when this process (the server's master) exits."""
    if submit_directory is None:
        return model_dir / "code"
    location = submit_directory.removeprefix("file://")
    if location.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="inference-code-archive-") as folder:
            return _unpack_code(_download(location, Path(folder) / "sourcedir.tar.gz"))
    if Path(location).is_file():
        return _unpack_code(Path(location))
    if not Path(location).is_dir():
        raise StartupError(f"SAGEMAKER_SUBMIT_DIRECTORY {submit_directory} is neither a folder nor an archive")
    return Path(location)


def _download(uri: str, target: Path) -> Path:
    import boto3  # in the image for the toolkit; imported only when the code is on S3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        boto3.client("s3").download_file(bucket, key, str(target))
    except Exception as e:
        raise StartupError(f"cannot download the inference code {uri}: {type(e).__name__}: {e}") from e
    return target


def _unpack_code(archive: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="inference-code-"))
    atexit.register(_remove_if_creator, target, os.getpid())
    try:
        archives.extract(archive, target)
    except (OSError, tarfile.TarError) as e:
        raise StartupError(f"cannot unpack the inference code from {archive}: {e}") from e
    return target


def _remove_if_creator(folder: Path, creator: int) -> None:
    """Remove ``folder`` at exit, in the process that made it only: forked workers inherit the handler,
    and one exiting must not pull the code from under the others."""
    if os.getpid() == creator:
        shutil.rmtree(folder, ignore_errors=True)
