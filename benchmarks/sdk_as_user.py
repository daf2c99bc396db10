"""The SDK's local mode as a user's script runs it, for the benchmarks that compare against it.

Two corrections to ``tests/sdk_local.py`` (the tests' harness), which would overstate the SDK:

- the harness hands the SDK the project's defaults config (telemetry opted out), and SDK v2
  schema-checks a config on every default it looks up (70 ms each here, about 1 s per job); a
  user without a config file has no such check, so :func:`as_a_user_configures_it` skips it for
  that one constant, as the project's own render does (``sdk._skip_validating_sdk_defaults``);
- the harness removes each job's containers when ``fit()`` or ``start()`` returns, inside the call
  a benchmark times; :func:`stamped_before_cleanup` records the moment the SDK returned, so the
  removal falls outside the timed region.

Run as a script (``python benchmarks/sdk_as_user.py DONE_FILE train|pipeline ...``) it is one
user's process, SDK import included: it writes ``time.monotonic()`` (a clock shared by every process
on the machine) to ``DONE_FILE`` when the SDK returns, and the benchmark times from its own spawn.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import sdk_local  # noqa: E402  the tests' SDK local mode helper


def as_a_user_configures_it() -> None:
    """No per-lookup schema check of the project's SDK defaults (a user has no such config)."""
    sdk_local._import_sdk()
    import sagemaker.local.local_session

    from pipeline.definition import sdk

    sdk._skip_validating_sdk_defaults()
    sagemaker.local.local_session.validate_sagemaker_config = sagemaker.session.validate_sagemaker_config


def stamped_before_cleanup(done: list[float]) -> None:
    """Append ``time.monotonic()`` to ``done`` as the SDK returns, before the harness removes containers."""
    collect = sdk_local._Run.collect_containers

    def stamp_then_collect(run: sdk_local._Run, api: sdk_local.EngineApi) -> None:
        done.append(time.monotonic())
        collect(run, api)

    sdk_local._Run.collect_containers = stamp_then_collect


def _pipeline(args: argparse.Namespace) -> bool:
    from pipeline.definition import settings

    deployed = settings.Settings(**json.loads(args.settings))
    result = sdk_local.run_pipeline(
        sdk_local.project_pipeline(deployed, args.source_dir, args.code_uri),
        images=(args.image,),
        parameters=json.loads(args.parameters),
        docker_host=args.docker_host,
        work_dir=args.work_dir,
        s3_endpoint_url=args.endpoint,
        default_bucket=deployed.bucket,
    )
    ok = result.status == "Succeeded" and set(result.exit_codes.values()) == {0}
    if not ok:
        print(f"LocalPipelineSession: {result.status} {result.error}\n{result.container_logs}", file=sys.stderr)
    return ok


def main() -> int:
    done_file, shape, *rest = sys.argv[1:]
    done: list[float] = []
    as_a_user_configures_it()
    stamped_before_cleanup(done)
    if shape == "train":
        code = sdk_local.main(rest)
    else:
        parser = argparse.ArgumentParser()
        for flag in ("--image", "--docker-host", "--endpoint", "--code-uri", "--settings", "--parameters"):
            parser.add_argument(flag, required=True)
        parser.add_argument("--source-dir", type=Path, required=True)
        parser.add_argument("--work-dir", type=Path, required=True)
        code = 0 if _pipeline(parser.parse_args(rest)) else 1
    if code == 0:
        Path(done_file).write_text(repr(done[-1]))
    return code


if __name__ == "__main__":
    sys.exit(main())
