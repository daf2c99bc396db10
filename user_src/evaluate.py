"""Evaluate a trained model on held-out data and write ``evaluation.json``.

The pipeline runs this as its Evaluate step (a processing job on the framework image):
``python evaluate.py --model-dir DIR --data-dir DIR --output-dir DIR``, where the model
dir holds the training job's ``model.tar.gz``. The report follows SageMaker's model
quality format, so the registered model shows these metrics in Studio; the pipeline's
gate reads ``binary_classification_metrics.accuracy.value`` from it.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from pathlib import Path

import joblib
from sklearn.metrics import accuracy_score, f1_score, log_loss

from data import load_channel
from metrics import format_metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, help="folder holding model.tar.gz")
    parser.add_argument("--data-dir", required=True, help="held-out CSV files, with the training header")
    parser.add_argument("--output-dir", required=True, help="where evaluation.json goes")
    return parser.parse_args(argv)


# The "data" filter refuses members that would land outside the folder; Pythons before 3.11.4
# (Debian bookworm's 3.11.2) lack it, and there the archive is trusted: the pipeline's own model.
SAFE_EXTRACT = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def report(metrics: dict[str, float]) -> dict:
    """SageMaker's model quality statistics layout: one ``{"value": ...}`` per metric."""
    return {"binary_classification_metrics": {name: {"value": value} for name, value in metrics.items()}}


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as unpacked:
        with tarfile.open(Path(args.model_dir) / "model.tar.gz") as tar:
            tar.extractall(unpacked, **SAFE_EXTRACT)
        model = joblib.load(Path(unpacked) / "model.joblib")
        target = json.loads((Path(unpacked) / "features.json").read_text())["target"]
    features, labels, _ = load_channel(args.data_dir, target)
    predicted = model.predict(features)
    metrics = {
        "accuracy": accuracy_score(labels, predicted),
        "f1": f1_score(labels, predicted, average="macro"),
        "log_loss": log_loss(labels, model.predict_proba(features), labels=model.classes_),
    }
    print(format_metrics({f"evaluation:{name}": value for name, value in metrics.items()}), flush=True)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation.json").write_text(json.dumps(report(metrics), indent=2, sort_keys=True))
    return metrics


if __name__ == "__main__":
    main()
