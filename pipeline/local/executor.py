"""Run a pipeline definition's steps on this machine: ``python -m pipeline run --local``.

The definition is the one SageMaker would run (freshly built or deployed), so
the user script sees exactly the hyperparameters and channels it would see
there. Training steps run through :mod:`pipeline.local.job`; the model is then
uploaded where SageMaker puts it: ``<S3OutputPath>/<job name>/output/model.tar.gz``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline import aws
from pipeline.definition import parameters
from pipeline.definition.contract import Contract
from pipeline.definition.expressions import evaluate
from pipeline.errors import ExitStatus, UnsupportedExpression
from pipeline.local import channels, job_request, stops
from pipeline.local.job import JobResult, LocalJob, run_job
from pipeline.local.processes import DEFAULT_STOP_GRACE_SECONDS
from pipeline.local.runners import Runner

# Definition parameter types and the value types the CLI parses them as.
PARAMETER_TYPES = {"String": "str", "Integer": "int", "Float": "float", "Boolean": "bool"}


def _check(name: str, default: Any) -> Any:
    """The project's own check for a parameter it defines; any S3 default must stay an S3 URI."""
    fixed = {p.name: p.check for p in parameters.pipeline_parameters(Contract())}
    if name in fixed:
        return fixed[name]
    return parameters.check_s3_uri if str(default).startswith("s3://") else None


def definition_parameters(definition: Mapping[str, Any]) -> list[parameters.Parameter]:
    """The definition's parameters, typed, with the project's checks where it knows them."""
    found = []
    for item in definition.get("Parameters", []):
        kind = PARAMETER_TYPES.get(item["Type"])
        if kind is None:
            raise UnsupportedExpression(
                f"parameter {item['Name']} has type {item['Type']}, which runs only on SageMaker"
            )
        default = item.get("DefaultValue", "")
        found.append(parameters.Parameter(item["Name"], kind, default, "", _check(item["Name"], default)))
    return found


def training_job(
    step: Mapping[str, Any], values: Mapping[str, Any], execution: Mapping[str, str], region: str
) -> tuple[LocalJob, str]:
    """The step's local job, and the S3 prefix its artifacts go to."""
    args = evaluate(step["Arguments"], values, execution)
    name = f"pipelines-{execution['PipelineExecutionId']}-{step['Name']}"
    job = job_request.local_job(args, name=name, region=region, where=f"step {step['Name']}")
    output = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
    return job, output


@dataclass(frozen=True)
class StepResult:
    name: str
    result: JobResult
    model_uri: str | None


def check_runnable(definition: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Every parameter's value for this run; raises before anything runs if a step cannot run here."""
    for step in definition.get("Steps", []):
        if step.get("Type") != "Training":
            raise UnsupportedExpression(f"step {step.get('Name')} has type {step.get('Type')}, not runnable locally")
    declared = definition_parameters(definition)
    return parameters.resolve(declared, parameters.parse_overrides(overrides, declared))


def new_execution(pipeline_name: str) -> dict[str, str]:
    """The execution variables a run's expressions see (``Get: Execution.*``)."""
    return {"PipelineExecutionId": f"local-{secrets.token_hex(4)}", "PipelineName": pipeline_name}


def check_inputs(
    definition: Mapping[str, Any], values: Mapping[str, Any], execution: Mapping[str, str], region: str
) -> None:
    """Every step's channels hold data, checked before anything is uploaded or run (as SageMaker
    refuses an empty channel when the job starts)."""
    for step in definition.get("Steps", []):
        job, _ = training_job(step, values, execution, region)
        for channel in job.channels.values():
            channels.check(channel.source, region)


def run(
    definition: Mapping[str, Any],
    values: Mapping[str, Any],
    work_dir: Path,
    runner: Runner,
    *,
    execution: Mapping[str, str],
    region: str,
    stop_grace: float = DEFAULT_STOP_GRACE_SECONDS,
    report: Callable[[str], None] = print,
    sink: IO[str] = sys.stdout,
) -> list[StepResult]:
    """Execute every step in order, with ``values`` from :func:`check_runnable`; stops at the first failure."""
    report(f"local execution {execution['PipelineExecutionId']}, parameters: {json.dumps(values, sort_keys=True)}")
    steps = definition.get("Steps", [])
    results = []
    for step in steps:
        job, output = training_job(step, values, execution, region)
        report(f"step {step['Name']}: Executing as {job.name}")
        job_dir = work_dir / job.name
        try:
            result = run_job(job, job_dir, runner, stop_grace=stop_grace, sink=sink)
        except BaseException:
            with stops.deferred():  # the step never started: no folder is left behind
                shutil.rmtree(job_dir, ignore_errors=True)
            raise
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
            status = "Stopped" if result.exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TIMEOUT) else "Failed"
            report(f"step {step['Name']}: {status}: {result.failure_reason}")
        for metric, value in sorted(result.metrics.items()):
            report(f"  {metric} = {value:g}")
        results.append(StepResult(step["Name"], result, model_uri))
        if not result.succeeded:
            break
    return results
