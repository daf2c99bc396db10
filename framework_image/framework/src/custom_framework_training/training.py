"""The framework's entry point: the toolkit's ``train`` command calls :func:`main`.

The toolkit's trainer wraps this call: any exception raised here, including a
failing user script, becomes ``output/failure`` and a non-zero exit.
"""

from __future__ import annotations

import gc
import json
import logging
import os

from sagemaker_training import entry_point, environment, errors, logging_config, runner

from custom_framework_training import distributed, stop_signal, summary, threads

logger = logging.getLogger(__name__)

_INVOCATION = "Invoking user script"
_COMMAND_HEADER = "Invoking script with the following command:"
_UNPARSED = "Failed to parse hyperparameter"


class _RedactSecrets(logging.Filter):
    """Keep secret-looking hyperparameters out of the toolkit's own log lines.

    The toolkit logs a hyperparameter that is not JSON verbatim ("Failed to parse hyperparameter
    NAME value VALUE"), each time it reads them, and its invocation log dumps every
    hyperparameter and variable. The environment was already logged (redacted) by :func:`main`,
    so the invocation keeps only the command, with secret-looking argument values hidden.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if record.msg.startswith(_UNPARSED) and isinstance(record.args, tuple) and len(record.args) == 2:
            name = str(record.args[0])
            record.args = (name, summary.REDACTED if summary.is_secret(name) else record.args[1])
        elif record.msg.startswith(_INVOCATION):
            command = record.msg.rpartition(_COMMAND_HEADER)[2].split()
            record.msg = f"{_INVOCATION}: {' '.join(summary.redact_args(command))}"
            record.args = ()
        return True


# Installed when the toolkit imports this module, before it configures its logger and reads
# the hyperparameters again: no line of its own logging comes before the filter.
logging_config.get_logger().addFilter(_RedactSecrets())


def main() -> None:
    """Configure threads, logging, multi-host settings and the stop signal, then run the user's code."""
    stop_signal.install()
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
        _run_user_script(env, extra)
    finally:
        # The toolkit reports and exits next: its objects (boto3's, after a code download from S3)
        # are not collected one by one at the exit, about 0.1 s.
        gc.freeze()


def _run_user_script(env: environment.Environment, extra: dict[str, str]) -> None:
    """The user's entry point; a failure's command line (in the failure reason and the log) shows no
    secret-looking hyperparameter's value."""
    try:
        entry_point.run(
            uri=env.module_dir,
            user_entry_point=env.user_entry_point,
            args=env.to_cmd_args(),
            env_vars={**env.to_env_vars(), **extra},  # the toolkit exports these to the user process
            capture_error=True,
            runner_type=runner.ProcessRunnerType,
        )
    except errors._CalledProcessError as error:  # the toolkit's error with the command it ran
        error.cmd = summary.hide_values(str(error.cmd), env.hyperparameters)
        raise
