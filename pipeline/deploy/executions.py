"""Start pipeline executions, follow them, and list recent ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline.deploy import validate

TERMINAL = {"Succeeded", "Failed", "Stopped"}


def start(sm: Any, pipeline_name: str, parameters: list[dict[str, str]]) -> str:
    """Start a run with the given ``PipelineParameters``, checked first; returns the execution ARN."""
    request = {"PipelineName": pipeline_name, "PipelineParameters": parameters}
    validate.check("StartPipelineExecution", request)
    return sm.start_pipeline_execution(**request)["PipelineExecutionArn"]


def steps(sm: Any, execution_arn: str) -> dict[str, str]:
    """Step name to status; empty where the endpoint does not list steps (moto does not)."""
    from botocore.exceptions import ClientError

    try:
        response = sm.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)
    except ClientError:
        return {}
    return {s["StepName"]: s["StepStatus"] for s in response.get("PipelineExecutionSteps", [])}


def wait(
    sm: Any,
    execution_arn: str,
    report: Callable[[str], None],
    poll_seconds: float = 15.0,
    timeout_seconds: float | None = None,
) -> str:
    """Poll until the run ends, reporting each step's status change; returns the final status."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    seen: dict[str, str] = {}
    while True:
        execution = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        status = execution["PipelineExecutionStatus"]
        for name, step_status in steps(sm, execution_arn).items():
            if seen.get(name) != step_status:
                report(f"step {name}: {step_status}")
                seen[name] = step_status
        if status in TERMINAL:
            reason = execution.get("FailureReason")
            report(f"execution {status}" + (f": {reason}" if reason else ""))
            return status
        if deadline is not None and time.monotonic() > deadline:
            report(f"still {status} after {timeout_seconds:g} s; stopped waiting (the run goes on)")
            return "TimedOut"
        time.sleep(poll_seconds)


def recent(sm: Any, pipeline_name: str, limit: int) -> list[dict[str, Any]]:
    """The newest executions first."""
    request = {"PipelineName": pipeline_name, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": limit}
    validate.check("ListPipelineExecutions", request)
    return sm.list_pipeline_executions(**request).get("PipelineExecutionSummaries", [])[:limit]
