"""Deployment settings: CLI flags with environment-variable fallbacks, checked before any AWS call."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.definition.parameters import ECR_IMAGE
from pipeline.errors import SettingsError

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
PIPELINE_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}", re.ASCII)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d", re.ASCII)
TAG = re.compile(r"[\w.:/=+@ -]{1,128}", re.ASCII)

# flag destination -> (environment variable, help); the CLI builds its flags from this.
ENVIRONMENT = {
    "pipeline_name": ("PIPELINE_NAME", "pipeline name"),
    "region": ("AWS_REGION", "AWS region"),
    "role_arn": ("SAGEMAKER_ROLE_ARN", "execution role the training job assumes"),
    "bucket": ("SAGEMAKER_BUCKET", "S3 bucket for code, sample data and model artifacts"),
    "image_uri": ("IMAGE_URI", "framework image in ECR, ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG"),
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


def _fix(field: str) -> str:
    """How to set a field: its flag and its environment variable."""
    return f"--{field.replace('_', '-')} or {ENVIRONMENT[field][0]}"


def _missing(field: str) -> SettingsError:
    return SettingsError(f"missing {field.replace('_', ' ')}: set {_fix(field)}")


def parse_tags(text: str | None) -> tuple[tuple[str, str], ...]:
    """``"team=ml,project=x"`` as sorted pairs."""
    pairs = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not TAG.fullmatch(key) or (value and not TAG.fullmatch(value)):
            raise SettingsError(f"malformed tag {item!r}: use --tags Key=Value,Key2=Value2 or PIPELINE_TAGS")
        pairs.append((key, value))
    return tuple(sorted(pairs))


REQUIRED = ("region", "role_arn", "bucket", "image_uri")


def build_settings(
    values: dict[str, str | None], *, offline: bool = False, fields: tuple[str, ...] | None = None
) -> Settings:
    """Validated settings from flag/env values; ``offline`` fills gaps with example values.

    ``fields`` limits what is read to what a command uses (``start`` and
    ``status`` need only the pipeline name and region): the rest stays empty and
    unchecked, so a stray variable for another command cannot fail this one.
    """
    used = ("pipeline_name", *REQUIRED, "tags") if fields is None else ("pipeline_name", *fields)
    merged = {field: values.get(field) for field in used}
    merged["pipeline_name"] = merged["pipeline_name"] or DEFAULT_PIPELINE_NAME
    if offline:
        for field, example in OFFLINE_EXAMPLES.items():
            merged[field] = merged.get(field) or example
    for field in REQUIRED:
        if field in used and not merged.get(field):
            raise _missing(field)
    checks = {
        "pipeline_name": (PIPELINE_NAME, "letters, digits and hyphens, at most 256"),
        "region": (REGION, "a region code such as eu-west-1"),
        "role_arn": (ROLE_ARN, "arn:aws:iam::ACCOUNT:role/NAME"),
        "bucket": (BUCKET, "a bucket name, not an s3:// URI"),
        "image_uri": (ECR_IMAGE, "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG"),
    }
    for field, (pattern, expected) in checks.items():
        value = str(merged.get(field) or "")
        if value and not pattern.fullmatch(value):
            raise SettingsError(
                f"malformed {field.replace('_', ' ')} {value!r}: expected {expected}; set {_fix(field)}"
            )
    return Settings(
        pipeline_name=str(merged["pipeline_name"]),
        region=str(merged.get("region") or ""),
        role_arn=str(merged.get("role_arn") or ""),
        bucket=str(merged.get("bucket") or ""),
        image_uri=str(merged.get("image_uri") or ""),
        tags=parse_tags(merged.get("tags")),
    )
