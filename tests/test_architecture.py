"""The package layout's rules, read from the import statements of every module:

- ``pipeline.definition`` is pure: it imports neither ``deploy``, ``local``, ``cli`` nor the AWS edge,
  and only ``sdk`` touches the SageMaker SDK (and boto3, for an inert session);
- ``pipeline.local`` never imports the SDK or ``deploy``;
- ``pipeline.deploy`` never imports ``local``;
- the SDK is imported by ``pipeline/definition/sdk.py`` alone;
- no two modules of a package import each other, even through an import inside a function.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest
from support import ROOT

PACKAGE = ROOT / "pipeline"
NETWORK = ("boto3", "botocore", "socket", "urllib", "http", "subprocess", "pipeline.aws")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).glob("*.py"))


def _hits(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def test_the_layout_has_the_three_products_and_the_cli():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "definition",
        "deploy",
        "local",
        "cli",
    }


@pytest.mark.parametrize("path", modules("definition"), ids=lambda p: p.name)
def test_definition_is_pure(path):
    names = imports(path)
    assert _hits(names, ("pipeline.deploy", "pipeline.local", "pipeline.cli")) == []
    allowed = ("boto3",) if path.name == "sdk.py" else ()
    assert [n for n in _hits(names, NETWORK) if n.split(".")[0] not in allowed] == []


@pytest.mark.parametrize("path", modules("local"), ids=lambda p: p.name)
def test_local_never_imports_the_sdk_or_deploy(path):
    names = imports(path)
    assert _hits(names, ("sagemaker", "pipeline.deploy", "pipeline.definition.sdk", "pipeline.definition.render")) == []


@pytest.mark.parametrize("path", modules("deploy"), ids=lambda p: p.name)
def test_deploy_never_imports_local(path):
    assert _hits(imports(path), ("pipeline.local", "pipeline.cli")) == []


def test_only_sdk_py_imports_the_sdk():
    users = [p.relative_to(ROOT) for p in PACKAGE.rglob("*.py") if _hits(imports(p), ("sagemaker",))]
    assert users == [Path("pipeline/definition/sdk.py")]


def cycle(files: list[Path], package: str) -> list[str] | None:
    """A circle of imports among ``files`` (modules of ``package``), or ``None``."""
    names = {f"{package}.{path.stem}": path for path in files if path.stem != "__init__"}
    graph = {name: {n for n in imports(path) if n in names and n != name} for name, path in names.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


@pytest.mark.parametrize("subpackage", ["cli", "definition", "deploy", "local"])
def test_no_circle_of_imports_within_a_package(subpackage):
    assert cycle(modules(subpackage), f"pipeline.{subpackage}") is None


def test_the_circle_checker_sees_a_function_local_circle(tmp_path):
    (tmp_path / "a.py").write_text("from pipeline.cli import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pipeline.cli.a import thing\n")
    (tmp_path / "c.py").write_text("from pipeline.cli import a\n")
    assert sorted(cycle(sorted(tmp_path.glob("*.py")), "pipeline.cli")) == [
        "pipeline.cli.a",
        "pipeline.cli.a",
        "pipeline.cli.b",
    ]


def test_the_rule_checker_sees_a_violation(tmp_path):
    """The rules above are only worth something if a forbidden import is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipeline.deploy import plan\n    import sagemaker.estimator\n")
    assert _hits(imports(bad), ("pipeline.deploy", "sagemaker")) == [
        "pipeline.deploy",
        "pipeline.deploy.plan",
        "sagemaker.estimator",
    ]


def test_the_local_commands_say_they_need_linux_elsewhere(monkeypatch, capsys):
    """On macOS or Windows, one error line instead of a traceback from prctl or /proc."""
    from pipeline.cli import main

    monkeypatch.setattr("sys.platform", "darwin")
    assert main(["train-local"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: train-local runs jobs and servers as Linux processes")
    assert main(["definition", "--offline", "--source-dir", str(ROOT / "no-such-dir")]) == 2  # not refused for that
    assert "Linux" not in capsys.readouterr().err
