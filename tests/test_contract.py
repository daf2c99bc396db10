"""The training contract (``training.toml``): parsed strictly, owned by the training code, and the one
source every consumer reads: pipeline parameters, metric definitions, --hp, --param, describe."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from support import PROBE_SRC, PROJECT_SRC, run_cli

from pipeline.definition import contract, parameters
from pipeline.errors import ContractError, ParameterError
from pipeline.local import job_inputs

SAMPLE = contract.load(PROJECT_SRC)


def offline_definition(source_dir: Path) -> dict:
    done = run_cli("definition", "--offline", "--source-dir", str(source_dir))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- parsing -------------------------------------------------------------------------------------


def test_an_undeclared_source_dir_declares_nothing(tmp_path):
    assert contract.load(tmp_path) == contract.Contract()
    names = [p.name for p in parameters.pipeline_parameters(contract.Contract())]
    assert names == ["ImageUri", "TrainingInstanceType", "TrainingInstanceCount", "MaxRuntimeSeconds"]


def test_every_type_parses_and_the_convention_makes_the_regex():
    parsed = contract.parse(
        """
        entry_point = "fit.py"
        metrics = [{ name = "loss" }, { name = "epoch", regex = "epoch (\\\\d+)" }]
        [resources]
        instance_type = "ml.c5.xlarge"
        [environment]
        MODE = "fast"
        [hyperparameters.depth]
        type = "int"
        default = 3
        [hyperparameters.rate]
        type = "float"
        default = 1
        [hyperparameters.on]
        type = "bool"
        default = false
        [hyperparameters.layers]
        type = "json"
        default = [1, 2]
        [channels."my.data"]
        input_mode = "FastFile"
        distribution = "ShardedByS3Key"
        """
    )
    assert parsed.entry_point == "fit.py"
    assert parsed.hyperparameter("rate").default == 1.0
    assert parsed.hyperparameter("layers").parameter_name == "Layers"
    assert parsed.channel("my.data").parameter_name == "MyDataData"
    assert parsed.instance_type == "ml.c5.xlarge" and parsed.instance_count == 1
    assert parsed.environment == {"MODE": "fast"}
    assert re.search(parsed.metrics[0].regex, "loss=0.25;").group(1) == "0.25"
    assert re.search(parsed.metrics[1].regex, "epoch 7").group(1) == "7"


@pytest.mark.parametrize(
    "text, message",
    [
        ("entry_point = ", "is not valid TOML"),
        ("nonsense = 1", "unknown key 'nonsense'"),
        ("[hyperparameters.a]\ntype = 'int'", "needs a default"),
        ("[hyperparameters.a]\ntype = 'int'\ndefault = 1.5", "hyperparameters.a.default: expected int"),
        ("[hyperparameters.a]\ntype = 'int'\ndefault = true", "expected int"),
        ("[hyperparameters.a]\ntype = 'date'\ndefault = 1", "type must be one of"),
        ("[hyperparameters.a]\ntype = 'int'\ndefault = 1\nhelpp = 'x'", "unknown key 'helpp'"),
        ("[hyperparameters.a-b]\ntype = 'int'\ndefault = 1\n[hyperparameters.a_b]\ntype = 'int'\ndefault = 2", "twice"),
        ("[channels.'bad/name']", "channels.bad/name name must be"),
        ("[channels.'..']", "channels... name must be"),
        ("[channels.'.']", "channels.. name must be"),
        ("[hyperparameters.x]\ntype = 'float'\ndefault = nan", "expected a finite float, got nan"),
        ("[hyperparameters.x]\ntype = 'float'\ndefault = -inf", "expected a finite float, got -inf"),
        ("[channels.train]\ninput_mode = 'Stream'", "input_mode must be one of"),
        ("[channels.train]\nsample = 'test'", "sample must name a sample split"),
        ("metrics = [{ name = 'x', regex = '(a)(b)' }]", "exactly one capture group"),
        ("metrics = [{ name = 'x', regex = '(' }]", "does not compile"),
        ("metrics = [{ name = 'x' }, { name = 'x' }]", "metric 'x' is declared twice"),
        ("[resources]\ninstance_count = 0", "instance_count must be a whole number >= 1"),
    ],
)
def test_a_malformed_contract_is_one_error_naming_the_key(text, message):
    with pytest.raises(ContractError, match=re.escape(message)):
        contract.parse(text)


def test_a_broken_contract_is_one_error_line_from_the_cli(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "training.toml").write_text("[hyperparameters.depth]\ntype = 'int'\n")
    done = run_cli("definition", "--offline", "--source-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'training.toml'}: hyperparameters.depth needs a default (Studio shows it, and runs use it)"
    ]


# --- every consumer reads the source dir in use ----------------------------------------------------


def test_the_probe_definition_has_exactly_the_probe_parameters():
    probe = contract.load(PROBE_SRC)
    definition = offline_definition(PROBE_SRC)
    declared = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert list(declared) == [p.name for p in parameters.pipeline_parameters(probe)]
    assert {name: declared[name] for name in ("MaxIter", "LearningRate", "Activation", "UseBias", "LayerSizes")} == {
        "MaxIter": ("Integer", 100),
        "LearningRate": ("Float", 0.1),
        "Activation": ("String", "relu"),
        "UseBias": ("Boolean", True),
        "LayerSizes": ("String", "[64, 32]"),
    }
    assert not {"MaxLeafNodes", "L2Regularization", "Target", "Seed"} & set(declared)  # the sample's, not the probe's


def test_adding_a_hyperparameter_is_one_edit_in_the_training_code(tmp_path, aws_env):
    source = tmp_path / "src"
    shutil.copytree(PROJECT_SRC, source, ignore=shutil.ignore_patterns("__pycache__"))
    with (source / "training.toml").open("a") as f:
        f.write('\n[hyperparameters.early-stopping]\ntype = "bool"\ndefault = false\nhelp = "stop early"\n')
    edited = contract.load(source)
    # a typed pipeline parameter
    definition = offline_definition(source)
    (param,) = [p for p in definition["Parameters"] if p["Name"] == "EarlyStopping"]
    assert param == {"Name": "EarlyStopping", "Type": "Boolean", "DefaultValue": False}
    hps = definition["Steps"][0]["Arguments"]["HyperParameters"]
    assert hps["early-stopping"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.EarlyStopping"}]}}
    # a --hp (typed: a bad value is refused)
    assert job_inputs.hyperparameters(["early-stopping=true"], edited)["early-stopping"] == "true"
    with pytest.raises(ParameterError, match="expects true or false"):
        job_inputs.hyperparameters(["early-stopping=maybe"], edited)
    # a --param for start and run --local, read from the definition
    declared = parameters.from_definition(definition)
    assert parameters.parse_overrides(["EarlyStopping=true"], declared) == {"EarlyStopping": True}
    with pytest.raises(ParameterError, match="EarlyStopping expects true or false"):
        parameters.parse_overrides(["EarlyStopping=maybe"], declared)
    # and describe's Studio table
    done = run_cli("describe", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    assert "| `EarlyStopping` | bool | `false` | stop early |" in done.stdout


def test_describe_prints_the_steps_and_the_table_of_the_rendered_definition():
    done = run_cli("describe", "--source-dir", str(PROJECT_SRC))
    assert done.returncode == 0, done.stderr
    assert "steps: Train (Training), Evaluate (Processing), Gate (Condition)" in done.stdout
    assert "| `MaxIter` | int | `100` | number of boosting iterations |" in done.stdout
    assert "| `MinAccuracy` | float | `0.7` |" in done.stdout  # the pipeline module's own parameter
    assert "training metrics: train:accuracy, validation:accuracy, validation:f1, validation:log_loss" in done.stdout
