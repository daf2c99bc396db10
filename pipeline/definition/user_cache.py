"""Where the CLI keeps what it can rebuild (renders, packed code): one folder per user, never in the project."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "sagemaker-custom-framework-pipeline"


def root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/<project>``: outside the project, so nothing cached is ever packed."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / NAME
