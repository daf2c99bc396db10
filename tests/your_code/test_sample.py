"""Your code's tests: they check the sample in user_src/ (its contract, its metrics, its DAG).

The project's own tests (tests/*.py) never read user_src/: they run against their own
fixture (tests/fixtures/project). When you replace user_src/ with your code, adapt or
replace this file; the rest of the suite stays green.
"""

from __future__ import annotations

import json
import re
import sys

from support import ROOT, run_cli

from pipeline.definition import contract, sample_data

USER_SRC = ROOT / "user_src"
SAMPLE = contract.load(USER_SRC)


def test_the_sample_contract_declares_what_train_py_takes():
    assert SAMPLE.entry_point == "train.py"
    assert [hp.name for hp in SAMPLE.hyperparameters] == [
        "learning-rate",
        "max-iter",
        "max-leaf-nodes",
        "l2-regularization",
        "target",
        "seed",
    ]
    assert [c.name for c in SAMPLE.channels] == ["train", "validation"]
    assert SAMPLE.hyperparameter("target").default == sample_data.TARGET


def test_train_py_flags_agree_with_the_contract():
    """train.py keeps plain argparse (it runs without this project); this keeps the two in step."""
    sys.path.insert(0, str(USER_SRC))
    try:
        import train
    finally:
        sys.path.remove(str(USER_SRC))
    defaults = vars(train.parse_args(["--train", "t", "--validation", "v"]))
    kinds = {"int": int, "float": float, "str": str}
    for hp in SAMPLE.hyperparameters:
        value = defaults.pop(hp.name.replace("-", "_"))
        assert (type(value), value) == (kinds[hp.type], hp.default), hp.name
    # Every other flag is a path SageMaker provides: the model dir, the output dir and one per channel.
    assert set(defaults) == {"model_dir", "output_data_dir"} | {c.name for c in SAMPLE.channels}


def test_the_sample_job_prints_exactly_the_declared_metrics(tmp_path):
    done = run_cli("train-local", "--output-dir", str(tmp_path), "--job-name", "metrics", "--hp", "max-iter=10")
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "metrics" / "algo-1.log").read_text()
    printed = set(re.findall(r"([\w:]+)=[-+0-9.eE]+;", log))
    assert printed == {m.name for m in SAMPLE.metrics}
    for metric in SAMPLE.metrics:
        assert re.search(metric.regex, log), metric.name


def test_the_sample_dag_is_train_evaluate_gate_register_or_fail():
    done = run_cli("definition", "--offline")
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["Steps"]
    assert [(s["Name"], s["Type"]) for s in steps] == [
        ("Train", "Training"),
        ("Evaluate", "Processing"),
        ("Gate", "Condition"),
    ]
    gate = steps[2]["Arguments"]
    assert gate["Conditions"][0]["Type"] == "GreaterThanOrEqualTo"
    assert [s["Type"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Type"] for s in gate["ElseSteps"]] == ["Fail"]
