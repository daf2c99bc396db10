"""Serve the regressor: CSV rows of preprocessed features in, predicted ring counts out."""

import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
