"""Every rule an AWS name or value must follow that is checked before the SDK or an AWS call, in one place.

Two kinds:

- ``MODEL``: facts of botocore's SageMaker model (a pattern, a length, an enum), copied here because
  settings and parameters are checked on the pure, offline path (``definition --offline``, ``--help``
  speed), where loading botocore's 2 MB model would cost more than the whole command.
  ``tests/test_aws_rules.py`` reads each from the model itself, so a copy cannot drift.
  ``pipeline/deploy/validate.py`` checks whole requests against the model directly.
- project rules: what AWS enforces without its model saying so, or what the project adds.

Every check is ``fullmatch`` with ASCII classes: a trailing newline, a non-ASCII digit or letter
is refused, never deployed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Pattern(str):
    """A regex compiled on first use, with ASCII classes (``re`` caches it): importing the rules, which
    ``--help`` does, compiles nothing."""

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return re.fullmatch(self, text, re.ASCII)


# --- from botocore's SageMaker model: (operation, member path) -> value; checked by the tests ----
MODEL = {
    ("CreatePipeline", "PipelineName", "pattern"): "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}",
    ("CreatePipeline", "PipelineName", "max"): 256,
    ("CreatePipeline", "Tags", "max"): 50,
    ("CreatePipeline", "Tags.Key", "max"): 128,
    ("CreatePipeline", "Tags.Value", "max"): 256,
    ("CreateModelPackageGroup", "ModelPackageGroupName", "pattern"): "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    ("CreateModelPackageGroup", "ModelPackageGroupName", "max"): 63,
    # (the model's in the project's order: the first is a new package's default)
    ("CreateModelPackage", "ModelApprovalStatus", "enum"): ("PendingManualApproval", "Approved", "Rejected"),
    ("CreateTrainingJob", "StoppingCondition.MaxRuntimeInSeconds", "min"): 1,
}
MAX_PIPELINE_NAME = MODEL["CreatePipeline", "PipelineName", "max"]
PIPELINE_NAME = Pattern(MODEL["CreatePipeline", "PipelineName", "pattern"])
MODEL_PACKAGE_GROUP_NAME = Pattern(MODEL["CreateModelPackageGroup", "ModelPackageGroupName", "pattern"])
MAX_MODEL_PACKAGE_GROUP_NAME = MODEL["CreateModelPackageGroup", "ModelPackageGroupName", "max"]
APPROVAL_STATUSES = MODEL["CreateModelPackage", "ModelApprovalStatus", "enum"]
MAX_TAGS = MODEL["CreatePipeline", "Tags", "max"]
MAX_TAG_KEY = MODEL["CreatePipeline", "Tags.Key", "max"]
MAX_TAG_VALUE = MODEL["CreatePipeline", "Tags.Value", "max"]
# The model's tag pattern with its \p{L}, \p{Z}, \p{N} read as ASCII, as validate.py reads them.
TAG_KEY = Pattern(rf"[\w.:/=+@ -]{{1,{MAX_TAG_KEY}}}")
TAG_VALUE = Pattern(rf"[\w.:/=+@ -]{{0,{MAX_TAG_VALUE}}}")
MIN_RUNTIME = MODEL["CreateTrainingJob", "StoppingCondition.MaxRuntimeInSeconds", "min"]

# --- project rules: AWS enforces these although its model does not say so, or the project adds them --
# IAM's own limits (path and name, 512 in all), tighter than SageMaker's model's RoleArn (2048).
ROLE_ARN = Pattern(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
# S3's bucket naming rules (the model has no pattern for a bucket name).
BUCKET = Pattern(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS = Pattern(r"\d{1,3}(\.\d{1,3}){3}")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", ".mrap")
REGION = Pattern(r"[a-z]{2}(-[a-z]+)+-\d")
# A bucket and a prefix (the model allows any host, and https://).
S3_URI = Pattern(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\x00-\x1f]*)?")
# The shape of an instance type, for a parameter's value; the model's enum (which grows with every
# botocore release) is checked on the steps' requests by validate.py.
INSTANCE_TYPE = Pattern(r"ml\.[a-z0-9-]+\.[a-z0-9]+")
RESERVED_TAG_PREFIX = "aws:"
# The counts' upper bound is the account's quota: this one only stops typos. A training job runs
# at most 28 days.
MAX_INSTANCE_COUNT = 100
MAX_RUNTIME_LIMIT = 28 * 24 * 3600

# An ECR image (the model allows any string), or one in a registry on loopback (deploy
# rehearsals), with a tag or a digest.
IMAGE_URI = Pattern(
    r"(?:(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|(?:127\.0\.0\.1|localhost):\d{1,5})"
    r"/(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>\w[\w.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))"
)
IMAGE_URI_FORM = "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG"


@dataclass(frozen=True)
class ImageUri:
    """An image URI's parts; ``account`` and ``region`` are ``None`` for a registry on loopback."""

    account: str | None
    region: str | None
    repository: str
    tag: str | None  # a tag, or
    digest: str | None  # sha256:...


def parse_image_uri(uri: str) -> ImageUri | None:
    """The parts of an ECR image URI (or one on a loopback registry) with a tag or digest; ``None``
    for anything else. The one parser of image URIs."""
    match = IMAGE_URI.fullmatch(uri)
    if match is None:
        return None
    return ImageUri(match["account"], match["region"], match["repository"], match["tag"], match["digest"])
