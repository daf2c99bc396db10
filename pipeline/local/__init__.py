"""Training jobs and pipeline runs on this machine, through the real toolkit, without Docker.

``job_request`` builds and reads CreateTrainingJob requests (the one job model);
``job_config`` writes ``/opt/ml/input/config``; ``channels`` fills the data folders;
``processes`` runs hosts as process groups; ``job`` runs a job and packs its artifacts;
``executor`` runs a pipeline definition's steps (``run --local``).
Nothing here imports the SageMaker SDK or the deploy package.
"""
