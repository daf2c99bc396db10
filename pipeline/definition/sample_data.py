"""The embedded default data set: a seeded, synthetic binary classification problem in CSV.

Made in code (no download, no numpy) so a fresh clone can train at once and
the files are identical on every machine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path

FEATURES = 8
TARGET = "label"
CHANNEL_ROWS = {"train": 800, "validation": 200}


def rows(count: int, rng: random.Random) -> list[list[float]]:
    """Rows of features and a label that depends on them non-linearly, with 5% label noise."""
    table = []
    for _ in range(count):
        x = [round(rng.gauss(0.0, 1.0), 5) for _ in range(FEATURES)]
        score = x[0] * x[1] + math.sin(2 * x[2]) + 0.5 * x[3] - 0.25 * x[4] ** 2
        label = int(score > 0) ^ int(rng.random() < 0.05)
        table.append([*x, label])
    return table


def to_csv(table: list[list[float]]) -> str:
    header = [f"f{i}" for i in range(FEATURES)] + [TARGET]
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in table]
    return "\n".join(lines) + "\n"


def channel_files(seed: int = 42) -> dict[str, str]:
    """Channel name to CSV text; the same seed always gives the same bytes."""
    rng = random.Random(seed)
    return {channel: to_csv(rows(count, rng)) for channel, count in CHANNEL_ROWS.items()}


def write(root: Path, splits: Mapping[str, str] | None = None, seed: int = 42) -> dict[str, Path]:
    """Write ``root/<channel>/<channel>.csv`` for each channel -> split (default: each split as
    its own channel) and return each channel's folder."""
    files = channel_files(seed)
    folders = {}
    for channel, split in (splits or {name: name for name in files}).items():
        folder = root / channel
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{channel}.csv"
        try:
            path.write_text(files[split])
        except OSError as error:  # write() names no file: a full disk must say which
            raise OSError(error.errno, error.strerror, str(path)) from None
        folders[channel] = folder
    return folders
