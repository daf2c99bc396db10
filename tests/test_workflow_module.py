"""The pipeline module (``workflow.py``): the user's DAG, built with plain SDK calls and the blocks.

Editing it alone changes the DAG and never the code archive the jobs get; a module that cannot
build a pipeline is one ``error:`` line naming the file, line and fix, exit 2, nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from support import BUCKET, PROJECT_SRC, REGION, ROOT, run_cli

ABALONE = ROOT / "examples" / "abalone"


def offline(source: Path) -> dict:
    done = run_cli("definition", "--offline", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def code_uris(definition: dict) -> set[str]:
    return {json.loads(definition["Steps"][0]["Arguments"]["HyperParameters"]["sagemaker_submit_directory"])}


def copy_project(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def test_editing_the_module_alone_changes_the_dag_and_never_the_code_archive(tmp_path):
    source = copy_project(tmp_path)
    before = offline(source)
    text = (source / "workflow.py").read_text()
    (source / "workflow.py").write_text(
        text.replace("return project.pipeline([train, evaluate, gate])", "return project.pipeline([train])")
    )
    after = offline(source)
    assert [s["Name"] for s in before["Steps"]] == ["Train", "Evaluate", "Gate"]
    assert [s["Name"] for s in after["Steps"]] == ["Train"]
    assert code_uris(before) == code_uris(after)  # the archive, and so Train's cache key, are unchanged
    assert before["Steps"][0] == after["Steps"][0]


def test_a_source_dir_without_a_module_is_one_training_step(tmp_path):
    source = copy_project(tmp_path)
    (source / "workflow.py").unlink()
    definition = offline(source)
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [("Train", "Training")]
    assert "MinAccuracy" not in {p["Name"] for p in definition["Parameters"]}


def test_every_step_the_blocks_make_retries_transient_failures():
    definition = offline(PROJECT_SRC)
    train, evaluate = definition["Steps"][0], definition["Steps"][1]
    for step in (train, evaluate):
        kinds = [set(p["ExceptionType"]) for p in step["RetryPolicies"]]
        assert kinds == [
            {"Step.SERVICE_FAULT", "Step.THROTTLING"},
            {"SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT", "SageMaker.JOB_INTERNAL_ERROR"},
        ]
    (register,) = definition["Steps"][2]["Arguments"]["IfSteps"]
    assert [p["ExceptionType"] for p in register["RetryPolicies"]] == [["Step.SERVICE_FAULT", "Step.THROTTLING"]]


def test_the_abalone_example_is_the_projects_template_shape():
    definition = offline(ABALONE)
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("PreprocessAbaloneData", "Processing"),
        ("TrainAbaloneModel", "Training"),
        ("EvaluateAbaloneModel", "Processing"),
        ("CheckMSEAbaloneEvaluation", "Condition"),
    ]
    train = definition["Steps"][1]["Arguments"]
    sources = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]}
    assert sources["train"] == {
        "Get": "Steps.PreprocessAbaloneData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"
    }
    (condition,) = definition["Steps"][3]["Arguments"]["Conditions"]
    assert condition["Type"] == "LessThanOrEqualTo"
    assert condition["RightValue"] == {"Get": "Parameters.MseThreshold"}
    assert "TrainData" not in {p["Name"] for p in definition["Parameters"]}  # fed by Preprocess, not a parameter


BROKEN = [
    (
        "syntax",
        "def build_pipeline(project)\n    return 1\n",
        ["workflow.py:1", "SyntaxError", "fix the pipeline module"],
    ),
    ("no function", "X = 1\n", ["defines no build_pipeline(project)", "add it"]),
    ("raises", "def build_pipeline(project):\n    raise ValueError('bad gate')\n", ["workflow.py:2", "bad gate"]),
    ("not a pipeline", "def build_pipeline(project):\n    return 42\n", ["returned int", "project.pipeline(steps)"]),
    (
        "missing script",
        "def build_pipeline(project):\n    return project.pipeline([project.processing_step('P', 'nope.py')])\n",
        ["nope.py is not a file of", "add it, or fix the name"],
    ),
    (
        "unknown channel",
        "def build_pipeline(project):\n    project.data('test')\n    return project.pipeline([])\n",
        ["channel 'test' is not declared in training.toml"],
    ),
    (
        "clashing names",
        "def build_pipeline(project):\n    project.parameter('MaxIter', 3)\n"
        "    return project.pipeline([project.training_step()])\n",
        ["hyperparameter max-iter and parameter MaxIter both name the pipeline parameter MaxIter", "rename one"],
    ),
    (
        "a cycle",
        "from sagemaker.workflow.fail_step import FailStep\n"
        "def build_pipeline(project):\n"
        "    a = FailStep(name='A', depends_on=['B'])\n"
        "    b = FailStep(name='B', depends_on=['A'])\n"
        "    return project.pipeline([a, b])\n",
        ["workflow.py: the steps form a cycle", "remove one of these dependencies"],
    ),
]


@pytest.mark.parametrize("text, fragments", [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN])
def test_a_broken_module_is_one_error_line_and_deploys_nothing(aws_env, tmp_path, text, fragments):
    source = copy_project(tmp_path)
    (source / "workflow.py").write_text(text)
    done = run_cli("upsert", "--source-dir", str(source))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert done.stdout == ""
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []


def test_a_hyperparameter_named_like_a_project_parameter_is_refused(tmp_path):
    source = copy_project(tmp_path)
    with (source / "training.toml").open("a") as f:
        f.write('\n[hyperparameters.image-uri]\ntype = "str"\ndefault = "x"\n')
    done = run_cli("definition", "--offline", "--source-dir", str(source))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    for fragment in ("hyperparameter image-uri", "both name the pipeline parameter ImageUri", "rename one"):
        assert fragment in done.stderr


SCRIPT_PROCESSOR_DAG = """
from sagemaker.processing import ProcessingOutput, ScriptProcessor
from sagemaker.workflow.steps import ProcessingStep


def build_pipeline(project):
    processor = ScriptProcessor(
        command=["python3"], image_uri=project.image_uri, role=project.settings.role_arn,
        instance_count=1, instance_type="ml.m5.large", sagemaker_session=project.session,
    )
    step = ProcessingStep(
        name="Prep",
        step_args=processor.run(
            code=str(project.source_dir / "prep.py"),
            outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
        ),
    )
    return project.pipeline([step, project.training_step(depends_on=[step])])
"""


def test_the_sdks_own_processor_forms_upload_their_code_through_upsert(aws_env, tmp_path):
    """A ScriptProcessor uploads its script itself: the render records it (content-addressed by the
    SDK, no AWS call), and upsert puts it where the definition points."""
    source = copy_project(tmp_path)
    (source / "prep.py").write_text("print('prep')\n")
    (source / "workflow.py").write_text(SCRIPT_PROCESSOR_DAG)
    offline_definition = offline(source)  # no AWS at all
    done = run_cli("upsert", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    deployed = json.loads(
        boto3.client("sagemaker", region_name=REGION).describe_pipeline(PipelineName="test-pipeline")[
            "PipelineDefinition"
        ]
    )
    (code,) = [i for i in deployed["Steps"][0]["Arguments"]["ProcessingInputs"] if i["InputName"] == "code"]
    uri = code["S3Input"]["S3Uri"]
    assert f"uploaded {uri}" in done.stdout
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"print('prep')\n"
    assert [s["Name"] for s in offline_definition["Steps"]] == ["Prep", "Train"]
    again = run_cli("upsert", "--source-dir", str(source))
    assert again.returncode == 0 and "nothing changed" in again.stdout and "uploaded" not in again.stdout


ENTRY_POINTS = [
    "train.py",
    "bin/train.sh",
    "my train.py",
    "sub/../train.py",
    "-train.py",
    "/abs.py",
    "a/./b.py",
    "ü.py",
]


def test_the_entry_point_rule_is_the_toolkits(tmp_path):
    """The project's copy of the pinned toolkit's rule agrees with the toolkit on every name (the toolkit
    runs in a subprocess: importing it creates folders under $HOME)."""
    import subprocess
    import sys

    from pipeline.definition import contract

    script = (
        "import json, sys\n"
        "from sagemaker_training import errors, process\n"
        "out = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        process.validate_entry_point(name); out[name] = True\n"
        "    except errors.ClientError:\n"
        "        out[name] = False\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(ENTRY_POINTS)],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    toolkit = json.loads(done.stdout.strip().splitlines()[-1])
    assert toolkit == {name: contract.entry_point_problem(name) is None for name in ENTRY_POINTS}
    assert toolkit["train.py"] and not toolkit["my train.py"]


@pytest.mark.parametrize(
    "entry_point, fragment",
    [
        ("my train.py", "would be refused by the toolkit"),
        ("sub/../train.py", "the entry point sub/../train.py is outside the source dir"),
        ("-train.py", "not starting with '-'"),
    ],
)
def test_an_entry_point_the_toolkit_would_refuse_at_start_is_refused_before_upsert(
    aws_env, tmp_path, entry_point, fragment
):
    """Any DAG's training steps (sagemaker_program) and the image's processing scripts."""
    source = copy_project(tmp_path)
    contract = (
        (source / "training.toml").read_text().replace('entry_point = "train.py"', f'entry_point = "{entry_point}"')
    )
    (source / "training.toml").write_text(contract)
    (source / "sub").mkdir()
    if not (source / entry_point).exists():
        shutil.copy(source / "train.py", source / entry_point)
    done = run_cli("upsert", "--source-dir", str(source))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], done.stderr
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("Contents", []) == []


def test_the_toolkits_entry_point_rule_also_covers_processing_scripts():
    from pipeline.deploy import validate

    step = {
        "Name": "Prep",
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {
                "ContainerEntrypoint": ["python3", "-m", "custom_framework_training.processing", "code.tgz", "a b.py"]
            }
        },
    }
    (name,) = validate._entry_points(step, step["Arguments"])
    assert name == "a b.py" and "would be refused by the toolkit" in validate.entry_point_problem(name)


TRANSFORM_DAG = """
def build_pipeline(project):
    train = project.training_step()
    model = project.model_step("Model", train.properties.ModelArtifacts.S3ModelArtifacts)
    batch = project.transform_step(
        "Score", model.properties.ModelName, project.parameter("ScoreData", "s3://test-bucket/score/")
    )
    return project.pipeline([train, model, batch])
"""


def test_the_model_and_transform_blocks_score_a_batch_with_run_local(aws_env, tmp_path):
    """Train -> CreateModel -> Transform, the last on the image's serving stack, run here end to end."""
    source = copy_project(tmp_path)
    (source / "workflow.py").write_text(TRANSFORM_DAG)
    definition = offline(source)
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Train", "Training"),
        ("Model-CreateModel", "Model"),
        ("Score", "Transform"),
    ]
    rows = "\n".join(",".join(["0.1"] * 8) for _ in range(3)) + "\n"
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="score/rows.csv", Body=rows.encode())
    assert run_cli("upsert", "--source-dir", str(source)).returncode == 0  # seeds the training channels
    done = run_cli("run", "--local", "--source-dir", str(source), "--output-dir", str(tmp_path / "jobs"), timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    outputs = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="test-pipeline/transform/")["Contents"]]
    (key,) = [k for k in outputs if k.endswith("rows.csv.out")]
    answer = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().strip().splitlines()
    assert len(answer) == 3
