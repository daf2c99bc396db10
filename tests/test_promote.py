"""``promote``: the plan's pure parts, then the whole rehearsal on a moto server: run the pipeline
locally, approve, promote to staging (smoke test against serve-local on the package's artifact),
to prod, a newer package, roll back, refusals, teardown.

moto 5.2.5 stores endpoints but has no UpdateEndpoint (it answers HTTP 500). The server these tests
start adds it, doing what SageMaker's update ends in: the endpoint serves the new config's
variants. Everything else is moto's own.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from moto_server import account_environment, moto_server, reset
from support import BUCKET, IMAGE_URI, REGION, ROLE_ARN, run_cli

from pipeline.definition.settings import Settings
from pipeline.deploy import promote, validate

PIPELINE = "test-pipeline"
UPDATE_ENDPOINT = """
import sys
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse


def update_endpoint(self):
    backend = self.sagemaker_backend
    name, config = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    if name not in backend.endpoints:
        raise ValidationError(message=f"Could not find endpoint '{name}'.")
    described = backend.describe_endpoint_config(config)
    endpoint = backend.endpoints[name]
    endpoint.endpoint_config_name = config
    endpoint.production_variants = endpoint._process_production_variants(described["ProductionVariants"])
    endpoint.data_capture_config = described["DataCaptureConfig"]
    endpoint.last_modified_time = utcnow()
    return ActionResult({"EndpointArn": endpoint.arn})


SageMakerResponse.update_endpoint = update_endpoint
from moto.server import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """A moto server with UpdateEndpoint, on 127.0.0.1, stopped by PID."""
    with moto_server(program=("-c", UPDATE_ENDPOINT)) as endpoint:
        yield endpoint


@pytest.fixture
def account(stand_in: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean account on the stand-in with the bucket, as ``aws_env`` makes one."""
    reset(stand_in)
    env = {
        **account_environment(stand_in),
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "SAGEMAKER_BUCKET": BUCKET,
        "IMAGE_URI": IMAGE_URI,
        "PIPELINE_NAME": PIPELINE,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return env


def sm():
    return boto3.client("sagemaker", region_name=REGION)


def deployed() -> dict[str, list[str]]:
    """Every endpoint, config and model in the account."""
    client = sm()
    return {
        "endpoints": sorted(e["EndpointName"] for e in client.list_endpoints()["Endpoints"]),
        "configs": sorted(c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]),
        "models": sorted(m["ModelName"] for m in client.list_models()["Models"]),
    }


def serving(endpoint: str) -> tuple[dict, dict, dict]:
    """The endpoint, its config and its model, as described."""
    client = sm()
    described = client.describe_endpoint(EndpointName=endpoint)
    config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = client.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return described, config, model


def tags(arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm().list_tags(ResourceArn=arn)["Tags"]}


def one_error_line(done: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_pipeline(tmp_path, max_iter: int) -> str:
    """``run --local --deployed`` (train, evaluate, gate, register): the new package's ARN."""
    done = run_cli("run", "--local", "--deployed", "--param", f"MaxIter={max_iter}", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    packages = sm().list_model_packages(ModelPackageGroupName=PIPELINE, SortBy="CreationTime")
    return packages["ModelPackageSummaryList"][-1]["ModelPackageArn"]


def approve(arn: str, status: str = "Approved") -> None:
    sm().update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)


# --- the rehearsal -------------------------------------------------------------------------------


def test_run_approve_promote_to_staging_and_prod_roll_back_and_tear_down(account, tmp_path):
    assert run_cli("upsert").returncode == 0
    first = run_pipeline(tmp_path / "first", 20)

    # Pending: refused, nothing created.
    refused = run_cli("promote", "staging", "--local")
    one_error_line(refused, 2, "has no Approved package", "PendingManualApproval", first, "nothing was written")
    assert deployed() == {"endpoints": [], "configs": [], "models": []}

    approve(first)
    plan = run_cli("promote", "staging", "--plan")
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert f"+ create endpoint {PIPELINE}-staging on {PIPELINE}-staging-" in plan.stdout
    assert "+ create endpoint config" in plan.stdout and "(1 x ml.m5.large)" in plan.stdout
    assert deployed() == {"endpoints": [], "configs": [], "models": []}, "--plan writes nothing"

    done = run_cli("promote", "staging", "--local", "--poll-seconds", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert plan.stdout.splitlines()[1:] == done.stdout.splitlines()[1 : len(plan.stdout.splitlines())]
    assert "smoke test: text/csv -> text/csv: ok (serve-local on s3://" in done.stdout
    assert "smoke test: application/json -> application/json: ok" in done.stdout
    package = sm().describe_model_package(ModelPackageName=first)
    (spec,) = package["InferenceSpecification"]["Containers"]
    endpoint, config, model = serving(f"{PIPELINE}-staging")
    assert endpoint["EndpointStatus"] == "InService"
    assert model["PrimaryContainer"]["Image"] == spec["Image"] == IMAGE_URI
    assert model["PrimaryContainer"]["ModelDataUrl"] == spec["ModelDataUrl"]
    assert model["PrimaryContainer"]["Environment"] == spec["Environment"]
    assert tags(config["EndpointConfigArn"])[promote.PACKAGE_TAG] == first
    assert "DataCaptureConfig" not in config or not config["DataCaptureConfig"]

    again = run_cli("promote", "staging", "--plan")
    assert again.returncode == 0 and "already serves it" in again.stdout

    # A wrong answer fails the promotion: a CSV row with too few features.
    short = tmp_path / "short.csv"
    short.write_text("0.1,0.2\n")
    failed = run_cli("promote", "staging", "--local", "--sample", f"text/csv={short}")
    one_error_line(failed, 1, "smoke test of serve-local", "text/csv -> HTTP 400: each row needs 8 values")

    # Prod: its own endpoint, two instances, data capture.
    done = run_cli("promote", "prod", "--local", "--poll-seconds", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    prod, prod_config, _ = serving(f"{PIPELINE}-prod")
    (variant,) = prod_config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 2)
    capture = prod_config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/{PIPELINE}/data-capture/prod"

    # A newer approved package: prod is updated in place (UpdateEndpoint), the old package recorded.
    second = run_pipeline(tmp_path / "second", 30)
    approve(second)
    done = run_cli("promote", "prod", "--local", "--poll-seconds", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"~ update endpoint {PIPELINE}-prod to " in done.stdout and "(blue/green)" in done.stdout
    updated, updated_config, _ = serving(f"{PIPELINE}-prod")
    assert tags(updated_config["EndpointConfigArn"])[promote.PACKAGE_TAG] == second
    assert tags(updated["EndpointArn"])[promote.PREVIOUS_TAG] == first

    # Roll back: the first package's config still exists, so only UpdateEndpoint.
    back = run_cli("promote", "prod", "--rollback", "--local", "--poll-seconds", "0.1")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "+ create" not in back.stdout
    assert f"~ update endpoint {PIPELINE}-prod to {prod['EndpointConfigName']}" in back.stdout
    rolled, _, _ = serving(f"{PIPELINE}-prod")
    assert rolled["EndpointConfigName"] == prod["EndpointConfigName"]
    assert tags(rolled["EndpointArn"])[promote.PREVIOUS_TAG] == second

    # Rejected since: a rollback to it is refused, nothing changes.
    approve(second, "Rejected")
    before = deployed()
    refused = run_cli("promote", "prod", "--rollback")
    one_error_line(refused, 2, f"model package {second} is Rejected, not Approved", "nothing was written")
    assert deployed() == before
    assert serving(f"{PIPELINE}-prod")[0]["EndpointConfigName"] == prod["EndpointConfigName"]

    # Teardown of staging: its endpoint, configs and models go; prod's stay.
    plan = run_cli("promote", "staging", "--delete", "--plan")
    assert plan.returncode == 1 and f"- delete endpoint {PIPELINE}-staging" in plan.stdout
    assert deployed() == before
    done = run_cli("promote", "staging", "--delete")
    assert done.returncode == 0, done.stdout + done.stderr
    left = deployed()
    assert left["endpoints"] == [f"{PIPELINE}-prod"]
    assert all(name.startswith(f"{PIPELINE}-prod-") for name in left["configs"] + left["models"])
    assert len(left["configs"]) == 2 and len(left["models"]) == 2
    assert run_cli("promote", "staging", "--delete").stdout.startswith("nothing to delete")


def test_the_endpoint_smoke_test_goes_through_sagemaker_runtime(account):
    """Without --local the answers come from InvokeEndpoint; moto's are queued here, one bad."""
    group = PIPELINE
    client = sm()
    client.create_model_package_group(ModelPackageGroupName=group)
    arn = client.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE_URI, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    queue = {"results": [{"Body": "1\n0\n", "ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic"}]}
    request = urllib.request.Request(
        f"{account['AWS_ENDPOINT_URL']}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(queue).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    done = run_cli("promote", "staging", "--poll-seconds", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"smoke test: text/csv -> text/csv: ok (endpoint {PIPELINE}-staging)" in done.stdout
    assert f"promoted {arn} to staging" in done.stdout
    wrong = run_cli("promote", "staging", "--sample", "text/csv=/dev/null")  # moto's default answer next
    one_error_line(wrong, 1, f"smoke test of endpoint {PIPELINE}-staging failed", "answered content_type")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["promote", "Prod"], ["stage 'Prod'", "lowercase"]),
        (["promote", "qa"], ["stage qa has no defaults", "--instance-type"]),
        (["promote", "prod", "--data-capture", "101"], ["--data-capture 101", "0 (off) to 100"]),
        (["promote", "prod", "--bake-seconds", "4000"], ["--bake-seconds 4000", "0 to 3600"]),
        (["promote", "prod", "--sample", "text/csv"], ["is not TYPE=FILE"]),
        (["promote", "prod", "--rollback", "--delete"], ["not allowed with argument"]),
        (["promote", "staging"], ["model package group test-pipeline holds no package"]),
        (["promote", "staging", "--rollback"], ["stage staging has no endpoint: nothing to roll back"]),
        (["promote", "qa", "--instance-type", "ml.m5.huge"], ["ml.m5.huge", "InstanceType"]),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(account, args, fragments):
    if args[1] == "qa" and len(args) > 2:  # reaches the plan: needs an approved package
        client = sm()
        client.create_model_package_group(ModelPackageGroupName=PIPELINE)
        client.create_model_package(
            ModelPackageGroupName=PIPELINE,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE_URI, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
    one_error_line(run_cli(*args), 2, *fragments)
    assert deployed() == {"endpoints": [], "configs": [], "models": []}


# --- pure parts ----------------------------------------------------------------------------------

SETTINGS = Settings(PIPELINE, REGION, ROLE_ARN, BUCKET, IMAGE_URI)
PACKAGE = {
    "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{PIPELINE}/3",
    "ModelApprovalStatus": "Approved",
    "InferenceSpecification": {
        "Containers": [{"Image": IMAGE_URI, "ModelDataUrl": "s3://b/model.tar.gz", "Environment": {"A": "1"}}],
        "SupportedContentTypes": ["text/csv", "application/json"],
        "SupportedResponseMIMETypes": ["text/csv", "application/json"],
    },
}
NOTHING = promote.Observed(None, {}, {}, frozenset(), frozenset())


@pytest.mark.parametrize("pipeline", ["p", "a" * 63, "A-b" * 40, "x-" * 100 + "y"])
def test_names_fit_sagemakers_limits_and_are_deterministic(pipeline):
    planned = promote.make(
        Settings(pipeline, REGION, ROLE_ARN, BUCKET, IMAGE_URI), promote.DEFAULT_STAGES["prod"], PACKAGE, NOTHING
    )  # make() checks every request against botocore's model
    assert [op for op, _ in planned.calls] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    for name in (planned.endpoint, planned.model_name, planned.config_name):
        assert not validate.problems("DeleteEndpoint", {"EndpointName": name}), name
    assert planned.model_name != planned.config_name
    again = promote.make(
        Settings(pipeline, REGION, ROLE_ARN, BUCKET, IMAGE_URI), promote.DEFAULT_STAGES["prod"], PACKAGE, NOTHING
    )
    assert again == planned


def test_other_settings_make_another_config_the_same_model():
    prod = promote.make(SETTINGS, promote.DEFAULT_STAGES["prod"], PACKAGE, NOTHING)
    bigger = promote.make(SETTINGS, promote.stage("prod", instance_type="ml.c5.xlarge"), PACKAGE, NOTHING)
    assert bigger.model_name == prod.model_name and bigger.config_name != prod.config_name


def test_the_newest_approved_package_is_chosen_by_version():
    summaries = [
        {"ModelPackageArn": "a/10", "ModelPackageVersion": 10, "ModelApprovalStatus": "Approved"},
        {"ModelPackageArn": "a/9", "ModelPackageVersion": 9, "ModelApprovalStatus": "Approved"},
        {"ModelPackageArn": "a/11", "ModelPackageVersion": 11, "ModelApprovalStatus": "Rejected"},
        {"ModelPackageArn": "a/12", "ModelPackageVersion": 12, "ModelApprovalStatus": "PendingManualApproval"},
    ]
    assert promote.newest_approved("a", summaries) == "a/10"


def test_an_update_is_blue_green_on_the_same_variant_and_records_the_previous_package():
    endpoint = {
        "EndpointName": f"{PIPELINE}-prod",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{PIPELINE}-prod",
        "EndpointConfigName": "old",
        "EndpointStatus": "InService",
    }
    observed = promote.Observed(endpoint, {}, {promote.PACKAGE_TAG: "old-package"}, frozenset(), frozenset({"old"}))
    stage = promote.stage("prod", alarms=["p99-latency"])
    planned = promote.make(SETTINGS, stage, PACKAGE, observed)
    (update,) = [request for op, request in planned.calls if op == "UpdateEndpoint"]
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TerminationWaitInSeconds"] == 600
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "p99-latency"}]}
    (config,) = [request for op, request in planned.calls if op == "CreateEndpointConfig"]
    assert config["ProductionVariants"][0]["VariantName"] == promote.VARIANT
    assert planned.after == (
        (
            "AddTags",
            {"ResourceArn": endpoint["EndpointArn"], "Tags": [{"Key": promote.PREVIOUS_TAG, "Value": "old-package"}]},
        ),
    )
    busy = promote.Observed({**endpoint, "EndpointStatus": "Updating"}, {}, {}, frozenset(), frozenset())
    with pytest.raises(promote.SettingsError, match="is Updating: wait"):
        promote.make(SETTINGS, stage, PACKAGE, busy)


def test_answers_are_checked_for_status_type_and_content():
    csv, json_probe = promote.probes(PACKAGE, promote.default_samples())
    assert csv.body.decode().count("\n") == 2 and len(json.loads(json_probe.body)) == 2
    assert promote.answer_problem(csv, 200, "text/csv", b"1\n0\n") is None
    assert promote.answer_problem(csv, 200, "text/csv; charset=utf-8", b"1\n") is None
    assert promote.answer_problem(csv, 500, "text/plain", b"boom") == "HTTP 500: boom"
    assert promote.answer_problem(csv, 200, "text/csv", b" \n") == "an empty answer"
    assert (
        promote.answer_problem(csv, 200, "application/json", b"{}") == "answered application/json, asked for text/csv"
    )
    assert promote.answer_problem(json_probe, 200, "application/json", b"nope").startswith("not JSON")
    other = {
        **PACKAGE,
        "InferenceSpecification": {**PACKAGE["InferenceSpecification"], "SupportedContentTypes": ["image/png"]},
    }
    with pytest.raises(promote.SettingsError, match="pass --sample image/png=FILE"):
        promote.probes(other, promote.default_samples())
