"""Commands that render, plan, deploy and start the pipeline: definition, describe, diff, upsert,
start, status."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from pipeline.cli import common
from pipeline.definition import parameters as params
from pipeline.definition.contract import Contract
from pipeline.definition.render import Rendered, render
from pipeline.definition.settings import Settings, image_region
from pipeline.errors import ExitStatus, SettingsError
from pipeline.render_cache import cached_render

RUN_SETTINGS = ("pipeline_name", "region")  # enough to reach a deployed pipeline


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
        aws.put_if_absent(aws.client("s3", settings.region), rendered.code_uri, rendered.archive)
    print(rendered.definition)
    return ExitStatus.OK


def parameter_table(contract: Contract) -> list[str]:
    """The parameters Studio shows for a run, as a Markdown table (README, ``describe``)."""
    rows = ["| parameter | type | default | meaning |", "| --- | --- | --- | --- |"]
    shown = params.pipeline_parameters(
        contract, image_uri="(the deployed image)", data_uri=_data_default, model_package_group="PIPELINE_NAME"
    )
    for p in shown:
        default = p.default if p.type in ("str", "json") and isinstance(p.default, str) else repr(p.default)
        rows.append(f"| `{p.name}` | {p.type} | `{default}` | {p.help} |")
    return rows


def _data_default(channel: str) -> str:
    return f"s3://BUCKET/PIPELINE_NAME/data/{channel}/"


def cmd_describe(args: argparse.Namespace) -> int:
    contract = common.source(args).contract
    print(f"entry point: {contract.entry_point}")
    print()
    print("\n".join(parameter_table(contract)))
    if contract.metrics:
        print()
        print("metrics: " + ", ".join(m.name for m in contract.metrics))
    return ExitStatus.OK


def _plan(settings: Settings, rendered: Rendered, contract: Contract, seed_data: bool) -> tuple[Any, Any, Any]:
    """Observe the account and compute the plan; no write."""
    from pipeline import aws
    from pipeline.definition import sample_data
    from pipeline.deploy import plan, state

    sm, s3 = aws.client("sagemaker", settings.region), aws.client("s3", settings.region)
    aws.require_bucket(s3, settings.bucket, settings.prefix)
    seedable = {settings.data_uri(c.name): c for c in contract.channels if c.sample and seed_data}
    deployed = state.observe(sm, s3, settings.pipeline_name, rendered.code_uri, seedable)
    samples = sample_data.channel_files()
    seeds = {
        f"{uri}{channel.name}.csv": samples[channel.sample].encode()
        for uri, channel in seedable.items()
        if uri in deployed.empty_prefixes
    }
    return plan.make(settings, rendered, deployed, seeds), sm, s3


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

    declared = params.pipeline_parameters(common.training_contract(args))
    overrides = params.parse_overrides(args.param, declared)  # before any AWS call
    settings = common.settings(args, fields=RUN_SETTINGS)
    _image_in_region(overrides, settings.region)
    sm = aws.client("sagemaker", settings.region)
    deployed = state.deployed_pipeline(sm, settings.pipeline_name)
    if deployed is None:
        raise SettingsError(f"pipeline {settings.pipeline_name} is not deployed: run upsert first")
    definition = json.loads(deployed["PipelineDefinition"])
    validate.check_steps(definition, overrides, settings.pipeline_name, "fix the --param values")
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    if params.DATA_FINGERPRINT in defaults and params.DATA_FINGERPRINT not in overrides:
        prefixes = [overrides.get(p.name, defaults.get(p.name)) for p in declared if p.channel]
        s3 = aws.client("s3", settings.region)
        overrides[params.DATA_FINGERPRINT] = fingerprint.fingerprint(s3, [str(uri) for uri in prefixes if uri])
    arn = executions.start(sm, settings.pipeline_name, params.execution_values(declared, overrides))
    print(f"started {arn}")
    if not args.wait:
        return ExitStatus.OK
    status = executions.wait(sm, arn, print, args.poll_seconds, args.timeout)
    return ExitStatus.OK if status == "Succeeded" else ExitStatus.JOB_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline import aws
    from pipeline.deploy import executions

    settings = common.settings(args, fields=RUN_SETTINGS)
    runs = executions.recent(aws.client("sagemaker", settings.region), settings.pipeline_name, args.limit)
    if not runs:
        print(f"no executions of {settings.pipeline_name}")
    for run in runs:
        started = run.get("StartTime")
        when = f"{started:%Y-%m-%d %H:%M:%S}" if started else "-"
        print(f"{run['PipelineExecutionStatus']:<10} {when:<19}  {run['PipelineExecutionArn']}")
    return ExitStatus.OK
