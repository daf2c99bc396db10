"""Promotion's IAM policies, trust and notifications, checked as the project checks the deploy's:
rendered by docs/promotion.md's own commands, evaluated the way IAM does against every AWS call
``promote`` makes on a moto server, and the EventBridge patterns matched by moto's event bus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import BUCKET, IMAGE_URI, REGION, ROLE_ARN
from test_deploy_roles import FOREIGN_SUBJECTS, OWNER, OWNER_ID, PROVIDER, REPO, REPO_ID, allows, allows_web_identity
from test_promote import PIPELINE, account, stand_in  # noqa: F401  (fixtures)

from pipeline import cli

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "promotion.md"
FILES = ROOT / ".github" / "aws" / "promotion"
WORKFLOW = ROOT / ".github" / "workflows" / "promote.yml"
ACCOUNT = "123456789012"  # moto's: the model account and, here, both stage accounts


def guide_block(containing: str) -> str:
    blocks = re.findall(r"^```bash\n(.*?)^```", GUIDE.read_text(), re.S | re.M)
    (found,) = [block for block in blocks if containing in block]
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The guide's step 1, as written, with a ``gh`` that answers like GitHub: {"STAGE/file": policy}."""
    tmp = tmp_path_factory.mktemp("promotion")
    gh = tmp / "bin" / "gh"
    gh.parent.mkdir()
    gh.write_text(f'#!/usr/bin/env bash\ncase "$4" in .owner.id) echo {OWNER_ID} ;; .id) echo {REPO_ID} ;; esac\n')
    gh.chmod(0o755)
    values = {
        "REGION": REGION,
        "MODEL_ACCOUNT_ID": ACCOUNT,
        "STAGING_ACCOUNT_ID": ACCOUNT,
        "PROD_ACCOUNT_ID": ACCOUNT,
        "GITHUB_OWNER": OWNER,
        "GITHUB_REPO": REPO,
        "PIPELINE_NAME": PIPELINE,
        "EXECUTION_ROLE_NAME": ROLE_ARN.rsplit("/", 1)[1],
        "POLICIES": str(tmp / "out"),
    }
    env = {**os.environ, **values, "PATH": f"{gh.parent}:{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + guide_block('gh api "repos/$GITHUB_OWNER/$GITHUB_REPO" --jq .id')
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = {f"{p.parent.name}/{p.name}": p.read_text() for p in sorted((tmp / "out").glob("*/*.json"))}
    assert len(out) == 2 * len(list(FILES.glob("*.json")))
    leftovers = re.compile(r"GITHUB_\w+|ACCOUNT_ID|\bREGION\b|PIPELINE_NAME|EXECUTION_ROLE|\bSTAGE\b")
    for name, text in out.items():
        assert not leftovers.search(text), f"{name} still has a placeholder"
    return {name: json.loads(text) for name, text in out.items()}


@pytest.mark.parametrize("stage, other", [("staging", "prod"), ("prod", "staging")])
def test_a_stage_role_trusts_its_environment_in_both_subject_forms_and_nothing_else(rendered, stage, other):
    trust = rendered[f"{stage}/github-oidc-promote-trust-policy.json"]
    assert trust["Statement"][0]["Principal"] == {"Federated": PROVIDER}
    assert allows_web_identity(trust, f"repo:{OWNER}/{REPO}:environment:{stage}")
    assert allows_web_identity(trust, f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:environment:{stage}")
    refused = [
        *FOREIGN_SUBJECTS,
        f"repo:{OWNER}/{REPO}:environment:{other}",
        f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:environment:{other}",
        f"repo:{OWNER}/{REPO}:environment:{stage.upper()}",
        f"repo:{OWNER}/{REPO}:ref:refs/heads/main",
        f"repo:{OWNER}/{REPO}:pull_request",
    ]
    for sub in refused:
        assert not allows_web_identity(trust, sub), sub
    assert not allows_web_identity(trust, f"repo:{OWNER}/{REPO}:environment:{stage}", aud="https://github.com/x")


# --- every call promote makes, against the stage's policy ----------------------------------------


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def iam_requests(call: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """The IAM action, resource and condition keys each recorded call needs (tags on create need AddTags)."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if service == "sagemaker-runtime" and operation == "InvokeEndpoint":
        return [("sagemaker:InvokeEndpoint", arn("endpoint", params["EndpointName"]), {})]
    assert service == "sagemaker", f"map {service}:{operation} to its IAM action here"
    action = f"sagemaker:{operation}"
    if operation in ("ListModelPackages", "ListModels", "ListEndpointConfigs"):
        return [(action, "*", {})]
    if operation == "DescribeModelPackage":
        return [(action, params["ModelPackageName"], {})]
    if operation in ("ListTags", "AddTags"):
        return [(action, params["ResourceArn"], {})]
    kinds = {"Model": "model", "EndpointConfig": "endpoint-config", "Endpoint": "endpoint"}
    kind = operation.removeprefix("Describe").removeprefix("Create").removeprefix("Delete").removeprefix("Update")
    resource = arn(kinds[kind], params[f"{kind}Name"])
    found = [(action, resource, {})]
    if operation in ("CreateEndpoint", "UpdateEndpoint"):
        found.append((action, arn("endpoint-config", params["EndpointConfigName"]), {}))
    if operation.startswith("Create") and params.get("Tags"):
        found.append(("sagemaker:AddTags", resource, {}))
    if operation == "CreateModel":
        found.append(("iam:PassRole", params["ExecutionRoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return found


def package(status: str = "Approved") -> str:
    client = boto3.session.Session().client("sagemaker", region_name=REGION)  # not recorded
    groups = client.list_model_package_groups()["ModelPackageGroupSummaryList"]
    if not groups:
        client.create_model_package_group(ModelPackageGroupName=PIPELINE)
    return client.create_model_package(
        ModelPackageGroupName=PIPELINE,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE_URI, "ModelDataUrl": f"s3://{BUCKET}/{PIPELINE}/m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def test_the_stage_role_allows_every_call_promote_makes_and_the_other_stage_role_none(account, rendered, capsys):  # noqa: F811
    answers = {"results": [{"Body": "1\n0\n", "ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic"}]}
    request = urllib.request.Request(
        f"{account['AWS_ENDPOINT_URL']}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(answers).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    calls: list[dict[str, Any]] = []

    def record(model, params, **_):
        calls.append({"service": model.service_model.service_name, "operation": model.name, "params": params})

    package()
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-parameter-build", record)
    try:
        fast = ["--poll-seconds", "0.01"]
        assert cli.main(["promote", "staging", *fast]) == 0, capsys.readouterr()
        package()
        for args in (["staging"], ["staging", "--rollback"], ["staging", "--delete"]):
            assert cli.main(["promote", *args, *fast]) == 0, capsys.readouterr()
    finally:
        boto3.DEFAULT_SESSION = None
    operations = {call["operation"] for call in calls}
    assert {
        "CreateModel",
        "CreateEndpoint",
        "UpdateEndpoint",
        "AddTags",
        "InvokeEndpoint",
        "DeleteEndpoint",
    } <= operations
    requests = [request for call in calls for request in iam_requests(call)]
    staging, prod = rendered["staging/promote-role-policy.json"], rendered["prod/promote-role-policy.json"]
    assert [r for r in requests if not allows(staging, *r)] == []
    scoped = [r for r in requests if r[1] != "*" and not r[0].startswith(("iam:", "sagemaker:DescribeModelPackage"))]
    assert scoped and [r for r in scoped if allows(prod, *r)] == [], "prod's role reaches staging's endpoint"


def test_the_promote_policy_scopes_every_write_to_its_stage(rendered):
    policy = rendered["staging/promote-role-policy.json"]
    assert allows(policy, "sagemaker:UpdateEndpoint", arn("endpoint", f"{PIPELINE}-staging"), {})
    assert not allows(policy, "sagemaker:UpdateEndpoint", arn("endpoint", f"{PIPELINE}-staging-x"), {})
    assert not allows(policy, "sagemaker:DeleteEndpoint", arn("endpoint", "another-endpoint"), {})
    assert not allows(policy, "sagemaker:CreateModel", arn("model", f"other-{PIPELINE}-staging-1"), {})
    assert not allows(policy, "sagemaker:DescribeModelPackage", arn("model-package", "other-group/1"), {})
    other_role = f"arn:aws:iam::{ACCOUNT}:role/admin"
    assert not allows(policy, "iam:PassRole", other_role, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", ROLE_ARN, {"iam:PassedToService": "ec2.amazonaws.com"})
    for statement in policy["Statement"]:
        if statement["Resource"] == "*":
            assert all(action.startswith("sagemaker:List") for action in statement["Action"])


# --- the workflow --------------------------------------------------------------------------------


def test_the_workflow_waits_on_prod_after_staging_with_pinned_actions_and_least_privilege():
    import yaml

    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True] == {  # PyYAML reads the key `on` as True
        "repository_dispatch": {"types": ["model-package-approved"]},
        "workflow_dispatch": workflow[True]["workflow_dispatch"],
    }
    assert workflow["permissions"] == {"contents": "read"}
    staging, prod = workflow["jobs"]["staging"], workflow["jobs"]["prod"]
    assert (staging["environment"], prod["environment"], prod["needs"]) == ("staging", "prod", "staging")
    for job in (staging, prod):
        assert job["runs-on"] == "ubuntu-24.04"
        assert job["permissions"] == {"id-token": "write", "contents": "read"}
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step["name"]
    ci_pins = set(re.findall(r"uses: (\S+@[0-9a-f]{40}) # (v[\d.]+)", (ROOT / ".github/workflows/ci.yml").read_text()))
    ci_pins |= set(
        re.findall(r"uses: (\S+@[0-9a-f]{40}) # (v[\d.]+)", (ROOT / ".github/workflows/deploy.yml").read_text())
    )
    pins = set(re.findall(r"uses: (\S+) # (v[\d.]+)", text))
    assert pins and pins <= ci_pins
    assert "promote staging" in text and 'promote prod --model-package "$MODEL_PACKAGE"' in text


def test_zizmor_finds_nothing_in_the_workflow():
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    zizmor = ROOT / ".venv" / "bin" / "zizmor"
    done = subprocess.run(
        [str(zizmor), "--offline", "--no-ignores", "--format", "json", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout) == [], done.stdout + done.stderr


# --- notifications -------------------------------------------------------------------------------


def sample_event(detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"Source": "aws.sagemaker", "DetailType": detail_type, "Detail": json.dumps(detail)}


PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
EXECUTION = "SageMaker Model Building Pipeline Execution Status Change"
PACKAGE = "SageMaker Model Package State Change"
EVENTS = {
    "failed run": sample_event(EXECUTION, pipelineArn=PIPELINE_ARN, currentPipelineExecutionStatus="Failed"),
    "succeeded run": sample_event(EXECUTION, pipelineArn=PIPELINE_ARN, currentPipelineExecutionStatus="Succeeded"),
    "another pipeline failed": sample_event(
        EXECUTION, pipelineArn=PIPELINE_ARN + "-other", currentPipelineExecutionStatus="Failed"
    ),
    "pending package": sample_event(
        PACKAGE, ModelPackageGroupName=PIPELINE, ModelApprovalStatus="PendingManualApproval"
    ),
    "approved package": sample_event(PACKAGE, ModelPackageGroupName=PIPELINE, ModelApprovalStatus="Approved"),
    "another group pending": sample_event(
        PACKAGE, ModelPackageGroupName="other", ModelApprovalStatus="PendingManualApproval"
    ),
}


def test_the_rules_notify_a_failed_run_and_a_pending_package_and_nothing_else(account, rendered):  # noqa: F811
    """The topic and rules made from the guide's files on moto; then each rule's target is a queue, to
    see through moto's own event bus which sample events it matches (moto delivers to SQS, not SNS)."""
    sns, events, sqs = (boto3.client(s, region_name=REGION) for s in ("sns", "events", "sqs"))
    topic = sns.create_topic(Name=f"{PIPELINE}-notifications")["TopicArn"]
    policy = rendered["staging/notifications-topic-policy.json"]
    assert policy["Statement"][0]["Resource"] == topic
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
    matched: dict[str, set[str]] = {}
    for rule in ("failed-execution", "pending-approval", "approved"):
        pattern = json.dumps(rendered[f"staging/{rule}-pattern.json"])
        events.put_rule(Name=f"{PIPELINE}-{rule}", EventPattern=pattern)
        queue = sqs.create_queue(QueueName=rule)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_targets(Rule=f"{PIPELINE}-{rule}", Targets=[{"Id": "sns", "Arn": topic}])  # as the guide
        listed = events.list_targets_by_rule(Rule=f"{PIPELINE}-{rule}")["Targets"]
        assert [(t["Id"], t["Arn"]) for t in listed] == [("sns", topic)]
        # moto's PutEvents answers HTTP 500 with an SNS target: the queue stands in for it from here.
        events.remove_targets(Rule=f"{PIPELINE}-{rule}", Ids=["sns"])
        events.put_targets(Rule=f"{PIPELINE}-{rule}", Targets=[{"Id": "observer", "Arn": queue_arn}])
        matched[rule] = set()
        for name, event in EVENTS.items():
            events.put_events(Entries=[event])
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if received:
                matched[rule].add(name)
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
    assert matched == {
        "failed-execution": {"failed run"},
        "pending-approval": {"pending package"},
        "approved": {"approved package"},
    }
    transformer = rendered["staging/dispatch-input-transformer.json"]
    assert transformer["InputPathsMap"] == {"package": "$.detail.ModelPackageArn"}
    body = transformer["InputTemplate"].replace("<package>", json.dumps("arn:example"))
    assert json.loads(body) == {
        "event_type": "model-package-approved",
        "client_payload": {"model_package_arn": "arn:example"},
    }
