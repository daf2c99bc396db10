"""The framework package: what it logs, exports and hides before running user code."""

from __future__ import annotations

import io

import pytest
from support import make_job

from custom_framework_training import distributed, summary, threads
from pipeline.definition import sample_data
from pipeline.local import job as local_job
from pipeline.local import job_config


def test_rendezvous_for_multi_host_jobs_only():
    assert distributed.rendezvous_settings(["algo-1"], "algo-1") == {}
    settings = distributed.rendezvous_settings(["algo-2", "algo-1", "algo-3"], "algo-3")
    assert settings == {
        "MASTER_ADDR": "algo-1",
        "MASTER_PORT": "7777",
        "WORLD_SIZE": "3",
        "RANK": "2",
        "NODE_RANK": "2",
    }
    with pytest.raises(ValueError, match="not among the hosts"):
        distributed.rendezvous_settings(["algo-1", "algo-2"], "algo-9")


def test_thread_settings_follow_cpu_count_but_keep_user_values():
    assert threads.thread_settings(8, {})["OMP_NUM_THREADS"] == "8"
    assert "OMP_NUM_THREADS" not in threads.thread_settings(8, {"OMP_NUM_THREADS": "1"})
    assert threads.thread_settings(0, {})["MKL_NUM_THREADS"] == "1"


def test_redaction_of_values_and_arguments():
    assert summary.redact({"db-password": "x", "api_key": "y", "lr": 0.1}) == {
        "db-password": "***",
        "api_key": "***",
        "lr": 0.1,
    }
    assert summary.redact_args(["--lr", "0.1", "--hf-token", "abc"]) == ["--lr", "0.1", "--hf-token", "***"]


def test_secrets_never_reach_the_framework_or_toolkit_log(tmp_path, monkeypatch):
    channels = {name: str(path) for name, path in sample_data.write(tmp_path / "data").items()}
    secret = "s3cr3t-value-123"
    job = make_job(
        tmp_path, channels, hyperparameters=job_config.encode_hyperparameters({"db-password": secret, "lr": 0.1})
    )
    result = local_job.run_job(job, tmp_path / "job", sink=io.StringIO())
    assert result.succeeded, result.failure_reason
    log = result.logs["algo-1"].read_text()
    framework_lines = [line for line in log.splitlines() if not line.startswith("PROBE ")]
    assert "Training environment:" in log and '"db-password": "***"' in log
    assert "--db-password ***" in log  # the toolkit's invocation line, shortened and redacted
    assert not [line for line in framework_lines if secret in line]
