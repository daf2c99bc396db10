"""Render a source dir into the pipeline definition: pure, no AWS call (the SDK runs offline)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.definition import sourcedir
from pipeline.definition.settings import Settings
from pipeline.definition.sourcedir import Source


@dataclass(frozen=True)
class Rendered:
    """A definition, the code archive it points at, and what else it needs in S3."""

    definition: str
    code_uri: str
    archive: bytes
    uploads: Mapping[str, bytes] = field(default_factory=dict)  # S3 URI -> bytes, made by the SDK's calls
    help: Mapping[str, str] = field(default_factory=dict)  # parameter name -> what it means
    read: tuple[Path, ...] = ()  # the source files the pipeline module and the SDK read

    @property
    def objects(self) -> dict[str, bytes]:
        """Everything the definition needs in S3: the code archive and the SDK's uploads."""
        return {self.code_uri: self.archive, **self.uploads}


def render(settings: Settings, source: Source) -> Rendered:
    """The definition for ``source`` under ``settings``; the SDK is imported here, on first use."""
    from pipeline.definition import sdk

    code_uri = sourcedir.s3_uri(settings.code_prefix, source.archive)
    out = sdk.render(settings, source.contract, source.path, code_uri)
    return Rendered(out.definition, code_uri, source.archive, out.uploads, out.help, out.read)
