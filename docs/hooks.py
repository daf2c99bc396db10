"""MkDocs hook: the reference pages' tables, generated from the code at build time so they cannot drift.

A page asks for one with a ``<!-- generated: NAME -->`` line; NAME is a key of :data:`GENERATORS`.
Only the CLI's parser, the contract reader and the settings are imported: no SDK, no boto3.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # mkdocs runs from the repository root, but not always with it on sys.path
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)


def cell(text: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the command line -------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each command, in the order ``--help`` lists them."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def default_shown(action: argparse.Action) -> str:
    default = action.default
    if default in (None, False, [], argparse.SUPPRESS) or isinstance(action, argparse._StoreTrueAction):
        return ""
    return f"`{default}`"


def argument_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str, str, str]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}` (positional)"
        takes = action.nargs != 0 and not isinstance(action, argparse._StoreTrueAction)
        value = f"`{action.metavar or action.dest.upper()}`" if takes else ""
        rows.append((name, value, default_shown(action), action.help or ""))
    return rows


def cli_reference() -> str:
    from pipeline.cli.parser import parser

    root = parser()
    parts = [
        f"`{root.prog} [--verbose] COMMAND [flags]`: {root.description}",
        "",
        table(("flag", "value", "default", "meaning"), argument_rows(root)[:1]),
        "",
        table(("command", "what it does"), [(f"[`{n}`](#{n})", h) for n, h, _ in subcommands(root)]),
    ]
    for name, _, sub in subcommands(root):
        parts += ["", f"## `{name}` {{#{name}}}", "", sub.description or "", "", "```text", sub.format_usage().strip()]
        parts += ["```", "", table(("flag", "value", "default", "meaning"), argument_rows(sub))]
    return "\n".join(parts)


def settings_reference() -> str:
    from pipeline.definition.settings import DEFAULT_PIPELINE_NAME, ENVIRONMENT, OFFLINE_EXAMPLES

    rows = [
        (
            f"`--{field.replace('_', '-')}`",
            f"`{env}`",
            help_text,
            f"`{OFFLINE_EXAMPLES[field]}`" if field in OFFLINE_EXAMPLES else "",
        )
        for field, (env, help_text) in ENVIRONMENT.items()
    ]
    rows[0] = (*rows[0][:3], f"`{DEFAULT_PIPELINE_NAME}` (the default, offline or not)")
    return table(("flag", "environment variable", "meaning", "value `definition --offline` fills in"), rows)


def exit_statuses() -> str:
    """From ``pipeline/errors.py``'s ExitStatus, each member with the comment beside it."""
    from pipeline import errors

    source = inspect.getsource(errors.ExitStatus)
    comments = dict(re.findall(r"^\s+(\w+) = \d+\s*#\s*(.*)$", source, re.M))
    rows = [
        (f"`{member.value}`", f"`{name}`", comments.get(name, "the command did what it was asked"))
        for name, member in errors.ExitStatus.__members__.items()
    ]
    return table(("status", "name", "when"), rows)


def linux_only() -> str:
    from pipeline.cli import LINUX_ONLY

    return ", ".join(f"`{name}`" for name in LINUX_ONLY) + " (`promote` only with `--local`)."


def job_shell() -> str:
    """The calling shell's variables a local job gets, grouped as ``pipeline/local/host_env.py`` groups them."""
    from pipeline.local import host_env

    rows = [
        (
            ", ".join(f"`{n}`" for n in host_env.NETWORK),
            "proxies, and the AWS credentials and endpoint that stand in for the execution role"
            " (also given to a `--container` job, credentials by name only)",
        ),
        (
            ", ".join(f"`{n}`" for n in host_env.HOST_FILES),
            "the files those point to (CA bundles, AWS configuration), home and temp folders: this machine only",
        ),
        (
            ", ".join(f"`{p}*`" for p in host_env.HOST_PREFIXES),
            "pip's configuration: the toolkit pip-installs a source dir's `requirements.txt`",
        ),
    ]
    return table(("variables", "why"), rows)


# --- the training contract --------------------------------------------------------------------


def allowed_keys(data: dict[str, Any]) -> list[str]:
    """The keys the contract reader accepts at one place, as its own refusal of an unknown key lists them."""
    from pipeline.definition import contract
    from pipeline.errors import ContractError

    try:
        contract.from_data(data)
    except ContractError as error:
        listed = re.search(r"allowed: ([\w, ]+)", str(error))
        assert listed, f"the contract reader's message changed: {error}"
        return [key.strip() for key in listed.group(1).split(",")]
    raise AssertionError(f"the contract reader accepted an unknown key: {data}")


def contract_reference() -> str:
    from pipeline.definition import contract as c

    unknown = {"zz-unknown": 1}
    places = [
        ("top level", allowed_keys(unknown)),
        ("`[resources]`", allowed_keys({"resources": unknown})),
        (
            "`[hyperparameters.NAME]`",
            allowed_keys({"hyperparameters": {"x": {"type": "int", "default": 1, **unknown}}}),
        ),
        ("`[channels.NAME]`", allowed_keys({"channels": {"x": unknown}})),
        ("`metrics = [{...}]`", allowed_keys({"metrics": [{"name": "m", **unknown}]})),
    ]
    keys = table(("where", "keys"), [(where, ", ".join(f"`{k}`" for k in found)) for where, found in places])
    values = table(
        ("what", "allowed values or default"),
        [
            ("`entry_point` default", f"`{c.DEFAULT_ENTRY_POINT}`"),
            ("`resources.instance_type` default", f"`{c.DEFAULT_INSTANCE_TYPE}`"),
            ("`resources.instance_count` default", f"`{c.DEFAULT_INSTANCE_COUNT}`"),
            ("`resources.max_runtime_seconds` default", f"`{c.DEFAULT_MAX_RUNTIME_SECONDS}`"),
            (
                "hyperparameter `type` -> pipeline parameter type",
                ", ".join(f"`{k}` -> {v}" for k, v in c.PARAMETER_TYPES.items()),
            ),
            ("hyperparameter name", f"`{c.HYPERPARAMETER_NAME.pattern}`"),
            ("channel name", f"`{c.CHANNEL_NAME.pattern}` (SageMaker's ChannelName, not `.` or `..`)"),
            ("channel `input_mode`", ", ".join(f"`{m}`" for m in c.INPUT_MODES) + f" (default `{c.INPUT_MODES[0]}`)"),
            (
                "channel `distribution`",
                ", ".join(f"`{d}`" for d in c.DISTRIBUTIONS) + f" (default `{c.DISTRIBUTIONS[0]}`)",
            ),
            ("channel `sample`", ", ".join(f"`{s}`" for s in c.SAMPLE_SPLITS)),
            ("metric without `regex`", f"`name=value;`, e.g. `{c.convention_regex('loss')}`"),
            ("entry point names", f"`{c.SAFE_ENTRY_POINT.pattern}`, not starting with `-` (the toolkit's rule)"),
        ],
    )
    naming = table(
        ("declared", "pipeline parameter"),
        [
            ("hyperparameter `max-leaf-nodes`", f"`{c.pascal_case('max-leaf-nodes')}`"),
            ("channel `train`", "`TrainData`"),
        ],
    )
    return "\n\n".join([keys, values, naming])


def parameter_table() -> str:
    """The training step's parameters for ``user_src``, as ``describe`` prints them (its table function)."""
    from pipeline.cli.deploy_commands import parameter_table as describe_table
    from pipeline.definition import contract
    from pipeline.definition.parameters import pipeline_parameters
    from pipeline.definition.settings import build_settings

    settings = build_settings({}, offline=True)
    declared = contract.load(ROOT / "user_src")
    rows = describe_table(list(pipeline_parameters(declared, settings.image_uri, settings.data_uri)))
    metrics = ", ".join(m.name for m in declared.metrics)
    return "\n".join(rows) + f"\n\ntraining metrics: {metrics}"


def modules() -> str:
    """Every module of ``pipeline/`` with the first sentence of its docstring, read without importing it."""
    import ast

    rows = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        sentence = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]
        rows.append((f"`{path.relative_to(ROOT)}`", sentence.replace("``", "`")))
    return table(("module", "what it is for"), rows)


def benchmark_results() -> str:
    """Each ``benchmarks/results-*.md`` as its script last wrote it, headings moved under this page's."""
    parts = []
    for path in sorted((ROOT / "benchmarks").glob("results-*.md")):
        text = re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", path.read_text(), flags=re.M)
        parts.append(f"## `benchmarks/{path.name}`\n\n" + re.sub(r"^### .*\n+", "", text, count=1))
    return "\n\n".join(parts)


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "settings": settings_reference,
    "exit-statuses": exit_statuses,
    "linux-only": linux_only,
    "job-shell": job_shell,
    "contract": contract_reference,
    "parameters": parameter_table,
    "benchmark-results": benchmark_results,
    "modules": modules,
}


def render(markdown: str) -> str:
    """Every marker replaced by its table; an unknown name is an error, not a silent gap."""

    def generated(match: re.Match[str]) -> str:
        if match.group(1) not in GENERATORS:
            raise KeyError(f"no generator {match.group(1)!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[match.group(1)]()

    return MARKER.sub(generated, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)


if __name__ == "__main__":  # print every generated part, to read them without building the site
    print(json.dumps({name: make() for name, make in GENERATORS.items()}, indent=1))
