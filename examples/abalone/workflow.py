"""The SageMaker Projects model-build pipeline (abalone), on the framework image:
Preprocess -> Train -> Evaluate -> mse <= MseThreshold -> Register | Fail.

The scripts are written as for SageMaker's own containers: they read and write
/opt/ml/processing/... and /opt/ml/input/data/...; run --local gives them those paths.
"""

from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.properties import PropertyFile

from pipeline.blocks import Project

BASE = "/opt/ml/processing"


def build_pipeline(project: Project):
    input_data = project.parameter(
        "InputDataUrl",
        f"s3://{project.settings.bucket}/{project.settings.prefix}/abalone/abalone-dataset.csv",
        "the raw abalone CSV (headerless)",
    )
    outputs = {
        name: Join(on="/", values=[project.settings.output_path, "preprocess", name])
        for name in ("train", "validation", "test")
    }
    preprocess = project.processing_step(
        "PreprocessAbaloneData",
        "preprocess.py",
        inputs=[ProcessingInput(source=input_data, destination=f"{BASE}/input", input_name="input")],
        outputs=[
            ProcessingOutput(output_name=name, source=f"{BASE}/{name}", destination=uri)
            for name, uri in outputs.items()
        ],
    )
    out = preprocess.properties.ProcessingOutputConfig.Outputs
    train = project.training_step(
        "TrainAbaloneModel",
        inputs={
            "train": out["train"].S3Output.S3Uri,
            "validation": out["validation"].S3Output.S3Uri,
        },
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="AbaloneEvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = project.processing_step(
        "EvaluateAbaloneModel",
        "evaluate.py",
        inputs=[
            ProcessingInput(source=model_data, destination=f"{BASE}/model", input_name="model"),
            ProcessingInput(source=out["test"].S3Output.S3Uri, destination=f"{BASE}/test", input_name="test"),
        ],
        outputs=[ProcessingOutput(output_name="evaluation", source=f"{BASE}/evaluation")],
        property_files=[report],
    )
    mse = JsonGet(step_name=evaluate.name, property_file=report, json_path="regression_metrics.mse.value")
    threshold = project.parameter("MseThreshold", 6.0, "register the model only if its test MSE is at most this")
    report_uri = Join(
        on="/",
        values=[evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"],
    )
    register = project.register_step(
        "RegisterAbaloneModel",
        model_data,
        content_types=["text/csv"],
        model_metrics=ModelMetrics(model_statistics=MetricsSource(s3_uri=report_uri, content_type="application/json")),
    )
    fail = FailStep(name="AbaloneMSEFail", error_message=Join(on=" ", values=["test MSE", mse, "is above", threshold]))
    gate = ConditionStep(
        name="CheckMSEAbaloneEvaluation",
        conditions=[ConditionLessThanOrEqualTo(left=mse, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    return project.pipeline([preprocess, train, evaluate, gate])
