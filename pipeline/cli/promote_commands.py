"""``promote STAGE``: the stage's endpoint on the newest Approved model package, a plan first, then a
smoke test; ``--rollback`` to the package served before, ``--delete`` to tear the stage down.

``--local`` sends the smoke test to ``serve-local`` serving the package's own artifact and code
(downloaded from its S3 URIs) instead of the endpoint: on an AWS stand-in, which runs no
containers, that makes the rehearsal's answers real.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.cli import common
from pipeline.errors import ExitStatus, SettingsError

DEPLOY_FIELDS = ("region", "role_arn", "bucket", "tags")  # role: the models' execution role; bucket: data capture
SERVE_START_SECONDS = 60
CHANGES = ("CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint")


def _samples(pairs: list[str]) -> dict[str, bytes]:
    """``--sample TYPE=FILE`` read, on top of the sample data's CSV and JSON rows."""
    from pipeline.deploy import promote

    samples = promote.default_samples()
    for pair in pairs:
        content_type, sep, path = pair.partition("=")
        if not sep or not content_type or not path:
            raise SettingsError(f"--sample {pair!r} is not TYPE=FILE (e.g. text/csv=rows.csv)")
        samples[content_type] = Path(path).read_bytes()
    return samples


def cmd_promote(args: argparse.Namespace) -> int:
    from pipeline import aws
    from pipeline.deploy import endpoints, promote

    stage = promote.stage(
        args.stage, args.instance_type, args.instance_count, args.data_capture, args.bake_seconds, args.alarm
    )
    settings = common.settings(args, fields=("region",) if args.delete else DEPLOY_FIELDS)
    samples = _samples(args.sample)
    sm = aws.client("sagemaker", settings.region)
    endpoint = promote.endpoint_name(settings.pipeline_name, stage.name)
    observed = endpoints.observe(sm, endpoint)
    if args.delete:
        return _teardown(sm, promote.teardown(endpoint, observed), args.plan)

    group = args.model_package_group or settings.pipeline_name
    if args.rollback:
        arn = promote.rollback_package(stage.name, observed)
    else:
        arn = args.model_package or promote.newest_approved(group, endpoints.packages(sm, group))
    package = endpoints.package(sm, arn)
    planned = promote.make(settings, stage, package, observed)
    print(
        f"stage {stage.name}: endpoint {endpoint} <- {arn}"
        + (f" (serving {observed.serving})" if observed.serving else "")
    )
    for line in planned.lines():
        print(line)
    if planned.empty:
        print(f"endpoint {endpoint} already serves it")
    if args.plan:
        return ExitStatus.OK if planned.empty else ExitStatus.CHANGED

    endpoints.apply(sm, planned.calls)
    if any(operation in CHANGES[2:] for operation, _ in planned.calls):
        endpoints.wait_in_service(sm, endpoint, planned.config_name, args.poll_seconds, args.timeout, print)
    endpoints.apply(sm, planned.after)  # the previous package, once the new one serves
    operations = {operation for operation, _ in planned.calls}
    undo = (
        f"; go back with: {common.cli_command()} promote {stage.name} --rollback"
        if "UpdateEndpoint" in operations
        else f"; remove it with: {common.cli_command()} promote {stage.name} --delete"
        if "CreateEndpoint" in operations
        else ""
    )
    _smoke_test(settings.region, endpoint, package, promote.probes(package, samples), args.local, undo)
    print(f"promoted {arn} to {stage.name} ({endpoint})")
    return ExitStatus.OK


def _teardown(sm: Any, planned: Any, plan_only: bool) -> int:
    from pipeline.deploy import endpoints

    for line in planned.lines():
        print(line)
    if planned.empty:
        print(f"nothing to delete: no endpoint {planned.endpoint}, and no config or model made for it")
        return ExitStatus.OK
    if plan_only:
        return ExitStatus.CHANGED
    endpoints.apply(sm, planned.calls)
    print(f"deleted endpoint {planned.endpoint} and its {len(planned.calls) - 1} configs and models")
    return ExitStatus.OK


# --- the smoke test ------------------------------------------------------------------------------


def _smoke_test(
    region: str, endpoint: str, package: Mapping[str, Any], probes: list[Any], local: bool, undo: str
) -> None:
    """Each probe's answer checked; the first wrong one fails the promotion, saying how to undo it."""
    from pipeline import aws
    from pipeline.deploy import endpoints, promote

    with contextlib.ExitStack() as stack:
        if local:
            url = stack.enter_context(served(package, region))
            send: Callable[[Any], tuple[int, str | None, bytes]] = lambda probe: _post(url, probe)  # noqa: E731
            where = f"serve-local on {package['InferenceSpecification']['Containers'][0]['ModelDataUrl']}"
        else:
            runtime = aws.client("sagemaker-runtime", region)
            send = lambda probe: endpoints.invoke(runtime, endpoint, probe)  # noqa: E731
            where = f"endpoint {endpoint}"
        for probe in probes:
            problem = promote.answer_problem(probe, *send(probe))
            if problem:
                raise promote.SmokeTestFailed(f"smoke test of {where} failed: {probe.content_type} -> {problem}{undo}")
            print(f"smoke test: {probe.content_type} -> {probe.accept}: ok ({where})")


def _post(url: str, probe: Any) -> tuple[int, str | None, bytes]:
    headers = {"Content-Type": probe.content_type, "Accept": probe.accept}
    request = urllib.request.Request(f"{url}/invocations", data=probe.body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers.get("Content-Type"), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read()


def _download(s3: Any, uri: str, target: Path) -> Path:
    from pipeline import aws

    bucket, key = aws.split_s3_uri(uri)
    target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return target


@contextlib.contextmanager
def served(package: Mapping[str, Any], region: str) -> Iterator[str]:
    """``serve-local`` on the package's ``model.tar.gz`` and its code archive (``SAGEMAKER_SUBMIT_DIRECTORY``),
    with the package's environment, as the endpoint's container gets them; stopped by PID afterwards."""
    from custom_framework_training import archives
    from pipeline import aws

    spec = package["InferenceSpecification"]["Containers"][0]
    environment = dict(spec.get("Environment", {}))
    code_uri = environment.pop("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if not code_uri.startswith("s3://"):
        raise SettingsError(
            f"model package {package['ModelPackageArn']} names no s3:// SAGEMAKER_SUBMIT_DIRECTORY:"
            " --local cannot find its handlers; smoke-test the endpoint instead (without --local)"
        )
    s3 = aws.client("s3", region)
    with tempfile.TemporaryDirectory(prefix="promote-local-") as work:
        folder = Path(work)
        model = _download(s3, spec["ModelDataUrl"], folder / "model.tar.gz")
        code = folder / "code"
        archives.extract(_download(s3, code_uri, folder / "sourcedir.tar.gz"), code)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "pipeline", "serve-local", "--model", str(model), "--source-dir", str(code)]
        log = folder / "serve-local.log"  # a file, not a pipe nobody reads while the server runs
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*command, "--port", str(port), "--workers", "1"], env={**os.environ, **environment}, stderr=out
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_for_ping(url, server, log)
                yield url
            finally:
                server.terminate()
                server.wait(timeout=30)


def _wait_for_ping(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVE_START_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace").strip()[-300:]
                raise SettingsError(f"serve-local did not start on the package's artifact: {said}") from None
            time.sleep(0.1)
