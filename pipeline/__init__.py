"""Build, deploy and run the SageMaker training pipeline for the custom framework image."""
