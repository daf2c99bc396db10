"""Your pipeline: the DAG SageMaker runs, written with the SageMaker Python SDK (v2).

`python -m pipeline` imports this module and calls `build_pipeline(project)`; whatever
`Pipeline` it returns is what `definition` prints, `upsert` deploys and `run --local` runs.
Edit it to change the DAG's shape: add a preprocessing step, change the gate, add a batch
transform. It never ships in the code archive, so editing it alone leaves the jobs' code
(and step caching) as it was.

`project` is the building block kit (`pipeline.blocks.Project`): a training step from
`training.toml`, processing, model, register and transform steps on the framework image,
and named parameters (shown in Studio). Everything else is plain SDK: conditions,
`JsonGet`, `Join`, `PropertyFile`, `FailStep`, or any step you build yourself.

This DAG: Train -> Evaluate (evaluate.py on the validation data) -> Gate (accuracy >=
MinAccuracy) -> Register (PendingManualApproval) | Fail (naming the metric and threshold).
"""

from __future__ import annotations

from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.properties import PropertyFile

from pipeline.blocks import Project

METRIC = "binary_classification_metrics.accuracy.value"  # where evaluate.py puts accuracy
REPORT = "evaluation.json"
PROCESSING = "/opt/ml/processing"


def build_pipeline(project: Project):
    train = project.training_step("Train")
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path=REPORT)
    # The report goes next to its model: a cached training step gives a cached evaluation.
    destination = Join(on="/", values=[project.settings.output_path, train.properties.TrainingJobName, "evaluation"])
    evaluate = project.processing_step(
        "Evaluate",
        "evaluate.py",
        processor=project.processor(
            "evaluate.py",
            instance_type=project.parameter("EvaluationInstanceType", "ml.m5.large", "evaluation instance type"),
        ),
        inputs=[
            ProcessingInput(source=model_data, destination=f"{PROCESSING}/model", input_name="model"),
            ProcessingInput(
                source=project.data("validation"), destination=f"{PROCESSING}/input/validation", input_name="validation"
            ),
        ],
        outputs=[
            ProcessingOutput(output_name="evaluation", source=f"{PROCESSING}/evaluation", destination=destination)
        ],
        arguments=[
            *("--model-dir", f"{PROCESSING}/model"),
            *("--data-dir", f"{PROCESSING}/input/validation"),
            *("--output-dir", f"{PROCESSING}/evaluation"),
        ],
        property_files=[report],
    )

    accuracy = JsonGet(step_name=evaluate.name, property_file=report, json_path=METRIC)
    threshold = project.parameter("MinAccuracy", 0.7, f"register the model only if {METRIC} in {REPORT} reaches this")
    register = project.register_step(
        "Register",
        model_data,
        content_types=["text/csv", "application/json"],
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                s3_uri=Join(on="/", values=[destination, REPORT]), content_type="application/json"
            )
        ),
    )
    fail = FailStep(
        name="Fail", error_message=Join(on=" ", values=[f"{METRIC} =", accuracy, "is below the threshold", threshold])
    )
    gate = ConditionStep(
        name="Gate",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    return project.pipeline([train, evaluate, gate])
