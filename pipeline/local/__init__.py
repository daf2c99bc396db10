"""Training jobs and pipeline runs on this machine, through the real toolkit, in the image's packages
(or the image itself).

``job_request`` builds and reads CreateTrainingJob requests (the one job model);
``job_inputs`` types train-local's flags; ``job_config`` writes ``/opt/ml/input/config``;
``channels`` fills the data folders; ``checkpoints`` restores and copies back the checkpoint
folder; ``runtime`` makes the cached job environment; ``host_env`` the job's variables;
``runners`` runs hosts as processes or in ``container``; ``processes`` and ``host_init`` start,
stop and kill them; ``stops`` handles stop signals; ``files`` copies and packs safely;
``failure`` words a failed job's reason; ``job`` runs a job; ``executor`` runs a pipeline
definition's steps (``run --local``). Nothing here imports the SageMaker SDK or the deploy package.
"""
