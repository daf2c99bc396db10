"""Commands that run on this machine: train-local, run --local and the demo.

Each runs whole under :func:`pipeline.local.stops.interrupting`: a stop signal is recorded and
delivered at the next safe point (``stops.check``) of any phase (channel download, environment
creation, packing), and unwinds through the cleanups.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli import common
from pipeline.definition.settings import DEFAULT_REGION, region_from_environment
from pipeline.errors import ExitStatus, SettingsError
from pipeline.local import stops

if TYPE_CHECKING:  # the job modules load with the command that runs a job, not with --help
    from pipeline.local.job import JobResult
    from pipeline.local.runners import Runner

# SageMaker's TrainingJobName pattern; also keeps a job folder inside --output-dir.
JOB_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
SHORTHAND_CHANNELS = ("train", "validation")


def outside_source(output_dir: Path, source_dir: Path) -> None:
    """Job folders inside the source dir would be packed into the next code archive (models, data)."""
    if output_dir.resolve().is_relative_to(source_dir.resolve()):
        raise SettingsError(
            f"--output-dir {output_dir} is inside the source dir {source_dir}: its jobs would be packed with"
            " your code next time; pick a folder outside it"
        )


def _job_dir(output_dir: Path, name: str | None) -> tuple[str, Path]:
    """A new job's name and folder; an existing job is never overwritten."""
    job_name = name or f"local-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not re.fullmatch(JOB_NAME, job_name, re.ASCII):
        raise SettingsError(f"job name {job_name!r}: use letters, digits and hyphens, at most 63, as SageMaker does")
    job_dir = (output_dir / job_name).resolve()  # the toolkit runs in the base dir, not here
    if job_dir.exists():
        raise SettingsError(f"job {job_dir} exists already: pick another --job-name, or remove that folder")
    return job_name, job_dir


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _runner(args: argparse.Namespace) -> Runner:
    """The job environment (made on first use) or the image; ready before any job folder exists."""
    from pipeline.local import container, runners

    if getattr(args, "container", False) or getattr(args, "image", None):
        if args.python:
            raise SettingsError("--python is for a job without --container: the image brings its own Python")
        engine = container.engine()
        image = args.image or container.built_image(engine)
        container.check_image(engine, image)
        return runners.ContainerRunner(engine, image)
    return runners.process_runner(args.python, _say)


def cmd_train_local(args: argparse.Namespace) -> int:
    with stops.interrupting():
        return _train_local(args)


def _train_local(args: argparse.Namespace) -> int:
    from pipeline.definition import sample_data
    from pipeline.local import checkpoints, job_config, job_folder, job_inputs, job_request
    from pipeline.local.job import run_job

    outside_source(args.output_dir, args.source_dir)
    source = common.source(args)
    contract = source.contract
    hyperparameters = job_inputs.hyperparameters(args.hp, contract)
    shorthands = {name: getattr(args, name) for name in SHORTHAND_CHANNELS}
    channels = job_inputs.channels(args.channel, args.content_type, contract, shorthands)
    environment = job_inputs.environment(args.env, contract)
    metrics = job_inputs.metric_definitions(args.metric, contract)
    checkpoint_uri = checkpoints.check_location(args.checkpoints) if args.checkpoints is not None else None
    job_name, job_dir = _job_dir(args.output_dir, args.job_name)
    region = region_from_environment() or DEFAULT_REGION
    runner = _runner(args)
    job_folder.sweep_jobs(args.output_dir)  # what a killed run left
    with job_folder.claimed(job_dir, _say):
        if not channels:  # nothing given: the sample data, for the channels the contract seeds with it
            seeded = {c.name: c.sample for c in contract.channels if c.sample}
            folders = sample_data.write(job_dir / "sample-data", seeded)
            channels = job_inputs.channels([f"{n}={f}" for n, f in folders.items()], [], contract, {})
        archive = job_dir / "sourcedir.tar.gz"
        archive.write_bytes(source.archive)
        request = job_request.training_request(
            hyperparameters=job_config.hyperparameters(
                hyperparameters, program=contract.entry_point, submit_directory=str(archive), region=region
            ),
            channels=channels,
            metric_definitions=metrics,
            environment=environment,
            instance_type=args.instance_type or contract.instance_type,
            instance_count=args.instance_count,
            max_runtime_seconds=args.max_runtime,
            checkpoint_uri=checkpoint_uri,
        )
        job = job_request.local_job(request, name=job_name, region=region)
        result = run_job(job, job_dir, runner, stop_grace=args.stop_grace, report=_say, verbose=args.verbose)
    return report(result)


def report(result: JobResult) -> int:
    print("---")
    if result.metrics:
        print("metrics:")
        for name, value in sorted(result.metrics.items()):
            print(f"  {name} = {value:g}")
    if result.succeeded:
        print(f"model: {result.model_artifact}")
        print(f"output: {result.output_artifact}")
    else:
        verb = "stopped" if result.exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TIMEOUT) else "failed"
        print(f"training {verb} (exit {result.exit_code}): {result.failure_reason}", file=sys.stderr)
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    with stops.interrupting():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from pipeline import aws
    from pipeline.cli import deploy_commands
    from pipeline.deploy.state import deployed_pipeline
    from pipeline.local import executor, job_folder
    from pipeline.render_cache import cached_render

    if not args.local:
        raise SettingsError(f"run needs --local; to run on SageMaker use: {common.cli_command()} start")
    if not args.deployed:
        outside_source(args.output_dir, args.source_dir)
    rendered = None
    if args.deployed:
        settings = common.settings(args, fields=("pipeline_name", "region"))
        pipeline = deployed_pipeline(aws.client("sagemaker", settings.region), settings.pipeline_name)
        if pipeline is None:
            raise SettingsError(f"pipeline {settings.pipeline_name} is not deployed: run upsert, or drop --deployed")
        text = pipeline["PipelineDefinition"]
    else:
        settings = common.settings(args)
        rendered = cached_render(
            settings, common.source(args), check=deploy_commands._step_check(settings), use_cache=not args.no_cache
        )
        text = rendered.definition
    definition = json.loads(text)
    values = executor.check_runnable(definition, args.param)  # before anything is uploaded or run
    runner = _runner(args)
    execution = executor.new_execution(settings.pipeline_name, settings.region)
    uploading = frozenset(rendered.objects) if rendered else frozenset()
    executor.check_inputs(definition, values, execution, settings.region, uploading, runner=runner)
    if rendered:
        s3 = aws.client("s3", settings.region)
        for uri, body in rendered.objects.items():
            aws.put_if_absent(s3, uri, body)
    job_folder.sweep_jobs(args.output_dir)  # what a killed run left
    steps = executor.run(
        definition,
        values,
        args.output_dir,
        runner,
        execution=execution,
        region=settings.region,
        stop_grace=args.stop_grace,
        verbose=args.verbose,
    )
    if steps and all(step.succeeded for step in steps):
        return ExitStatus.OK
    last = steps[-1].exit_code if steps else ExitStatus.JOB_FAILED
    return last if last in (ExitStatus.INTERRUPTED, ExitStatus.TIMEOUT) else ExitStatus.JOB_FAILED
