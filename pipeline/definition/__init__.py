"""The pipeline definition, built from settings and a source dir: pure, no AWS call, no writes.

``contract`` reads what the training code declares; ``parameters`` and ``values`` turn it
into typed pipeline parameters; ``sourcedir`` packs the code; ``sdk`` (the only SageMaker
SDK user) renders the definition JSON; ``diff`` compares two definitions.
"""
