"""Apply a checked plan: the only module that writes to the account."""

from __future__ import annotations

from typing import Any

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
    """Make every write of ``plan``, which :func:`plan.make` checked whole: uploads first (the
    definition points at them), then the pipeline's calls."""
    from botocore import xform_name

    _unchanged_since_plan(sm, plan)
    for upload in plan.uploads:
        s3.put_object(**upload.request())
    for operation, request in plan.calls():
        getattr(sm, xform_name(operation))(**request)
