"""Serve the model train.py saves, through the framework image's ``serve`` (SageMaker's handler convention).

Requests: ``text/csv`` rows of the features without a header, or ``application/json``,
a list of rows or ``{"instances": [...]}``. Add ``"probabilities": true`` to a JSON
object to get each class's probability too. Responses follow ``Accept``:
``application/json`` gives ``{"predictions": [...]}`` (and ``"probabilities"``),
``text/csv`` one line per row (the label, then the probabilities when asked).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from custom_framework_training.serving import content
from custom_framework_training.serving.errors import BadRequest, NotAcceptable


@dataclass(frozen=True)
class Model:
    estimator: Any
    features: list[str]


@dataclass(frozen=True)
class Rows:
    values: np.ndarray
    probabilities: bool


def model_fn(model_dir: str) -> Model:
    folder = Path(model_dir)
    features = json.loads((folder / "features.json").read_text())["features"]
    return Model(joblib.load(folder / "model.joblib"), features)


def input_fn(request_body: str | bytes, content_type: str) -> Rows:
    if content_type != content.JSON:
        return Rows(content.decode(request_body, content_type), probabilities=False)
    try:
        data = json.loads(request_body)
    except ValueError as error:  # a handler's own ValueError is a 500, as in SageMaker's toolkits
        raise BadRequest(f"the {content.JSON} body is not valid JSON: {error}") from None
    wants = isinstance(data, dict) and data.get("probabilities") is True
    return Rows(content.json_rows(data), probabilities=wants)


def predict_fn(rows: Rows, model: Model) -> dict[str, np.ndarray]:
    if rows.values.shape[1] != len(model.features):
        raise BadRequest(
            f"each row needs {len(model.features)} values ({', '.join(model.features)}), got {rows.values.shape[1]}"
        )
    labels = model.estimator.predict(rows.values)
    if np.array_equal(labels, np.round(labels)):
        labels = labels.astype(int)  # train.py reads labels as floats; 1 reads better than 1.0
    prediction = {"predictions": labels}
    if rows.probabilities:
        prediction["probabilities"] = model.estimator.predict_proba(rows.values)
    return prediction


def output_fn(prediction: dict[str, np.ndarray], accept: str) -> tuple[bytes, str]:
    if accept == content.JSON:
        return content.encode(prediction, content.JSON), accept
    if accept == content.CSV:
        rows = [[label] for label in prediction["predictions"].tolist()]
        if "probabilities" in prediction:
            rows = [[*row, *p] for row, p in zip(rows, prediction["probabilities"].tolist(), strict=True)]
        return "".join(",".join(map(str, row)) + "\n" for row in rows).encode(), accept
    raise NotAcceptable(f"cannot answer with {accept!r}: send Accept {content.JSON} or {content.CSV}")
