"""The framework's entry point: the toolkit's ``train`` command calls :func:`main`.

The toolkit's trainer wraps this call: any exception raised here, including a
failing user script, becomes ``output/failure`` and a non-zero exit.
"""

from __future__ import annotations

import gc
import json
import logging
import os

from sagemaker_training import entry_point, environment, logging_config, runner

from custom_framework_training import distributed, stop_signal, summary, threads

logger = logging.getLogger(__name__)

_INVOCATION = "Invoking user script"
_COMMAND_HEADER = "Invoking script with the following command:"


class _RedactInvocation(logging.Filter):
    """Shorten the toolkit's invocation log, which dumps every hyperparameter verbatim.

    The environment was already logged (redacted) by :func:`main`; only the
    command is kept, with secret-looking argument values hidden.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_INVOCATION):
            command = record.msg.rpartition(_COMMAND_HEADER)[2].split()
            record.msg = f"{_INVOCATION}: {' '.join(summary.redact_args(command))}"
            record.args = ()
        return True


def main() -> None:
    """Configure threads, logging, multi-host settings and the stop signal, then run the user's code."""
    stop_signal.install()
    logging_config.get_logger().addFilter(_RedactInvocation())
    env = environment.Environment()
    logger.info(
        "Training environment: %s",
        json.dumps(
            summary.summary(
                job_name=env.job_name,
                hosts=env.hosts,
                current_host=env.current_host,
                channels=env.channel_input_dirs,
                hyperparameters=env.hyperparameters,
                num_cpus=env.num_cpus,
                num_gpus=env.num_gpus,
            ),
            sort_keys=True,
        ),
    )
    extra = {
        **threads.thread_settings(env.num_cpus, os.environ),
        **distributed.rendezvous_settings(env.hosts, env.current_host),
    }
    logger.info("Framework settings: %s", json.dumps(extra, sort_keys=True))
    try:
        entry_point.run(
            uri=env.module_dir,
            user_entry_point=env.user_entry_point,
            args=env.to_cmd_args(),
            env_vars={**env.to_env_vars(), **extra},  # the toolkit exports these to the user process
            capture_error=True,
            runner_type=runner.ProcessRunnerType,
        )
    finally:
        # The toolkit reports and exits next: its objects (boto3's, after a code download from S3)
        # are not collected one by one at the exit, about 0.1 s.
        gc.freeze()
