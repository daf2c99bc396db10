"""Where the inference code lives, made a local folder before the handlers are imported.

SageMaker passes the code in one of two ways, both handled as its framework containers do:
packed with the model (``model.tar.gz`` holds ``code/``, unpacked to ``/opt/ml/model/code``),
or as ``SAGEMAKER_SUBMIT_DIRECTORY``, a folder or ``sourcedir.tar.gz`` (local or ``s3://``),
such as the content-addressed archive the training step ran.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from custom_framework_training.serving.errors import StartupError


def code_dir(submit_directory: str | None, model_dir: Path) -> Path:
    """The folder to import the handlers from; an archive is unpacked into a fresh temporary folder."""
    if submit_directory is None:
        return model_dir / "code"
    location = submit_directory.removeprefix("file://")
    if location.startswith("s3://") or Path(location).is_file():
        return _unpack(location)
    if not Path(location).is_dir():
        raise StartupError(f"SAGEMAKER_SUBMIT_DIRECTORY {submit_directory} is neither a folder nor an archive")
    return Path(location)


def _unpack(archive: str) -> Path:
    # Imported here: the toolkit's files module pulls in boto3, which a folder never needs.
    from sagemaker_training import files

    target = Path(tempfile.mkdtemp(prefix="inference-code-"))
    try:
        files.download_and_extract(archive, str(target))
    except Exception as e:
        raise StartupError(f"cannot unpack the inference code from {archive}: {type(e).__name__}: {e}") from e
    return target
