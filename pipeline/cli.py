"""``python -m pipeline``: build, deploy, start and run the training pipeline.

Heavy imports (the SageMaker SDK, boto3) happen inside the commands that need
them, so ``--help`` and local runs start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import parameters as params
from pipeline.channels import ChannelError
from pipeline.deploy import USER_SRC
from pipeline.expressions import UnsupportedExpression
from pipeline.hyperparameters import HYPERPARAMETERS, defaults
from pipeline.settings import ENVIRONMENT, Settings, SettingsError, build_settings
from pipeline.sourcedir import ENTRY_POINT

if TYPE_CHECKING:
    from pipeline.local_job import JobResult

EXIT_ERROR = 2


ALL_SETTINGS = tuple(ENVIRONMENT)
RUN_SETTINGS = ("pipeline_name", "region")  # enough to reach a deployed pipeline


def _settings_flags(parser: argparse.ArgumentParser, fields: tuple[str, ...]) -> None:
    group = parser.add_argument_group("settings (flag, else environment variable)")
    for field in fields:
        env, help_text = ENVIRONMENT[field]
        group.add_argument(f"--{field.replace('_', '-')}", dest=field, metavar=env, help=f"{help_text} [env: {env}]")


def _settings(args: argparse.Namespace, offline: bool = False, fields: tuple[str, ...] | None = None) -> Settings:
    values = {field: getattr(args, field, None) or os.environ.get(env) for field, (env, _) in ENVIRONMENT.items()}
    values["region"] = values["region"] or os.environ.get("AWS_DEFAULT_REGION")
    return build_settings(values, offline=offline, fields=fields)


def _overrides(pairs: list[str]) -> dict[str, params.Value]:
    return params.parse_overrides(pairs, params.pipeline_parameters())


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: ``kind`` above zero, so a bad count is a usage error, not a traceback."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _print_metrics(metrics: dict[str, float]) -> None:
    for name, value in sorted(metrics.items()):
        print(f"  {name} = {value:g}")


# --- commands -----------------------------------------------------------------------------


def _no_aws() -> None:
    """Offline: the SDK builds a default session at import, and boto3 would then
    look for credentials as far as the EC2 metadata endpoint; stop it there."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def cmd_definition(args: argparse.Namespace) -> int:
    from pipeline import aws, deploy

    if args.offline:
        _no_aws()
    settings = _settings(args, offline=args.offline)
    rendered = deploy.render(settings, args.source_dir)
    if not args.offline:
        deploy.upload_code(aws.client("s3", settings.region), rendered)
    print(rendered.definition)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from pipeline import aws, deploy

    settings = _settings(args)
    rendered = deploy.render(settings, args.source_dir)
    deployed = deploy.deployed_definition(aws.client("sagemaker", settings.region), settings.pipeline_name)
    lines = deploy.plan(deployed, rendered.definition)
    if deployed is None:
        print(f"pipeline {settings.pipeline_name} does not exist: upsert would create it")
    for line in lines:
        print(line)
    if not lines:
        print(f"pipeline {settings.pipeline_name} is up to date")
    return 1 if lines else 0


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipeline import deploy

    settings = _settings(args)
    rendered = deploy.render(settings, args.source_dir)
    result = deploy.upsert(settings, rendered, seed_data=not args.no_sample_data)
    for uri in result.uploaded:
        print(f"uploaded {uri}")
    if result.created:
        print(f"created pipeline {settings.pipeline_name}")
    elif result.changes:
        print(f"updated pipeline {settings.pipeline_name}:")
    else:
        print(f"pipeline {settings.pipeline_name} is up to date; nothing changed")
    if not result.created:
        for line in result.changes:
            print(f"  {line}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from pipeline import aws, executions

    overrides = _overrides(args.param)
    settings = _settings(args, fields=RUN_SETTINGS)
    sm = aws.client("sagemaker", settings.region)
    arn = executions.start(sm, settings.pipeline_name, overrides)
    print(f"started {arn}")
    if not args.wait:
        return 0
    status = executions.wait(sm, arn, print, args.poll_seconds, args.timeout)
    return 0 if status == "Succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline import aws, executions

    settings = _settings(args, fields=RUN_SETTINGS)
    runs = executions.recent(aws.client("sagemaker", settings.region), settings.pipeline_name, args.limit)
    if not runs:
        print(f"no executions of {settings.pipeline_name}")
    for run in runs:
        started = run.get("StartTime")
        when = f"{started:%Y-%m-%d %H:%M:%S}" if started else "-"
        print(f"{run['PipelineExecutionStatus']:<10} {when:<19}  {run['PipelineExecutionArn']}")
    return 0


def cmd_train_local(args: argparse.Namespace) -> int:
    from pipeline import job_config, local_job, sample_data, sourcedir

    hyperparameters = {**defaults(), **params.parse_hyperparameters(args.hp)}
    packed = sourcedir.pack(args.source_dir, args.entry_point)  # checked before any folder is made
    job_name = args.job_name or f"local-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    job_dir = (args.output_dir / job_name).resolve()  # the toolkit runs in the base dir, not here
    job_dir.mkdir(parents=True, exist_ok=True)
    channels = {"train": args.train, "validation": args.validation}
    if not all(channels.values()):
        sample = sample_data.write(job_dir / "sample-data")
        channels = {name: source or str(sample[name]) for name, source in channels.items()}
    archive = job_dir / "sourcedir.tar.gz"
    archive.write_bytes(packed)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or local_job.DEFAULT_REGION
    job = local_job.LocalJob(
        name=job_name,
        hyperparameters=job_config.hyperparameters(
            job_config.encode_hyperparameters(hyperparameters),
            program=args.entry_point,
            submit_directory=str(archive),
            region=region,
            job_name=job_name,
        ),
        channels=channels,
        region=region,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        max_runtime_seconds=args.max_runtime,
    )
    result = local_job.run(job, job_dir)
    return _report(result)


def _report(result: JobResult) -> int:
    print("---")
    if result.metrics:
        print("metrics:")
        _print_metrics(result.metrics)
    if result.succeeded:
        print(f"model: {result.model_artifact}")
        print(f"output: {result.output_artifact}")
    else:
        print(f"training failed (exit {result.exit_code}): {result.failure_reason}", file=sys.stderr)
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline import aws, deploy, local_run

    if not args.local:
        raise SettingsError("run needs --local; to run on SageMaker use: python -m pipeline start")
    rendered = None
    if args.deployed:
        settings = _settings(args, fields=RUN_SETTINGS)
        text = deploy.deployed_definition(aws.client("sagemaker", settings.region), settings.pipeline_name)
        if text is None:
            raise SettingsError(f"pipeline {settings.pipeline_name} is not deployed: run upsert, or drop --deployed")
    else:
        settings = _settings(args)
        rendered = deploy.render(settings, args.source_dir)
        text = rendered.definition
    definition = json.loads(text)
    values = local_run.check_runnable(definition, args.param)  # before anything is uploaded or run
    if rendered:
        deploy.upload_code(aws.client("s3", settings.region), rendered)
    steps = local_run.run(
        definition, values, args.output_dir, pipeline_name=settings.pipeline_name, region=settings.region
    )
    return 0 if steps and all(step.result.succeeded for step in steps) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    code = cmd_train_local(args)
    if code:
        return code
    from pipeline import deploy

    print("--- pipeline definition (offline, example account values) ---")
    _no_aws()
    rendered = deploy.render(build_settings({}, offline=True), args.source_dir)
    print(json.dumps(json.loads(rendered.definition), indent=2))
    return 0


# --- parser -------------------------------------------------------------------------------


def _overrides_flag(parser: argparse.ArgumentParser, flag: str, what: str, names: dict[str, str]) -> None:
    """A repeatable NAME=VALUE flag whose help lists every name, its type and meaning."""
    listed = "; ".join(f"{name}: {meaning}" for name, meaning in names.items())
    parser.add_argument(
        flag, action="append", default=[], metavar="NAME=VALUE", help=f"{what} override, repeatable. {listed}"
    )


def _parameter_help() -> dict[str, str]:
    return {p.name: f"{p.type.__name__}, {p.help}" for p in params.pipeline_parameters()}


def _local_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", help="train channel: a folder or s3:// prefix [default: generated sample data]")
    parser.add_argument("--validation", help="validation channel: a folder or s3:// prefix [default: sample data]")
    _overrides_flag(
        parser, "--hp", "hyperparameter", {hp.name: f"{hp.type.__name__}, {hp.help}" for hp in HYPERPARAMETERS}
    )
    parser.add_argument(
        "--instance-count", type=_positive(int), default=1, help="hosts to emulate, each with its own base dir"
    )
    parser.add_argument("--instance-type", default="ml.m5.large", help="written to resourceconfig.json")
    parser.add_argument("--max-runtime", type=_positive(float), help="stop the job after this many seconds")
    parser.add_argument("--entry-point", default=ENTRY_POINT, help="script inside --source-dir")
    parser.add_argument("--job-name", help="default: local-<timestamp>")
    parser.add_argument("--output-dir", type=Path, default=Path("local-jobs"), help="where job folders go")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    root.add_argument("--verbose", action="store_true", help="show SDK and AWS client logs")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, settings: tuple[str, ...] = ALL_SETTINGS, source: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show SDK and AWS client logs")
        if source:
            p.add_argument("--source-dir", type=Path, default=USER_SRC, help="training code folder [default: user_src]")
        if settings:
            _settings_flags(p, settings)
        return p

    p = command("demo", "train locally on the sample data, then print the pipeline definition (no AWS)", ())
    _local_flags(p)
    p.set_defaults(func=cmd_demo)

    p = command("train-local", "run a training job here through the real toolkit, without Docker", ())
    _local_flags(p)
    p.set_defaults(func=cmd_train_local)

    p = command("definition", "print the pipeline definition JSON (uploads the code unless --offline)")
    p.add_argument("--offline", action="store_true", help="no AWS access; example values fill missing settings")
    p.set_defaults(func=cmd_definition)

    p = command("diff", "compare the local definition with the deployed one; exit 0 same, 1 changed")
    p.set_defaults(func=cmd_diff)

    p = command("upsert", "create or update the pipeline, printing what changed")
    p.add_argument("--no-sample-data", action="store_true", help="do not seed empty default data prefixes")
    p.set_defaults(func=cmd_upsert)

    p = command("start", "start a pipeline run, optionally waiting for it", RUN_SETTINGS, source=False)
    _overrides_flag(p, "--param", "parameter", _parameter_help())
    p.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if it succeeds")
    p.add_argument("--poll-seconds", type=_positive(float), default=15.0, help="status poll interval with --wait")
    p.add_argument("--timeout", type=_positive(float), help="stop waiting after this many seconds")
    p.set_defaults(func=cmd_start)

    p = command("run", "run the pipeline definition's steps on this machine (no Docker)")
    p.add_argument("--local", action="store_true", help="required: execute here, not on SageMaker")
    p.add_argument("--deployed", action="store_true", help="run the definition deployed in the account")
    _overrides_flag(p, "--param", "parameter", _parameter_help())
    p.add_argument("--output-dir", type=Path, default=Path("local-jobs"), help="where job folders go")
    p.set_defaults(func=cmd_run)

    p = command("status", "list recent executions", RUN_SETTINGS, source=False)
    p.add_argument("--limit", type=_positive(int), default=5, help="how many runs to list")
    p.set_defaults(func=cmd_status)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO)
    else:
        from pipeline.sdk import quiet_sdk_logs

        quiet_sdk_logs()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = _one_line(error)
        if message is None:
            raise  # a bug: the traceback is the useful output
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


USER_ERRORS = (SettingsError, params.ParameterError, ChannelError, UnsupportedExpression, OSError)


def _one_line(error: Exception) -> str | None:
    """The message for an error the user can fix, or None for a bug."""
    if "botocore" in sys.modules:  # only commands that reached AWS can fail there
        from pipeline import aws

        if isinstance(error, aws.aws_errors()):
            return aws.describe_error(error)
    if isinstance(error, USER_ERRORS):
        return str(error)
    return None
