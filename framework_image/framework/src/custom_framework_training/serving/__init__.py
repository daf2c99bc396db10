"""Serving on SageMaker's inference contract, from the same image that trains.

``serve`` (the image's command, :mod:`.cli`) and :func:`serve` (the same server from
Python, without Docker) load the user's ``model_fn``/``input_fn``/``predict_fn``/``output_fn``
and answer ``GET /ping`` and ``POST /invocations``.
"""

from custom_framework_training.serving.errors import StartupError
from custom_framework_training.serving.server import serve

__all__ = ["StartupError", "serve"]
