"""The GitHub workflows and the IAM policies: schema-valid, zizmor-clean, pinned, least privilege,
and running exactly the commands the README documents.

Offline and fast: the real check-jsonschema and zizmor from this venv, PyYAML and json for the rest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
AWS = ROOT / ".github" / "aws"
BIN = Path(sys.executable).parent

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^# v\d+\.\d+\.\d+$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?P<comment>#.*)?$")
TAG_EXPRESSION = "${{ github.sha }}"


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}; install the dev extras"
    return str(path)


def load(path: Path) -> dict[str, Any]:
    """A workflow as a dict; YAML 1.1 reads the key ``on`` as True, so it is put back under "on"."""
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def step_using(workflow: dict[str, Any], job: str, action: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps(workflow, job)) if s.get("uses", "").startswith(f"{action}@")]
    assert len(found) == 1, f"job {job} should use {action} exactly once"
    return found[0]


def step_running(workflow: dict[str, Any], job: str, command: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps(workflow, job)) if command in s.get("run", "")]
    assert found, f"job {job} has no step running {command!r}"
    return found[0]


def quick_start_commands() -> tuple[str, str]:
    """The README's set-up and test commands: the first two ```bash blocks under "## Quick start"."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert section, 'README.md has no "## Quick start" section'
    blocks = [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", section.group(1), re.S | re.M)]
    assert len(blocks) >= 2, "the Quick start should show the set-up and the test command as ```bash blocks"
    for block in blocks[:2]:
        assert "\n" not in block, f"expected a one-line command, got {block!r}"
    return blocks[0], blocks[1]


def install_part(setup: str) -> str:
    """The set-up command up to and including its ``pip install``: what a deploy needs of it."""
    parts = setup.split(" && ")
    last = max(i for i, part in enumerate(parts) if "pip install" in part)
    return " && ".join(parts[: last + 1])


# --- tools ------------------------------------------------------------------------------------


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(CI), str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_nothing_at_its_default_persona() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-ignores", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)
    assert findings == [], json.dumps(findings, indent=2)


def test_zizmor_does_find_a_template_injection(tmp_path: Path) -> None:
    """The zizmor test above is only worth something if zizmor audits these files: break one and see."""
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    text = DEPLOY.read_text().replace("run: .venv/bin/python -m pipeline start", "run: echo ${{ github.head_ref }}")
    (broken / "deploy.yml").write_text(text)
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert "template-injection" in {finding["ident"] for finding in json.loads(result.stdout)}


# --- both workflows ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CI, DEPLOY], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    lines = [m for m in map(USES_LINE.match, path.read_text().splitlines()) if m]
    workflow = load(path)
    parsed = [s["uses"] for job in workflow["jobs"].values() for s in job.get("steps", []) if "uses" in s]
    parsed += [job["uses"] for job in workflow["jobs"].values() if "uses" in job]
    assert sorted(m["ref"] for m in lines) == sorted(parsed), "every uses: should sit on its own line"
    assert parsed
    for match in lines:
        assert SHA_PIN.match(match["ref"]), f"{match['ref']} is not pinned to a full commit SHA"
        assert match["comment"] and VERSION_COMMENT.match(match["comment"].strip()), (
            f"{match['ref']} needs a '# vX.Y.Z' comment naming the pinned version"
        )


def test_both_workflows_pin_an_action_to_the_same_commit() -> None:
    pins: dict[str, set[str]] = {}
    for path in (CI, DEPLOY):
        for match in filter(None, map(USES_LINE.match, path.read_text().splitlines())):
            action, _, sha = match["ref"].partition("@")
            pins.setdefault(action, set()).add(f"{sha} {match['comment']}")
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", [CI, DEPLOY], ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_shell_script(path: Path) -> None:
    """Template injection: values reach run: scripts through env: and $VAR, never ${{ }}."""
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"job {name}, step {step.get('name')}: move ${{{{ }}}} to env:"


@pytest.mark.parametrize("path", [CI, DEPLOY], ids=lambda p: p.name)
def test_checkout_keeps_no_credentials_and_permissions_are_read_only_by_default(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name in workflow["jobs"]:
        _, checkout = step_using(workflow, name, "actions/checkout")
        assert checkout["with"]["persist-credentials"] is False


# --- CI ---------------------------------------------------------------------------------------


def test_ci_runs_on_pushes_and_pull_requests() -> None:
    assert {"push", "pull_request"} <= set(load(CI)["on"])


def test_ci_runs_the_readme_commands_and_the_linters() -> None:
    setup, test = quick_start_commands()
    ci = load(CI)
    (job,) = ci["jobs"]
    _, python = step_using(ci, job, "actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11"
    runs = [s.get("run", "").strip() for s in steps(ci, job)]
    assert setup in runs, f"CI should run the README set-up command verbatim: {setup}"
    assert test in runs, f"CI should run the README test command verbatim: {test}"
    assert runs.index(setup) < runs.index(test)
    for linter in (
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/hadolint --failure-threshold error framework_image/Dockerfile",
        ".venv/bin/zizmor .github/workflows",
    ):
        assert linter in runs, f"CI should run {linter}"


# --- deploy -----------------------------------------------------------------------------------


def test_deploy_runs_on_main_and_by_hand_with_an_optional_run() -> None:
    on = load(DEPLOY)["on"]
    assert on["push"] == {"branches": ["main"]}
    start_run = on["workflow_dispatch"]["inputs"]["start_run"]
    assert start_run["type"] == "boolean"
    assert start_run["default"] is False


def test_deploys_never_race() -> None:
    concurrency = load(DEPLOY)["concurrency"]
    assert concurrency["group"]
    assert "${{" not in concurrency["group"], "one group for every deploy, whatever the ref"
    assert concurrency["cancel-in-progress"] is False


def test_only_the_deploy_job_gets_an_oidc_token_and_no_keys_are_used() -> None:
    deploy = load(DEPLOY)
    assert deploy["jobs"]["deploy"]["permissions"] == {"id-token": "write", "contents": "read"}
    others = [name for name, job in deploy["jobs"].items() if name != "deploy"]
    for name in others:
        assert "id-token" not in deploy["jobs"][name].get("permissions", {})
    _, credentials = step_using(deploy, "deploy", "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert credentials["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
    text = DEPLOY.read_text()
    for key in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "secrets."):
        assert key not in text


def test_deploy_has_no_account_values_written_in() -> None:
    text = DEPLOY.read_text()
    assert not re.search(r"\b\d{12}\b", text), "account IDs come from repository variables"
    assert "arn:aws" not in text
    assert ".amazonaws.com" not in text


def test_deploy_tests_before_it_deploys_with_the_readme_commands() -> None:
    setup, test = quick_start_commands()
    deploy = load(DEPLOY)
    needs = deploy["jobs"]["deploy"]["needs"]
    tester = needs if isinstance(needs, str) else needs[0]
    runs = [s.get("run", "").strip() for s in steps(deploy, tester)]
    assert setup in runs and test in runs, f"job {tester} should run the README commands verbatim"
    assert runs.index(setup) < runs.index(test)


def test_deploy_builds_the_image_with_buildx_cache_and_no_attestations() -> None:
    deploy = load(DEPLOY)
    ecr_index, ecr = step_using(deploy, "deploy", "aws-actions/amazon-ecr-login")
    buildx_index, _ = step_using(deploy, "deploy", "docker/setup-buildx-action")
    build_index, build = step_using(deploy, "deploy", "docker/build-push-action")
    credentials_index, _ = step_using(deploy, "deploy", "aws-actions/configure-aws-credentials")
    assert credentials_index < ecr_index < build_index
    assert buildx_index < build_index
    options = build["with"]
    assert options["context"] == "framework_image"
    assert options["push"] is True
    assert options["provenance"] is False, "SageMaker rejects images pushed with attestation manifests"
    assert options["cache-from"] == "type=gha"
    assert options["cache-to"] == "type=gha,mode=max"
    tags = [tag.strip() for tag in re.split(r"[,\n]", options["tags"]) if tag.strip()]
    assert tags == [f"${{{{ steps.{ecr['id']}.outputs.registry }}}}/${{{{ vars.ECR_REPOSITORY }}}}:{TAG_EXPRESSION}"]
    assert ":latest" not in DEPLOY.read_text()


def test_deploy_upserts_the_pipeline_with_the_image_it_pushed() -> None:
    setup, _ = quick_start_commands()
    deploy = load(DEPLOY)
    _, build = step_using(deploy, "deploy", "docker/build-push-action")
    install_index, install = step_running(deploy, "deploy", install_part(setup))
    assert install["run"].strip() in (install_part(setup), setup), "the deploy installs with the README command"
    build_index = steps(deploy, "deploy").index(build)
    upsert_index, upsert = step_running(deploy, "deploy", ".venv/bin/python -m pipeline upsert")
    assert install_index < upsert_index
    assert build_index < upsert_index, "the image is pushed before the pipeline names it"
    env = upsert["env"]
    assert env["IMAGE_URI"] == build["with"]["tags"].strip()
    expected = {
        "AWS_REGION": "${{ vars.AWS_REGION }}",
        "PIPELINE_NAME": "${{ vars.PIPELINE_NAME }}",
        "SAGEMAKER_BUCKET": "${{ vars.SAGEMAKER_BUCKET }}",
        "SAGEMAKER_ROLE_ARN": "${{ vars.SAGEMAKER_ROLE_ARN }}",
    }
    assert {key: env.get(key) for key in expected} == expected


def test_deploy_starts_a_run_only_when_asked() -> None:
    deploy = load(DEPLOY)
    upsert_index, _ = step_running(deploy, "deploy", "-m pipeline upsert")
    start_index, start = step_running(deploy, "deploy", ".venv/bin/python -m pipeline start")
    assert upsert_index < start_index
    condition = start["if"]
    assert "inputs.start_run" in condition
    assert "vars.START_RUN_ON_DEPLOY == 'true'" in condition
    assert start["env"]["PIPELINE_NAME"] == "${{ vars.PIPELINE_NAME }}"


def test_every_repository_variable_the_deploy_reads_is_in_the_set_up_guide() -> None:
    used = set(re.findall(r"vars\.(\w+)", DEPLOY.read_text()))
    documented = set(re.findall(r"gh variable set (\w+)", (AWS / "README.md").read_text()))
    assert used
    assert used <= documented, f"document these in .github/aws/README.md: {sorted(used - documented)}"


# --- IAM policies -----------------------------------------------------------------------------

POLICY_FILES = sorted(AWS.glob("*.json"))


def policy(name: str) -> dict[str, Any]:
    return json.loads((AWS / name).read_text())


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_the_policy_files_are_all_there_and_documented() -> None:
    names = {path.name for path in POLICY_FILES}
    assert names == {
        "github-oidc-trust-policy.json",
        "deploy-role-policy.json",
        "execution-role-trust-policy.json",
        "execution-role-policy.json",
    }
    guide = (AWS / "README.md").read_text()
    for name in names:
        assert name in guide


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_no_statement_grants_a_wildcard_action(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    assert document["Statement"]
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{path.name}: {statement.get('Sid')} grants {action}"


@pytest.mark.parametrize("name", ["deploy-role-policy.json", "execution-role-policy.json"])
def test_only_actions_without_a_resource_type_get_resource_star(name: str) -> None:
    for statement in policy(name)["Statement"]:
        if "*" in as_list(statement["Resource"]):
            assert as_list(statement["Action"]) in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"])


def test_the_deploy_role_trusts_github_actions_on_main_only() -> None:
    (statement,) = policy("github-oidc-trust-policy.json")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    condition = statement["Condition"]
    assert set(condition) == {"StringEquals"}, "StringLike would let wildcards widen the subject"
    assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    sub = condition["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert re.fullmatch(r"repo:[^:*]+/[^:*]+:ref:refs/heads/main", sub)


def test_the_deploy_role_can_do_what_the_workflow_does_and_pass_only_the_execution_role() -> None:
    statements = policy("deploy-role-policy.json")["Statement"]
    granted = {action for s in statements for action in as_list(s["Action"])}
    needed = {
        "ecr:GetAuthorizationToken",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchCheckLayerAvailability",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "sagemaker:CreatePipeline",
        "sagemaker:UpdatePipeline",
        "sagemaker:DescribePipeline",
        "sagemaker:StartPipelineExecution",
        "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutions",
        "sagemaker:ListPipelineExecutionSteps",
        "sagemaker:AddTags",
        "iam:PassRole",
    }
    assert needed <= granted, sorted(needed - granted)
    (pass_role,) = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Resource"] == "arn:aws:iam::ACCOUNT_ID:role/EXECUTION_ROLE_NAME"
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    for statement in statements:
        resources = as_list(statement["Resource"])
        if any(a.startswith("sagemaker:") for a in as_list(statement["Action"])):
            assert all(r.startswith("arn:aws:sagemaker:REGION:ACCOUNT_ID:pipeline/PIPELINE_NAME") for r in resources)
        if any(a.startswith("ecr:") and a != "ecr:GetAuthorizationToken" for a in as_list(statement["Action"])):
            assert resources == ["arn:aws:ecr:REGION:ACCOUNT_ID:repository/ECR_REPOSITORY"]


@pytest.mark.parametrize("name", ["deploy-role-policy.json", "execution-role-policy.json"])
def test_s3_access_stays_under_the_pipeline_prefix(name: str) -> None:
    for statement in policy(name)["Statement"]:
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        if "s3:ListBucket" in actions:
            assert resources == ["arn:aws:s3:::BUCKET"]
            assert statement["Condition"] == {"StringLike": {"s3:prefix": "PIPELINE_NAME/*"}}
        elif any(a.startswith("s3:") for a in actions):
            assert all(r.startswith("arn:aws:s3:::BUCKET/PIPELINE_NAME/") for r in resources), resources


def test_the_execution_role_is_for_sagemaker_and_can_run_the_training_step() -> None:
    (trust,) = policy("execution-role-trust-policy.json")["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    statements = policy("execution-role-policy.json")["Statement"]
    granted = {action for s in statements for action in as_list(s["Action"])}
    needed = {
        "s3:GetObject",
        "s3:PutObject",
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "cloudwatch:PutMetricData",
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "iam:PassRole",
    }
    assert needed <= granted, sorted(needed - granted)
    writes = [s for s in statements if "s3:PutObject" in as_list(s["Action"])]
    assert [as_list(s["Resource"]) for s in writes] == [["arn:aws:s3:::BUCKET/PIPELINE_NAME/models/*"]]
