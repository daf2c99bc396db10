"""Custom framework: configures the process, then runs the user's entry point; and serves the model.

The image names ``custom_framework_training.training:main`` in
``SAGEMAKER_TRAINING_MODULE``; the toolkit's ``train`` command imports it.
``serve`` (:mod:`custom_framework_training.serving`) is the image's command for hosting.
"""
