"""Train a gradient-boosted classifier on the ``train`` channel, evaluate on ``validation``.

The toolkit runs this script as ``python train.py --name value ...`` with one
flag per hyperparameter, and sets the SM_* variables read below.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import joblib
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss

from data import load_channel
from metrics import format_metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Hyperparameters as flags, and SageMaker's paths from the SM_* environment."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--max-leaf-nodes", type=int, default=31)
    parser.add_argument("--l2-regularization", type=float, default=0.0)
    parser.add_argument("--target", default="label", help="name of the label column")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    parser.add_argument("--output-data-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR", "output"))
    args = parser.parse_args(argv)
    for channel in ("train", "validation"):
        if not getattr(args, channel):
            # An exception (not parser.error) so the toolkit copies it into output/failure.
            raise ValueError(f"no {channel} channel: give the job a '{channel}' input or pass --{channel}")
    return args


def is_leader() -> bool:
    """Only the first host writes the model; every host trains and reports metrics."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    return not hosts or os.environ.get("SM_CURRENT_HOST") == sorted(hosts)[0]


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    x_train, y_train, features = load_channel(args.train, args.target)
    x_val, y_val, _ = load_channel(args.validation, args.target)

    model = HistGradientBoostingClassifier(
        learning_rate=args.learning_rate,
        max_iter=args.max_iter,
        max_leaf_nodes=args.max_leaf_nodes,
        l2_regularization=args.l2_regularization,
        random_state=args.seed,
    )
    model.fit(x_train, y_train)

    predicted = model.predict(x_val)
    metrics = {
        "train:accuracy": accuracy_score(y_train, model.predict(x_train)),
        "validation:accuracy": accuracy_score(y_val, predicted),
        "validation:f1": f1_score(y_val, predicted, average="macro"),
        "validation:log_loss": log_loss(y_val, model.predict_proba(x_val), labels=model.classes_),
    }
    print(format_metrics(metrics), flush=True)

    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    if is_leader():
        model_dir = Path(args.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, model_dir / "model.joblib")
        (model_dir / "features.json").write_text(json.dumps({"features": features, "target": args.target}))
    return metrics


if __name__ == "__main__":
    main()
