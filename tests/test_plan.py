"""The upsert plan, computed in-process from plain data: what diff shows is what upsert writes."""

from __future__ import annotations

import json

from pipeline.definition.render import Rendered
from pipeline.definition.settings import build_settings
from pipeline.deploy import plan
from pipeline.deploy.state import Deployed

SETTINGS = build_settings({"tags": "team=ml"}, offline=True)
DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "Train", "Arguments": {"A": 1}}]})
ARN = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/custom-framework-training"  # as AWS would take it
RENDERED = Rendered(DEFINITION, "s3://example-sagemaker-bucket/p/code/abc/sourcedir.tar.gz", b"archive")


def deployed(definition: str | None, tags: dict[str, str] | None = None, code: bool = True) -> Deployed:
    pipeline = None
    if definition is not None:
        pipeline = {"PipelineArn": ARN, "PipelineDefinition": definition, "LastModifiedTime": 1}
    return Deployed(pipeline, tags or {}, frozenset() if code else frozenset(RENDERED.objects), frozenset())


def test_a_new_pipeline_is_created_with_its_tags_after_its_uploads():
    made = plan.make(SETTINGS, RENDERED, deployed(None, code=False), {"s3://b/p/data/train/train.csv": b"csv"})
    assert made.create and not made.empty
    assert [u.uri for u in made.uploads] == [RENDERED.code_uri, "s3://b/p/data/train/train.csv"]
    assert made.request["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert made.request["PipelineDefinition"] == DEFINITION
    assert made.lines()[:2] == [
        f"+ upload {RENDERED.code_uri} (code archive, 7 bytes)",
        "+ upload s3://b/p/data/train/train.csv (sample data, 3 bytes)",
    ]


def test_nothing_changed_is_an_empty_plan():
    made = plan.make(SETTINGS, RENDERED, deployed(DEFINITION, {"team": "ml", "by-hand": "x"}), {})
    assert made.empty and made.lines() == [] and made.request is None


def test_a_changed_definition_is_an_update_listing_the_leaves():
    old = json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "Train", "Arguments": {"A": 0}}]})
    made = plan.make(SETTINGS, RENDERED, deployed(old, {"team": "ml"}), {})
    assert not made.create and set(made.request) == {
        "PipelineName",
        "PipelineDefinition",
        "PipelineDescription",
        "RoleArn",
    }
    assert made.lines() == ["  ~ Steps[Train].Arguments.A: 0 -> 1"]
    assert made.deployed_version == (1, old)


def test_missing_or_changed_tags_are_added_and_hand_made_ones_kept():
    made = plan.make(SETTINGS, RENDERED, deployed(DEFINITION, {"team": "data", "by-hand": "x"}), {})
    assert made.request is None
    assert made.tags == ({"Key": "team", "Value": "ml"},)
    assert made.lines() == ['~ Tags.team: "ml"']


def test_the_sdks_uploads_are_planned_like_the_code_archive_only_when_missing():
    """A ScriptProcessor's script (recorded by the render, content-addressed) is uploaded by the plan."""
    script = "s3://example-sagemaker-bucket/p/code/0123/preprocess.py"
    rendered = Rendered(DEFINITION, RENDERED.code_uri, b"archive", uploads={script: b"print(1)"})
    missing = Deployed(None, {}, frozenset({script}), frozenset())
    made = plan.make(SETTINGS, rendered, missing, {})
    assert [(u.uri, u.body, u.why) for u in made.uploads] == [(script, b"print(1)", "code the pipeline module uploads")]
    present = Deployed(None, {}, frozenset(), frozenset())
    assert plan.make(SETTINGS, rendered, present, {}).uploads == ()
