"""Run a pipeline definition's steps on this machine: ``python -m pipeline run --local``.

The definition is the one SageMaker would run (freshly built or deployed, by anyone's SDK
code), executed as SageMaker executes it: steps in an order their data dependencies and
``DependsOn`` allow (:mod:`pipeline.definition.dag`), a condition's branch only when it is
chosen, a step whose dependency did not run not run either, and nothing after a failure.
Training steps run through :mod:`pipeline.local.job` (the model goes where SageMaker puts
it, ``<S3OutputPath>/<job name>/output/model.tar.gz``); processing steps through
:mod:`pipeline.local.processing` (outputs uploaded, property files read); transform steps
through :mod:`pipeline.local.transform` on the model a CreateModel step made; a Fail step
fails the run with its message; CreateModel and RegisterModel are calls against the
account. Each step's properties are what SageMaker's Describe call would give, so any
``Get``, ``JsonGet`` or ``Join`` of a later step reads them. A construct that cannot run
here is refused by name before anything is uploaded or run.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipeline import aws
from pipeline.definition import dag, parameters
from pipeline.definition.dag import all_steps
from pipeline.definition.expressions import Scope, condition_holds, evaluate, gets, parts, step_of
from pipeline.definition.settings import DEFAULT_REGION
from pipeline.errors import ExitStatus, UnsupportedExpression, UserError
from pipeline.local import channels, job_folder, job_request, processing
from pipeline.local.host_env import DEFAULT_ACCOUNT
from pipeline.local.job import LocalJob, run_job
from pipeline.local.processes import DEFAULT_STOP_GRACE_SECONDS
from pipeline.local.runners import ProcessRunner, Runner, processing_command

RUNNABLE = ("Training", "Processing", "Transform", "Condition", "Fail", "RegisterModel", "Model")
# The Describe response whose fields a step of each type exposes as its properties (as the SDK's
# ``step.properties`` knows them); a condition exposes only its outcome.
PROPERTY_SHAPES = {
    "Training": "DescribeTrainingJobResponse",
    "Processing": "DescribeProcessingJobResponse",
    "Transform": "DescribeTransformJobResponse",
    "Model": "DescribeModelOutput",
    "RegisterModel": "DescribeModelPackageOutput",
}
BRANCHES = ("IfSteps", "ElseSteps")
# SageMaker's job and model name pattern: what a step's name becomes part of.
NAME_LIMIT = 63
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9-]+")


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


@dataclass(frozen=True)
class Plan:
    """The order a run takes, and what decides whether each step runs."""

    order: tuple[str, ...]
    steps: Mapping[str, Mapping[str, Any]]
    needs: Mapping[str, frozenset[str]]  # steps that must have succeeded first
    branches: Mapping[str, tuple[tuple[str, str], ...]]  # (condition, IfSteps|ElseSteps) that must choose it


def _branches(steps: Iterable[Mapping[str, Any]], outer: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for step in steps:
        found[step["Name"]] = outer
        for side in BRANCHES if step.get("Type") == "Condition" else ():
            found.update(_branches(step["Arguments"].get(side, []), (*outer, (step["Name"], side))))
    return found


def _check_processing(step: Mapping[str, Any], where: str) -> None:
    arguments = step.get("Arguments", {})
    processing.check_request(arguments, where)
    processing_command(tuple(arguments.get("AppSpecification", {}).get("ContainerEntrypoint", [])), where)
    outputs = {o.get("OutputName") for o in arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])}
    for declared in step.get("PropertyFiles", []):
        if declared.get("OutputName") not in outputs:
            raise UnsupportedExpression(
                f"{where}: property file {declared.get('PropertyFileName')} is read from output"
                f" {declared.get('OutputName')}, which the step does not have (it has"
                f" {', '.join(sorted(map(str, outputs))) or 'none'}): fix the PropertyFile's output_name"
            )


def _check_training(step: Mapping[str, Any], where: str) -> None:
    arguments = step.get("Arguments", {})
    unknown = sorted(set(arguments) - job_request.HONOURED)
    if unknown:
        raise UnsupportedExpression(f"{where}: argument {unknown[0]} is not supported locally")
    for channel in arguments.get("InputDataConfig", []):
        source = channel.get("DataSource", {}).get("S3DataSource", {})
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise UnsupportedExpression(
                f"{where}: channel {channel.get('ChannelName')} reads a {source.get('S3DataType') or 'file system'}:"
                " run --local reads only S3Prefix channels"
            )
    algorithm = arguments.get("AlgorithmSpecification", {})
    for key in ("ContainerEntrypoint", "ContainerArguments", "AlgorithmName"):
        if key in algorithm:
            raise UnsupportedExpression(
                f"{where}: AlgorithmSpecification.{key} runs only in its image: drop it (the toolkit's train"
                " runs the entry point), or run the pipeline on SageMaker"
            )


def _check_step(step: Mapping[str, Any]) -> None:
    """What a step's own arguments ask that a local run cannot give, named before anything runs."""
    kind, where = step.get("Type"), f"step {step.get('Name')}"
    if kind not in RUNNABLE:
        raise UnsupportedExpression(
            f"{where} has type {kind}, which run --local cannot run (it runs {', '.join(RUNNABLE)}):"
            " run the pipeline on SageMaker (start), or replace the step"
        )
    if kind == "Processing":
        _check_processing(step, where)
    elif kind == "Training":
        _check_training(step, where)
    elif kind == "Model" and "PrimaryContainer" not in step.get("Arguments", {}):
        raise UnsupportedExpression(f"{where}: a model of several containers runs only on SageMaker")


def _property_problem(kind: str, path: list[str | int]) -> str | None:
    """Why ``path`` is not a property of a step of type ``kind`` (None: it is), from botocore's service model."""
    if kind == "Condition":
        return None if path == ["Outcome"] else "a condition step has only the property Outcome"
    if kind not in PROPERTY_SHAPES:
        return f"a {kind} step has no properties"
    shape = aws.service_model("sagemaker").shape_for(PROPERTY_SHAPES[kind])
    for part in path:
        if shape.type_name == "structure" and isinstance(part, str) and part in shape.members:
            shape = shape.members[part]
        elif shape.type_name == "list":
            shape = shape.member
        elif shape.type_name == "map" and isinstance(part, str):
            shape = shape.value
        else:
            return f"{PROPERTY_SHAPES[kind].removesuffix('Response').removesuffix('Output')} has no {part!r} there"
    return None


def _check_properties(steps: Mapping[str, Mapping[str, Any]]) -> None:
    """Every ``Get: Steps.X.<path>`` names a property step X will have, as SageMaker checks a definition."""
    for name, step in steps.items():
        body = step.get("Arguments", {})
        if step.get("Type") == "Condition":  # its branches' steps are checked as steps of their own
            body = {k: v for k, v in body.items() if k not in BRANCHES}
        for path in gets(body):
            target = step_of(path)
            if target is None or target not in steps or ".PropertyFiles." in path:
                continue
            tail = parts(path.split(".", 2)[2]) if path.count(".") >= 2 else []
            problem = _property_problem(steps[target].get("Type", ""), tail)
            if problem:
                raise UnsupportedExpression(
                    f"step {name} reads {{'Get': {path!r}}}, which step {target} does not have ({problem}):"
                    " fix the property path"
                )


def plan(definition: Mapping[str, Any]) -> Plan:
    """The run's order and rules; raises (exit 2) on a DAG SageMaker refuses or a step that cannot run here."""
    steps = {step["Name"]: step for step in all_steps(definition.get("Steps", []))}
    order = dag.order(definition)  # duplicates, cycles, missing steps and property files
    for name in order:
        _check_step(steps[name])
    _check_properties(steps)
    needs = {name: frozenset(found) for name, found in dag.needs(definition).items()}
    return Plan(tuple(order), steps, needs, _branches(definition.get("Steps", [])))


def check_runnable(definition: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Every parameter's value for this run; raises before anything runs if the DAG is wrong or a step
    cannot run here."""
    plan(definition)
    declared = parameters.from_definition(definition)
    return parameters.resolve(declared, parameters.parse_overrides(overrides, declared))


def new_execution(pipeline_name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
    """The execution variables a run's expressions see (``Get: Execution.*``); ``CurrentDateTime``
    is read when used."""
    execution_id = f"local-{secrets.token_hex(4)}"
    pipeline_arn = f"arn:aws:sagemaker:{region}:{account}:pipeline/{pipeline_name.lower()}"
    return {
        "PipelineExecutionId": execution_id,
        "PipelineName": pipeline_name,
        "PipelineArn": pipeline_arn,
        "PipelineExecutionArn": f"{pipeline_arn}/execution/{execution_id}",
        "StartDateTime": _now(),
        "CurrentDateTime": _now,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _input_sources(step: Mapping[str, Any]) -> list[Any]:
    """The S3 URIs (as expressions) a step's job reads its data from."""
    arguments = step.get("Arguments", {})
    if step["Type"] == "Training":
        return [c["DataSource"].get("S3DataSource", {}).get("S3Uri") for c in arguments.get("InputDataConfig", [])]
    if step["Type"] == "Processing":
        return [i["S3Input"]["S3Uri"] for i in arguments.get("ProcessingInputs", [])]
    if step["Type"] == "Transform":
        return [arguments["TransformInput"]["DataSource"].get("S3DataSource", {}).get("S3Uri")]
    return []


def check_inputs(
    definition: Mapping[str, Any],
    values: Mapping[str, Any],
    execution: Mapping[str, Any],
    region: str,
    uploading: frozenset[str] = frozenset(),
    runner: Runner | None = None,
) -> None:
    """Every job input that the parameters name holds data, checked before anything is uploaded or run
    (SageMaker refuses an empty input when the job starts). Inputs that another step produces are
    checked when that step has run; ``uploading`` (what the command is about to upload) is not
    checked. With ``runner``, a step it cannot run is refused too."""
    if runner is not None:
        _check_runner(definition, runner)
    scope = Scope(values, execution)
    for step in all_steps(definition.get("Steps", [])):
        for source in _input_sources(step):
            if source is None or any(step_of(path) or path.startswith("Execution.") for path in gets(source)):
                continue  # another step's output, or this execution's
            uri = evaluate(source, values, execution, scope)
            if uri not in uploading:
                channels.check(uri, region)


def _check_runner(definition: Mapping[str, Any], runner: Runner) -> None:
    if isinstance(runner, ProcessRunner):
        return
    for step in all_steps(definition.get("Steps", [])):
        if step["Type"] in ("Processing", "Transform"):
            raise UnsupportedExpression(
                f"step {step['Name']}: {step['Type'].lower()} steps run in the job environment only: drop --container"
            )


def _job_name(execution_id: str, step: str) -> str:
    """A job or model name SageMaker accepts, as a pipeline names its jobs: the execution's and the step's."""
    return _NOT_IN_NAME.sub("-", f"pipelines-{execution_id}-{step}")[:NAME_LIMIT].strip("-")


def _status(exit_code: int) -> str:
    return "Stopped" if exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TIMEOUT) else "Failed"


def _failed(step: Mapping[str, Any], reason: str, exit_code: int = ExitStatus.JOB_FAILED) -> StepResult:
    return StepResult(step["Name"], _status(exit_code), exit_code, reason)


class _Execution:
    """One local run: the scope its expressions see grows as steps finish."""

    def __init__(
        self,
        runner: Runner,
        work_dir: Path,
        scope: tuple[Mapping[str, Any], Mapping[str, Any]],
        region: str,
        stop_grace: float,
        report: Callable[[str], None],
        sink: IO[str],
        verbose: bool,
    ) -> None:
        self.runner, self.work_dir, self.region = runner, work_dir, region
        self.stop_grace, self.report, self.sink, self.verbose = stop_grace, report, sink, verbose
        self.results: list[StepResult] = []
        self.steps: dict[str, dict[str, Any]] = {}  # what each finished step exposes as properties
        self.files: dict[str, Any] = {}  # the property files processing steps wrote
        self.chosen: dict[str, str] = {}  # the branch each condition picked
        self.models: dict[str, Mapping[str, Any]] = {}  # model name -> its PrimaryContainer
        self.scope = Scope(*scope, self.steps, self.files, self._read_s3)

    def _read_s3(self, uri: str) -> bytes:
        bucket, key = aws.split_s3_uri(uri)
        return aws.client("s3", self.region).get_object(Bucket=bucket, Key=key)["Body"].read()

    def _arguments(self, step: Mapping[str, Any], **current: str) -> Any:
        """The step's arguments evaluated now; ``current`` are its own variables (``TrainingJobName``)."""
        scope = Scope(self.scope.parameters, {**self.scope.execution, **current}, self.steps, self.files, self._read_s3)
        return evaluate(step.get("Arguments", {}), scope.parameters, scope.execution, scope)

    def job_name(self, step: Mapping[str, Any]) -> str:
        return _job_name(self.scope.execution["PipelineExecutionId"], step["Name"])

    def runs(self, plan: Plan, name: str) -> bool:
        """Whether a step runs: every step it needs succeeded, and every condition it sits under chose it."""
        done = {r.name for r in self.results if r.succeeded}
        return plan.needs[name] <= done and all(self.chosen.get(c) == side for c, side in plan.branches[name])

    def run_plan(self, plan: Plan) -> None:
        """In order; stops at the first step that did not succeed, as SageMaker stops the execution."""
        for name in plan.order:
            if not self.runs(plan, name):
                continue
            step = plan.steps[name]
            try:
                result = getattr(self, f"_{step['Type'].lower()}")(step)
            except UserError as error:  # an empty input another step made, say: SageMaker fails the step
                result = _failed(step, str(error))
            except aws.aws_errors() as error:  # the account refused a call (CreateModel, say): so does SageMaker
                result = _failed(step, aws.describe_error(error))
            self.results.append(result)
            self.report(f"step {result.name}: {result.status}" + (f": {result.detail}" if result.detail else ""))
            if not result.succeeded:
                return

    def _in_folder(self, name: str, work: Callable[[Path], Any]) -> Any:
        """``work`` on a step's new folder, which is removed if the step never got going (once a host
        started, its log and artifacts stay whatever happens next)."""
        with job_folder.claimed(self.work_dir / name) as folder:
            return work(folder)

    def _training(self, step: Mapping[str, Any]) -> StepResult:
        name = self.job_name(step)
        args = self._arguments(step, TrainingJobName=name)
        job: LocalJob = job_request.local_job(args, name=name, region=self.region, where=f"step {step['Name']}")
        output = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
        self.report(f"==> step {step['Name']} ({step['Type']}): Executing as {job.name}")
        result = self._in_folder(
            job.name,
            lambda folder: run_job(
                job, folder, self.runner, stop_grace=self.stop_grace, sink=self.sink, verbose=self.verbose
            ),
        )
        for metric, value in sorted(result.metrics.items()):
            self.report(f"  {metric} = {value:g}")
        if not result.succeeded:
            return _failed(step, result.failure_reason or "", result.exit_code)
        s3 = aws.client("s3", self.region)
        model_uri = f"{output}/model.tar.gz"
        for artifact, uri in ((result.model_artifact, model_uri), (result.output_artifact, f"{output}/output.tar.gz")):
            bucket, key = aws.split_s3_uri(uri)
            s3.upload_file(str(artifact), bucket, key)
        self.steps[step["Name"]] = {
            **args,
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{self.region}:{_account(args)}:training-job/{name.lower()}",
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in sorted(result.metrics.items())],
        }
        return StepResult(step["Name"], "Succeeded", 0, f"model at {model_uri}")

    def _processing(self, step: Mapping[str, Any]) -> StepResult:
        if not isinstance(self.runner, ProcessRunner):
            raise UnsupportedExpression(f"step {step['Name']}: processing steps run in the job environment only")
        runner = self.runner
        name = self.job_name(step)
        args = self._arguments(step, ProcessingJobName=name)
        job = processing.from_request(args, name=name, region=self.region, where=f"step {step['Name']}")
        self.report(f"==> step {step['Name']} ({step['Type']}): Executing as {name}")
        result = self._in_folder(
            name,
            lambda folder: processing.run_processing(
                job,
                folder,
                runner,
                stop_grace=self.stop_grace,
                sink=self.sink,
                report=self.report,
                verbose=self.verbose,
            ),
        )
        if not result.succeeded:
            return _failed(step, result.failure_reason or "", result.exit_code)
        for declared in step.get("PropertyFiles", []):
            uri = f"{result.outputs[declared['OutputName']].rstrip('/')}/{declared['FilePath']}"
            try:
                self.files[f"Steps.{step['Name']}.PropertyFiles.{declared['PropertyFileName']}"] = json.loads(
                    self._read_s3(uri)
                )
            except (aws.aws_errors(), ValueError) as error:
                return _failed(step, f"property file {declared['PropertyFileName']}: {uri}: {error}")
        self.steps[step["Name"]] = {
            **args,
            "ProcessingJobName": name,
            "ProcessingJobArn": f"arn:aws:sagemaker:{self.region}:{_account(args)}:processing-job/{name.lower()}",
            "ProcessingJobStatus": "Completed",
        }
        return StepResult(step["Name"], "Succeeded", 0, f"outputs at {', '.join(result.outputs.values()) or 'none'}")

    def _transform(self, step: Mapping[str, Any]) -> StepResult:
        from pipeline.local import transform

        if not isinstance(self.runner, ProcessRunner):
            raise UnsupportedExpression(f"step {step['Name']}: transform steps run in the job environment only")
        runner = self.runner
        name = self.job_name(step)
        args = self._arguments(step)
        model = self.models.get(args["ModelName"]) or self._account_model(args["ModelName"])
        self.report(f"==> step {step['Name']} ({step['Type']}): Executing as {name}")
        try:
            done = self._in_folder(
                name,
                lambda folder: transform.run_transform(model, args, folder, runner, self.region, self.report),
            )
        except transform.TransformError as error:
            return _failed(step, str(error))
        self.steps[step["Name"]] = {**args, "TransformJobName": name, "TransformJobStatus": "Completed"}
        where = args["TransformOutput"]["S3OutputPath"]
        return StepResult(step["Name"], "Succeeded", 0, f"{len(done.outputs)} output(s) under {where}")

    def _account_model(self, name: str) -> Mapping[str, Any]:
        """A model that no step of this run made: the account's, as SageMaker would find it."""
        sm = aws.client("sagemaker", self.region)
        try:
            return sm.describe_model(ModelName=name)["PrimaryContainer"]
        except aws.aws_errors() as error:
            raise UnsupportedExpression(f"model {name}: {aws.describe_error(error)}") from None

    def _model(self, step: Mapping[str, Any]) -> StepResult:
        args = self._arguments(step)
        name = self.job_name(step)
        sm = aws.client("sagemaker", self.region)
        arn = sm.create_model(ModelName=name, **args)["ModelArn"]
        self.models[name] = args["PrimaryContainer"]
        self.steps[step["Name"]] = {**args, "ModelName": name, "ModelArn": arn}
        return StepResult(step["Name"], "Succeeded", 0, f"model {name}")

    def _condition(self, step: Mapping[str, Any]) -> StepResult:
        try:
            holds = all(condition_holds(c, self.scope) for c in step["Arguments"]["Conditions"])
        except (UnsupportedExpression, TypeError) as error:  # as SageMaker fails a condition it cannot evaluate
            return _failed(step, f"cannot evaluate the condition: {error}")
        side = self.chosen[step["Name"]] = BRANCHES[0] if holds else BRANCHES[1]
        self.steps[step["Name"]] = {"Outcome": holds}
        names = ", ".join(inner["Name"] for inner in step["Arguments"].get(side, [])) or "nothing"
        return StepResult(step["Name"], "Succeeded", 0, f"condition {'met' if holds else 'not met'}: running {names}")

    def _fail(self, step: Mapping[str, Any]) -> StepResult:
        message = self._arguments(step).get("ErrorMessage", "")
        return _failed(step, str(message))

    def _registermodel(self, step: Mapping[str, Any]) -> StepResult:
        args = self._arguments(step)
        sm = aws.client("sagemaker", self.region)
        group = args.get("ModelPackageGroupName")
        try:
            if group:
                sm.describe_model_package_group(ModelPackageGroupName=group)
        except sm.exceptions.ClientError:  # not there yet: a pipeline's first registration creates it
            sm.create_model_package_group(ModelPackageGroupName=group)
        arn = sm.create_model_package(**args)["ModelPackageArn"]
        described = sm.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata", None)
        self.steps[step["Name"]] = {**described, "ModelPackageArn": arn}
        return StepResult(step["Name"], "Succeeded", 0, f"registered {arn} ({args.get('ModelApprovalStatus')})")


def _account(args: Mapping[str, Any]) -> str:
    """The account of a job's ARN: its role's, as SageMaker's would be."""
    role = str(args.get("RoleArn") or args.get("ExecutionRoleArn") or "")
    return role.split(":")[4] if role.count(":") >= 5 else DEFAULT_ACCOUNT


def run(
    definition: Mapping[str, Any],
    values: Mapping[str, Any],
    work_dir: Path,
    runner: Runner,
    *,
    execution: Mapping[str, Any],
    region: str,
    stop_grace: float = DEFAULT_STOP_GRACE_SECONDS,
    report: Callable[[str], None] = print,
    sink: IO[str] = sys.stdout,
    verbose: bool = False,
) -> list[StepResult]:
    """Execute the steps in their DAG order, with ``values`` from :func:`check_runnable`; stops at the
    first failure. The steps that ran, in the order they ran; the jobs' output goes to ``sink`` (the
    image's INFO lines only if ``verbose``)."""
    steps = plan(definition)
    _check_runner(definition, runner)
    shown = {k: v for k, v in execution.items() if isinstance(v, str)}
    report(f"local execution {shown['PipelineExecutionId']}, parameters: {json.dumps(values, sort_keys=True)}")
    execution_run = _Execution(runner, work_dir, (values, execution), region, stop_grace, report, sink, verbose)
    execution_run.run_plan(steps)
    return execution_run.results
