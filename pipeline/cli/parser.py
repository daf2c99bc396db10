"""The command line: every command, flag and help text. Building it imports no command module
(each is imported when its command runs), so ``--help`` answers at once and a command pays
only for its own imports."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pipeline.cli.common import DEFAULT_OUTPUT_DIR, DEFAULT_SOURCE_DIR
from pipeline.definition.contract import CONTRACT_FILE, WORKFLOW_FILE
from pipeline.definition.settings import ENVIRONMENT, PROMOTE_FIELDS, RUN_FIELDS
from pipeline.errors import ExitStatus
from pipeline.local.processes import DEFAULT_STOP_GRACE_SECONDS

ALL_SETTINGS = tuple(ENVIRONMENT)
DESCRIPTION = "Build, deploy and run the SageMaker training pipeline of a source dir."


class _Once(argparse.Action):
    """A single-value flag (argparse's "store"): given twice, it is refused instead of silently
    keeping the last value."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, self.default) is not self.default:
            parser.error(f"{option_string} is given twice; give it once")
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line, like every other refusal, instead of the whole usage text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in (None, "store"):
            self.register("action", name, _Once)

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


def _command(module: str, function: str, **bound: Any) -> Callable[[argparse.Namespace], int]:
    """A command's function (with ``bound`` arguments), its module ``pipeline.cli.MODULE`` imported
    only when it runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"pipeline.cli.{module}"), function)(args, **bound)

    run.__name__ = function
    return run


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a finite ``kind`` above zero, so a bad count is a usage error, not a traceback."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if not 0 < value < float("inf"):
            raise ValueError(text)
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative(text: str) -> float:
    """An argparse type: a finite number of seconds, zero allowed."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


_non_negative.__name__ = "seconds"


def _folder(text: str) -> Path:
    """An argparse type: a folder path, never empty (an empty one would mean the current folder)."""
    if not text.strip():
        raise ValueError(text)
    return Path(text)


_folder.__name__ = "folder"


def _settings_flags(parser: argparse.ArgumentParser, fields: tuple[str, ...]) -> None:
    group = parser.add_argument_group("settings (flag, else environment variable)")
    for field in fields:
        env, help_text = ENVIRONMENT[field]
        group.add_argument(f"--{field.replace('_', '-')}", dest=field, metavar=env, help=f"{help_text} [env: {env}]")


def _repeated(parser: argparse.ArgumentParser, flag: str, metavar: str, help_text: str) -> None:
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=f"{help_text} (repeatable)")


PARAM_HELP = (
    "pipeline parameter override, checked against the {} definition's parameters (`describe` lists"
    " them; the training step's come from training.toml, e.g. max-iter -> MaxIter, train -> TrainData)"
)


def _local_flags(parser: argparse.ArgumentParser) -> None:
    _repeated(
        parser,
        "--hp",
        "NAME=VALUE",
        f"hyperparameter; typed by {CONTRACT_FILE} when declared, else as the SDK sends it"
        " (valid JSON is that JSON, else a string)",
    )
    _repeated(parser, "--channel", "NAME=SOURCE", "input channel: a folder or an s3:// prefix, any name")
    _repeated(parser, "--content-type", "NAME=TYPE", "content type of a --channel (default: the contract's)")
    parser.add_argument("--train", metavar="SOURCE", help="shorthand for --channel train=SOURCE")
    parser.add_argument("--validation", metavar="SOURCE", help="shorthand for --channel validation=SOURCE")
    _repeated(parser, "--env", "NAME=VALUE", "variable in the job's environment, on top of the contract's")
    _repeated(parser, "--metric", "NAME=REGEX", "metric definition (one capture group), on top of the contract's")
    parser.add_argument(
        "--instance-count", type=_positive(int), default=1, help="hosts to emulate, each with its own base dir"
    )
    parser.add_argument("--instance-type", help="written to resourceconfig.json [default: the contract's]")
    parser.add_argument("--max-runtime", type=_positive(int), help="stop the job after this many seconds")
    parser.add_argument("--entry-point", help="script inside --source-dir [default: the contract's, else train.py]")
    parser.add_argument("--job-name", help="a new job's name [default: local-<timestamp>]")
    parser.add_argument("--output-dir", type=_folder, default=DEFAULT_OUTPUT_DIR, help="where job folders go")
    parser.add_argument(
        "--checkpoints",
        metavar="FOLDER|s3://PREFIX",
        help="restore /opt/ml/checkpoints from here before the job, copy it back after (success, failure or stop)",
    )
    parser.add_argument(
        "--container",
        action="store_true",
        help="run in the framework image (podman or docker; ENGINE picks), as SageMaker runs it",
    )
    parser.add_argument(
        "--image", help="image for --container (implies it) [default: what framework_image/build-local.sh builds]"
    )
    _job_runtime_flags(parser)


def _job_runtime_flags(parser: argparse.ArgumentParser) -> None:
    """How a local job runs, for train-local and run --local alike."""
    parser.add_argument(
        "--python",
        metavar="INTERPRETER",
        help="Python the job environment is made from [default: the image's version on PATH, else this one]",
    )
    parser.add_argument(
        "--stop-grace",
        type=_non_negative,
        default=DEFAULT_STOP_GRACE_SECONDS,
        metavar="SECONDS",
        help="after a stop (Ctrl-C, SIGTERM, --max-runtime), time the script has between SIGTERM and SIGKILL"
        " [default: 120, as SageMaker; a second Ctrl-C kills at once]",
    )


def _no_cache_flag(parser: argparse.ArgumentParser) -> None:
    """For the commands that may reuse a cached render (``pipeline/render_cache.py``)."""
    parser.add_argument(
        "--no-cache", action="store_true", help="render with the SDK even when the same render is cached"
    )


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="python -m pipeline", description=DESCRIPTION)
    root.add_argument("--verbose", action="store_true", help="show SDK and AWS client logs")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, settings: tuple[str, ...] = ALL_SETTINGS, source: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show SDK and AWS client logs")
        if source:
            p.add_argument(
                "--source-dir",
                type=Path,
                default=DEFAULT_SOURCE_DIR,
                help=f"your code folder, with {CONTRACT_FILE} and the pipeline module {WORKFLOW_FILE}"
                " [default: user_src]",
            )
        if settings:
            _settings_flags(p, settings)
        return p

    p = command("demo", "the whole pipeline here on the sample data, then a prediction (no AWS account, no Docker)", ())
    p.add_argument("--output-dir", type=_folder, default=DEFAULT_OUTPUT_DIR, help="where job folders go")
    p.set_defaults(func=_command("demo", "cmd_demo", parse=root.parse_args))

    p = command("stand-in", "run the demo's AWS stand-in (moto on 127.0.0.1) and print its variables", (), False)
    p.add_argument("--port", type=_positive(int), default=5123, help="port to listen on [default: 5123]")
    p.set_defaults(func=_command("standin", "cmd_stand_in"))

    p = command("serve-local", "serve a trained model here with the image's server and your handlers", ())
    p.add_argument("--model", type=Path, help="a model.tar.gz or folder [default: the newest under --output-dir]")
    p.add_argument("--output-dir", type=_folder, default=DEFAULT_OUTPUT_DIR, help="where local jobs are")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_positive(int), default=8080, help="port to listen on")
    p.add_argument("--workers", type=_positive(int), help="server processes [default: one per CPU]")
    p.add_argument("--container", action="store_true", help="serve in the framework image (podman or docker)")
    p.add_argument("--image", help="the image to serve in (implies --container) [default: build-local.sh's]")
    p.set_defaults(func=_command("serve_commands", "cmd_serve_local"))

    p = command("train-local", "run a training job here through the real toolkit, in the image's packages", ())
    _local_flags(p)
    p.set_defaults(func=_command("local_commands", "cmd_train_local"))

    p = command("describe", "print the parameters Studio shows, from the rendered definition (no AWS access)")
    _no_cache_flag(p)
    p.set_defaults(func=_command("deploy_commands", "cmd_describe"))

    p = command("definition", "print the pipeline definition JSON (uploads the code unless --offline)")
    p.add_argument("--offline", action="store_true", help="no AWS access; example values fill missing settings")
    _no_cache_flag(p)
    p.set_defaults(func=_command("deploy_commands", "cmd_definition"))

    p = command("diff", "print what upsert would change (definition, uploads, tags); exit 0 none, 1 some")
    p.add_argument("--no-sample-data", action="store_true", help="as upsert --no-sample-data")
    _no_cache_flag(p)
    p.set_defaults(func=_command("deploy_commands", "cmd_diff"))

    p = command("upsert", "create or update the pipeline, printing what changed")
    p.add_argument("--no-sample-data", action="store_true", help="do not seed empty default data prefixes")
    p.set_defaults(func=_command("deploy_commands", "cmd_upsert"))

    p = command("start", "start a pipeline run, optionally waiting for it", RUN_FIELDS, source=False)
    _repeated(p, "--param", "NAME=VALUE", PARAM_HELP.format("deployed"))
    p.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if it succeeds")
    p.add_argument("--poll-seconds", type=_positive(float), default=15.0, help="status poll interval with --wait")
    p.add_argument("--timeout", type=_positive(float), help="stop waiting after this many seconds")
    p.set_defaults(func=_command("deploy_commands", "cmd_start"))

    p = command("run", "run the pipeline definition's steps on this machine (no Docker)")
    p.add_argument("--local", action="store_true", help="required: execute here, not on SageMaker")
    p.add_argument("--deployed", action="store_true", help="run the definition deployed in the account")
    _repeated(p, "--param", "NAME=VALUE", PARAM_HELP.format("rendered (or, with --deployed, the deployed)"))
    p.add_argument("--output-dir", type=_folder, default=DEFAULT_OUTPUT_DIR, help="where job folders go")
    _job_runtime_flags(p)
    _no_cache_flag(p)
    p.set_defaults(func=_command("local_commands", "cmd_run"))

    p = command("status", "list recent executions", RUN_FIELDS, source=False)
    p.add_argument("--limit", type=_positive(int), default=5, help="how many runs to list")
    p.set_defaults(func=_command("deploy_commands", "cmd_status"))

    p = command(
        "promote",
        "deploy the newest Approved model package to a stage's endpoint: plan, apply, smoke test (docs/promotion.md)",
        PROMOTE_FIELDS,
        source=False,
    )
    p.add_argument("stage", help="staging, prod, or another name (which then needs --instance-type)")
    p.add_argument("--plan", action="store_true", help="print the plan only; exit 0 none, 1 some")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true", help="deploy the package the endpoint served before")
    action.add_argument("--delete", action="store_true", help="delete the stage's endpoint, its configs and models")
    p.add_argument(
        "--model-package-group", help="group to promote from (a name or an ARN) [default: the pipeline name]"
    )
    p.add_argument("--model-package", metavar="ARN", help="promote this package (it must be Approved), not the newest")
    p.add_argument("--instance-type", help="endpoint instance type [default: the stage's; staging, prod: ml.m5.large]")
    p.add_argument("--instance-count", type=_positive(int), help="endpoint instances [default: staging 1, prod 2]")
    p.add_argument(
        "--data-capture",
        type=int,
        metavar="PERCENT",
        help="share of requests captured to S3 [default: staging 0, prod 100]",
    )
    p.add_argument(
        "--bake-seconds",
        type=int,
        metavar="SECONDS",
        help="blue/green: old fleet kept after the switch [default: staging 0, prod 600]",
    )
    _repeated(p, "--alarm", "NAME", "CloudWatch alarm that rolls an update back")
    _repeated(
        p, "--sample", "TYPE=FILE", "smoke-test request body for a content type [default: sample rows, CSV and JSON]"
    )
    p.add_argument(
        "--local", action="store_true", help="smoke-test serve-local on the package's artifact, not the endpoint"
    )
    p.add_argument("--poll-seconds", type=_positive(float), default=30.0, help="endpoint status poll interval")
    p.add_argument("--timeout", type=_positive(float), default=3600.0, help="stop waiting for the endpoint after this")
    p.set_defaults(func=_command("promote_commands", "cmd_promote"))
    return root
