"""Every use of the SageMaker Python SDK (v2) lives here; the rest of the project sees JSON.

A move to SDK v3 replaces this module alone: its contract is
:func:`definition_json`, settings and a code URI in, definition JSON out.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any

from pipeline.definition import parameters as params
from pipeline.definition.contract import Contract
from pipeline.definition.settings import Settings

# Silence the v2 deprecation banner before the SDK is imported.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

# Passing SDK defaults explicitly stops the SDK from searching config files and
# turns telemetry off: its request goes to a fixed AWS address and can hang offline.
SDK_DEFAULTS = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
TRAINING_STEP = "Train"
EVALUATION_STEP = "Evaluate"
GATE_STEP = "Gate"
REGISTER_STEP = "Register"
FAIL_STEP = "Fail"
CACHE_DAYS = "P30D"
# Where the evaluation job finds its inputs and leaves its report, inside the container.
PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
MODEL_DIR = f"{PROCESSING}/model"
REPORT_DIR = f"{PROCESSING}/evaluation"
REPORT_OUTPUT = "evaluation"
# The framework image's processing entry: unpacks sourcedir.tar.gz and runs the evaluation script.
PROCESSING_MODULE = "custom_framework_training.processing"


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
    """The framework image serving ``model_data``; the inference code travels inside it (``code/``)."""
    from sagemaker.model import Model

    return Model(image_uri=image_uri, model_data=model_data, role=role, sagemaker_session=session, **kwargs)


def _pipeline_variables(parameters: tuple[params.Parameter, ...]) -> dict[str, Any]:
    from sagemaker.workflow.parameters import ParameterBoolean, ParameterFloat, ParameterInteger, ParameterString

    kinds = {"int": ParameterInteger, "float": ParameterFloat, "str": ParameterString, "bool": ParameterBoolean}
    return {
        p.name: kinds.get(p.type, ParameterString)(
            name=p.name, default_value=json.dumps(p.default) if p.type == "json" else p.default
        )
        for p in parameters
    }


def _environment(contract: Contract, variables: dict[str, Any]) -> dict[str, Any] | None:
    """The job's environment: the contract's, plus the data fingerprint that keys step caching."""
    environment: dict[str, Any] = dict(contract.environment)
    if params.DATA_FINGERPRINT in variables:
        environment[params.FINGERPRINT_VARIABLE] = variables[params.DATA_FINGERPRINT]
    return environment or None


def _session(settings: Settings) -> Any:
    """A ``PipelineSession`` that renders without any AWS call.

    Inert credentials: without them boto3 would search for real ones, up to the EC2
    metadata endpoint. An explicit bucket: otherwise the SDK asks STS for the account.
    """
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    _skip_validating_sdk_defaults()
    boto_session = boto3.Session(
        region_name=settings.region, aws_access_key_id="render-only", aws_secret_access_key="render-only"
    )
    return PipelineSession(boto_session=boto_session, default_bucket=settings.bucket, sagemaker_config=SDK_DEFAULTS)


def build_pipeline(
    settings: Settings, contract: Contract, code_uri: str, *, session: Any = None, mounted_code: str | None = None
) -> Any:
    """The SDK ``Pipeline``: Train, then (with an evaluation declared) Evaluate, Gate, Register or Fail;
    no AWS call is made.

    ``session`` replaces the render-only ``PipelineSession``, e.g. with the SDK's
    ``LocalPipelineSession``; ``mounted_code``, a directory, is then the training job's
    ``source_dir`` in place of ``code_uri``, for a local-code session that mounts it.
    """
    from sagemaker.inputs import TrainingInput
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.workflow.steps import CacheConfig, TrainingStep

    session = session or _session(settings)
    parameters = params.pipeline_parameters(
        contract, image_uri=settings.image_uri, data_uri=settings.data_uri, model_package_group=settings.pipeline_name
    )
    variables = _pipeline_variables(parameters)
    estimator = custom_framework_class()(
        entry_point=contract.entry_point,
        source_dir=mounted_code or code_uri,
        image_uri=variables[params.IMAGE_URI],
        role=settings.role_arn,
        instance_type=variables[params.INSTANCE_TYPE_PARAMETER],
        instance_count=variables[params.INSTANCE_COUNT],
        max_run=variables[params.MAX_RUNTIME],
        output_path=settings.output_path,
        code_location=settings.code_prefix,
        hyperparameters={p.hyperparameter: variables[p.name] for p in parameters if p.hyperparameter},
        metric_definitions=contract.metric_definitions() or None,
        environment=_environment(contract, variables),
        disable_profiler=True,
        debugger_hook_config=False,
        tags=settings.aws_tags,
        base_job_name="custom-framework",
        sagemaker_session=session,
    )
    inputs = {
        p.channel: TrainingInput(
            variables[p.name],
            content_type=channel.content_type,
            input_mode=None if channel.input_mode == "File" else channel.input_mode,  # File: the API's default
            distribution=channel.distribution,
        )
        for p in parameters
        if p.channel and (channel := contract.channel(p.channel))
    }
    train = TrainingStep(
        name=TRAINING_STEP,
        step_args=estimator.fit(inputs=inputs or None),
        cache_config=CacheConfig(enable_caching=True, expire_after=CACHE_DAYS),
    )
    gate = _gate_steps(settings, contract, code_uri, variables, train, session) if contract.evaluation else []
    return Pipeline(
        name=settings.pipeline_name,
        parameters=list(variables.values()),
        steps=[train, *gate],
        sagemaker_session=session,
        # No experiment or trial per run: the execution role need not manage them.
        pipeline_experiment_config=None,
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
    )


def _gate_steps(
    settings: Settings, contract: Contract, code_uri: str, variables: dict[str, Any], train: Any, session: Any
) -> list[Any]:
    """Evaluate the trained model on held-out data, then register it if the metric reaches the
    threshold, else fail naming the metric, its value and the threshold."""
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import CacheConfig, ProcessingStep

    evaluation = contract.evaluation
    assert evaluation is not None
    channel = contract.channel(evaluation.channel)
    assert channel is not None
    data_dir = f"{PROCESSING}/input/{channel.name}"
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts
    processor = Processor(
        role=settings.role_arn,
        image_uri=variables[params.IMAGE_URI],
        instance_count=1,
        instance_type=variables[params.EVALUATION_INSTANCE_TYPE],
        entrypoint=["python3", "-m", PROCESSING_MODULE, f"{CODE_DIR}/sourcedir.tar.gz", evaluation.entry_point],
        base_job_name="custom-framework-evaluate",
        env=dict(contract.environment) or None,
        tags=settings.aws_tags,
        sagemaker_session=session,
    )
    report = PropertyFile(name="EvaluationReport", output_name=REPORT_OUTPUT, path=evaluation.report)
    # The report goes next to its model's name: a cached training step gives a cached evaluation.
    destination = Join(on="/", values=[f"{settings.output_path}", train.properties.TrainingJobName, "evaluation"])
    evaluate = ProcessingStep(
        name=EVALUATION_STEP,
        step_args=processor.run(
            inputs=[
                ProcessingInput(source=code_uri, destination=CODE_DIR, input_name="code"),
                ProcessingInput(source=model_data, destination=MODEL_DIR, input_name="model"),
                ProcessingInput(
                    source=variables[channel.parameter_name], destination=data_dir, input_name=channel.name
                ),
            ],
            outputs=[ProcessingOutput(output_name=REPORT_OUTPUT, source=REPORT_DIR, destination=destination)],
            arguments=["--model-dir", MODEL_DIR, "--data-dir", data_dir, "--output-dir", REPORT_DIR],
        ),
        property_files=[report],
        cache_config=CacheConfig(enable_caching=True, expire_after=CACHE_DAYS),
    )
    value = JsonGet(step_name=EVALUATION_STEP, property_file=report, json_path=evaluation.metric)
    threshold = variables[evaluation.threshold_parameter]
    registry = contract.registry
    metrics = ModelMetrics(
        model_statistics=MetricsSource(
            s3_uri=Join(on="/", values=[destination, evaluation.report]), content_type="application/json"
        )
    )
    register = ModelStep(
        name=REGISTER_STEP,
        step_args=serving_model(
            variables[params.IMAGE_URI],
            model_data,
            settings.role_arn,
            session,
            # The serving container fetches the handlers from the same content-addressed archive.
            env={"SAGEMAKER_PROGRAM": registry.inference_entry_point, "SAGEMAKER_SUBMIT_DIRECTORY": code_uri},
        ).register(
            content_types=list(registry.content_types),
            response_types=list(registry.content_types),
            inference_instances=list(registry.inference_instance_types),
            transform_instances=list(registry.inference_instance_types),
            model_package_group_name=variables[params.MODEL_PACKAGE_GROUP],
            approval_status=variables[params.APPROVAL_STATUS],
            model_metrics=metrics,
        ),
    )
    fail = FailStep(
        name=FAIL_STEP,
        error_message=Join(on=" ", values=[f"{evaluation.metric} =", value, "is below the threshold", threshold]),
    )
    gate = ConditionStep(
        name=GATE_STEP,
        conditions=[ConditionGreaterThanOrEqualTo(left=value, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    return [evaluate, gate]


def definition_json(settings: Settings, contract: Contract, code_uri: str) -> str:
    """The pipeline definition as SageMaker stores it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Running within a PipelineSession ..." on every fit()
        return build_pipeline(settings, contract, code_uri).definition()
