"""The GitHub workflows, Dependabot and the IAM policies: schema-valid, zizmor-clean, pinned to
node24 releases, least privilege, and running exactly the set-up and test commands of the README's
quick start.

Offline and fast: the real check-jsonschema and zizmor from this venv, PyYAML and json for the rest.
What the deploy script does is rehearsed for real in tests/test_deploy_rehearsal.py; who may assume
the roles is evaluated in tests/test_deploy_roles.py.
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
PROMOTE = WORKFLOWS / "promote.yml"
ALL = [CI, DEPLOY, PROMOTE]
AWS = ROOT / ".github" / "aws"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
DEPLOY_SCRIPT = ROOT / ".github" / "scripts" / "deploy.sh"
BIN = Path(sys.executable).parent

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^# v\d+\.\d+\.\d+$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?P<comment>#.*)?$")
# The first release of each action that runs on node24 (read from each action's action.yml at its tags).
FIRST_NODE24_RELEASE = {
    "actions/checkout": (5, 0, 0),
    "actions/setup-python": (6, 0, 0),
    "aws-actions/configure-aws-credentials": (6, 0, 0),
    "aws-actions/amazon-ecr-login": (2, 0, 2),
}


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


def test_dependabot_config_validates_and_covers_actions_the_base_image_and_pip() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    updates = yaml.safe_load(DEPENDABOT.read_text())["updates"]
    covered = {(u["package-ecosystem"], d) for u in updates for d in u.get("directories", [u.get("directory")])}
    assert {
        ("github-actions", "/"),
        ("docker", "/framework_image"),
        ("pip", "/"),
        ("pip", "/framework_image"),
    } <= covered


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


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
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


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_action_is_a_node24_release(path: Path) -> None:
    """node20 actions are forced onto node24 by the runners, with warnings; pin releases built for it."""
    for match in filter(None, map(USES_LINE.match, path.read_text().splitlines())):
        action = match["ref"].partition("@")[0]
        assert action in FIRST_NODE24_RELEASE, f"{action}: look up its first node24 release and add it here"
        version = tuple(int(part) for part in match["comment"].strip().removeprefix("# v").split("."))
        assert version >= FIRST_NODE24_RELEASE[action], f"{action} {match['comment']} predates node24"


def test_every_workflow_pins_an_action_to_the_same_commit() -> None:
    pins: dict[str, set[str]] = {}
    for path in ALL:
        for match in filter(None, map(USES_LINE.match, path.read_text().splitlines())):
            action, _, sha = match["ref"].partition("@")
            pins.setdefault(action, set()).add(f"{sha} {match['comment']}")
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_shell_script(path: Path) -> None:
    """Template injection: values reach run: scripts through env: and $VAR, never ${{ }}."""
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"job {name}, step {step.get('name')}: move ${{{{ }}}} to env:"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
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
    _, python = step_using(ci, "test", "actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11"
    runs = [s.get("run", "").strip() for s in steps(ci, "test")]
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


def test_ci_builds_the_image_with_docker_and_runs_the_container_tests_and_the_rehearsal() -> None:
    setup, _ = quick_start_commands()
    ci = load(CI)
    job = ci["jobs"]["image"]
    assert "if" not in job, "every push and pull request builds the image"
    assert "id-token" not in job.get("permissions", {})
    install_index, _ = step_running(ci, "image", install_part(setup))
    registry_index, _ = step_running(ci, "image", "apt-get install -y --no-install-recommends docker-registry")
    test_index, test = step_running(ci, "image", ".venv/bin/python -m pytest -m container")
    assert test["run"].strip() == ".venv/bin/python -m pytest -m container"
    assert test["env"] == {"ENGINE": "docker"}
    assert install_index < registry_index < test_index


def test_ci_writes_a_pipeline_plan_only_with_a_read_only_role_on_pull_requests() -> None:
    ci = load(CI)
    job = ci["jobs"]["plan"]
    assert "vars.AWS_PLAN_ROLE_ARN != ''" in job["if"]
    assert "github.event_name == 'pull_request'" in job["if"]
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    credentials_index, credentials = step_using(ci, "plan", "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_PLAN_ROLE_ARN }}"
    plan_index, plan = step_running(ci, "plan", ".github/scripts/deploy.sh plan")
    assert credentials_index < plan_index
    assert plan["env"]["AWS_ACCOUNT_ID"] == f"${{{{ steps.{credentials['id']}.outputs.aws-account-id }}}}"
    runs = " ".join(s.get("run", "") for s in steps(ci, "plan"))
    for command in ("deploy.sh deploy", "pipeline upsert", "pipeline start", "docker push"):
        assert command not in runs
    for name, other in ci["jobs"].items():
        if name != "plan":
            assert "id-token" not in other.get("permissions", {}), f"only the plan job gets an OIDC token, not {name}"
    assert "AWS_DEPLOY_ROLE_ARN" not in CI.read_text(), "CI never assumes the deploy role"


# --- deploy -----------------------------------------------------------------------------------


def test_deploy_runs_on_main_and_by_hand_with_an_optional_run() -> None:
    on = load(DEPLOY)["on"]
    assert on["push"] == {"branches": ["main"]}
    start_run = on["workflow_dispatch"]["inputs"]["start_run"]
    assert start_run["type"] == "boolean"
    assert start_run["default"] is False


def test_deploys_never_race() -> None:
    """One group for every deploy; a running deploy is never cancelled, and with GitHub's default queue
    (single) a newer push replaces an older *waiting* one, which loses nothing: each deploy brings the
    account to its own commit."""
    concurrency = load(DEPLOY)["concurrency"]
    assert concurrency["group"]
    assert "${{" not in concurrency["group"], "one group for every deploy, whatever the ref"
    assert concurrency["cancel-in-progress"] is False
    assert concurrency.get("queue", "single") == "single"


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


def test_the_deploy_job_hands_the_image_and_the_upsert_to_the_deploy_script() -> None:
    """Nothing in the workflow builds, pushes or upserts by itself: the rehearsed script does all three."""
    setup, _ = quick_start_commands()
    deploy = load(DEPLOY)
    install_index, install = step_running(deploy, "deploy", install_part(setup))
    assert install["run"].strip() in (install_part(setup), setup), "the deploy installs with the README command"
    credentials_index, _ = step_using(deploy, "deploy", "aws-actions/configure-aws-credentials")
    ecr_index, ecr = step_using(deploy, "deploy", "aws-actions/amazon-ecr-login")
    script_index, script = step_running(deploy, "deploy", ".github/scripts/deploy.sh deploy")
    assert install_index < credentials_index < ecr_index < script_index
    assert script["run"].strip() == ".github/scripts/deploy.sh deploy"
    expected = {
        "ENGINE": "docker",
        "REGISTRY": f"${{{{ steps.{ecr['id']}.outputs.registry }}}}",
        "REPOSITORY": "${{ vars.ECR_REPOSITORY }}",
        "AWS_REGION": "${{ vars.AWS_REGION }}",
        "PIPELINE_NAME": "${{ vars.PIPELINE_NAME }}",
        "SAGEMAKER_BUCKET": "${{ vars.SAGEMAKER_BUCKET }}",
        "SAGEMAKER_ROLE_ARN": "${{ vars.SAGEMAKER_ROLE_ARN }}",
    }
    assert {key: script["env"].get(key) for key in expected} == expected
    others = [s for i, s in enumerate(steps(deploy, "deploy")) if i != script_index]
    for step in others:
        for command in ("docker build", "docker push", "pipeline upsert", "pytest -m container"):
            assert command not in step.get("run", ""), f"step {step.get('name')!r} runs {command}: move it to deploy.sh"
    for path in (CI, DEPLOY):
        assert "docker/build-push-action" not in path.read_text()
    assert ":latest" not in DEPLOY.read_text()


# The deploy job as it was: buildx pushed straight to ECR, then the container tests ran on the tag.
REGISTRY_ONLY_DEPLOY = """
jobs:
  deploy:
    steps:
      - uses: docker/setup-buildx-action@e468171a9de216ec08956ac3ada2f0791b6bd435 # v3.11.1
      - uses: docker/build-push-action@263435318d21b8e681c14492fe198d362a7d2c83 # v6.18.0
        with:
          context: framework_image
          push: true
          tags: ${{ steps.ecr.outputs.registry }}/${{ vars.ECR_REPOSITORY }}:${{ github.sha }}
      - env:
          ENGINE: docker
          CONTAINER_IMAGE: ${{ steps.ecr.outputs.registry }}/${{ vars.ECR_REPOSITORY }}:${{ github.sha }}
        run: .venv/bin/python -m pytest -m container
"""


def images_tested_but_not_local(workflow: dict[str, Any], job: str) -> list[str]:
    """Container-test steps whose CONTAINER_IMAGE the engine's local store does not hold at that point.

    buildx with push (its docker-container driver) leaves nothing local unless ``load`` is set;
    ``docker build`` and ``docker pull``/``load`` do put the image there. deploy.sh is its own
    sequence (build, push, pull by digest, test), rehearsed in tests/test_deploy_rehearsal.py.
    """
    local: set[str] = set()
    missing = []
    for step in steps(workflow, job):
        if step.get("uses", "").startswith("docker/build-push-action@"):
            options = step.get("with", {})
            if options.get("load") is True or options.get("push") is not True:
                local.update(tag.strip() for tag in re.split(r"[,\n]", options.get("tags", "")) if tag.strip())
        run = step.get("run", "")
        for match in re.finditer(r"docker (?:pull|load|build\b.*?--tag) (\S+)", run):
            local.add(match.group(1))
        image = step.get("env", {}).get("CONTAINER_IMAGE")
        if "pytest -m container" in run and image and image not in local:
            missing.append(image)
    return missing


def test_the_old_deploy_tested_an_image_only_the_registry_held() -> None:
    """The breaker: buildx pushed to ECR and left nothing local, so `docker image inspect` failed."""
    assert images_tested_but_not_local(yaml.safe_load(REGISTRY_ONLY_DEPLOY), "deploy") != []


def test_the_deploy_tests_only_images_in_the_local_store() -> None:
    """What deploy.sh does in between (push, pull by digest, test, tag, upsert) is rehearsed for real in
    tests/test_deploy_rehearsal.py, where leaving out the pull fails the deploy."""
    assert images_tested_but_not_local(load(DEPLOY), "deploy") == []


def test_the_deploy_role_allows_the_registry_calls_the_deploy_script_makes() -> None:
    """Tag look-up (manifest GET), push, pull: the ECR actions behind docker manifest inspect/push/pull."""
    statements = policy("deploy-role-policy.json")["Statement"]
    granted = {a for s in statements for a in as_list(s["Action"])}
    look_up = {"ecr:BatchGetImage"}
    push = {"ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart"}
    push |= {"ecr:CompleteLayerUpload", "ecr:PutImage"}
    pull = {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert {"ecr:GetAuthorizationToken"} | look_up | push | pull <= granted


def test_deploy_starts_a_run_only_when_asked() -> None:
    deploy = load(DEPLOY)
    upsert_index, _ = step_running(deploy, "deploy", ".github/scripts/deploy.sh deploy")
    start_index, start = step_running(deploy, "deploy", ".venv/bin/python -m pipeline start")
    assert upsert_index < start_index
    condition = start["if"]
    assert "inputs.start_run" in condition
    assert "vars.START_RUN_ON_DEPLOY == 'true'" in condition
    assert start["env"]["PIPELINE_NAME"] == "${{ vars.PIPELINE_NAME }}"


def test_every_repository_variable_the_workflows_read_is_in_the_set_up_guide() -> None:
    used = set(re.findall(r"vars\.(\w+)", DEPLOY.read_text() + CI.read_text()))
    documented = set(re.findall(r"gh variable set (\w+)", (AWS / "README.md").read_text()))
    assert used
    assert used <= documented, f"document these in .github/aws/README.md: {sorted(used - documented)}"


# --- IAM policies -----------------------------------------------------------------------------

LIFECYCLE = "ecr-lifecycle-policy.json"
POLICY_FILES = sorted(path for path in AWS.glob("*.json") if path.name != LIFECYCLE)


def policy(name: str) -> dict[str, Any]:
    return json.loads((AWS / name).read_text())


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_the_policy_files_are_all_there_and_documented() -> None:
    names = {path.name for path in POLICY_FILES}
    assert names == {
        "github-oidc-trust-policy.json",
        "deploy-role-policy.json",
        "github-oidc-plan-trust-policy.json",
        "plan-role-policy.json",
        "execution-role-trust-policy.json",
        "execution-role-policy.json",
    }
    guide = (AWS / "README.md").read_text()
    for name in [*names, LIFECYCLE]:
        assert name in guide


def test_the_ecr_lifecycle_policy_expires_untagged_images_and_caps_the_rest() -> None:
    rules = policy(LIFECYCLE)["rules"]
    priorities = [rule["rulePriority"] for rule in rules]
    assert sorted(priorities) == priorities and len(set(priorities)) == len(priorities)
    selections = [rule["selection"] for rule in rules]
    assert all(rule["action"] == {"type": "expire"} for rule in rules)
    assert selections[0] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 1,
    }
    # ECR requires the tagStatus "any" rule to come last.
    assert selections[-1]["tagStatus"] == "any" and selections[-1]["countType"] == "imageCountMoreThan"
    assert selections[-1]["countNumber"] >= 10
    # That the set-up guide applies it: tests/test_docs.py runs the guide against botocore's model.


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


def test_the_github_roles_trust_one_provider_and_list_both_subject_forms() -> None:
    """The subjects themselves are evaluated, as IAM does, in tests/test_deploy_roles.py."""
    for name, event in (
        ("github-oidc-trust-policy.json", "ref:refs/heads/main"),
        ("github-oidc-plan-trust-policy.json", "pull_request"),
    ):
        (statement,) = policy(name)["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals"}, "StringLike would let wildcards widen the subject"
        assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        assert condition["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
            f"repo:GITHUB_OWNER/GITHUB_REPO:{event}",
            f"repo:GITHUB_OWNER@GITHUB_OWNER_ID/GITHUB_REPO@GITHUB_REPO_ID:{event}",
        ]


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


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_job_runs_on_a_pinned_runner_image(path: Path) -> None:
    """ubuntu-latest moves to a new image (another Docker, other tools) without a change here."""
    for name, job in load(path)["jobs"].items():
        if "runs-on" in job:
            assert job["runs-on"] == "ubuntu-24.04", name


# --- what the runner image has: every step checked against ubuntu-24.04 -----------------------------

# The commands the ubuntu-24.04 image provides, from its published contents
# (actions/runner-images, images/ubuntu/Ubuntu2404-Readme.md and scripts/build/install-python.sh):
# coreutils and the shell builtins, sudo (passwordless for the runner's user), git, Python 3.12 with
# python3-venv and python3-dev, and Docker with Compose v2 and buildx (no docker-compose v1).
RUNNER_COMMANDS = {"echo", "exit", "set", "sed", "tee", "python3", "sudo", "docker", "git"}
# What needs root on the runner, whose user is not root: only through sudo.
ROOT_COMMANDS = {"apt-get", "apt", "sysctl", "useradd", "usermod", "chown", "mount", "systemctl", "dpkg"}


def run_commands(script: str) -> list[list[str]]:
    """Each simple command of a step's ``run`` script as words, split as the shell splits them."""
    import shlex

    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|", "&", "(", ")"):
                commands.append(words)
                words = []
            elif words or not re.fullmatch(r"\w+=.*", token):  # VAR=value prefixes are not the command
                words.append(token)
    return [command for command in commands if command]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_step_runs_on_the_runner_as_its_unprivileged_user(path: Path) -> None:
    """No step needs root without sudo, calls Compose v1, or a tool neither the image nor an earlier
    step provides (the venv's, and apt packages a step installs)."""
    for name, job in load(path)["jobs"].items():
        installed: set[str] = set()
        venv = False  # .venv/bin/* (python, pip, and the dev extras' linters) once a step made the venv
        for step in job.get("steps", []):
            for words in run_commands(step.get("run", "")):
                command = words[1] if words[0] == "sudo" else words[0]
                where = f"{path.name} job {name}, step {step.get('name')!r}: {' '.join(words)}"
                assert command != "docker-compose", f"Compose v1 is not on the runner: {where}"
                assert command not in ROOT_COMMANDS or words[0] == "sudo", f"needs root, so sudo: {where}"
                if command in ("apt-get", "apt") and "install" in words:
                    installed |= {word for word in words[words.index("install") + 1 :] if not word.startswith("-")}
                venv = venv or words[:4] == ["python3", "-m", "venv", ".venv"]
                provided = RUNNER_COMMANDS | ROOT_COMMANDS | installed
                known = (
                    command in provided or command.startswith(".github/") or (venv and command.startswith(".venv/bin/"))
                )
                assert known, f"{command} is neither on the runner image nor installed by an earlier step: {where}"


def test_the_runner_audit_finds_root_compose_v1_and_missing_tools() -> None:
    """The audit above can fail: each kind of problem, in a step's script."""
    assert run_commands("A=1 apt-get install -y x && sudo sysctl -w k=0 | tee log # why") == [
        ["apt-get", "install", "-y", "x"],
        ["sudo", "sysctl", "-w", "k=0"],
        ["tee", "log"],
    ]
    assert run_commands("docker-compose up \\\n  --build")[0][0] == "docker-compose"


def test_the_deploy_tests_the_image_itself_and_leaves_the_sdk_local_mode_parity_to_ci() -> None:
    """The deploy's acceptance tests train, process and serve in the pulled image; the parity suite
    (SDK local mode, driven by Compose) proves this project's emulation, not the image, and runs in CI."""
    script = DEPLOY_SCRIPT.read_text()
    listed = re.search(r'^IMAGE_TESTS="([^"]+)"$', script, re.M)
    assert listed and "${DEPLOY_TESTS:-$IMAGE_TESTS}" in script
    files = [ROOT / name for name in listed.group(1).split()]
    assert files and all(path.is_file() for path in files), files
    for path in files:
        text = path.read_text()
        assert "pytestmark = pytest.mark.container" in text, path.name
        assert "sdk_local" not in text and "docker_host" not in text, f"{path.name} needs Compose: CI only"
    tests = "\n".join(re.findall(r"^def (test_\w+)", "\n".join(path.read_text() for path in files), re.M))
    for what in ("train", "processing", "serve"):
        assert what in tests, f"no test of the image's {what} among {listed.group(1)}"
