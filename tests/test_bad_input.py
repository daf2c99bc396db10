"""Bad input, table-driven, for definition, describe, diff, upsert, start, status and run --local.

Every row is refused the same way: exit 2, stdout empty, stderr exactly one ``error:`` line
holding the expected fragments, and nothing written: the moto account (every object in every
bucket, every pipeline with its tags and runs) and the working folder are as they were.
(train-local's arguments and job folders have their own table, with the local job tests.)
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from support import IMAGE_URI, PROBE_SRC, PROJECT_SRC, REGION, ROLE_ARN, run_cli

SILENT = "<an endpoint that accepts and never answers>"
EU_IMAGE = IMAGE_URI.replace("us-east-1", "eu-west-1")
CONTRACT = "user_src/training.toml"
FIFTY_ONE_TAGS = ",".join(f"k{i}=v" for i in range(51))


@dataclass(frozen=True)
class Row:
    args: list[str]
    fragments: list[str]
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None  # given the working folder, before the snapshot
    deployed: bool = False  # upsert the sample first
    hand_tags: int = 0  # then add this many tags to it by hand


def write(relative: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return setup


def append(relative: str, text: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / relative
        path.write_text(path.read_text() + text)

    return setup


def contract_only(text: str) -> Callable[[Path], None]:
    """A whole new training.toml, and no pipeline module: the DAG is one training step."""

    def setup(work: Path) -> None:
        write(CONTRACT, text)(work)
        (work / "user_src" / "workflow.py").unlink()

    return setup


def folder_for(relative: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        (work / relative).unlink()
        (work / relative).mkdir()

    return setup


def link(relative: str, target: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        (work / relative).unlink()
        (work / relative).symlink_to(target)

    return setup


def remove(relative: str) -> Callable[[Path], None]:
    return lambda work: (work / relative).unlink()


PROBE = ("--source-dir", "probe")  # a source dir whose pipeline runs here whole (one training step)


def probe(work: Path) -> None:
    shutil.copytree(PROBE_SRC, work / "probe")


def row(*args: str, fragments: list[str], **options) -> Row:
    return Row(list(args), fragments, **options)


# class -> rows; one test per row, named "class-N".
TABLE: dict[str, list[Row]] = {
    "role-arn": [
        row("upsert", "--role-arn", ROLE_ARN + "\n", fragments=["malformed role arn", "\\n'", "--role-arn"]),
        row("upsert", "--role-arn", ROLE_ARN.replace("1234", "\u0661\u0662\u0663\u0664"), fragments=["\\u0661"]),
        row("upsert", "--role-arn", ROLE_ARN.replace("Execution", "\u0415xecution"), fragments=["\\u0415"]),
        row("upsert", "--role-arn", " " + ROLE_ARN, fragments=["malformed role arn", "SAGEMAKER_ROLE_ARN"]),
        row("upsert", "--role-arn", "", fragments=["missing role arn", "--role-arn or SAGEMAKER_ROLE_ARN"]),
        row("upsert", fragments=["missing role arn"], env={"SAGEMAKER_ROLE_ARN": ""}),
        row("upsert", "--role-arn", "arn:aws:iam::123456789012:user/bob", fragments=["malformed role arn"]),
        row("upsert", "--role-arn", ROLE_ARN + "x" * 600, fragments=["malformed role arn", "characters)"]),
        row("diff", fragments=["malformed role arn"], env={"SAGEMAKER_ROLE_ARN": "SageMakerRole"}),
    ],
    "bucket": [
        row("upsert", "--bucket", "Test-Bucket", fragments=["malformed bucket", "lowercase", "--bucket"]),
        row("upsert", "--bucket", "s3://test-bucket", fragments=["malformed bucket", "not an s3:// URI"]),
        row("upsert", "--bucket", "test-bucket/", fragments=["malformed bucket"]),
        row("upsert", "--bucket", "test-bucket\n", fragments=["malformed bucket", "\\n'"]),
        row("upsert", "--bucket", "t\u00ebst-bucket", fragments=["malformed bucket", "\\xeb"]),
        row("upsert", "--bucket", "b" * 64, fragments=["malformed bucket", "3-63"]),
        row("upsert", "--bucket", "ab", fragments=["malformed bucket"]),
        row("upsert", "--bucket", "test..bucket", fragments=["no '..' and not an IP address"]),
        row("upsert", "--bucket", "192.168.10.1", fragments=["no '..' and not an IP address"]),
        row("upsert", "--bucket", "xn--bucket", fragments=["not a name S3 reserves"]),
        row("upsert", "--bucket", "", fragments=["missing bucket", "SAGEMAKER_BUCKET"]),
        row("upsert", "--bucket", "s3://", fragments=["malformed bucket"]),
        row("upsert", "--bucket", "no-such-bucket", fragments=["bucket no-such-bucket does not exist", "--bucket"]),
    ],
    "image-uri": [
        row("upsert", "--image-uri", "custom-framework:latest", fragments=["malformed image uri", "IMAGE_URI"]),
        row("upsert", "--image-uri", IMAGE_URI + "\n", fragments=["malformed image uri", "\\n'"]),
        row("upsert", "--image-uri", IMAGE_URI.rsplit(":", 1)[0], fragments=["malformed image uri", "REPO:TAG"]),
        row("upsert", "--image-uri", IMAGE_URI.replace("1234", "\u0661\u0662\u0663\u0664"), fragments=["\\u0661"]),
        row("upsert", "--image-uri", IMAGE_URI.replace("custom", "Custom"), fragments=["malformed image uri"]),
        row("upsert", "--image-uri", IMAGE_URI + "x" * 128, fragments=["malformed image uri"]),
        row("upsert", "--image-uri", IMAGE_URI.split(":")[0] + "@sha256:abc", fragments=["malformed image uri"]),
        row("upsert", "--image-uri", EU_IMAGE, fragments=["is in eu-west-1, the pipeline in us-east-1", "--region"]),
        row("diff", fragments=["is in eu-west-1"], env={"IMAGE_URI": EU_IMAGE}),
        row("upsert", "--image-uri", "", fragments=["missing image uri", "--image-uri or IMAGE_URI"]),
    ],
    "region": [
        row("upsert", "--region", "us-east-1\n", fragments=["malformed region", "\\n'", "--region or AWS_REGION"]),
        row("upsert", "--region", "US-EAST-1", fragments=["malformed region"]),
        row("upsert", "--region", "us-east-\u0661", fragments=["malformed region", "\\u0661"]),
        row("upsert", "--region", "moon", fragments=["malformed region"]),
        row("upsert", "--region", "", fragments=["missing region", "--region or AWS_REGION"]),
        row("upsert", "--region", "eu-west-1", fragments=["is in us-east-1, the pipeline in eu-west-1"]),
        row("status", fragments=["missing region"], env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}),
    ],
    "pipeline-name": [
        row("upsert", "--pipeline-name", "p" * 257, fragments=["257 characters", "at most 256", "--pipeline-name"]),
        row("upsert", "--pipeline-name", "p" * 302, fragments=["302 characters", "PIPELINE_NAME"]),
        row("upsert", "--pipeline-name", "p" * 10_000, fragments=["10000 characters"]),
        row("upsert", "--pipeline-name", "my_pipeline", fragments=["malformed pipeline name", "'my_pipeline'"]),
        row("upsert", "--pipeline-name=-pipeline", fragments=["malformed pipeline name"]),
        row("upsert", "--pipeline-name", "pipeline-", fragments=["malformed pipeline name"]),
        row("upsert", "--pipeline-name", "pip\u00e9line", fragments=["malformed pipeline name", "\\xe9"]),
        row("upsert", "--pipeline-name", "pipeline\n", fragments=["malformed pipeline name", "\\n'"]),
        row("upsert", "--pipeline-name", "two words", fragments=["malformed pipeline name"]),
        row("upsert", "--pipeline-name", "", fragments=["empty pipeline name", "--pipeline-name"]),
        row("status", "--pipeline-name", "bad_name", fragments=["malformed pipeline name"]),
        row("definition", "--offline", "--pipeline-name", "bad_name", fragments=["malformed pipeline name"]),
    ],
    "tags": [
        row("upsert", "--tags", "aws:team=ml", fragments=["tag key 'aws:team' starts with 'aws:'", "--tags"]),
        row("upsert", "--tags", "AWS:Team=ml", fragments=["'AWS:Team' starts with 'aws:'"]),
        row("upsert", fragments=["starts with 'aws:'", "PIPELINE_TAGS"], env={"PIPELINE_TAGS": "aws:x=1"}),
        row("upsert", "--tags", FIFTY_ONE_TAGS, fragments=["51 tags", "at most 50"]),
        row("upsert", "--tags", "team=ml,team=data", fragments=["tag key 'team' is given twice"]),
        row("upsert", "--tags", "k" * 129 + "=v", fragments=["malformed tag", "key of 1-128"]),
        row("upsert", "--tags", "k=" + "v" * 257, fragments=["malformed tag", "value of 0-256"]),
        row("upsert", "--tags", "team", fragments=["malformed tag 'team'", "Key=Value"]),
        row("upsert", "--tags", "=ml", fragments=["malformed tag '=ml'"]),
        row("upsert", "--tags", "team=ml\n", fragments=["malformed tag", "\\n'"]),
        row("upsert", "--tags", "t\u00ebam=ml", fragments=["malformed tag", "\\xeb"]),
        row("upsert", "--tags", "team=m*l", fragments=["malformed tag 'team=m*l'"]),
        row("upsert", "--tags", "x=" + "v" * 100_000, fragments=["malformed tag", "100002 characters"]),
        row("diff", "--tags", "aws:x=1", fragments=["starts with 'aws:'"]),
        row(
            "upsert",
            "--tags",
            ",".join(f"more-{i}=x" for i in range(30)),
            fragments=["would carry 51 tags", "nothing was written"],
            deployed=True,
            hand_tags=21,
        ),
    ],
    "source-dir": [
        row("upsert", "--source-dir", "no-such-dir", fragments=["source dir no-such-dir is not a folder"]),
        row("describe", "--source-dir", "no-such-dir", fragments=["is not a folder", "--source-dir"]),
        row("upsert", "--source-dir", "user_src/train.py", fragments=["is not a folder"]),
        row("upsert", fragments=["has no train.py", "entry_point"], setup=remove("user_src/train.py")),
        row("diff", fragments=["train.py:", "fix the code"], setup=append("user_src/train.py", "\ndef broken(:\n")),
        row("upsert", fragments=["data.py:", "fix the code"], setup=append("user_src/data.py", "\n  x = 1\n")),
        row("describe", fragments=["metrics.py:"], setup=append("user_src/metrics.py", "\nreturn )\n")),
        row("definition", "--offline", fragments=["train.py:"], setup=append("user_src/train.py", "\nif True\n")),
        row("upsert", fragments=["null"], setup=write("user_src/helper.py", b"x = 1\x00\n")),
        row("upsert", fragments=["train.py is excluded"], setup=write("user_src/.sagemakerignore", "*.py\n")),
        row("upsert", fragments=[".sagemakerignore is not UTF-8"], setup=write("user_src/.sagemakerignore", b"\xff")),
        row("diff", fragments=["Invalid git pattern"], setup=write("user_src/.sagemakerignore", "!\n")),
        row("start", "--source-dir", "no-such-dir", fragments=["unrecognized arguments: --source-dir"]),
        row("run", "--local", "--source-dir", "no-such-dir", fragments=["is not a folder"]),
    ],
    "training-toml": [
        row("describe", fragments=["is not valid TOML"], setup=append(CONTRACT, "\n[resources\n")),
        row("upsert", fragments=["unknown key 'colour'"], setup=append(CONTRACT, '\ncolour = "red"\n')),
        row("diff", fragments=["not UTF-8"], setup=write(CONTRACT, b"entry_point = '\xff'\n")),
        row("definition", "--offline", fragments=["is not valid TOML"], setup=write(CONTRACT, "[[[")),
        row("upsert", fragments=["training.toml is not a regular file"], setup=folder_for(CONTRACT)),
        row("definition", "--offline", fragments=["is not a regular file"], setup=link(CONTRACT, "/dev/zero")),
        row(
            "upsert",
            fragments=["instance_count must be a whole number >= 1"],
            setup=contract_only("[resources]\ninstance_count = 0\n"),
        ),
        row(
            "describe",
            fragments=["hyperparameters.epochs.default"],
            setup=contract_only('[hyperparameters.epochs]\ntype = "int"\ndefault = "ten"\n'),
        ),
        row(
            "upsert",
            fragments=["step Train: CreateTrainingJob.ResourceConfig.InstanceType", "closest: ml.m5.large", "toml"],
            setup=contract_only('[resources]\ninstance_type = "ml.m5.larg"\n'),
        ),
        row(
            "diff",
            fragments=["CreateTrainingJob.AlgorithmSpecification.MetricDefinitions[0].Regex: 607 characters"],
            setup=contract_only(f'metrics = [{{ name = "loss", regex = "loss=({"1" * 600})" }}]\n'),
        ),
        row(
            "upsert",
            fragments=["MetricDefinitions: 41 items, at most 40"],
            setup=contract_only("metrics = [" + ", ".join(f'{{ name = "m{i}" }}' for i in range(41)) + "]\n"),
        ),
        row(
            "upsert",
            fragments=["CreateTrainingJob.Environment key '1BAD'"],
            setup=contract_only('[environment]\n1BAD = "x"\n'),
        ),
        row(
            "upsert",
            fragments=['HyperParameters["note"]: 3000 characters; allowed: 0 to 2500'],
            setup=contract_only(f'[hyperparameters.note]\ntype = "str"\ndefault = "{"n" * 3000}"\n'),
        ),
        row(
            "definition",
            fragments=["CreateTrainingJob.ResourceConfig.InstanceType"],
            setup=contract_only('[resources]\ninstance_type = "ml.bogus.large"\n'),
        ),
    ],
    "start-param": [
        row("start", "--param", "Epochs=3", fragments=["unknown parameter 'Epochs'", "MaxIter"], deployed=True),
        row(
            "start",
            "--param",
            "MaxIter=1",
            "--param",
            "MaxIter=2",
            fragments=["--param MaxIter is given twice"],
            deployed=True,
        ),
        row("start", "--param", "MaxIter=1.5", fragments=["parameter MaxIter expects int, got '1.5'"], deployed=True),
        row("start", "--param", "MaxIter= 3", fragments=["MaxIter expects int"], deployed=True),
        row("start", "--param", "MaxIter=\u0663", fragments=["MaxIter expects int"], deployed=True),
        row("start", "--param", "MaxIter=", fragments=["MaxIter expects int, got ''"], deployed=True),
        row("start", "--param", "LearningRate=nan", fragments=["LearningRate expects a finite float"], deployed=True),
        row("start", "--param", "LearningRate=inf", fragments=["LearningRate expects a finite float"], deployed=True),
        row(
            "start",
            "--param",
            "LearningRate=-Infinity",
            fragments=["LearningRate expects a finite float"],
            deployed=True,
        ),
        row(
            "start",
            "--param",
            "TrainingInstanceCount=-1",
            fragments=["TrainingInstanceCount must be between 1"],
            deployed=True,
        ),
        row(
            "start",
            "--param",
            "TrainingInstanceCount=0",
            fragments=["TrainingInstanceCount must be between 1"],
            deployed=True,
        ),
        row("start", "--param", "TrainingInstanceCount=101", fragments=["and 100"], deployed=True),
        row(
            "start", "--param", "MaxRuntimeSeconds=0", fragments=["MaxRuntimeSeconds must be between 1"], deployed=True
        ),
        row(
            "start",
            "--param",
            "MaxRuntimeSeconds=2419201",
            fragments=["MaxRuntimeSeconds must be between"],
            deployed=True,
        ),
        row("start", "--param", "MaxRuntimeSeconds=1e3", fragments=["MaxRuntimeSeconds expects int"], deployed=True),
        row(
            "start",
            "--param",
            "TrainData=s3://",
            fragments=["TrainData must be an s3://BUCKET/PREFIX URI"],
            deployed=True,
        ),
        row("start", "--param", "TrainData=", fragments=["TrainData must be an s3://BUCKET/PREFIX URI"], deployed=True),
        row("start", "--param", "TrainData=/local/path", fragments=["TrainData must be an s3://"], deployed=True),
        row("start", "--param", "TrainData=s3://Bucket/x", fragments=["TrainData must be an s3://"], deployed=True),
        row("start", "--param", "=3", fragments=["--param '=3' is not NAME=VALUE"], deployed=True),
        row("start", "--param", "MaxIter", fragments=["--param 'MaxIter' is not NAME=VALUE"], deployed=True),
        row(
            "start",
            "--param",
            "ImageUri=nope",
            fragments=["parameter ImageUri must be an ECR image URI"],
            deployed=True,
        ),
        row("start", "--param", f"ImageUri={EU_IMAGE}", fragments=["ImageUri is an image in eu-west-1"], deployed=True),
        row("start", "--pipeline-name", "p" * 300, fragments=["300 characters"]),
        row("start", fragments=["pipeline test-pipeline is not deployed: run upsert first"]),
        row(
            "start",
            "--param",
            "Target=" + "t" * 2000,
            fragments=["StartPipelineExecution.PipelineParameters[0].Value: 2000 characters", "--param"],
            deployed=True,
        ),
        row(
            "start",
            "--param",
            "TrainingInstanceType=ml.bogus.large",
            fragments=["step Train: CreateTrainingJob.ResourceConfig.InstanceType: 'ml.bogus.large'", "--param"],
            deployed=True,
        ),
    ],
    "status": [
        row("status", "--limit", "1000", fragments=["ListPipelineExecutions.MaxResults: 1000", "--limit"]),
        row("status", "--region", "moon", fragments=["malformed region"]),
    ],
    "run-local": [
        row("run", fragments=["run needs --local", " -m pipeline start"]),
        row("run", "--local", *PROBE, "--param", "Nope=1", fragments=["unknown parameter 'Nope'"], setup=probe),
        row(
            "run",
            "--local",
            *PROBE,
            "--param",
            "TrainingInstanceCount=0",
            fragments=["TrainingInstanceCount must be"],
            setup=probe,
        ),
        row("run", "--local", "--bucket", "s3://x", fragments=["malformed bucket"]),
        row("run", "--local", "--tags", "aws:x=1", fragments=["starts with 'aws:'"]),
        row("run", "--local", "--deployed", fragments=["pipeline test-pipeline is not deployed"]),
        row("run", "--local", "--image-uri", EU_IMAGE, fragments=["is in eu-west-1"]),
    ],
    "flags": [
        row(fragments=["the following arguments are required: COMMAND"]),
        row("status", "--limit", "0", fragments=["argument --limit: invalid int value: '0'"]),
        row("status", "--limit", "nan", fragments=["argument --limit"]),
        row("status", "--limit", "-5", fragments=["argument --limit"]),
        row("start", "--poll-seconds", "-1", fragments=["argument --poll-seconds"]),
        row("start", "--timeout", "inf", fragments=["argument --timeout"]),
        row("start", "--param", fragments=["argument --param: expected one argument"]),
        row("upsert", "--source-dir", fragments=["argument --source-dir: expected one argument"]),
        row("upsert", "--colour", "red", fragments=["unrecognized arguments: --colour red"]),
        row("run", "--local", "--output-dir", "", fragments=["argument --output-dir: invalid folder value: ''"]),
        row("diff", "--pipeline-name", "a", "--pipeline-name", "b", fragments=["--pipeline-name is given twice"]),
        row("upsert", "--bucket", "a-b", "--bucket", "c-d", fragments=["--bucket is given twice"]),
        row("upsert", "--tags", "a=1", "--tags", "b=2", fragments=["--tags is given twice"]),
        row("status", "--region", "us-east-1", "--region", "eu-west-1", fragments=["--region is given twice"]),
    ],
    "endpoint": [
        row(
            "status",
            fragments=["did not answer within 5 s", "127.0.0.1", "AWS_ENDPOINT_URL"],
            env={"AWS_ENDPOINT_URL": SILENT},
        ),
        row("start", fragments=["did not answer within", "AWS_ENDPOINT_URL"], env={"AWS_ENDPOINT_URL": SILENT}),
        row("upsert", fragments=["did not answer within", "AWS_ENDPOINT_URL"], env={"AWS_ENDPOINT_URL": SILENT}),
    ],
}
CASES = [pytest.param(r, id=f"{group}-{i}") for group, rows in TABLE.items() for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def account() -> dict[str, object]:
    """Everything the deploy could have written in the moto account."""
    s3 = boto3.client("s3", region_name=REGION)
    sm = boto3.client("sagemaker", region_name=REGION)
    objects = {
        (b["Name"], o["Key"], o["ETag"])
        for b in s3.list_buckets()["Buckets"]
        for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
    }
    pipelines = {}
    for summary in sm.list_pipelines()["PipelineSummaries"]:
        name = summary["PipelineName"]
        described = sm.describe_pipeline(PipelineName=name)
        pipelines[name] = (
            described["PipelineDefinition"],
            described["LastModifiedTime"],
            sorted((t["Key"], t["Value"]) for t in sm.list_tags(ResourceArn=described["PipelineArn"])["Tags"]),
            len(sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]),
        )
    return {"objects": objects, "pipelines": pipelines}


def disk(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working folder holding a copy of the project's fixture source dir, as a user's checkout does."""
    folder = tmp_path / "work"
    shutil.copytree(PROJECT_SRC, folder / "user_src", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def deploy_sample(work: Path, hand_tags: int) -> None:
    done = run_cli("upsert", cwd=work)
    assert done.returncode == 0, done.stderr
    if hand_tags:
        sm = boto3.client("sagemaker", region_name=REGION)
        arn = sm.describe_pipeline(PipelineName="test-pipeline")["PipelineArn"]
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"by-hand-{i}", "Value": "x"} for i in range(hand_tags)])


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case: Row, aws_env, work, silent_endpoint):
    if case.deployed:
        deploy_sample(work, case.hand_tags)
    if case.setup:
        case.setup(work)
    env = {key: silent_endpoint if value == SILENT else value for key, value in case.env.items()}
    before_account, before_disk = account(), disk(work)

    done = run_cli(*case.args, env=env, cwd=work, timeout=120)  # a bound far above need, not a speed check

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in case.fragments:
        assert fragment in lines[0]
    assert account() == before_account
    assert disk(work) == before_disk


def test_the_table_covers_every_class_with_many_inputs():
    assert len(TABLE) >= 12 and len(CASES) >= 120
    assert all(len(rows) >= 2 for rows in TABLE.values())
