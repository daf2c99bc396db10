"""The pipeline definition, built from settings and a source dir: pure, no AWS call, no writes.

``contract`` reads what the training script declares (``training.toml``); ``parameters`` and
``values`` type parameters and their overrides; ``sourcedir`` packs the code; ``sdk`` (the only
SageMaker SDK user) holds the building blocks and runs the user's pipeline module
(``workflow.py``) into definition JSON; ``dag`` orders and checks the step graph; ``render``
puts a render together; ``expressions`` evaluates a definition's values; ``diff`` compares two
definitions. May import: the standard library, ``pipeline.errors``, and (``sdk`` alone) the SDK
and boto3 for an inert session; never ``deploy``, ``local``, ``cli`` or ``pipeline.aws``.
"""
