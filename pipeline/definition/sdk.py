"""Every use of the SageMaker Python SDK (v2) by the project lives here; the rest sees JSON.

The DAG is the user's: ``workflow.py`` in the source dir builds a ``Pipeline`` with plain SDK
calls and the building blocks of :class:`Project` (a training step from the script's
contract, processing, model, register and transform steps on the framework image, named
parameters). Without that file the pipeline is one training step. A move to SDK v3
replaces this module and the user's module: the rest takes settings and a source dir in,
definition JSON out (:func:`render`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.definition import dag
from pipeline.definition import parameters as params
from pipeline.definition.contract import WORKFLOW_FILE, Contract
from pipeline.definition.settings import Settings
from pipeline.errors import WorkflowError

# Silence the v2 deprecation banner before the SDK is imported; README ("The SDK") says why v2.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

# Passing SDK defaults explicitly stops the SDK from searching config files and
# turns telemetry off: its request goes to a fixed AWS address and can hang offline.
SDK_DEFAULTS = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
BUILD_FUNCTION = "build_pipeline"  # what the pipeline module defines: Project in, Pipeline out
TRAINING_STEP = "Train"
CACHE_DAYS = "P30D"
# Where a processing job finds the project's code archive, inside the container.
PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
# The framework image's processing entry: unpacks sourcedir.tar.gz and runs a script of it.
PROCESSING_MODULE = "custom_framework_training.processing"
PROCESSING_INSTANCE_TYPE = "ProcessingInstanceType"
DEFAULT_CONTENT_TYPES = ("text/csv", "application/json")
INFERENCE_ENTRY_POINT = "inference.py"


def quiet_sdk_logs() -> None:
    """Keep the SDK's INFO/WARNING chatter out of the CLI's output."""
    for name in ("sagemaker", "sagemaker.config", "sagemaker.workflow", "botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _skip_validating_sdk_defaults() -> None:
    """Stop the SDK validating ``SDK_DEFAULTS`` against its config JSON schema.

    v2 checks the whole schema when a session is made and again each time it
    reads a default: 24 times per render, half of ``definition``'s wall time.
    ``SDK_DEFAULTS`` is a constant, validated once by the tests instead; any other
    config is still checked.
    """
    import sagemaker.session
    import sagemaker.utils
    from sagemaker.config import validate_sagemaker_config

    def validate(config: dict | None = None) -> None:
        if config is not SDK_DEFAULTS:
            validate_sagemaker_config(config)

    sagemaker.session.validate_sagemaker_config = validate
    sagemaker.utils.validate_sagemaker_config = validate


def custom_framework_class() -> type:
    """``CustomFramework``: the SDK estimator for the framework image (tests use it with SDK local mode)."""
    from sagemaker.estimator import Framework

    class CustomFramework(Framework):
        """Estimator for the custom framework image: the toolkit runs ``entry_point`` from ``source_dir``."""

        _framework_name = "custom-framework"
        # The image is always given explicitly; the SDK still reads these two.
        framework_version = None
        py_version = None

        def training_image_uri(self, region: str | None = None) -> Any:
            # Framework's version resolves a pipeline parameter to its default
            # value; returning it unchanged keeps the image a run-time parameter.
            return self.image_uri

        def create_model(self, **kwargs: Any) -> Any:
            """A Model on the same image: it serves with the handlers packed in ``model.tar.gz``."""
            return serving_model(self.image_uri, self.model_data, self.role, self.sagemaker_session, **kwargs)

    return CustomFramework


def serving_model(image_uri: Any, model_data: Any, role: str, session: Any, **kwargs: Any) -> Any:
    """The framework image serving ``model_data``."""
    from sagemaker.model import Model

    return Model(image_uri=image_uri, model_data=model_data, role=role, sagemaker_session=session, **kwargs)


def retry_policies(job: bool = True) -> list[Any]:
    """Retries for SageMaker's transient failures: throttling and service faults on the step's own
    calls, and (for jobs) capacity and internal errors of the job, with backoff."""
    from sagemaker.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    policies: list[Any] = [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=5,
        )
    ]
    if job:
        policies.append(
            SageMakerJobStepRetryPolicy(
                exception_types=[
                    SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                    SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                    SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                ],
                interval_seconds=60,
                backoff_rate=2.0,
                max_attempts=3,
            )
        )
    return policies


def _cache() -> Any:
    from sagemaker.workflow.steps import CacheConfig

    return CacheConfig(enable_caching=True, expire_after=CACHE_DAYS)


@dataclass
class Uploads:
    """What the SDK would upload while the pipeline module runs (a ScriptProcessor's script, a
    FrameworkProcessor's runproc.sh): recorded, content-addressed by the SDK, made by upsert and
    run --local. ``read`` lists the local files they came from, for the render cache."""

    objects: dict[str, bytes] = field(default_factory=dict)
    read: set[Path] = field(default_factory=set)

    def add_path(self, path: str, bucket: str, key_prefix: str) -> str:
        """As ``Session.upload_data`` names keys: a file under the prefix, a folder's files below it."""
        local = Path(path)
        if local.is_dir():
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                self._add_file(file, f"s3://{bucket}/{key_prefix}/{file.relative_to(local).as_posix()}")
            return f"s3://{bucket}/{key_prefix}"
        uri = f"s3://{bucket}/{key_prefix}/{local.name}"
        self._add_file(local, uri)
        return uri

    def _add_file(self, file: Path, uri: str) -> None:
        self.objects[uri] = file.read_bytes()
        self.read.add(file.resolve())


def render_session(settings: Settings, uploads: Uploads) -> Any:
    """A ``PipelineSession`` that renders without any AWS call.

    Inert credentials: without them boto3 would search for real ones, up to the EC2
    metadata endpoint. An explicit bucket: otherwise the SDK asks STS for the account.
    Uploads are recorded in ``uploads`` instead of made.
    """
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    class RenderSession(PipelineSession):
        def default_bucket(self) -> str:
            return settings.bucket

        def upload_data(self, path: str, bucket: str | None = None, key_prefix: str = "data", **_: Any) -> str:
            return uploads.add_path(path, bucket or settings.bucket, key_prefix)

        def upload_string_as_file_body(self, body: str, bucket: str, key: str, kms_key: str | None = None) -> str:
            uri = f"s3://{bucket}/{key}"
            uploads.objects[uri] = body.encode()
            return uri

    _skip_validating_sdk_defaults()
    boto_session = boto3.Session(
        region_name=settings.region, aws_access_key_id="render-only", aws_secret_access_key="render-only"
    )
    return RenderSession(boto_session=boto_session, default_bucket=settings.bucket, sagemaker_config=SDK_DEFAULTS)


_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


class Project:
    """The building blocks a pipeline module builds its DAG with.

    Every step it makes runs on the framework image (the ``ImageUri`` parameter) with the
    project's content-addressed code archive, caches for 30 days, retries transient failures,
    and carries the ``DataFingerprint`` parameter so that changed data misses the cache.
    Parameters are declared once by name (:meth:`parameter`); a second declaration with
    another meaning is an error, never a silent merge.
    """

    def __init__(
        self,
        settings: Settings,
        contract: Contract,
        source_dir: Path,
        code_uri: str,
        session: Any,
        mounted_code: str | None = None,
    ) -> None:
        self.settings, self.contract, self.source_dir = settings, contract, source_dir
        self.code_uri, self.session, self._mounted_code = code_uri, session, mounted_code
        self.help: dict[str, str] = {}
        self._variables: dict[str, Any] = {}
        self._owners: dict[str, str] = {}

    # --- parameters ------------------------------------------------------------------------------

    def parameter(self, name: str, default: Any, help: str = "", *, kind: str | None = None, owner: str = "") -> Any:
        """The pipeline parameter ``name`` (Studio shows it), declared on first use; ``kind`` (int, float,
        str, bool) defaults to the default's type. The same name again must mean the same thing."""
        from sagemaker.workflow.parameters import ParameterBoolean, ParameterFloat, ParameterInteger, ParameterString

        owner = owner or f"parameter {name}"
        if name in self._variables:
            if self._owners[name] != owner:
                raise WorkflowError(
                    f"{owner} and {self._owners[name]} both name the pipeline parameter {name}: rename one of them"
                )
            return self._variables[name]
        kind = kind or _KINDS.get(type(default), "str")
        classes = {"int": ParameterInteger, "float": ParameterFloat, "str": ParameterString, "bool": ParameterBoolean}
        value = json.dumps(default) if kind == "json" else default
        self._variables[name] = classes.get(kind, ParameterString)(name=name, default_value=value)
        self._owners[name] = owner
        self.help[name] = help
        return self._variables[name]

    def _declared(self, parameter: params.Parameter, owner: str) -> Any:
        return self.parameter(parameter.name, parameter.default, parameter.help, kind=parameter.type, owner=owner)

    @property
    def image_uri(self) -> Any:
        """The framework image every step runs: ``ImageUri``, which deploy sets to the pushed image."""
        return self._fixed(params.IMAGE_URI)

    @property
    def data_fingerprint(self) -> Any:
        """``DataFingerprint``: a hash of what the S3 inputs hold, which ``start`` fills in."""
        return self.parameter(params.DATA_FINGERPRINT, "", params.FINGERPRINT_HELP, owner="the project")

    def _training_parameters(self) -> dict[str, params.Parameter]:
        declared = params.pipeline_parameters(self.contract, self.settings.image_uri, self.settings.data_uri)
        return {p.name: p for p in declared}

    def _fixed(self, name: str) -> Any:
        return self._declared(self._training_parameters()[name], "the project")

    def data(self, channel: str) -> Any:
        """The S3-prefix parameter of a channel of the contract (``train`` -> ``TrainData``)."""
        declared = self.contract.channel(channel)
        if declared is None:
            known = ", ".join(c.name for c in self.contract.channels) or "none"
            raise WorkflowError(f"channel {channel!r} is not declared in training.toml (declared: {known})")
        return self._declared(self._training_parameters()[declared.parameter_name], f"channel {channel}")

    def _environment(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A job's environment: the contract's, the caller's, and the data fingerprint."""
        return {
            **self.contract.environment,
            **(extra or {}),
            params.FINGERPRINT_VARIABLE: self.data_fingerprint,
        }

    def _script(self, script: str, where: str) -> str:
        """A script of the source dir, refused here if it is missing, rather than failing a job."""
        if not (self.source_dir / script).is_file():
            raise WorkflowError(f"{where}: {script} is not a file of {self.source_dir}: add it, or fix the name")
        return script

    # --- training ----------------------------------------------------------------------------------

    def estimator(self, **overrides: Any) -> Any:
        """The custom ``Framework`` estimator for the contract's script: its hyperparameters, instance
        type, count and time limit as parameters, its metric definitions; ``overrides`` win."""
        parameters = self._training_parameters()
        hyperparameters = {
            p.hyperparameter: self._declared(p, f"hyperparameter {p.hyperparameter}")
            for p in parameters.values()
            if p.hyperparameter
        }
        arguments: dict[str, Any] = {
            "entry_point": self.contract.entry_point,
            "source_dir": self._mounted_code or self.code_uri,
            "image_uri": self.image_uri,
            "role": self.settings.role_arn,
            "instance_type": self._fixed(params.INSTANCE_TYPE_PARAMETER),
            "instance_count": self._fixed(params.INSTANCE_COUNT),
            "max_run": self._fixed(params.MAX_RUNTIME),
            "output_path": self.settings.output_path,
            "code_location": self.settings.code_prefix,
            "hyperparameters": hyperparameters,
            "metric_definitions": self.contract.metric_definitions() or None,
            "environment": self._environment(),
            "disable_profiler": True,
            "debugger_hook_config": False,
            "tags": self.settings.aws_tags,
            "base_job_name": "custom-framework",
            "sagemaker_session": self.session,
        }
        return custom_framework_class()(**{**arguments, **overrides})

    def training_input(self, channel: str, source: Any = None) -> Any:
        """A ``TrainingInput`` for a contract channel: its parameter, or ``source`` (another step's
        output, say), with the contract's content type, input mode and distribution."""
        from sagemaker.inputs import TrainingInput

        declared = self.contract.channel(channel)
        if declared is None:
            return TrainingInput(source)
        return TrainingInput(
            self.data(channel) if source is None else source,
            content_type=declared.content_type,
            input_mode=None if declared.input_mode == "File" else declared.input_mode,  # File: the API's default
            distribution=declared.distribution,
        )

    def training_step(
        self, name: str = TRAINING_STEP, inputs: Mapping[str, Any] | None = None, **step_options: Any
    ) -> Any:
        """A ``TrainingStep`` running the contract's script. ``inputs`` maps channels to sources (another
        step's output, an S3 URI); channels not given read their parameter (``TrainData``)."""
        from sagemaker.workflow.steps import TrainingStep

        estimator = step_options.pop("estimator", None) or self.estimator()
        given = dict(inputs or {})
        channels = {c.name: self.training_input(c.name, given.pop(c.name, None)) for c in self.contract.channels}
        channels.update({n: s if hasattr(s, "config") else self.training_input(n, s) for n, s in given.items()})
        return TrainingStep(
            name=name,
            step_args=estimator.fit(inputs=channels or None),
            cache_config=step_options.pop("cache_config", _cache()),
            retry_policies=step_options.pop("retry_policies", retry_policies()),
            **step_options,
        )

    # --- processing ----------------------------------------------------------------------------------

    def processing_instance_type(self) -> Any:
        """``ProcessingInstanceType``, shared by the processing steps that do not name their own."""
        return self.parameter(
            PROCESSING_INSTANCE_TYPE, self.contract.instance_type, "processing instance type", owner="the project"
        )

    def processor(self, script: str, *, instance_type: Any = None, instance_count: int = 1, **options: Any) -> Any:
        """A ``Processor`` on the framework image that runs ``script`` of the code archive (the image's
        processing entry unpacks it), with the contract's environment and the data fingerprint."""
        from sagemaker.processing import Processor

        script = self._script(script, f"processing script {script!r}")
        return Processor(
            role=self.settings.role_arn,
            image_uri=self.image_uri,
            instance_count=instance_count,
            instance_type=instance_type or self.processing_instance_type(),
            entrypoint=["python3", "-m", PROCESSING_MODULE, f"{CODE_DIR}/sourcedir.tar.gz", script],
            base_job_name=options.pop("base_job_name", "custom-framework-processing"),
            env=self._environment(options.pop("env", None)),
            tags=self.settings.aws_tags,
            sagemaker_session=self.session,
            **options,
        )

    def processing_step(
        self,
        name: str,
        script: str,
        *,
        inputs: Iterable[Any] = (),
        outputs: Iterable[Any] = (),
        arguments: Iterable[Any] = (),
        property_files: Iterable[Any] = (),
        processor: Any = None,
        **step_options: Any,
    ) -> Any:
        """A ``ProcessingStep`` running ``script`` of the source dir on the framework image; the code
        archive arrives as an extra input. ``inputs``/``outputs`` are the SDK's ProcessingInput/Output."""
        from sagemaker.processing import ProcessingInput
        from sagemaker.workflow.steps import ProcessingStep

        processor = processor or self.processor(script)
        code = ProcessingInput(source=self.code_uri, destination=CODE_DIR, input_name="code")
        return ProcessingStep(
            name=name,
            step_args=processor.run(inputs=[code, *inputs], outputs=list(outputs), arguments=list(arguments) or None),
            property_files=list(property_files) or None,
            cache_config=step_options.pop("cache_config", _cache()),
            retry_policies=step_options.pop("retry_policies", retry_policies()),
            **step_options,
        )

    # --- models --------------------------------------------------------------------------------------

    def model(self, model_data: Any, inference_entry_point: str = INFERENCE_ENTRY_POINT, **options: Any) -> Any:
        """A ``Model`` on the framework image serving ``model_data`` with ``inference_entry_point`` from
        the same content-addressed code archive the jobs ran."""
        entry = self._script(inference_entry_point, f"inference script {inference_entry_point!r}")
        env = {"SAGEMAKER_PROGRAM": entry, "SAGEMAKER_SUBMIT_DIRECTORY": self.code_uri, **options.pop("env", {})}
        return serving_model(self.image_uri, model_data, self.settings.role_arn, self.session, env=env, **options)

    def model_step(self, name: str, model_data: Any, **model_options: Any) -> Any:
        """A ``ModelStep`` that creates the model (CreateModel), for a transform step or an endpoint."""
        from sagemaker.workflow.model_step import ModelStep

        model = self.model(model_data, **model_options)
        return ModelStep(name=name, step_args=model.create(), retry_policies=retry_policies(job=False))

    def register_step(
        self,
        name: str,
        model_data: Any,
        *,
        content_types: Iterable[str] = DEFAULT_CONTENT_TYPES,
        inference_instances: Iterable[str] = (),
        model_metrics: Any = None,
        inference_entry_point: str = INFERENCE_ENTRY_POINT,
        **register_options: Any,
    ) -> Any:
        """A ``ModelStep`` that registers the model in ``ModelPackageGroupName`` (default: the pipeline's
        name) with ``ModelApprovalStatus`` (default PendingManualApproval)."""
        from sagemaker.workflow.model_step import ModelStep

        group = self.parameter(
            params.MODEL_PACKAGE_GROUP,
            self.settings.pipeline_name,
            "model package group the model is registered in",
            owner="the project",
        )
        status = self.parameter(
            params.APPROVAL_STATUS,
            params.APPROVAL_STATUSES[0],
            "status of a newly registered model",
            owner="the project",
        )
        types = list(content_types)
        instances = list(inference_instances) or [self.contract.instance_type]
        step_args = self.model(model_data, inference_entry_point).register(
            content_types=types,
            response_types=types,
            inference_instances=instances,
            transform_instances=instances,
            model_package_group_name=group,
            approval_status=status,
            model_metrics=model_metrics,
            **register_options,
        )
        return ModelStep(name=name, step_args=step_args, retry_policies=retry_policies(job=False))

    def transform_step(
        self,
        name: str,
        model_name: Any,
        data: Any,
        *,
        content_type: str = "text/csv",
        split_type: str = "Line",
        accept: str | None = None,
        instance_type: Any = None,
        output_path: Any = None,
        **transform_options: Any,
    ) -> Any:
        """A ``TransformStep``: batch inference over ``data`` with the model ``model_name`` (a model step's
        ``properties.ModelName``) on the image's serving stack; results go to ``output_path``."""
        from sagemaker.transformer import Transformer
        from sagemaker.workflow.functions import Join
        from sagemaker.workflow.steps import TransformStep

        transformer = Transformer(
            model_name=model_name,
            instance_count=1,
            instance_type=instance_type or self.processing_instance_type(),
            output_path=output_path
            or Join(on="/", values=[f"s3://{self.settings.bucket}/{self.settings.prefix}/transform", name]),
            accept=accept or content_type,
            assemble_with="Line" if split_type == "Line" else None,
            strategy="MultiRecord",
            env={params.FINGERPRINT_VARIABLE: self.data_fingerprint},
            tags=self.settings.aws_tags,
            sagemaker_session=self.session,
        )
        step_args = transformer.transform(
            data=data, content_type=content_type, split_type=split_type, **transform_options
        )
        return TransformStep(name=name, step_args=step_args, cache_config=_cache(), retry_policies=retry_policies())

    # --- the pipeline ---------------------------------------------------------------------------------

    def pipeline(self, steps: Iterable[Any], parameters: Iterable[Any] = ()) -> Any:
        """The ``Pipeline`` of ``steps`` with every parameter the blocks declared, plus ``parameters``
        the module made itself with the SDK."""
        from sagemaker.workflow.pipeline import Pipeline
        from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig

        # Studio lists the training step's parameters in the contract's order, then the module's.
        studio = [p.name for p in self._training_parameters().values()]
        own = sorted(self._variables.values(), key=lambda v: studio.index(v.name) if v.name in studio else len(studio))
        names = {p.name for p in own}
        return Pipeline(
            name=self.settings.pipeline_name,
            parameters=own + [p for p in parameters if p.name not in names],
            steps=list(steps),
            sagemaker_session=self.session,
            # No experiment or trial per run: the execution role need not manage them.
            pipeline_experiment_config=None,
            pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
        )


def default_pipeline(project: Project) -> Any:
    """The DAG of a source dir without a pipeline module: one training step."""
    return project.pipeline([project.training_step()])


@dataclass(frozen=True)
class Workflow:
    """The user's pipeline module, loaded: its build function and the source files it read."""

    build: Callable[[Project], Any]
    files: tuple[Path, ...]  # the source dir's modules it imported


def _where(error: BaseException, path: Path) -> str:
    """``file:line`` of the deepest frame in the source dir: where the user's code went wrong."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    root = path.parent.resolve()
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve().is_relative_to(root)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(path)


def _module_error(error: BaseException, path: Path) -> WorkflowError:
    return WorkflowError(f"{_where(error, path)}: {type(error).__name__}: {error}: fix the pipeline module")


def load_workflow(source_dir: Path) -> Workflow:
    """``workflow.py`` of ``source_dir`` (its folder importable while it loads), or the default DAG."""
    path = source_dir / WORKFLOW_FILE
    if not path.is_file():
        return Workflow(default_pipeline, ())
    text = path.read_bytes()
    name = f"_pipeline_module_{hashlib.sha256(str(path.resolve()).encode() + text).hexdigest()[:12]}"
    before = set(sys.modules)
    sys.path.insert(0, str(source_dir.resolve()))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as error:
        raise _module_error(error, path) from None
    finally:
        sys.path.remove(str(source_dir.resolve()))
    build = getattr(module, BUILD_FUNCTION, None)
    if not callable(build):
        raise WorkflowError(f"{path} defines no {BUILD_FUNCTION}(project): add it (see user_src/{WORKFLOW_FILE})")
    root, files = source_dir.resolve(), set()
    for name in set(sys.modules) - before:  # the source dir's modules: recorded, and dropped so that
        file = getattr(sys.modules[name], "__file__", None)  # the next load (another source dir) imports its own
        if file and Path(file).resolve().is_relative_to(root):
            files.add(Path(file).resolve())
            del sys.modules[name]
    return Workflow(build, tuple(sorted(files)))


@dataclass(frozen=True)
class Output:
    """What a render gives besides the code archive: the definition, the uploads the SDK asked for,
    the parameters' help texts, and the source files the render read (for the cache)."""

    definition: str
    uploads: Mapping[str, bytes]
    help: Mapping[str, str]
    read: tuple[Path, ...]


def build_pipeline(
    settings: Settings,
    contract: Contract,
    source_dir: Path,
    code_uri: str,
    *,
    session: Any = None,
    mounted_code: str | None = None,
) -> tuple[Any, Project, Workflow, Uploads]:
    """The user's ``Pipeline``, built by their module; no AWS call is made.

    ``session`` replaces the render-only ``PipelineSession``, e.g. with the SDK's
    ``LocalPipelineSession``; ``mounted_code``, a directory, is then the training job's
    ``source_dir`` in place of ``code_uri``, for a local-code session that mounts it.
    """
    from sagemaker.workflow.pipeline import Pipeline

    uploads = Uploads()
    workflow = load_workflow(source_dir)
    project = Project(
        settings, contract, source_dir, code_uri, session or render_session(settings, uploads), mounted_code
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Running within a PipelineSession ..." on every fit()
            built = workflow.build(project)
    except WorkflowError:
        raise
    except Exception as error:
        raise _module_error(error, source_dir / WORKFLOW_FILE) from None
    if not isinstance(built, Pipeline):
        raise WorkflowError(
            f"{BUILD_FUNCTION}() in {source_dir / WORKFLOW_FILE} returned {type(built).__name__}:"
            " return project.pipeline(steps) (a sagemaker.workflow.pipeline.Pipeline)"
        )
    return built, project, workflow, uploads


def render(settings: Settings, contract: Contract, source_dir: Path, code_uri: str) -> Output:
    """The pipeline definition as SageMaker stores it, with what it needs uploaded."""
    built, project, workflow, uploads = build_pipeline(settings, contract, source_dir, code_uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = built.definition()
    except Exception as error:  # the SDK's own DAG checks: cycles, unknown steps, bad references
        raise WorkflowError(
            f"{source_dir / WORKFLOW_FILE}: the SDK cannot render the pipeline: {error}: fix the pipeline module"
        ) from None
    try:
        dag.order(json.loads(text))
    except WorkflowError as error:
        raise WorkflowError(f"{source_dir / WORKFLOW_FILE}: {error}") from None
    return Output(text, dict(uploads.objects), dict(project.help), tuple(sorted({*workflow.files, *uploads.read})))
