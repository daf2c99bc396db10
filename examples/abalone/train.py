"""Train a gradient-boosted regressor on the preprocessed abalone data (label in the first column).

Script mode, as on SageMaker's scikit-learn container: hyperparameters arrive as flags,
data in /opt/ml/input/data/<channel>, the model goes to SM_MODEL_DIR.
"""

import argparse
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_squared_error


def load(channel: str) -> tuple[np.ndarray, np.ndarray]:
    folder = os.environ.get(f"SM_CHANNEL_{channel.upper()}", f"/opt/ml/input/data/{channel}")
    frames = [pd.read_csv(os.path.join(folder, name), header=None) for name in sorted(os.listdir(folder))]
    data = pd.concat(frames).to_numpy()
    return data[:, 1:], data[:, 0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    args = parser.parse_args()

    X, y = load("train")
    model = HistGradientBoostingRegressor(max_iter=args.max_iter, learning_rate=args.learning_rate, random_state=0)
    model.fit(X, y)
    X_val, y_val = load("validation")
    print(f"validation:mse={mean_squared_error(y_val, model.predict(X_val)):.6f};")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
