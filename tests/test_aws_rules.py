"""The AWS facts the offline path checks without botocore are its model's, and one parser reads image URIs."""

from __future__ import annotations

import pytest

from pipeline import aws
from pipeline.definition import aws_rules
from pipeline.definition.aws_rules import ImageUri, parse_image_uri
from pipeline.deploy import validate


def model_fact(operation: str, path: str, fact: str):
    shape = aws.service_model("sagemaker").operation_model(operation).input_shape
    for name in path.split("."):
        shape = getattr(shape, "member", shape).members[name]  # in a list: in its items
    return sorted(shape.enum) if fact == "enum" else shape.metadata[fact]


@pytest.mark.parametrize("key", list(aws_rules.MODEL), ids=lambda key: ".".join(key))
def test_each_copied_fact_is_botocores(key):
    copied = aws_rules.MODEL[key]
    assert (sorted(copied) if key[2] == "enum" else copied) == model_fact(*key)


def test_the_tag_patterns_are_the_models_read_as_ascii():
    key = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
    assert model_fact("CreatePipeline", "Tags.Key", "pattern") == model_fact("CreatePipeline", "Tags.Value", "pattern")
    assert model_fact("CreatePipeline", "Tags.Key", "pattern") == key
    model = validate._pattern(key)
    for text in ("team", "a b:c/d=e+f-g@h.i_j", "", "x" * 129, "é", "a\n", "a,b", "a*b"):
        fits = model.fullmatch(text) is not None
        assert (aws_rules.TAG_KEY.fullmatch(text) is not None) == (fits and 1 <= len(text) <= 128), text
        assert (aws_rules.TAG_VALUE.fullmatch(text) is not None) == (fits and len(text) <= 256), text


@pytest.mark.parametrize(
    "uri, parsed",
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/custom-framework:1.0",
            ImageUri("123456789012", "eu-west-1", "team/custom-framework", "1.0", None),
        ),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/repo@sha256:" + "a" * 64,
            ImageUri("123456789012", "cn-north-1", "repo", None, "sha256:" + "a" * 64),
        ),
        ("localhost:5000/repo:tag", ImageUri(None, None, "repo", "tag", None)),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo", None),  # no tag
        ("docker.io/library/python:3.12", None),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo:tag\n", None),
        ("12345678901.dkr.ecr.eu-west-1.amazonaws.com/repo:tag", None),
    ],
)
def test_one_parser_reads_an_image_uri(uri, parsed):
    assert parse_image_uri(uri) == parsed
