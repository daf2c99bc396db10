"""Apply a checked plan: the only module that writes to the account."""

from __future__ import annotations

from typing import Any

from pipeline import aws
from pipeline.deploy.plan import Plan
from pipeline.deploy.state import deployed_pipeline
from pipeline.errors import AwsError


def _unchanged_since_plan(sm: Any, plan: Plan) -> None:
    """Refuse when another deploy changed the pipeline after this plan read it: the last writer
    would silently win."""
    current = deployed_pipeline(sm, plan.pipeline_name)
    version = (current.get("LastModifiedTime"), current["PipelineDefinition"]) if current else (None, None)
    if version != plan.deployed_version:
        raise AwsError(
            f"pipeline {plan.pipeline_name} changed while this upsert was planning (another deploy?);"
            " nothing was written: run upsert again"
        )


def apply(plan: Plan, sm: Any, s3: Any) -> None:
    """Make every write of ``plan``: uploads first (the definition points at them), then the pipeline."""
    _unchanged_since_plan(sm, plan)
    for upload in plan.uploads:
        bucket, key = aws.split_s3_uri(upload.uri)
        s3.put_object(Bucket=bucket, Key=key, Body=upload.body)
    if plan.create:
        sm.create_pipeline(**plan.request)
        return
    if plan.request:
        sm.update_pipeline(**plan.request)
    if plan.tags:
        sm.add_tags(ResourceArn=plan.deployed_arn, Tags=list(plan.tags))
