"""A cache of the SDK's output for the local commands: after a code-only edit, no SDK import.

The definition depends on the code only through one string, the content-addressed code
URI. So the SDK renders once per key: the settings, the contract, the pipeline module,
the definition package's own source, and the SDK and Python versions. The cached text
holds a placeholder where the code URI goes; each render fills in the archive's own URI.
Files the render read besides (modules the pipeline module imported, scripts the SDK
uploads) are listed with their hashes, and a hit needs them unchanged.
Entries are written atomically (safe when commands run at once) and the cache keeps
the newest :data:`MAX_ENTRIES`. ``upsert`` never reads it: it deploys a fresh render.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pipeline.definition import contract, sourcedir, user_cache
from pipeline.definition.render import Rendered, render
from pipeline.definition.settings import Settings
from pipeline.definition.sourcedir import Source

MAX_ENTRIES = 32
PLACEHOLDER = "s3://render-cache-placeholder/code/0000000000000000/sourcedir.tar.gz"
DEFINITION_PACKAGE = Path(__file__).resolve().parent / "definition"


def cache_dir() -> Path:
    """Under the user's cache folder, never inside the project."""
    return user_cache.root() / "render"


def key(settings: Settings, source: Source) -> str:
    """Everything the SDK's output depends on, except the code archive."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str).encode())
    digest.update(repr(source.contract).encode())
    workflow = source.path / contract.WORKFLOW_FILE
    digest.update(workflow.read_bytes() if workflow.is_file() else b"")
    for path in sorted(DEFINITION_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(_sdk_version().encode() + sys.version.encode())
    return digest.hexdigest()[:32]


_VERSION_LOCK = threading.Lock()


@functools.cache
def _sdk_version() -> str:
    """The SDK's version, looked up once: importlib.metadata's discovery is not safe to run in
    several threads at once (Python 3.11.2 finds no distribution now and then)."""
    with _VERSION_LOCK:
        return importlib.metadata.version("sagemaker")


def _store(path: Path, text: str) -> None:
    """Write atomically, then drop the oldest entries beyond the bound."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as out:
        out.write(text)
    os.replace(out.name, path)
    entries = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        with contextlib.suppress(FileNotFoundError):  # another process may have dropped it
            old.unlink()


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _entry(rendered: Rendered) -> str:
    """A render as cache text: the definition with the placeholder, and what else it carries."""
    return json.dumps(
        {
            "definition": rendered.definition.replace(rendered.code_uri, PLACEHOLDER),
            "uploads": {uri: base64.b64encode(body).decode() for uri, body in rendered.uploads.items()},
            "help": dict(rendered.help),
            "read": {str(path): _digest(path) for path in rendered.read},
        }
    )


def _from_entry(text: str, code_uri: str, archive: bytes) -> Rendered | None:
    """The cached render, or None when it is unreadable or a file it read has changed since."""
    try:
        entry = json.loads(text)
        if any(_digest(Path(path)) != digest for path, digest in entry["read"].items()):
            return None
        uploads = {uri: base64.b64decode(body) for uri, body in entry["uploads"].items()}
        read = tuple(Path(path) for path in entry["read"])
        definition = entry["definition"].replace(PLACEHOLDER, code_uri)
        return Rendered(definition, code_uri, archive, uploads, entry["help"], read)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def cached_render(settings: Settings, source: Source, check: Callable[[str], None], use_cache: bool = True) -> Rendered:
    """:func:`render`, from the cache when an entry matches; a miss renders, runs ``check`` on the
    definition (which raises if it is unusable) and only then stores it, so a hit needs no check."""
    if not use_cache:
        fresh = render(settings, source)
        check(fresh.definition)
        return fresh
    code_uri = sourcedir.s3_uri(settings.code_prefix, source.archive)
    entry = cache_dir() / f"{key(settings, source)}.json"
    try:
        cached = _from_entry(entry.read_text(), code_uri, source.archive)
    except OSError:  # missing or unreadable: render
        cached = None
    if cached is not None:
        return cached
    fresh = render(settings, source)
    check(fresh.definition)
    with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
        _store(entry, _entry(fresh))
    return fresh
