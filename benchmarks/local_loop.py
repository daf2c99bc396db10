"""The local loop, measured side by side in one run: after an edit to ``train.py``, how long until
each command has a result, against the plain script.

Rows: the plain script (baseline), ``train-local``, ``run --local`` of a train-only pipeline
and of the whole DAG (train, evaluate, gate, register), the evaluation script alone (the DAG's
budget is the two scripts' jobs plus 0.5 s), and ``definition --offline`` after a code-only
edit against a bare ``import sagemaker``. S3 and SageMaker are a moto server on 127.0.0.1;
every ``run --local`` and ``definition`` follows an edit, so the code archive is new each time,
and the render cache is warm (as it is while you iterate).
Run: ``.venv/bin/python benchmarks/local_loop.py [runs]``; the tables also go to
``benchmarks/results-local-loop.md``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from timing import PYTHON, ROOT, interleaved, report, script_environment, wall_time

sys.path.insert(0, str(ROOT / "tests"))
from moto_server import account_environment, moto_server  # the tests' AWS stand-in

from pipeline.definition import sample_data
from pipeline.definition.contract import WORKFLOW_FILE

RESULTS = Path(__file__).with_name("results-local-loop.md")


def source_copies(tmp: Path) -> tuple[Path, Path]:
    """user_src as it is (the whole DAG), and a train-only copy (no pipeline module: one training step)."""
    dag = tmp / "dag"
    shutil.copytree(ROOT / "user_src", dag, ignore=shutil.ignore_patterns("__pycache__"))
    train_only = tmp / "train-only"
    shutil.copytree(dag, train_only)
    (train_only / WORKFLOW_FILE).unlink()
    return dag, train_only


def main(runs: int) -> None:
    out = io.StringIO()
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
        os.environ.update(
            account_environment(endpoint),
            SAGEMAKER_ROLE_ARN="arn:aws:iam::123456789012:role/Bench",
            SAGEMAKER_BUCKET="bench-bucket",
            IMAGE_URI="123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework:bench",
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-bucket")
        tmp = Path(scratch)
        dag, train_only = source_copies(tmp)
        for source in (dag, train_only):  # seeds the data, warms the render cache and the job environment
            wall_time([PYTHON, "-m", "pipeline", "upsert", "--source-dir", str(source)])
            wall_time([PYTHON, "-m", "pipeline", "run", "--local", "--source-dir", str(source)], cwd=tmp)
        data = sample_data.write(tmp / "data")
        plain_env = script_environment(data, tmp / "plain")
        model = next((tmp / "local-jobs").glob("*-Train/model.tar.gz"))
        (tmp / "eval-model").mkdir()
        shutil.copy(model, tmp / "eval-model" / "model.tar.gz")
        evaluate = [PYTHON, str(dag / "evaluate.py"), "--model-dir", str(tmp / "eval-model")]
        evaluate += ["--data-dir", str(data["validation"]), "--output-dir", str(tmp / "eval-out")]
        edits = iter(range(100_000))

        def edited(source: Path, *command: str) -> float:
            with (source / "train.py").open("a") as f:
                f.write(f"# edit {next(edits)}\n")
            return wall_time([PYTHON, "-m", "pipeline", *command, "--source-dir", str(source)], cwd=tmp)

        baseline = "python train.py, SM_* set (baseline)"
        medians = interleaved(
            {
                baseline: lambda: wall_time([PYTHON, str(dag / "train.py")], plain_env),
                "python evaluate.py": lambda: wall_time(evaluate),
                "python -m pipeline train-local": lambda: edited(dag, "train-local", "--output-dir", str(tmp / "tl")),
                "edit + run --local, train-only pipeline": lambda: edited(train_only, "run", "--local"),
                "edit + run --local, whole DAG": lambda: edited(dag, "run", "--local"),
            },
            runs=runs,
        )
        report("Local loop after an edit to train.py, S3 on moto", medians, baseline, runs)
        train_local = medians["python -m pipeline train-local"]
        budget = train_local + medians["python evaluate.py"] + 0.5
        print(
            f"\n- train-local overhead over the plain script: {train_local - medians[baseline]:.3f} s (target <= 0.5 s)"
        )
        print(
            f"- run --local, train-only, / train-local: "
            f"{medians['edit + run --local, train-only pipeline'] / train_local:.2f}x (target <= 1.3x)"
        )
        print(
            f"- run --local, whole DAG: {medians['edit + run --local, whole DAG']:.3f} s against a budget of "
            f"{budget:.3f} s (train-local + evaluate.py + 0.5 s)"
        )

        floor = 'python -c "import sagemaker" (floor)'
        env = {"AWS_EC2_METADATA_DISABLED": "true", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
        medians = interleaved(
            {
                floor: lambda: wall_time([PYTHON, "-c", "import sagemaker"], env),
                "edit + definition --offline (cache warm)": lambda: edited(dag, "definition", "--offline"),
                "edit + definition --offline --no-cache": lambda: edited(dag, "definition", "--offline", "--no-cache"),
            },
            runs=runs,
        )
        report("definition after a code-only edit vs importing the SDK", medians, floor, runs)
        print("\n(target: the cached render <= 0.25x the floor)")
    text = out.getvalue()
    print(text)
    RESULTS.write_text(f"# Local loop results\n\nWritten by `benchmarks/local_loop.py {runs}`.\n{text}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
