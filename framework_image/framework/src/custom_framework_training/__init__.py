"""Custom framework: configures the process, then runs the user's entry point.

The image names ``custom_framework_training.training:main`` in
``SAGEMAKER_TRAINING_MODULE``; the toolkit's ``train`` command imports it.
"""
