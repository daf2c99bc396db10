"""Which lines of a job's output reach the terminal: the image's own INFO chatter is folded.

A training job's toolkit logs about 30 INFO records ("No GPUs detected", "Failed to parse
hyperparameter ... to Json" three times each) that bury the pipeline's step lines and the user
script's output. The host's log file keeps every line; only the terminal copy is folded, unless
``--verbose`` (the jobs' ``verbose`` argument). The user script's output, tracebacks and the
image's WARNING/ERROR records always show.
"""

from __future__ import annotations

import re

# Loggers of the image: the SageMaker Training Toolkit's two names, the framework package's, and
# those of boto3, with which the toolkit downloads code from S3 (a pipeline's training step), whose
# records reach the toolkit's handler ("Found credentials in environment variables").
IMAGE_LOGGERS = (
    "sagemaker-training-toolkit",
    "sagemaker_training",
    "custom_framework_training",
    "botocore",
    "boto3",
    "s3transfer",
)
FOLDED_LEVELS = ("DEBUG", "INFO")
# The toolkit's "Failed to parse hyperparameter %s value %s to Json.\nReturning the value itself":
# the second line of a folded record has no header of its own.
CONTINUATIONS = ("Returning the value itself",)
# The toolkit's log format: "%(asctime)s %(name)s %(levelname)-8s %(message)s".
_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<logger>\S+) (?P<level>[A-Z]+) ")


def image_info(line: str) -> bool:
    """Whether ``line`` starts a DEBUG/INFO record of one of the image's loggers."""
    match = _RECORD.match(line)
    if match is None or match["level"] not in FOLDED_LEVELS:
        return False
    logger = match["logger"]
    return any(logger == name or logger.startswith(name + ".") for name in IMAGE_LOGGERS)


class Fold:
    """Called on each line in order: ``True`` if it is shown, ``False`` if folded. The one piece of
    state is whether the previous line began a folded record (its continuation line goes with it)."""

    def __init__(self) -> None:
        self.folded = 0
        self._after_record = False

    def __call__(self, line: str) -> bool:
        record = image_info(line)
        fold = record or (self._after_record and line.rstrip("\r\n") in CONTINUATIONS)
        self._after_record = record
        self.folded += fold
        return not fold


def folded_note(log: object) -> str:
    """The line shown in place of the first folded one."""
    return f"(the image's INFO lines are folded: --verbose shows them, {log} has them all)\n"
