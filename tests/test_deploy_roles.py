"""Who may assume the GitHub roles, and what the plan role may do, evaluated the way IAM does.

The trust policies are rendered by the set-up guide's own commands (.github/aws/README.md, with a
stand-in ``gh``), then checked against OIDC subjects GitHub sends and ones it must not match.
The plan role is checked against every AWS call that CI's plan step (``deploy.sh plan``, i.e.
``python -m pipeline diff``) makes against moto.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import BUCKET, REGION, run_cli

ROOT = Path(__file__).resolve().parent.parent
AWS = ROOT / ".github" / "aws"
GUIDE = AWS / "README.md"
DEPLOY = ROOT / ".github" / "scripts" / "deploy.sh"

ACCOUNT = "123456789012"  # moto's account
OWNER, OWNER_ID, REPO, REPO_ID = "octo-org", "123456", "octo-repo", "789012"
PIPELINE = "test-pipeline"  # the aws_env fixture's
VALUES = {
    "ACCOUNT_ID": ACCOUNT,
    "REGION": REGION,
    "GITHUB_OWNER": OWNER,
    "GITHUB_REPO": REPO,
    "BUCKET": BUCKET,
    "ECR_REPOSITORY": "custom-framework",
    "PIPELINE_NAME": PIPELINE,
    "EXECUTION_ROLE_NAME": "custom-framework-sagemaker-execution",
}
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
MAIN = f"repo:{OWNER}/{REPO}:ref:refs/heads/main"
MAIN_IMMUTABLE = f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:ref:refs/heads/main"
PULL_REQUEST = f"repo:{OWNER}/{REPO}:pull_request"
PULL_REQUEST_IMMUTABLE = f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:pull_request"

# Subjects no role may accept: other refs and events, look-alike names, other or partial IDs.
FOREIGN_SUBJECTS = [
    f"repo:{OWNER}/{REPO}:ref:refs/heads/feature",
    f"repo:{OWNER}/{REPO}:ref:refs/heads/main-x",
    f"repo:{OWNER}/{REPO}:ref:refs/tags/main",
    f"repo:{OWNER}/{REPO}:environment:production",
    f"repo:{OWNER}/{REPO}-fork:ref:refs/heads/main",
    f"repo:{OWNER}/{REPO}x:pull_request",
    f"repo:{OWNER}-evil/{REPO}:ref:refs/heads/main",
    f"repo:evil/{REPO}:pull_request",
    f"repo:{OWNER.upper()}/{REPO}:ref:refs/heads/main",
    f"repo:{OWNER}@999999/{REPO}@{REPO_ID}:ref:refs/heads/main",
    f"repo:{OWNER}@{OWNER_ID}/{REPO}@999999:pull_request",
    f"repo:{OWNER}@{OWNER_ID}/{REPO}:ref:refs/heads/main",
    f"repo:{OWNER}/{REPO}@{REPO_ID}:ref:refs/heads/main",
    f"repo:{OWNER}@{REPO_ID}/{REPO}@{OWNER_ID}:ref:refs/heads/main",
    f"repo:{OWNER}/{REPO}:ref:refs/heads/main:extra",
    "",
]

# What the trust policy looked like before both claim forms were listed: the evaluator must reject it.
NAME_ONLY_TRUST = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": "repo:GITHUB_OWNER/GITHUB_REPO:ref:refs/heads/main",
                }
            },
        }
    ]
}


# --- IAM evaluation -----------------------------------------------------------------------------


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def iam_glob(pattern: str) -> re.Pattern[str]:
    """StringLike and ARN matching: ``*`` is any run of characters, ``?`` one character, the rest literal."""
    assert "${" not in pattern, f"policy variables are not modelled: {pattern}"
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """Every operator and key must hold (AND); the values listed for one key are alternatives (OR).

    A key missing from the request fails its test, as in IAM for every operator without IfExists.
    """
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False
            if operator == "StringEquals":
                matched = actual in as_list(expected)
            elif operator == "StringLike":
                matched = any(iam_glob(value).fullmatch(actual) for value in as_list(expected))
            else:
                raise AssertionError(f"condition operator {operator} is not modelled here: use StringEquals/StringLike")
            if not matched:
                return False
    return True


def allows_web_identity(trust: dict[str, Any], sub: str, aud: str = "sts.amazonaws.com") -> bool:
    context = {"token.actions.githubusercontent.com:sub": sub, "token.actions.githubusercontent.com:aud": aud}
    return any(
        statement["Effect"] == "Allow"
        and "sts:AssumeRoleWithWebIdentity" in as_list(statement["Action"])
        and statement["Principal"] == {"Federated": PROVIDER}
        and condition_holds(statement.get("Condition", {}), context)
        for statement in trust["Statement"]
    )


def allows(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """An identity policy with Allow statements only (tests/test_workflows.py keeps it so)."""
    return any(
        statement["Effect"] == "Allow"
        and any(iam_glob(a.lower()).fullmatch(action.lower()) for a in as_list(statement["Action"]))
        and any(iam_glob(r).fullmatch(resource) for r in as_list(statement["Resource"]))
        and condition_holds(statement.get("Condition", {}), context)
        for statement in policy["Statement"]
    )


def test_the_evaluator_follows_iam_semantics() -> None:
    """StringEquals is exact and case-sensitive, a list is OR, keys are AND, StringLike globs."""
    listed = {"StringEquals": {"k": ["a", "b"], "other": "x"}}
    assert condition_holds(listed, {"k": "b", "other": "x"})
    assert not condition_holds(listed, {"k": "B", "other": "x"})
    assert not condition_holds(listed, {"k": "a"})
    assert not condition_holds({"StringEquals": {"k": "a*"}}, {"k": "ab"})
    assert condition_holds({"StringLike": {"k": "a*"}}, {"k": "a"})
    assert condition_holds({"StringLike": {"k": "a?c"}}, {"k": "abc"})
    assert not condition_holds({"StringLike": {"k": "a?c"}}, {"k": "ac"})
    assert not condition_holds({"StringLike": {"k": "a.c"}}, {"k": "abc"})


# --- the policies as the set-up guide renders them --------------------------------------------


def guide_block(containing: str) -> str:
    blocks = re.findall(r"^```bash\n(.*?)^```", GUIDE.read_text(), re.S | re.M)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"expected one ```bash block in {GUIDE.name} containing {containing!r}"
    return found[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run the guide's ID look-up and rendering block as written, with a ``gh`` that answers like GitHub."""
    tmp = tmp_path_factory.mktemp("policies")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(
        "#!/usr/bin/env bash\n"
        f'[[ "$1 $2 $3" == "api repos/{OWNER}/{REPO} --jq" ]] || {{ echo "unexpected gh $*" >&2; exit 1; }}\n'
        f'case "$4" in .owner.id) echo {OWNER_ID} ;; .id) echo {REPO_ID} ;; *) exit 1 ;; esac\n'
    )
    gh.chmod(0o755)
    out = tmp / "out"
    env = {**os.environ, **VALUES, "POLICIES": str(out), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + guide_block("gh api")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert MAIN_IMMUTABLE in done.stdout, "the guide should show the subjects it rendered"
    policies = {path.name: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))}
    assert set(policies) == {path.name for path in AWS.glob("*.json")}
    leftovers = re.compile(r"GITHUB_\w+|ACCOUNT_ID|\bREGION\b|BUCKET|PIPELINE_NAME|ECR_REPOSITORY|EXECUTION_ROLE")
    for name, document in policies.items():
        assert not leftovers.search(json.dumps(document)), f"{name} still has a placeholder"
    return policies


def test_the_deploy_role_trusts_main_in_both_subject_forms_and_nothing_else(rendered) -> None:
    trust = rendered["github-oidc-trust-policy.json"]
    assert allows_web_identity(trust, MAIN)
    assert allows_web_identity(trust, MAIN_IMMUTABLE)
    for sub in [*FOREIGN_SUBJECTS, PULL_REQUEST, PULL_REQUEST_IMMUTABLE]:
        assert not allows_web_identity(trust, sub), sub
    assert not allows_web_identity(trust, MAIN, aud="https://github.com/octo-org")


def test_the_plan_role_trusts_this_repositorys_pull_requests_only(rendered) -> None:
    trust = rendered["github-oidc-plan-trust-policy.json"]
    assert allows_web_identity(trust, PULL_REQUEST)
    assert allows_web_identity(trust, PULL_REQUEST_IMMUTABLE)
    for sub in [*FOREIGN_SUBJECTS, MAIN, MAIN_IMMUTABLE]:
        assert not allows_web_identity(trust, sub), sub
    assert not allows_web_identity(trust, PULL_REQUEST, aud="https://github.com/octo-org")


def test_the_old_name_only_trust_policy_rejects_the_immutable_subject() -> None:
    """The breaker: this is what a repository created since 2026-07-15 met, and the evaluator sees it."""
    text = json.dumps(NAME_ONLY_TRUST)
    for placeholder, value in {"GITHUB_OWNER": OWNER, "GITHUB_REPO": REPO, "ACCOUNT_ID": ACCOUNT}.items():
        text = text.replace(placeholder, value)
    old = json.loads(text)
    assert allows_web_identity(old, MAIN)
    assert not allows_web_identity(old, MAIN_IMMUTABLE)


@pytest.mark.parametrize("name", ["github-oidc-trust-policy.json", "github-oidc-plan-trust-policy.json"])
def test_no_wildcard_can_widen_the_owner_or_the_repository(name: str) -> None:
    """In the templates: StringEquals (or StringLike without * or ?) on aud and sub, and one statement."""
    (statement,) = json.loads((AWS / name).read_text())["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]
    assert set(condition) <= {"StringEquals", "StringLike"}
    subjects = []
    for operator, tests in condition.items():
        assert set(tests) <= {"token.actions.githubusercontent.com:sub", "token.actions.githubusercontent.com:aud"}
        subjects += as_list(tests.get("token.actions.githubusercontent.com:sub", []))
        if operator == "StringLike":
            assert not any(c in value for value in map(str, tests.values()) for c in "*?"), tests
    assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert len(subjects) == 2
    for subject in subjects:
        assert re.fullmatch(
            r"repo:GITHUB_OWNER(@GITHUB_OWNER_ID)?/GITHUB_REPO(@GITHUB_REPO_ID)?:(ref:refs/heads/main|pull_request)",
            subject,
        ), subject


# --- the plan role against the calls CI's plan step makes --------------------------------------

RECORDER = '''"""python ARGS, recording every botocore call to $RECORD_CALLS_TO as JSON lines."""
import json, os, runpy, sys
import botocore.client

original = botocore.client.BaseClient._make_api_call


def recording(self, operation, params):
    call = {"service": self.meta.service_model.service_name, "operation": operation, "params": params}
    with open(os.environ["RECORD_CALLS_TO"], "a") as log:
        log.write(json.dumps(call, default=str) + "\\n")
    return original(self, operation, params)


botocore.client.BaseClient._make_api_call = recording
flag, target, *rest = sys.argv[1:]
if flag == "-m":
    sys.argv = [target, *rest]
    sys.path.insert(0, os.getcwd())
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
'''


def iam_request(call: dict[str, Any]) -> tuple[str, str, dict[str, str]] | None:
    """The IAM action, resource and condition keys that authorise a recorded call; None if none is needed."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return None
    if (service, operation) == ("sagemaker", "DescribePipeline"):
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{params['PipelineName'].lower()}"
        return "sagemaker:DescribePipeline", arn, {}
    if (service, operation) == ("sagemaker", "ListTags"):
        return "sagemaker:ListTags", params["ResourceArn"], {}
    if (service, operation) in (("s3", "ListObjectsV2"), ("s3", "ListObjects")):
        return "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params.get("Prefix", "")}
    if (service, operation) in (("s3", "HeadObject"), ("s3", "GetObject")):
        return "s3:GetObject", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {}
    raise AssertionError(
        f"map {service}:{operation} to its IAM action here, then decide whether the plan role needs it"
    )


def plan(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], str]:
    """``deploy.sh plan`` as CI runs it (no REGISTRY: the account's ECR), with every AWS call recorded."""
    recorder = tmp_path / "record.py"
    recorder.write_text(RECORDER)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{recorder}" "$@"\n')
    python.chmod(0o755)
    calls, summary = tmp_path / "calls.jsonl", tmp_path / "summary.md"
    calls.unlink(missing_ok=True)
    summary.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY", "AWS_ACCOUNT_ID", "GITHUB_STEP_SUMMARY")}
    env |= {"PYTHON": str(python), "RECORD_CALLS_TO": str(calls), "REPOSITORY": "custom-framework"}
    env |= {"GITHUB_STEP_SUMMARY": str(summary), **extra}
    done = subprocess.run([str(DEPLOY), "plan"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done, recorded, summary.read_text() if summary.exists() else ""


def test_the_plan_role_allows_every_call_the_plan_makes_and_the_plan_writes_nothing(aws_env, tmp_path, rendered):
    policy = rendered["plan-role-policy.json"]
    s3 = boto3.client("s3", region_name=REGION)

    before, calls_before, summary = plan(tmp_path)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "does not exist" in before.stdout
    assert "### Pipeline plan" in summary and f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/custom-framework:" in summary
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0

    assert run_cli("upsert").returncode == 0
    objects = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    after, calls_after, summary = plan(tmp_path, PIPELINE_TAGS="team=ml")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "~ Parameters[ImageUri].DefaultValue" in after.stdout, "the plan uses the image a deploy would push"
    assert "~ Parameters[ImageUri].DefaultValue" in summary
    assert s3.list_objects_v2(Bucket=BUCKET)["Contents"] == objects

    requests = [request for call in calls_before + calls_after if (request := iam_request(call))]
    assert ("sagemaker:DescribePipeline", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}", {}) in requests
    denied = [request for request in requests if not allows(policy, *request)]
    assert denied == [], f"the plan role would be refused: {denied}"


def test_the_plan_role_only_describes_and_lists() -> None:
    policy = json.loads((AWS / "plan-role-policy.json").read_text())
    actions = {action for statement in policy["Statement"] for action in as_list(statement["Action"])}
    assert actions == {"sagemaker:DescribePipeline", "sagemaker:ListTags", "s3:ListBucket"}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in as_list(statement["Resource"])
        if "s3:ListBucket" in as_list(statement["Action"]):
            assert statement["Condition"] == {"StringLike": {"s3:prefix": "PIPELINE_NAME/*"}}


def test_the_evaluator_refuses_a_call_outside_the_plan_role(rendered) -> None:
    """The recorded-calls test above can fail: a write, another pipeline, another prefix are refused."""
    policy = rendered["plan-role-policy.json"]
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
    assert allows(policy, "sagemaker:DescribePipeline", arn, {})
    assert not allows(policy, "sagemaker:UpdatePipeline", arn, {})
    assert not allows(policy, "sagemaker:DescribePipeline", arn + "-other", {})
    assert allows(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PIPELINE}/code/"})
    assert not allows(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "other/"})
    assert not allows(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {})
    assert not allows(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PIPELINE}/code/x", {})
