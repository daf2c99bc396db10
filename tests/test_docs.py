"""The documentation: the site builds with warnings as errors, its generated reference covers the code,
and every shell command README.md and docs/ show is run by a test.

A command is run here (cheap CLI commands, with the CLI's own AWS stand-in on 127.0.0.1 where AWS is
needed), or its page's set-up script runs here with ``aws`` and ``gh`` stand-ins (``aws`` checks each
call against botocore's service model), or it is listed in :data:`ELSEWHERE` with the existing test
that runs it. A documented command with no runner fails, and so does a runner entry whose command is
no longer documented.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from moto_server import cli_stand_in

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELLS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SCRIPT_LINE = re.compile(r"^(for|if|while|do|done|then|fi|else)\b|^\w+=|\$\(")
SETUP = ROOT / "README.md"
TEST_COMMAND = ".venv/bin/python -m pytest"
SETUP_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e ./framework_image/framework -e '.[dev]'"
    " && .venv/bin/python -m pipeline demo"
)
CLI = ".venv/bin/python -m pipeline"

sys.path.insert(0, str(ROOT / "docs"))
import hooks  # noqa: E402  (docs/hooks.py, the MkDocs hook)

# --- what the pages show ------------------------------------------------------------------------


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def logical_lines(block: str) -> list[str]:
    """A block's command lines: continuations joined, comment-only and blank lines dropped, ``$ `` prompts
    of console blocks removed (their output lines dropped)."""
    lines = []
    console = any(line.startswith("$ ") for line in block.splitlines())
    for line in block.replace("\\\n", " ").splitlines():
        if console:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(" ".join(line.split()))
    return lines


def shell_blocks(page: Path) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang in SHELLS]


def is_script(block: str) -> bool:
    """A block of shell glue (loops, variables, substitutions) is one unit; other blocks list commands."""
    return any(SCRIPT_LINE.search(line) for line in logical_lines(block))


def script_key(block: str) -> str:
    """A script block's name: its first line (a ``# N. what`` comment, or its first command)."""
    return "script: " + block.strip().splitlines()[0]


def documented() -> set[tuple[str, str]]:
    """(page, command) for every command line, and (page, "script: ...") for every script block."""
    found = set()
    for page in PAGES:
        for block in shell_blocks(page):
            if is_script(block):
                found.add((relative(page), script_key(block)))
            else:
                found.update((relative(page), line) for line in logical_lines(block))
    return found


# --- who runs each command ------------------------------------------------------------------------

# Run by test_the_cli_commands_run_as_documented, in this order, from the repository root; the
# ones after "stand-in" get the stand-in's variables. Value: the exit status the page promises.
RUN_HERE: dict[str, int] = {
    f"{CLI} describe": 0,
    f"{CLI} definition --offline": 0,
    f"{CLI} definition --offline --no-cache": 0,
    f"{CLI} diff": 1,  # before the first upsert: everything would change
    f"{CLI} upsert": 0,
    f"{CLI} start": 0,
    f"{CLI} status": 0,
}
# Pages whose set-up and teardown scripts run here with stand-ins (test_the_aws_scripts_run_...):
# page -> the AWS set-up guide whose step-0 values block gives the variables. The deploy set-up guide
# itself (.github/aws/README.md, beside its policies) runs the same way.
SET_UP_GUIDE = ".github/aws/README.md"
SCRIPTED = {
    "docs/promotion.md": None,
    "docs/how-to/deploy.md": SET_UP_GUIDE,
    SET_UP_GUIDE: None,
}
# Commands an existing test runs (a long-running server, a whole install, a container, real data).
CI_RUNS = "tests/test_workflows.py::test_ci_runs_the_readme_commands_and_the_linters"
SERVES = "tests/test_serve_local.py::test_serve_local_answers_csv_and_json_and_refuses_bad_requests"
TRAINS = "tests/test_local_job.py::test_train_local_cli_trains_the_real_model"
IN_IMAGE = "tests/test_container.py::test_train_local_container_trains_the_user_code"
PROMOTES = "tests/test_promote.py::test_run_approve_promote_to_staging_and_prod_roll_back_and_tear_down"
PREDICT = "curl -s -H 'Content-Type: text/csv' --data '0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8' localhost:8080/invocations"
ELSEWHERE: dict[str, str] = {
    SETUP_COMMAND: CI_RUNS,
    TEST_COMMAND: CI_RUNS,
    f"{CLI} stand-in": (
        "tests/test_stand_in.py::test_the_stand_in_prints_its_variables_takes_commands_and_stops_on_ctrl_c"
    ),
    f"{CLI} run --local --deployed": (
        "tests/test_local_run.py::test_upsert_then_run_local_deployed_uploads_the_model_and_parses_metrics"
    ),
    f"{CLI} serve-local": SERVES,
    f"{CLI} serve-local --model local-jobs/JOB/model.tar.gz --port 8080": SERVES,
    PREDICT: SERVES,
    f"{CLI} train-local --hp max-iter=200": TRAINS,
    f"{CLI} train-local --train data/train --validation data/validation": TRAINS,
    f"{CLI} train-local --channel train=s3://bucket/train/ --instance-count 2": (
        "tests/test_cli_aws.py::test_train_local_reads_s3_channels_through_boto3"
    ),
    f"{CLI} train-local --checkpoints ckpt/ --max-runtime 600": (
        "tests/test_local_job.py::test_a_script_that_checkpoints_on_sigterm_resumes_on_the_next_run"
    ),
    f"{CLI} train-local --container": IN_IMAGE,
    "framework_image/build-local.sh": (
        "tests/test_container.py::test_image_is_small_has_no_compiler_and_names_the_framework"
    ),
    f"{TEST_COMMAND} -m container": IN_IMAGE,
    "python -m pipeline promote staging --plan": PROMOTES,
    "python -m pipeline promote staging": PROMOTES,
    "python -m pipeline promote prod --model-package arn:aws:sagemaker:...:model-package/GROUP/7": PROMOTES,
    "python -m pipeline promote prod --rollback": PROMOTES,
    "python -m pipeline promote staging --delete": PROMOTES,
    "python -m pipeline promote staging --delete --plan": PROMOTES,
}


def runner(page: str, command: str) -> str | None:
    if command in RUN_HERE:
        return "here"
    if command.startswith("script: ") and page in SCRIPTED:
        return "here, with aws and gh stand-ins"
    return ELSEWHERE.get(command)


def test_every_documented_command_has_a_runner() -> None:
    missing = sorted(f"{page}: {command}" for page, command in documented() if runner(page, command) is None)
    assert not missing, "give these a runner (RUN_HERE, SCRIPTED or ELSEWHERE):\n" + "\n".join(missing)


def test_every_runner_entry_is_still_documented() -> None:
    commands = {command for _, command in documented()}
    stale = sorted(set(RUN_HERE) - commands) + sorted(set(ELSEWHERE) - commands)
    assert not stale, f"no page shows these any more: {stale}"
    for page in SCRIPTED:
        assert any(is_script(block) for block in shell_blocks(ROOT / page)), f"{page} shows no script any more"


@pytest.mark.parametrize("target", sorted(set(ELSEWHERE.values())))
def test_every_test_named_as_a_runner_exists(target: str) -> None:
    path, _, name = target.partition("::")
    assert (ROOT / path).is_file(), path
    if name:
        functions = {n.name for n in ast.walk(ast.parse((ROOT / path).read_text())) if isinstance(n, ast.FunctionDef)}
        assert name in functions, f"{path} has no {name}"


def test_the_command_finder_sees_commands_scripts_and_console_prompts() -> None:
    """The rules above are only as good as the extraction: each kind of block, checked."""
    assert logical_lines("a --x \\\n  --y  # why\n# note\n\nb\n") == ["a --x --y", "b"]
    assert logical_lines("$ a --help\nusage: a\n$ b\n") == ["a --help", "b"]
    assert is_script("X=1\naws s3 ls\n") and is_script("for a in b; do\n  c\ndone\n")
    assert not is_script(".venv/bin/python -m pipeline describe\n")


def test_the_quick_start_is_what_ci_and_the_runners_take() -> None:
    """.ci/run greps the set-up line out of README.md; test_workflows.py reads both blocks."""
    readme = SETUP.read_text()
    assert SETUP_COMMAND in readme.splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    grep = re.search(r"grep -m1 '(\^[^']+)' README\.md", ci)
    assert grep, ".ci/run no longer takes the set-up command from README.md"
    matches = [line for line in readme.splitlines() if re.match(grep.group(1), line)]
    assert matches[:1] == [SETUP_COMMAND]
    assert f'tier "default tier as $CI_USER" "${{as_user[@]}}" {TEST_COMMAND}' in ci
    assert ".[dev]" in SETUP_COMMAND, "the set-up installs the dev extra, which builds the docs"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"mkdocs", "mkdocs-material"} <= {re.split(r"[=<>\[]", pin)[0] for pin in extras["dev"]}


def test_the_readmes_links_reach_files_and_headings() -> None:
    """README.md is read on GitHub, outside the site: its relative links are checked here."""
    links = re.findall(r"\]\(([^)#:]+\.md)(#[\w-]+)?\)", SETUP.read_text())
    assert len(links) > 5, "the README should send readers into docs/"
    for path, anchor in links:
        assert (ROOT / path).exists(), path
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor[1:] in slugs, f"{path} has no heading {anchor}"


# --- the site -----------------------------------------------------------------------------------------


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).parent / "mkdocs"
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    cli = (tmp_path / "reference" / "cli" / "index.html").read_text()
    assert "<!-- generated:" not in cli
    from pipeline.cli.parser import parser

    for name, _, _ in hooks.subcommands(parser()):
        assert f'id="{name}"' in cli, f"the CLI reference has no section for {name}"


def test_the_cli_reference_lists_every_command_and_flag_of_the_parser() -> None:
    from pipeline.cli.parser import parser

    page = hooks.render((ROOT / "docs" / "reference" / "cli.md").read_text())
    sections = re.split(r"^## `", page, flags=re.M)[1:]
    by_name = {section.split("`", 1)[0]: section for section in sections}
    commands = hooks.subcommands(parser())
    assert set(by_name) == {name for name, _, _ in commands}
    for name, _, sub in commands:
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in by_name[name], f"{name} {option} is missing from the reference"


def test_the_contract_reference_lists_every_key_the_reader_accepts() -> None:
    """Each listed key is accepted by the reader, and a key the page does not list is refused."""
    from pipeline.definition import contract
    from pipeline.errors import ContractError

    top = hooks.allowed_keys({"zz": 1})
    assert {"entry_point", "hyperparameters", "channels", "metrics", "resources", "environment"} == set(top)
    for key in hooks.allowed_keys({"resources": {"zz": 1}}):
        try:
            contract.from_data({"resources": {key: 1}})
        except ContractError as error:  # a wrong value is fine here; an unknown key is not
            assert "unknown key" not in str(error), error
    with pytest.raises(ContractError, match="unknown key 'instance_typo'"):
        contract.from_data({"resources": {"instance_typo": "x"}})
    text = hooks.render("<!-- generated: contract -->")
    for kind in contract.PARAMETER_TYPES:
        assert f"`{kind}`" in text


def test_the_parameter_table_is_what_describe_prints_for_the_training_step() -> None:
    described = subprocess.run(
        [sys.executable, "-m", "pipeline", "describe"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert described.returncode == 0, described.stderr
    generated = hooks.render("<!-- generated: parameters -->")
    rows = [line for line in generated.splitlines() if line.startswith("| `")]
    assert rows
    for row in rows:
        assert row in described.stdout.splitlines(), f"describe does not print {row}"


def test_the_exit_statuses_page_lists_every_status() -> None:
    from pipeline.errors import ExitStatus

    text = hooks.render("<!-- generated: exit-statuses -->")
    for name, member in ExitStatus.__members__.items():
        assert f"| `{member.value}` | `{name}` |" in text


def test_an_unknown_generator_is_an_error_not_a_gap() -> None:
    with pytest.raises(KeyError):
        hooks.render("<!-- generated: no-such-table -->")


# --- the commands, run ----------------------------------------------------------------------------------


def cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[:3] == [".venv/bin/python", "-m", "pipeline"]
    return subprocess.run([sys.executable, *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_cli_commands_run_as_documented() -> None:
    """Offline ones first; then the AWS ones against ``stand-in``, in the tutorial's order."""
    offline = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_EC2_METADATA_DISABLED": "true"}
    for command in (c for c in RUN_HERE if "describe" in c or "--offline" in c):
        done = cli(command, offline)
        assert done.returncode == RUN_HERE[command], f"{command}: {done.stderr}"
    with cli_stand_in(ROOT) as (port, exports):
        assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        env = offline | exports
        for command in (c for c in RUN_HERE if not ("describe" in c or "--offline" in c)):
            done = cli(command, env)
            assert done.returncode == RUN_HERE[command], f"{command}: {done.stdout}{done.stderr}"
        again = cli(f"{CLI} diff", env)
        assert again.returncode == 0, "after upsert, diff finds nothing to change"


FAKE_AWS = '''#!{python}
"""aws, checked: the service, the operation and every option against botocore's model; a fake answer."""
import json, os, sys
import botocore.session
from botocore import xform_name

HIGH_LEVEL = {{("s3", "rm"): ("s3", "DeleteObject"), ("s3", "rb"): ("s3", "DeleteBucket")}}
import botocore.exceptions

SERVICES = {{"s3api": "s3"}}  # the CLI's names for botocore's
# Options the AWS CLI renames (awscli/customizations/argrename.py).
RENAMED = {{("sns", "subscribe", "notification-endpoint"): "endpoint"}}
GLOBAL = {{"--query", "--output", "--region", "--profile", "--no-cli-pager", "--recursive"}}
args = sys.argv[1:]
with open(os.environ["AWS_CALLS"], "a") as log:
    log.write(json.dumps(args) + "\\n")
service, command, rest = args[0], args[1], args[2:]
session = botocore.session.get_session()
if (service, command) in HIGH_LEVEL:
    service, operation = HIGH_LEVEL[(service, command)]
    members, required = set(), set()
else:
    try:
        model = session.get_service_model(SERVICES.get(service, service))
    except botocore.exceptions.UnknownServiceError:
        sys.exit(f"aws: no service {{service}}")
    operations = {{xform_name(name, "-"): name for name in model.operation_names}}
    if command not in operations:
        sys.exit(f"aws {{service}}: no operation {{command}}")
    shape = model.operation_model(operations[command]).input_shape
    members = {{xform_name(m, "-"): m for m in (shape.members if shape else {{}})}}
    # The CLI fills idempotency tokens itself.
    tokens = {{m for m in members.values() if shape.members[m].metadata.get("idempotencyToken")}}
    required = set(shape.required_members if shape else ()) - tokens
given = set()
i = 0
while i < len(rest):
    word = rest[i]
    if not word.startswith("--"):
        i += 1
        continue
    name = word[2:]
    if word in GLOBAL:
        i += 2 if word != "--recursive" else 1
        continue
    plain = RENAMED.get((service, command, name), name).removeprefix("no-")
    if plain not in members:
        sys.exit(f"aws {{service}} {{command}}: no option {{word}}")
    given.add(members[plain])
    value = rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("--") else None
    if value and value.startswith("file://") and not os.path.isfile(value[7:]):
        sys.exit(f"aws {{service}} {{command}} {{word}}: no file {{value[7:]}}")
    i += 2 if value is not None else 1
missing = required - given
if missing:
    sys.exit(f"aws {{service}} {{command}}: missing {{sorted(missing)}}")
print("arn:aws:fake:us-east-1:123456789012:thing/fake" if "--query" in rest else "{{}}")
'''

FAKE_GH = """#!/usr/bin/env bash
echo "$*" >> "$GH_CALLS"
case "$*" in
    api*"--jq .owner.id") echo 111 ;;
    api*"--jq .id") echo 222 ;;
esac
"""


def stand_in_tools(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS.format(python=sys.executable))
    (bin_dir / "gh").write_text(FAKE_GH)
    for tool in ("aws", "gh"):
        (bin_dir / tool).chmod(0o755)
    aws_calls, gh_calls = tmp_path / "aws-calls", tmp_path / "gh-calls"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_CALLS": str(aws_calls),
        "GH_CALLS": str(gh_calls),
        "GITHUB_TOKEN_FOR_DISPATCH": "token",
    }
    return env, aws_calls, gh_calls


def test_the_aws_stand_in_refuses_what_aws_would(tmp_path: Path) -> None:
    """The checking ``aws`` can fail: an unknown operation, an unknown option, a missing required one."""
    env, _, _ = stand_in_tools(tmp_path)
    for bad in (
        "aws sagemaker delete-pipelines --pipeline-name p",
        "aws sagemaker delete-pipeline --pipeline-nam p",
        "aws iam create-role --role-name r",
        "aws s3apix create-bucket --bucket b",
    ):
        assert subprocess.run(["bash", "-c", bad], env=env, capture_output=True).returncode != 0, bad
    good = "aws sagemaker delete-pipeline --pipeline-name p"
    assert subprocess.run(["bash", "-c", good], env=env, capture_output=True).returncode == 0


@pytest.mark.parametrize("page", sorted(SCRIPTED))
def test_the_aws_scripts_run_against_botocores_model(page: str, tmp_path: Path) -> None:
    """The page's script blocks, in order, as one script with ``set -euo pipefail``: every ``aws`` call
    exists with those options in botocore's model, every ``file://`` it names was written by an earlier
    block, and each GitHub environment gets every variable its workflow reads."""
    env, aws_calls, gh_calls = stand_in_tools(tmp_path)
    blocks = [block for block in shell_blocks(ROOT / page) if is_script(block)]
    values = SCRIPTED[page]
    if values:
        guide = [block for block in shell_blocks(ROOT / values) if block.startswith("# 0.")]
        assert len(guide) == 1, f"{values} has no step-0 values block"
        blocks.insert(0, guide[0])
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("POLICIES=/tmp/", f"POLICIES={tmp_path}/")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, textwrap.shorten(done.stdout, 2000) + done.stderr
    calls = [json.loads(line) for line in aws_calls.read_text().splitlines()]
    assert calls, "the page's scripts made no aws call"
    if page == SET_UP_GUIDE:
        lifecycle = [c for c in calls if c[:2] == ["ecr", "put-lifecycle-policy"]]
        assert lifecycle and any(arg.endswith("/ecr-lifecycle-policy.json") for arg in lifecycle[0]), calls
    if page == "docs/promotion.md":
        workflow = (ROOT / ".github" / "workflows" / "promote.yml").read_text()
        read = set(re.findall(r"vars\.(\w+)", workflow))
        for stage in ("staging", "prod"):
            set_here = set(re.findall(rf"variable set (\w+) --env {stage}\b", gh_calls.read_text()))
            assert read <= set_here, f"{stage} lacks {sorted(read - set_here)}"
