"""Load a SageMaker channel of headered CSV files into feature and label arrays."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def csv_files(channel_dir: str) -> list[Path]:
    """Every CSV file in a channel, sorted so row order is reproducible."""
    files = sorted(p for p in Path(channel_dir).rglob("*.csv") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no .csv files in channel directory {channel_dir}")
    return files


def load_channel(channel_dir: str, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and feature names from all CSV files of one channel.

    Every file must share the first file's header, which must contain ``target``.
    """
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in csv_files(channel_dir):
        with path.open(newline="") as f:
            reader = csv.reader(f)
            file_header = next(reader)
            if header is None:
                header = file_header
            elif file_header != header:
                raise ValueError(f"{path}: header {file_header} differs from {header}")
            rows.extend(row for row in reader if row)
    assert header is not None
    if target not in header:
        raise ValueError(f"target column {target!r} not in header {header}")
    table = np.asarray(rows, dtype=float)
    label_index = header.index(target)
    features = [name for name in header if name != target]
    return np.delete(table, label_index, axis=1), table[:, label_index], features
