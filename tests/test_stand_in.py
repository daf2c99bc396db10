"""``stand-in``: the demo's AWS stand-in kept running, for trying upsert, run --local and start by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
from moto_server import cli_stand_in
from support import WORKDIR


def test_the_stand_in_prints_its_variables_takes_commands_and_stops_on_ctrl_c():
    with cli_stand_in(WORKDIR) as (port, variables):
        assert variables["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | variables
        upsert = subprocess.run(
            [sys.executable, "-m", "pipeline", "upsert"],
            cwd=WORKDIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert upsert.returncode == 0, upsert.stderr
        sm = boto3.client(
            "sagemaker",
            endpoint_url=variables["AWS_ENDPOINT_URL"],
            region_name=variables["AWS_REGION"],
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
        )
        assert [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]] == [variables["PIPELINE_NAME"]]
