"""Run a pipeline definition's steps on this machine: ``python -m pipeline run --local``.

The definition is the one SageMaker would run (freshly built or deployed), so
the user script sees exactly the hyperparameters and channels it would see
there. Training steps run through :mod:`pipeline.local_job`; the model is then
uploaded where SageMaker puts it: ``<S3OutputPath>/<job name>/output/model.tar.gz``.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline import aws, local_job, parameters
from pipeline.expressions import UnsupportedExpression, evaluate
from pipeline.hyperparameters import Value

PARAMETER_TYPES: dict[str, type] = {"String": str, "Integer": int, "Float": float}
# CreateTrainingJob arguments the local runner honours, or that change nothing on one machine.
TRAINING_ARGUMENTS = {
    "AlgorithmSpecification",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "RoleArn",
    "Environment",
    "Tags",
    "DebugHookConfig",
    "ProfilerConfig",
}


def definition_parameters(definition: Mapping[str, Any]) -> list[parameters.Parameter]:
    """The definition's parameters, with the local checks for the names this project defines."""
    checks = {p.name: p.check for p in parameters.pipeline_parameters()}
    found = []
    for item in definition.get("Parameters", []):
        kind = PARAMETER_TYPES.get(item["Type"])
        if kind is None:
            raise UnsupportedExpression(
                f"parameter {item['Name']} has type {item['Type']}, which runs only on SageMaker"
            )
        found.append(
            parameters.Parameter(item["Name"], kind, item.get("DefaultValue", ""), "", checks.get(item["Name"]))
        )
    return found


def training_job(
    step: Mapping[str, Any], values: Mapping[str, Value], execution: Mapping[str, str], region: str
) -> tuple[local_job.LocalJob, str]:
    """The step's local job, and the S3 prefix its artifacts go to."""
    unknown = sorted(set(step["Arguments"]) - TRAINING_ARGUMENTS)
    if unknown:
        raise UnsupportedExpression(f"step {step['Name']}: argument {unknown[0]} is not supported locally")
    args = evaluate(step["Arguments"], values, execution)
    channels = {}
    for channel in args.get("InputDataConfig", []):
        source = channel["DataSource"].get("S3DataSource")
        if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise UnsupportedExpression(f"channel {channel['ChannelName']}: only S3Prefix data sources run locally")
        channels[channel["ChannelName"]] = source["S3Uri"]
    resources = args["ResourceConfig"]
    name = f"pipelines-{execution['PipelineExecutionId']}-{step['Name']}"
    job = local_job.LocalJob(
        name=name,
        hyperparameters=args.get("HyperParameters", {}),
        channels=channels,
        instance_type=resources["InstanceType"],
        instance_count=int(resources["InstanceCount"]),
        max_runtime_seconds=args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"),
        region=region,
        metric_definitions=args["AlgorithmSpecification"].get("MetricDefinitions", []),
        environment=args.get("Environment", {}),
    )
    output = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
    return job, output


@dataclass(frozen=True)
class StepResult:
    name: str
    result: local_job.JobResult
    model_uri: str | None


def check_runnable(definition: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Value]:
    """Every parameter's value for this run; raises before anything runs if a step cannot run here."""
    for step in definition.get("Steps", []):
        if step.get("Type") != "Training":
            raise UnsupportedExpression(f"step {step.get('Name')} has type {step.get('Type')}, not runnable locally")
    declared = definition_parameters(definition)
    return parameters.resolve(declared, parameters.parse_overrides(overrides, declared))


def run(
    definition: Mapping[str, Any],
    values: Mapping[str, Value],
    work_dir: Path,
    *,
    pipeline_name: str,
    region: str,
    report: Callable[[str], None] = print,
    sink: IO[str] = sys.stdout,
) -> list[StepResult]:
    """Execute every step in order, with ``values`` from :func:`check_runnable`; stops at the first failure."""
    execution = {"PipelineExecutionId": f"local-{secrets.token_hex(4)}", "PipelineName": pipeline_name}
    report(f"local execution {execution['PipelineExecutionId']}, parameters: {json.dumps(values, sort_keys=True)}")
    steps = definition.get("Steps", [])
    results = []
    for step in steps:
        job, output = training_job(step, values, execution, region)
        report(f"step {step['Name']}: Executing as {job.name}")
        result = local_job.run(job, work_dir / job.name, sink=sink)
        model_uri = None
        if result.succeeded:
            s3 = aws.client("s3", region)
            model_uri = f"{output}/model.tar.gz"
            for artifact, uri in (
                (result.model_artifact, model_uri),
                (result.output_artifact, f"{output}/output.tar.gz"),
            ):
                bucket, key = aws.split_s3_uri(uri)
                s3.upload_file(str(artifact), bucket, key)
            report(f"step {step['Name']}: Succeeded, model at {model_uri}")
        else:
            report(f"step {step['Name']}: Failed: {result.failure_reason}")
        for metric, value in sorted(result.metrics.items()):
            report(f"  {metric} = {value:g}")
        results.append(StepResult(step["Name"], result, model_uri))
        if not result.succeeded:
            break
    return results
