"""Deployment settings: CLI flags with environment-variable fallbacks, checked before any AWS call."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pipeline.definition import aws_rules
from pipeline.definition.aws_rules import MAX_PIPELINE_NAME, MAX_TAGS, RESERVED_TAG_PREFIX
from pipeline.errors import SettingsError

# flag destination -> (environment variable, help); the CLI builds its flags from this.
ENVIRONMENT = {
    "pipeline_name": ("PIPELINE_NAME", "pipeline name"),
    "region": ("AWS_REGION", "AWS region"),
    "role_arn": ("SAGEMAKER_ROLE_ARN", "execution role the training job assumes"),
    "bucket": ("SAGEMAKER_BUCKET", "S3 bucket for code, sample data and model artifacts"),
    "image_uri": ("IMAGE_URI", f"framework image in ECR, {aws_rules.IMAGE_URI_FORM}"),
    "tags": ("PIPELINE_TAGS", "comma-separated Key=Value tags for the pipeline"),
}
DEFAULT_PIPELINE_NAME = "custom-framework-training"

# Stand-ins that let `definition --offline` render without an AWS account.
DEFAULT_REGION = "us-east-1"  # where a region is only a label: offline renders, local jobs
OFFLINE_EXAMPLES = {
    "region": DEFAULT_REGION,
    "role_arn": "arn:aws:iam::111122223333:role/SageMakerExecutionRole",
    "bucket": "example-sagemaker-bucket",
    "image_uri": "111122223333.dkr.ecr.us-east-1.amazonaws.com/custom-framework:offline",
}


@dataclass(frozen=True)
class Settings:
    """Everything that varies between accounts; nothing here is hard-coded to one."""

    pipeline_name: str
    region: str
    role_arn: str
    bucket: str
    image_uri: str
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def prefix(self) -> str:
        """S3 key prefix for everything this pipeline writes."""
        return self.pipeline_name

    @property
    def aws_tags(self) -> list[dict[str, str]]:
        """The tags as AWS APIs take them."""
        return [{"Key": k, "Value": v} for k, v in self.tags]

    @property
    def code_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/code"

    @property
    def output_path(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/models"

    def data_uri(self, channel: str) -> str:
        """Default S3 prefix of a channel: where ``upsert`` seeds the sample data."""
        return f"s3://{self.bucket}/{self.prefix}/data/{channel}/"


def region_from_environment(environ: Mapping[str, str] = os.environ) -> str | None:
    """The region boto3 would use: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")


def fix(field: str) -> str:
    """How to set a field: its flag and its environment variable."""
    return f"--{field.replace('_', '-')} or {ENVIRONMENT[field][0]}"


def shown(value: str, limit: int = 100) -> str:
    """``value`` quoted for a one-line message, newlines and non-ASCII characters escaped (a
    look-alike letter shows as what it is); a long one keeps its start and its end."""
    if len(value) <= limit:
        return ascii(value)
    return f"{value[: limit - 20]!a}...{value[-20:]!a} ({len(value)} characters)"


def _missing(field: str) -> SettingsError:
    return SettingsError(f"missing {field.replace('_', ' ')}: set {fix(field)}")


def tag_key_problem(key: str, earlier: Collection[str]) -> str | None:
    """What AWS refuses in a tag key although its published model allows it: the reserved
    ``aws:`` prefix (in any case), or a key already given (``earlier``)."""
    if key.lower().startswith(RESERVED_TAG_PREFIX):
        return f"starts with {RESERVED_TAG_PREFIX!r}, which AWS reserves"
    if key in earlier:
        return "is given twice"
    return None


def parse_tags(text: str | None) -> tuple[tuple[str, str], ...]:
    """``"team=ml,project=x"`` as sorted pairs, refused whole if AWS would refuse any of it."""
    pairs = []
    for item in filter(None, (part.strip(" ") for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not aws_rules.TAG_KEY.fullmatch(key) or not aws_rules.TAG_VALUE.fullmatch(value):
            raise SettingsError(
                f"malformed tag {shown(item)}: use Key=Value with a key of 1-{aws_rules.MAX_TAG_KEY} and a value"
                f" of 0-{aws_rules.MAX_TAG_VALUE}"
                f" ASCII letters, digits, spaces or _.:/=+-@; set {fix('tags')}"
            )
        problem = tag_key_problem(key, {k for k, _ in pairs})
        if problem:
            raise SettingsError(f"tag key {shown(key)} {problem}: rename or remove it in {fix('tags')}")
        pairs.append((key, value))
    if len(pairs) > MAX_TAGS:
        raise SettingsError(
            f"{len(pairs)} tags: AWS allows at most {MAX_TAGS} on a pipeline; remove some from {fix('tags')}"
        )
    return tuple(sorted(pairs))


def image_region(image_uri: str) -> str | None:
    """The region of an ECR image (``ACCOUNT.dkr.ecr.REGION.amazonaws.com/...``); None for another registry."""
    parsed = aws_rules.parse_image_uri(image_uri)
    return parsed.region if parsed else None


def _bucket_problem(bucket: str) -> str | None:
    """Why S3 would refuse a bucket name that BUCKET's characters allow."""
    if ".." in bucket or aws_rules.IP_ADDRESS.fullmatch(bucket):
        return "no '..' and not an IP address"
    if bucket.startswith(aws_rules.BUCKET_RESERVED_PREFIXES) or bucket.endswith(aws_rules.BUCKET_RESERVED_SUFFIXES):
        return "not a name S3 reserves (xn--, sthree-, amzn-s3-demo- prefixes; -s3alias, --ol-s3 suffixes)"
    return None


REQUIRED = ("region", "role_arn", "bucket", "image_uri")
RUN_FIELDS = ("pipeline_name", "region")  # enough to reach a deployed pipeline (start, status)
PROMOTE_FIELDS = ("pipeline_name", "region", "role_arn", "bucket", "tags")  # the settings promote offers
CHECKS = {
    "pipeline_name": (aws_rules.PIPELINE_NAME, f"letters, digits and hyphens, at most {MAX_PIPELINE_NAME}"),
    "region": (aws_rules.REGION, "a region code such as eu-west-1"),
    "role_arn": (aws_rules.ROLE_ARN, "arn:aws:iam::ACCOUNT:role/NAME"),
    "bucket": (aws_rules.BUCKET, "a bucket name of 3-63 lowercase letters, digits, dots and hyphens, not an s3:// URI"),
    "image_uri": (aws_rules.IMAGE_URI, aws_rules.IMAGE_URI_FORM),
}


def _check(field: str, value: str) -> None:
    """Refuse a value AWS would refuse, naming the flag and variable that set it."""
    name = field.replace("_", " ")
    if field == "pipeline_name" and len(value) > MAX_PIPELINE_NAME:
        raise SettingsError(
            f"pipeline name is {len(value)} characters; SageMaker allows at most {MAX_PIPELINE_NAME}:"
            f" set a shorter {fix(field)}"
        )
    pattern, expected = CHECKS[field]
    problem = None if pattern.fullmatch(value) else expected
    if problem is None and field == "bucket":
        problem = _bucket_problem(value)
    if problem:
        raise SettingsError(f"malformed {name} {shown(value)}: expected {problem}; set {fix(field)}")


def build_settings(
    values: Mapping[str, str | None], *, offline: bool = False, fields: tuple[str, ...] | None = None
) -> Settings:
    """Validated settings from flag/env values; ``offline`` fills gaps with example values.

    A value of None was not given; an empty string was given empty (a missing setting,
    or no tags). ``fields`` limits what is read to what a command uses (``start`` and
    ``status`` need only the pipeline name and region): the rest stays empty and
    unchecked, so a stray variable for another command cannot fail this one.
    """
    used = ("pipeline_name", *REQUIRED, "tags") if fields is None else ("pipeline_name", *fields)
    merged = {field: values.get(field) for field in used}
    if merged["pipeline_name"] == "":
        raise SettingsError(f"empty pipeline name: set {fix('pipeline_name')}, or leave both unset for the default")
    merged["pipeline_name"] = merged["pipeline_name"] or DEFAULT_PIPELINE_NAME
    if offline:
        image = merged.get("image_uri")
        examples = {**OFFLINE_EXAMPLES, "region": (image and image_region(image)) or DEFAULT_REGION}
        for field, example in examples.items():
            merged[field] = merged.get(field) or example
    for field in REQUIRED:
        if field in used and not merged.get(field):
            raise _missing(field)
    for field in CHECKS:
        if merged.get(field):
            _check(field, str(merged[field]))
    region, image = str(merged.get("region") or ""), str(merged.get("image_uri") or "")
    if region and image and image_region(image) not in (None, region):
        raise SettingsError(
            f"image uri's registry {image.split('/')[0]} is in {image_region(image)}, the pipeline in {region}:"
            f" SageMaker pulls images only from its own region; push the image to {region},"
            f" or set {fix('region')} to match"
        )
    return Settings(
        pipeline_name=str(merged["pipeline_name"]),
        region=region,
        role_arn=str(merged.get("role_arn") or ""),
        bucket=str(merged.get("bucket") or ""),
        image_uri=image,
        tags=parse_tags(merged.get("tags")),
    )
