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
            raise NotImplementedError("this image trains only; deploy model.tar.gz with a serving image")

    return CustomFramework


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


def build_pipeline(settings: Settings, contract: Contract, code_uri: str) -> Any:
    """The SDK ``Pipeline`` with its one ``TrainingStep``; no AWS call is made."""
    from sagemaker.inputs import TrainingInput
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.workflow.steps import CacheConfig, TrainingStep

    session = _session(settings)
    parameters = params.pipeline_parameters(contract, image_uri=settings.image_uri, data_uri=settings.data_uri)
    variables = _pipeline_variables(parameters)
    estimator = custom_framework_class()(
        entry_point=contract.entry_point,
        source_dir=code_uri,
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
    step = TrainingStep(
        name=TRAINING_STEP,
        step_args=estimator.fit(inputs=inputs or None),
        cache_config=CacheConfig(enable_caching=True, expire_after="P30D"),
    )
    return Pipeline(
        name=settings.pipeline_name,
        parameters=list(variables.values()),
        steps=[step],
        sagemaker_session=session,
        # No experiment or trial per run: the execution role need not manage them.
        pipeline_experiment_config=None,
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
    )


def definition_json(settings: Settings, contract: Contract, code_uri: str) -> str:
    """The pipeline definition as SageMaker stores it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Running within a PipelineSession ..." on every fit()
        return build_pipeline(settings, contract, code_uri).definition()
