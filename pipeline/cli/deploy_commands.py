"""Commands that render, plan, deploy and start the pipeline: definition, describe, diff, upsert,
start, status."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from pipeline.cli import common
from pipeline.definition import dag
from pipeline.definition import parameters as params
from pipeline.definition.contract import Contract
from pipeline.definition.render import Rendered, render
from pipeline.definition.settings import RUN_FIELDS, Settings, image_region
from pipeline.errors import ExitStatus, SettingsError
from pipeline.render_cache import cached_render


def _step_check(settings: Settings) -> Callable[[str], None]:
    """Every step's request checked against botocore's model: what a fresh render must pass before
    it is used, or stored in the render cache."""
    from pipeline.deploy import validate

    return lambda text: validate.check_steps(json.loads(text), {}, settings.pipeline_name)


def cmd_definition(args: argparse.Namespace) -> int:
    from pipeline import aws

    if args.offline:
        common.no_aws()
    settings = common.settings(args, offline=args.offline)
    rendered = cached_render(
        settings,
        common.source(args),
        check=_step_check(settings),  # before the upload
        use_cache=not args.no_cache,
    )
    if not args.offline:
        s3 = aws.client("s3", settings.region)
        for uri, body in rendered.objects.items():
            aws.put_if_absent(s3, uri, body)
    print(rendered.definition)
    return ExitStatus.OK


def parameter_table(declared: list[params.Parameter]) -> list[str]:
    """The parameters Studio shows for a run, as a Markdown table (README, ``describe``)."""
    rows = ["| parameter | type | default | meaning |", "| --- | --- | --- | --- |"]
    for p in declared:
        default = p.default if isinstance(p.default, str) else json.dumps(p.default)
        rows.append(f"| `{p.name}` | {p.type} | `{default}` | {p.help} |")
    return rows


def cmd_describe(args: argparse.Namespace) -> int:
    common.no_aws()
    settings = common.settings(args, offline=True)
    source = common.source(args)
    rendered = cached_render(settings, source, check=_step_check(settings), use_cache=not args.no_cache)
    definition = json.loads(rendered.definition)
    steps = ", ".join(f"{s['Name']} ({s['Type']})" for s in dag.all_steps(definition["Steps"]))
    print(f"steps: {steps}")
    print()
    print("\n".join(parameter_table(params.from_definition(definition, rendered.help))))
    if source.contract.metrics:
        print()
        print("training metrics: " + ", ".join(m.name for m in source.contract.metrics))
    return ExitStatus.OK


def _plan(settings: Settings, rendered: Rendered, contract: Contract, seed_data: bool) -> tuple[Any, Any, Any]:
    """Observe the account and compute the plan; no write."""
    from pipeline import aws
    from pipeline.definition import sample_data
    from pipeline.deploy import plan, state

    sm, s3 = aws.client("sagemaker", settings.region), aws.client("s3", settings.region)
    aws.require_bucket(s3, settings.bucket, settings.prefix)
    seedable = _seedable(json.loads(rendered.definition), settings, contract) if seed_data else {}
    deployed = state.observe(sm, s3, settings.pipeline_name, rendered.objects, seedable)
    samples = sample_data.channel_files()
    seeds = {
        f"{uri}{channel.name}.csv": samples[channel.sample].encode()
        for uri, channel in seedable.items()
        if uri in deployed.empty_prefixes
    }
    return plan.make(settings, rendered, deployed, seeds), sm, s3


def _seedable(definition: dict[str, Any], settings: Settings, contract: Contract) -> dict[str, Any]:
    """Default data prefixes the sample data seeds: a contract channel with a sample split whose
    parameter the definition declares, and some step reads, with the channel's default prefix."""
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    used = params.step_parameters(definition)
    return {
        settings.data_uri(c.name): c
        for c in contract.channels
        if c.sample and c.parameter_name in used and defaults.get(c.parameter_name) == settings.data_uri(c.name)
    }


def cmd_diff(args: argparse.Namespace) -> int:
    settings = common.settings(args)
    source = common.source(args)
    rendered = cached_render(settings, source, check=_step_check(settings), use_cache=not args.no_cache)
    planned, _, _ = _plan(settings, rendered, source.contract, seed_data=not args.no_sample_data)
    if planned.create:
        print(f"pipeline {settings.pipeline_name} does not exist: upsert would create it")
    for line in planned.lines():
        print(line)
    if planned.empty:
        print(f"pipeline {settings.pipeline_name} is up to date")
        return ExitStatus.OK
    return ExitStatus.CHANGED


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipeline.deploy import apply

    settings = common.settings(args)
    source = common.source(args)
    planned, sm, s3 = _plan(settings, render(settings, source), source.contract, seed_data=not args.no_sample_data)
    apply.apply(planned, sm, s3)
    for upload in planned.uploads:
        print(f"uploaded {upload.uri}")
    if planned.create:
        print(f"created pipeline {settings.pipeline_name}")
        return ExitStatus.OK
    if not (planned.changes or planned.tags):
        print(f"pipeline {settings.pipeline_name} is up to date; nothing changed")
        return ExitStatus.OK
    print(f"updated pipeline {settings.pipeline_name}:")
    for line in planned.lines():
        if not line.startswith("+ upload "):
            print(f"  {line.strip()}")
    return ExitStatus.OK


def _image_in_region(overrides: dict[str, Any], region: str) -> None:
    """SageMaker pulls images only from its own region: refuse an ImageUri override from another."""
    image = overrides.get(params.IMAGE_URI)
    if image and image_region(image) not in (None, region):
        raise SettingsError(
            f"parameter {params.IMAGE_URI} is an image in {image_region(image)}, the pipeline runs in {region}:"
            f" push the image to {region} and pass that URI"
        )


def cmd_start(args: argparse.Namespace) -> int:
    from pipeline import aws
    from pipeline.deploy import executions, fingerprint, state, validate

    settings = common.settings(args, fields=RUN_FIELDS)
    sm = aws.client("sagemaker", settings.region)
    deployed = state.deployed_pipeline(sm, settings.pipeline_name)  # read-only: --param is checked against it
    if deployed is None:
        raise SettingsError(f"pipeline {settings.pipeline_name} is not deployed: run upsert first")
    definition = json.loads(deployed["PipelineDefinition"])
    declared = params.from_definition(definition)
    overrides = params.parse_overrides(args.param, declared)
    _image_in_region(overrides, settings.region)
    validate.check_steps(definition, overrides, settings.pipeline_name, "fix the --param values")
    if any(p.name == params.DATA_FINGERPRINT for p in declared) and params.DATA_FINGERPRINT not in overrides:
        values = params.resolve(declared, overrides)
        used = params.step_parameters(definition)
        prefixes = sorted({str(values[n]) for n in used if str(values.get(n, "")).startswith("s3://")})
        overrides[params.DATA_FINGERPRINT] = fingerprint.fingerprint(aws.client("s3", settings.region), prefixes)
    arn = executions.start(sm, settings.pipeline_name, params.execution_values(declared, overrides))
    print(f"started {arn}")
    if not args.wait:
        return ExitStatus.OK
    status = executions.wait(sm, arn, print, args.poll_seconds, args.timeout)
    return ExitStatus.OK if status == "Succeeded" else ExitStatus.JOB_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline import aws
    from pipeline.deploy import executions

    settings = common.settings(args, fields=RUN_FIELDS)
    runs = executions.recent(aws.client("sagemaker", settings.region), settings.pipeline_name, args.limit)
    if not runs:
        print(f"no executions of {settings.pipeline_name}")
    for run in runs:
        started = run.get("StartTime")
        when = f"{started:%Y-%m-%d %H:%M:%S}" if started else "-"
        print(f"{run['PipelineExecutionStatus']:<10} {when:<19}  {run['PipelineExecutionArn']}")
    return ExitStatus.OK
