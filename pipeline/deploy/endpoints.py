"""The account's side of a promotion: what is deployed (packages, the stage's endpoint, its configs
and models), the plan's writes once checked, the wait for the endpoint, and its invocations.

Reads come first and write nothing; :func:`apply` is the only writer and makes exactly the calls
:func:`pipeline.deploy.promote.make` checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pipeline.deploy.promote import DIGEST, ENDPOINT_TAG, MAX_NAME, Observed, Probe
from pipeline.errors import AwsError


def _missing(error: Exception) -> bool:
    """SageMaker says a resource does not exist with a ValidationException "Could not find ..."."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    info = error.response.get("Error", {})
    return info.get("Code") == "ResourceNotFound" or "could not find" in str(info.get("Message", "")).lower()


def _tags(sm: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn).get("Tags", [])}


# --- packages ------------------------------------------------------------------------------------


def packages(sm: Any, group: str) -> list[dict[str, Any]]:
    """Every package of ``group`` (a name, or an ARN in another account), as ListModelPackages lists them."""
    pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
    return [summary for page in pages for summary in page.get("ModelPackageSummaryList", [])]


def package(sm: Any, arn: str) -> dict[str, Any]:
    """DescribeModelPackage's answer, or an error naming the ARN."""
    try:
        return sm.describe_model_package(ModelPackageName=arn)
    except Exception as error:
        if _missing(error):
            raise AwsError(f"model package {arn} does not exist (deleted?): promote another one") from None
        raise


# --- the stage's endpoint ------------------------------------------------------------------------


def _owned(sm: Any, kind: str, endpoint: str) -> Iterator[str]:
    """Names of the ``kind`` ("models", "endpoint_configs") made for ``endpoint``: its name prefix, and its tag."""
    arn_key, name_key, listed = {
        "models": ("ModelArn", "ModelName", "Models"),
        "endpoint_configs": ("EndpointConfigArn", "EndpointConfigName", "EndpointConfigs"),
    }[kind]
    prefix = endpoint[: MAX_NAME - DIGEST - 1]
    for page in sm.get_paginator(f"list_{kind}").paginate(NameContains=prefix):
        for item in page.get(listed, []):
            if item[name_key].startswith(prefix) and _tags(sm, item[arn_key]).get(ENDPOINT_TAG) == endpoint:
                yield item[name_key]


def observe(sm: Any, endpoint: str) -> Observed:
    """The endpoint (None if absent), its tags, its config's tags, and the configs and models made for it."""
    try:
        described = sm.describe_endpoint(EndpointName=endpoint)
    except Exception as error:
        if not _missing(error):
            raise
        described = None
    endpoint_tags, config_tags = {}, {}
    if described:
        endpoint_tags = _tags(sm, described["EndpointArn"])
        try:
            config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
            config_tags = _tags(sm, config["EndpointConfigArn"])
        except Exception as error:  # deleted by hand: the endpoint still runs, on a config nobody can read
            if not _missing(error):
                raise
    return Observed(
        endpoint=described,
        endpoint_tags=endpoint_tags,
        config_tags=config_tags,
        models=frozenset(_owned(sm, "models", endpoint)),
        configs=frozenset(_owned(sm, "endpoint_configs", endpoint)),
    )


# --- writes --------------------------------------------------------------------------------------


def apply(sm: Any, calls: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Make ``calls``, which the plan checked whole, in order."""
    from botocore import xform_name

    for operation, request in calls:
        getattr(sm, xform_name(operation))(**request)


def wait_in_service(
    sm: Any, endpoint: str, config: str, poll_seconds: float, timeout: float, say: Callable[[str], None]
) -> None:
    """Wait until the endpoint is InService on ``config``; a failed or rolled-back update is an error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint)
        status, serving = described["EndpointStatus"], described["EndpointConfigName"]
        if status != last:
            say(f"endpoint {endpoint}: {status}")
            last = status
        if status == "InService" and serving == config:
            return
        if status == "Failed":
            raise AwsError(f"endpoint {endpoint} failed: {described.get('FailureReason', 'no reason given')}")
        if status == "InService":  # an update that rolled back: the old config serves again
            raise AwsError(
                f"endpoint {endpoint} is InService on {serving}, not {config}: the update rolled back"
                f" ({described.get('FailureReason', 'no reason given')})"
            )
        if time.monotonic() > deadline:
            raise AwsError(f"endpoint {endpoint} is still {status} after {timeout:.0f} s: see it in the console")
        time.sleep(poll_seconds)


# --- invocations ---------------------------------------------------------------------------------


def invoke(runtime: Any, endpoint: str, probe: Probe) -> tuple[int, str | None, bytes]:
    """Send ``probe`` through sagemaker-runtime; the container's own error (ModelError) is an answer too."""
    from botocore.exceptions import ClientError

    try:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType=probe.content_type, Accept=probe.accept, Body=probe.body
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ModelError":
            raise
        status = int(error.response.get("OriginalStatusCode") or 500)
        return status, None, str(error.response.get("OriginalMessage") or error).encode()
    return 200, answer.get("ContentType"), answer["Body"].read()
