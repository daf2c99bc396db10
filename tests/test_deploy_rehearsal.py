"""The deploy, rehearsed on this machine: the script the deploy workflow runs
(.github/scripts/deploy.sh), with podman (docker where one answers), a real registry on loopback
(Debian's docker-registry) and the pipeline upserted to moto.

Marked ``container`` (``pytest -m container``, after tests/test_container.py, whose image build
this one reuses through the layer cache: same content, same tag).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto_server import free_port
from servers import answers, wait_until

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / ".github" / "scripts" / "deploy.sh"
IMAGE_TAG = ROOT / "framework_image" / "image-tag.sh"
REPOSITORY = "custom-framework"
# A first build with its base image takes minutes on 2 cores; a cached one, seconds.
DEPLOY_TIMEOUT = 1800
REGISTRY_START_TIMEOUT = 120  # a bound far above need (it answers in well under a second), not a speed check
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def engine(engine: str) -> str:
    """The session's engine, unless this run is the image test inside a deploy (no rehearsal there)."""
    if os.environ.get("CONTAINER_IMAGE"):
        pytest.skip("CONTAINER_IMAGE is set: this is the image test run inside a deploy, not a rehearsal of one")
    return engine


def _registry_binary() -> str:
    """Debian's docker-registry, installed with apt when missing (as build-local.sh does for podman)."""
    found = shutil.which("docker-registry")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("docker-registry is not installed and installing it needs root: apt-get install docker-registry")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "docker-registry"], env=env, capture_output=True, timeout=600, check=True
    )
    return shutil.which("docker-registry") or pytest.fail("apt-get installed docker-registry but it is not on PATH")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A registry on 127.0.0.1 with its own config and storage; yields its address and access log."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log_path = tmp_path / "registry.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([_registry_binary(), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        ping = f"http://127.0.0.1:{port}/v2/"
        wait_until(lambda: answers(ping), "docker-registry answers", server, REGISTRY_START_TIMEOUT, log_path)
        yield f"127.0.0.1:{port}", log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def deploy(engine: str, registry: str, *, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """``deploy.sh deploy`` as the workflow runs it, with the test's registry and moto (from aws_env)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CONTAINER_IMAGE", "DEPLOY_FAULT")}
    env |= {"ENGINE": engine, "REGISTRY": registry, "REPOSITORY": REPOSITORY, "TLS_VERIFY": "false"}
    # The image tests run on the pulled image; one file of them is enough to prove the sequence.
    env |= {"PYTHON": sys.executable, "PIPELINE_NAME": "rehearsal", "DEPLOY_TESTS": "tests/test_container.py"}
    if fault:
        env["DEPLOY_FAULT"] = fault
    return subprocess.run(
        [str(DEPLOY), "deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT
    )


def registry_tags(registry: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/{REPOSITORY}/tags/list", timeout=10) as answer:
            return sorted(json.load(answer)["tags"] or [])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise


def manifest_digest(registry: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{REPOSITORY}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["Docker-Content-Digest"]


def image_tag() -> str:
    return subprocess.run([str(IMAGE_TAG)], capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def test_the_rehearsed_deploy_tests_the_pulled_image_then_tags_and_upserts_it(engine, registry, aws_env):
    address, access_log = registry
    done = deploy(engine, address)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    image = f"{address}/{REPOSITORY}:{image_tag()}"
    assert done.stdout.strip().splitlines()[-1] == image

    # The content tag names exactly the digest that was pulled back and tested.
    digest = manifest_digest(address, image.rsplit(":", 1)[1])
    assert registry_tags(address) == sorted([image.rsplit(":", 1)[1], "untested"])
    assert manifest_digest(address, "untested") == digest
    assert f"testing {address}/{REPOSITORY}@{digest}" in done.stderr
    assert " passed" in done.stderr and " failed" not in done.stderr
    pulls = [
        line for line in access_log.read_text().splitlines() if f'"GET /v2/{REPOSITORY}/manifests/{digest}' in line
    ]
    assert pulls, "the registry never served the tested digest: the image was not pulled"

    sagemaker = boto3.client("sagemaker", region_name=aws_env["AWS_REGION"])
    described = sagemaker.describe_pipeline(PipelineName="rehearsal")
    parameters = json.loads(described["PipelineDefinition"])["Parameters"]
    assert {p["Name"]: p.get("DefaultValue") for p in parameters}["ImageUri"] == image

    # Same content again: the tag is found, nothing is built or pushed, the pipeline is left alone.
    again = deploy(engine, address)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "no build, no push" in again.stderr
    assert "nothing changed" in again.stderr
    assert manifest_digest(address, image.rsplit(":", 1)[1]) == digest
    assert sagemaker.describe_pipeline(PipelineName="rehearsal")["LastModifiedTime"] == described["LastModifiedTime"]


def test_without_the_pull_the_rehearsal_fails_and_nothing_is_tagged_or_upserted(engine, registry, aws_env):
    """DEPLOY_FAULT=skip-pull: the image is pushed and its local names removed, but never pulled back."""
    address, _ = registry
    done = deploy(engine, address, fault="skip-pull")
    assert done.returncode != 0, (done.stdout + done.stderr)[-4000:]
    assert "the container tests failed" in done.stderr
    assert registry_tags(address) == ["untested"], "only a tested image may get its content tag"
    sagemaker = boto3.client("sagemaker", region_name=aws_env["AWS_REGION"])
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []
