"""What the account holds now, as far as an upsert is concerned: read-only calls."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline import aws


@dataclass(frozen=True)
class Deployed:
    """The pipeline (DescribePipeline's answer, or None), its tags, and the S3 keys that matter."""

    pipeline: dict[str, Any] | None
    tags: dict[str, str]
    missing: frozenset[str]  # objects the definition needs (code archive, SDK uploads) not yet stored
    empty_prefixes: frozenset[str]  # default data prefixes holding no object

    @property
    def definition(self) -> str | None:
        return self.pipeline["PipelineDefinition"] if self.pipeline else None


def deployed_pipeline(sm: Any, name: str) -> dict[str, Any] | None:
    """DescribePipeline's answer, or None when the pipeline does not exist."""
    from botocore.exceptions import ClientError

    try:
        return sm.describe_pipeline(PipelineName=name)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        message = error.response.get("Error", {}).get("Message", "")
        # SageMaker says ResourceNotFound; moto a ValidationException "Could not find pipeline".
        if code == "ResourceNotFound" or "does not exist" in message or "could not find" in message.lower():
            return None
        raise


def observe(sm: Any, s3: Any, pipeline_name: str, objects: Iterable[str], data_prefixes: Iterable[str]) -> Deployed:
    """Read the pipeline, its tags, which of ``objects`` are not stored, and which data prefixes are empty."""
    pipeline = deployed_pipeline(sm, pipeline_name)
    tags = {}
    if pipeline:
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=pipeline["PipelineArn"]).get("Tags", [])}
    empty = frozenset(prefix for prefix in data_prefixes if next(aws.list_keys(s3, prefix), None) is None)
    missing = frozenset(uri for uri in objects if not aws.object_exists(s3, uri))
    return Deployed(pipeline, tags, missing, empty)
