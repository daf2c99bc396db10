"""The environment variables of a training container: the image's ``ENV``, what SageMaker sets, the job's own.

Nothing else of the calling shell reaches the job, except the few variables below that
this machine needs to reach the network and AWS (the image has no such settings; on
SageMaker the network is open and the execution role gives credentials).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

IMAGE_VENV = "/opt/venv"  # where the Dockerfile installs the packages
DEFAULT_ACCOUNT = "000000000000"  # a training job ARN's account when no role names one
# Proxies, and the AWS credentials and endpoint that stand in for the execution role.
NETWORK = (
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy"),
    *("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
)
# Only for a job on this machine: files the variables above point to, pip's configuration
# (the toolkit pip-installs requirements.txt) and where home and temp files are.
HOST_FILES = (
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE"),
    *("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"),
    *("HOME", "TMPDIR"),
)
HOST_PREFIXES = ("PIP_",)
# Given to a container by name (its value from the engine's environment), never on a command line.
SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _instructions(dockerfile: str) -> list[str]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    joined, current = [], ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    if current:
        joined.append(current)
    return joined


def image_environment(dockerfile: str) -> dict[str, str]:
    """The final stage's ``ENV`` values, ``$NAME`` references expanded as the builder expands them."""
    env: dict[str, str] = {}
    for instruction in _instructions(dockerfile):
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            env = {}
        elif keyword.upper() == "ENV":
            words = shlex.split(rest)
            pairs = [w.split("=", 1) for w in words] if "=" in words[0] else [[words[0], " ".join(words[1:])]]
            known = dict(env)  # one instruction's references see the values from before it
            env.update({name: _expand(value, known) for name, value in pairs})
    return env


def _expand(value: str, known: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: known.get(m.group(1) or m.group(2), ""), value)


def relocate(image_env: Mapping[str, str], venv: str, bin_dirs: list[str]) -> dict[str, str]:
    """The image's variables with its venv replaced: ``/opt/venv/bin`` by ``bin_dirs``, the venv by ``venv``."""
    bins = ":".join(bin_dirs)
    return {
        name: value.replace(f"{IMAGE_VENV}/bin", bins).replace(IMAGE_VENV, venv) for name, value in image_env.items()
    }


def training_job_arn(name: str, region: str, role_arn: str | None) -> str:
    """The job's ARN; its account is the execution role's, as SageMaker's would be."""
    account = role_arn.split(":")[4] if role_arn and role_arn.count(":") >= 5 else DEFAULT_ACCOUNT
    return f"arn:aws:sagemaker:{region}:{account}:training-job/{name.lower()}"


def platform(name: str, region: str, role_arn: str | None) -> dict[str, str]:
    """What SageMaker sets in every training container (the toolkit derives the SM_* variables)."""
    return {
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": training_job_arn(name, region, role_arn),
        "AWS_REGION": region,
    }


def passed_through(caller: Mapping[str, str], names: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    return {k: v for k, v in caller.items() if k in names or k.startswith(prefixes)}


def environment(
    *,
    image: Mapping[str, str],
    passed: Mapping[str, str],
    job: Mapping[str, str],
    platform_vars: Mapping[str, str],
    local: Mapping[str, str],
) -> dict[str, str]:
    """Later wins: the image, what this machine needs, the job's ``Environment``, the platform's, then the
    emulation's own (the base dir, and the toolkit's switch that skips resolving other hosts' names)."""
    return {**image, **passed, **job, **platform_vars, **local}


def host_threads(cpus: int, hosts: int) -> dict[str, str]:
    """Each emulated host's share of this machine's CPUs for the numeric libraries' thread pools:
    ``max(1, cpus // hosts)``. On SageMaker every host has its own instance; here N hosts share one
    machine, and N full-width pools spin against each other. The job's own settings still win."""
    from custom_framework_training.threads import THREAD_VARIABLES

    return dict.fromkeys(THREAD_VARIABLES, str(max(1, cpus // max(1, hosts))))
