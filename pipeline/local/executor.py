"""Run a pipeline definition's steps on this machine: ``python -m pipeline run --local``.

The definition is the one SageMaker would run (freshly built or deployed), so the user
script sees exactly the hyperparameters and channels it would see there. Training steps
run through :mod:`pipeline.local.job` and their model goes where SageMaker puts it
(``<S3OutputPath>/<job name>/output/model.tar.gz``); processing steps through
:mod:`pipeline.local.processing`, their outputs uploaded and property files read; a
condition picks its branch; a Fail step fails the run with its message; RegisterModel
is a CreateModelPackage call against the account. Any other construct is named, never guessed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline import aws
from pipeline.definition import parameters
from pipeline.definition.contract import Contract
from pipeline.definition.expressions import Scope, condition_holds, evaluate
from pipeline.errors import ExitStatus, UnsupportedExpression
from pipeline.local import channels, job_request, processing, stops
from pipeline.local.job import LocalJob, run_job
from pipeline.local.processes import DEFAULT_STOP_GRACE_SECONDS
from pipeline.local.runners import ProcessRunner, Runner

RUNNABLE = ("Training", "Processing", "Condition", "Fail", "RegisterModel")
# Definition parameter types and the value types the CLI parses them as.
PARAMETER_TYPES = {"String": "str", "Integer": "int", "Float": "float", "Boolean": "bool"}


def _check(name: str, default: Any, fixed: Mapping[str, Any]) -> Any:
    """The project's own check for a parameter it defines; any S3 default must stay an S3 URI."""
    if name in fixed:
        return fixed[name]
    return parameters.check_s3_uri if str(default).startswith("s3://") else None


def definition_parameters(definition: Mapping[str, Any]) -> list[parameters.Parameter]:
    """The definition's parameters, typed, with the project's checks where it knows them."""
    fixed = {p.name: p.check for p in parameters.pipeline_parameters(Contract())}
    found = []
    for item in definition.get("Parameters", []):
        kind = PARAMETER_TYPES.get(item["Type"])
        if kind is None:
            raise UnsupportedExpression(
                f"parameter {item['Name']} has type {item['Type']}, which runs only on SageMaker"
            )
        default = item.get("DefaultValue", "")
        found.append(parameters.Parameter(item["Name"], kind, default, "", _check(item["Name"], default, fixed)))
    return found


def training_job(step: Mapping[str, Any], scope: Scope, region: str, name: str | None = None) -> tuple[LocalJob, str]:
    """The step's local job, and the S3 prefix its artifacts go to."""
    args = evaluate(step["Arguments"], scope.parameters, scope.execution, scope)
    name = name or f"pipelines-{scope.execution['PipelineExecutionId']}-{step['Name']}"
    job = job_request.local_job(args, name=name, region=region, where=f"step {step['Name']}")
    output = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
    return job, output


@dataclass(frozen=True)
class StepResult:
    """How one step ended, as Studio would list it."""

    name: str
    status: str  # Succeeded, Failed or Stopped
    exit_code: int
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


def all_steps(steps: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every step, those inside a condition's branches included."""
    for step in steps:
        yield step
        arguments = step.get("Arguments", {})
        yield from all_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])


def check_runnable(definition: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Every parameter's value for this run; raises before anything runs if a step cannot run here."""
    for step in all_steps(definition.get("Steps", [])):
        if step.get("Type") not in RUNNABLE:
            raise UnsupportedExpression(f"step {step.get('Name')} has type {step.get('Type')}, not runnable locally")
    declared = definition_parameters(definition)
    return parameters.resolve(declared, parameters.parse_overrides(overrides, declared))


def new_execution(pipeline_name: str) -> dict[str, str]:
    """The execution variables a run's expressions see (``Get: Execution.*``)."""
    return {"PipelineExecutionId": f"local-{secrets.token_hex(4)}", "PipelineName": pipeline_name}


def check_inputs(
    definition: Mapping[str, Any],
    values: Mapping[str, Any],
    execution: Mapping[str, str],
    region: str,
    uploading: frozenset[str] = frozenset(),
) -> None:
    """Every channel and processing input that the parameters name holds data, checked before anything
    is uploaded or run (SageMaker refuses an empty input when the job starts). Inputs that another
    step produces are checked when that step has run; ``uploading`` (the code archive the command
    is about to upload) is not checked."""
    for step in all_steps(definition.get("Steps", [])):
        if step["Type"] == "Training":
            job, _ = training_job(step, Scope(values, execution), region)
            sources = [channel.source for channel in job.channels.values()]
        elif step["Type"] == "Processing":
            sources = []
            for item in step["Arguments"].get("ProcessingInputs", []):
                try:
                    sources.append(evaluate(item["S3Input"]["S3Uri"], values, execution))
                except UnsupportedExpression:
                    continue  # another step's output
        else:
            continue
        for source in sources:
            if source not in uploading:
                channels.check(source, region)


class _Execution:
    """One local run: the scope its expressions see grows as steps finish."""

    def __init__(
        self,
        runner: Runner,
        work_dir: Path,
        scope: tuple[Mapping[str, Any], Mapping[str, str]],
        region: str,
        stop_grace: float,
        report: Callable[[str], None],
        sink: IO[str],
    ) -> None:
        self.runner, self.work_dir, self.region = runner, work_dir, region
        self.stop_grace, self.report, self.sink = stop_grace, report, sink
        self.results: list[StepResult] = []
        self.steps: dict[str, dict[str, Any]] = {}  # what each finished step exposes as properties
        self.files: dict[str, Any] = {}  # the property files processing steps wrote
        self.branches: dict[str, list[Mapping[str, Any]]] = {}  # the branch each condition picked
        self.scope = Scope(*scope, self.steps, self.files)

    def job_name(self, step: Mapping[str, Any]) -> str:
        return f"pipelines-{self.scope.execution['PipelineExecutionId']}-{step['Name']}"

    def run_steps(self, steps: Iterable[Mapping[str, Any]]) -> bool:
        """In order; False at the first step that did not succeed. A condition's branch runs right
        after it: as on SageMaker, the condition step succeeds whichever branch it picks."""
        for step in steps:
            result = getattr(self, f"_{step['Type'].lower()}")(step)
            self.results.append(result)
            self.report(f"step {result.name}: {result.status}" + (f": {result.detail}" if result.detail else ""))
            if not result.succeeded:
                return False
            if step["Type"] == "Condition" and not self.run_steps(self.branches.pop(step["Name"])):
                return False
        return True

    def _in_folder(self, name: str, work: Callable[[Path], Any]) -> Any:
        """``work`` on a step's new folder, which is removed if the step never got going."""
        folder = self.work_dir / name
        try:
            return work(folder)
        except BaseException:
            with stops.deferred():
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _training(self, step: Mapping[str, Any]) -> StepResult:
        job, output = training_job(step, self.scope, self.region, self.job_name(step))
        self.report(f"step {step['Name']}: Executing as {job.name}")
        result = self._in_folder(
            job.name, lambda folder: run_job(job, folder, self.runner, stop_grace=self.stop_grace, sink=self.sink)
        )
        for metric, value in sorted(result.metrics.items()):
            self.report(f"  {metric} = {value:g}")
        if not result.succeeded:
            return StepResult(step["Name"], _status(result.exit_code), result.exit_code, result.failure_reason or "")
        s3 = aws.client("s3", self.region)
        model_uri = f"{output}/model.tar.gz"
        for artifact, uri in ((result.model_artifact, model_uri), (result.output_artifact, f"{output}/output.tar.gz")):
            bucket, key = aws.split_s3_uri(uri)
            s3.upload_file(str(artifact), bucket, key)
        self.steps[step["Name"]] = {
            "TrainingJobName": job.name,
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in sorted(result.metrics.items())],
        }
        return StepResult(step["Name"], "Succeeded", 0, f"model at {model_uri}")

    def _processing(self, step: Mapping[str, Any]) -> StepResult:
        if not isinstance(self.runner, ProcessRunner):
            raise UnsupportedExpression(f"step {step['Name']}: processing steps run Docker-free only (no --container)")
        name = self.job_name(step)
        args = evaluate(step["Arguments"], self.scope.parameters, self.scope.execution, self.scope)
        job = processing.from_request(args, name=name, region=self.region, where=f"step {step['Name']}")
        self.report(f"step {step['Name']}: Executing as {name}")
        result = self._in_folder(
            name,
            lambda folder: processing.run_processing(
                job, folder, self.runner, stop_grace=self.stop_grace, sink=self.sink, report=self.report
            ),
        )
        if not result.succeeded:
            return StepResult(step["Name"], _status(result.exit_code), result.exit_code, result.failure_reason or "")
        outputs = {n: {"OutputName": n, "S3Output": {"S3Uri": uri}} for n, uri in result.outputs.items()}
        self.steps[step["Name"]] = {"ProcessingJobName": name, "ProcessingOutputConfig": {"Outputs": outputs}}
        s3 = aws.client("s3", self.region)
        for declared in step.get("PropertyFiles", []):
            bucket, prefix = aws.split_s3_uri(result.outputs[declared["OutputName"]].rstrip("/"))
            body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{declared['FilePath']}")["Body"].read()
            self.files[f"Steps.{step['Name']}.PropertyFiles.{declared['PropertyFileName']}"] = json.loads(body)
        return StepResult(step["Name"], "Succeeded", 0, f"outputs at {', '.join(result.outputs.values())}")

    def _condition(self, step: Mapping[str, Any]) -> StepResult:
        try:
            holds = all(condition_holds(c, self.scope) for c in step["Arguments"]["Conditions"])
        except (UnsupportedExpression, TypeError) as error:  # as SageMaker fails a condition it cannot evaluate
            return StepResult(step["Name"], "Failed", ExitStatus.JOB_FAILED, f"cannot evaluate the condition: {error}")
        branch = self.branches[step["Name"]] = step["Arguments"]["IfSteps" if holds else "ElseSteps"]
        names = ", ".join(inner["Name"] for inner in branch) or "nothing"
        return StepResult(step["Name"], "Succeeded", 0, f"condition {'met' if holds else 'not met'}: running {names}")

    def _fail(self, step: Mapping[str, Any]) -> StepResult:
        message = evaluate(step["Arguments"].get("ErrorMessage", ""), {}, {}, self.scope)
        return StepResult(step["Name"], "Failed", ExitStatus.JOB_FAILED, str(message))

    def _registermodel(self, step: Mapping[str, Any]) -> StepResult:
        args = evaluate(step["Arguments"], self.scope.parameters, self.scope.execution, self.scope)
        sm = aws.client("sagemaker", self.region)
        group = args["ModelPackageGroupName"]
        try:
            sm.describe_model_package_group(ModelPackageGroupName=group)
        except sm.exceptions.ClientError:  # not there yet: a pipeline's first registration creates it
            sm.create_model_package_group(ModelPackageGroupName=group)
        arn = sm.create_model_package(**args)["ModelPackageArn"]
        self.steps[step["Name"]] = {"ModelPackageArn": arn}
        return StepResult(step["Name"], "Succeeded", 0, f"registered {arn} ({args.get('ModelApprovalStatus')})")


def _status(exit_code: int) -> str:
    return "Stopped" if exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TIMEOUT) else "Failed"


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
    """Execute the steps in order, with ``values`` from :func:`check_runnable`; stops at the first failure."""
    report(f"local execution {execution['PipelineExecutionId']}, parameters: {json.dumps(values, sort_keys=True)}")
    run = _Execution(runner, work_dir, (values, execution), region, stop_grace, report, sink)
    run.run_steps(definition.get("Steps", []))
    return run.results
