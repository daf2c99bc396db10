"""Render a source dir into the pipeline definition: pure, no AWS call (the SDK runs offline)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.definition import sourcedir
from pipeline.definition.settings import Settings
from pipeline.definition.sourcedir import Source


@dataclass(frozen=True)
class Rendered:
    """A definition and the code archive it points at."""

    definition: str
    code_uri: str
    archive: bytes


def render(settings: Settings, source: Source) -> Rendered:
    """The definition for ``source`` under ``settings``; the SDK is imported here, on first use."""
    from pipeline.definition import sdk

    code_uri = sourcedir.s3_uri(settings.code_prefix, source.archive)
    return Rendered(sdk.definition_json(settings, source.contract, code_uri), code_uri, source.archive)
