"""Evaluate the trained regressor on the test split; writes evaluation.json (SageMaker's regression_metrics)."""

import json
import logging
import pathlib
import tarfile

import joblib
import numpy as np
import pandas as pd

logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.addHandler(logging.StreamHandler())


if __name__ == "__main__":
    model_path = "/opt/ml/processing/model/model.tar.gz"
    with tarfile.open(model_path) as tar:
        tar.extractall(path=".")

    logger.debug("Loading model.")
    model = joblib.load("model.joblib")

    logger.debug("Reading test data.")
    test_path = "/opt/ml/processing/test/test.csv"
    df = pd.read_csv(test_path, header=None)

    y_test = df.iloc[:, 0].to_numpy()
    df.drop(df.columns[0], axis=1, inplace=True)
    predictions = model.predict(df.to_numpy())

    mse = float(np.mean((y_test - predictions) ** 2))
    std = float(np.std(y_test - predictions))
    report_dict = {"regression_metrics": {"mse": {"value": mse, "standard_deviation": std}}}

    output_dir = "/opt/ml/processing/evaluation"
    pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)

    logger.info("Writing out evaluation report with mse: %f", mse)
    with open(f"{output_dir}/evaluation.json", "w") as f:
        f.write(json.dumps(report_dict))
