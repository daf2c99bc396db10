"""Run a training job on this machine through the real toolkit ``train`` command.

Each host gets a fresh base dir laid out as ``/opt/ml`` is on SageMaker, runs under its own
init (a process tree, or a container), and is stopped as SageMaker stops a job: SIGTERM to the
user's processes, a grace period, then SIGKILL. Afterwards the platform's part is done here
too: checkpoints are copied back, ``model/`` becomes ``model.tar.gz`` and ``output/data``
``output.tar.gz``, each renamed into place only once complete.

Once the hosts have started, a stop (Ctrl-C, SIGTERM, SIGHUP) gives a result like any other
end of the job; before that, it is delivered as ``KeyboardInterrupt`` at the next safe point
(:func:`stops.check`) and the scratch folder goes away.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.definition.contract import DEFAULT_INSTANCE_TYPE, Channel
from pipeline.definition.settings import DEFAULT_REGION
from pipeline.errors import ExitStatus, describe_os_error
from pipeline.local import (
    channels,
    checkpoints,
    failure,
    files,
    host_init,
    job_config,
    job_folder,
    processes,
    runners,
    stops,
)
from pipeline.local.metrics import parse_metrics
from pipeline.local.runners import Runner

BASE_DIR = "/opt/ml"


@dataclass(frozen=True)
class LocalJob:
    """What a CreateTrainingJob request says, reduced to what a local run needs."""

    name: str
    # hyperparameters.json verbatim, the reserved sagemaker_program and
    # sagemaker_submit_directory (a local tarball or an s3:// URI) included
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, Channel]
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_runtime_seconds: float | None = None
    region: str = DEFAULT_REGION
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    environment: Mapping[str, str] = field(default_factory=dict)  # the job's Environment
    role_arn: str | None = None
    checkpoint_uri: str | None = None  # a folder or s3:// prefix (CheckpointConfig.S3Uri)
    checkpoint_local_path: str = checkpoints.DEFAULT_LOCAL_PATH


@dataclass(frozen=True)
class JobResult:
    exit_code: int
    failure_reason: str | None
    metrics: dict[str, float]
    model_artifact: Path | None
    output_artifact: Path | None
    logs: dict[str, Path]

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def checkpoint_dir(base: Path, job: LocalJob) -> Path:
    """The host's checkpoint folder: ``LocalPath`` under the base dir that stands for ``/opt/ml``."""
    relative = Path(job.checkpoint_local_path).relative_to(BASE_DIR)
    return base / relative


def prepare_base_dir(
    base: Path,
    job: LocalJob,
    host: str,
    channel_data: Mapping[str, Path],
    hyperparameters: Mapping[str, str] | None = None,
    ways: Mapping[str, channels.Way] | None = None,
    changes: Path | None = None,
) -> list[channels.Mount]:
    """Lay out one host's ``/opt/ml``: configs, the channels, and the folders the toolkit expects.

    ``hyperparameters`` are the job's as the host sees them (a container sees its code elsewhere).
    Each channel comes as ``ways`` says (a copy if it does not say); the mounts to make in the
    host's namespace are returned, an overlay's changes going to ``changes``."""
    config = base / "input" / "config"
    for folder in (config, base / "model", base / "output" / "data", base / "code"):
        folder.mkdir(parents=True, exist_ok=True)
    hosts = job_config.host_names(job.instance_count)
    contents = {
        "hyperparameters.json": job.hyperparameters if hyperparameters is None else hyperparameters,
        "resourceconfig.json": job_config.resource_config(hosts, host, job.instance_type),
        "inputdataconfig.json": job_config.input_data_config(job.channels),
    }
    for name, content in contents.items():
        (config / name).write_text(json.dumps(content, indent=2, sort_keys=True))
    mounts = []
    for channel, source in channel_data.items():
        how = (ways or {}).get(channel, channels.Way.COPY)
        folder, target = base / "input" / "data" / channel, f"{BASE_DIR}/input/data/{channel}"
        mount = channels.give(source, how, folder, target, (changes or base) / channel)
        mounts += [mount] if mount else []
    return mounts


def pump(stream: IO[bytes], log: Path, prefix: str, sink: IO[str], first: str, verbose: bool = False) -> None:
    """Copy a host's output to its log file and, prefixed, to ``sink``.

    The log is complete even if ``sink`` goes away (``train-local | head``):
    metrics are parsed from it, and the pipe must keep draining. The image's INFO
    records are folded out of ``sink`` unless ``verbose`` (:mod:`.toolkit_output`).
    """
    from pipeline.local import toolkit_output

    echo, shown = True, None if verbose else toolkit_output.Fold()
    with log.open("wb") as out:
        out.write(first.encode())
        for line in iter(stream.readline, b""):
            out.write(line)
            text = line.decode(errors="replace")
            if shown is not None and not shown(text):
                text = toolkit_output.folded_note(log) if shown.folded == 1 else ""
            if echo and text:
                try:
                    sink.write(prefix + text)
                    sink.flush()
                except OSError:
                    echo = False


SCRATCH_PREFIX = "train-local-"


def sweep_scratch(temp: Path) -> None:
    """Remove scratch folders whose CLI died (SIGKILL) before its hosts started, when no init
    would remove them: the CLI holds a lock in each one for as long as it lives."""
    for folder in temp.glob(f"{SCRATCH_PREFIX}*"):
        if job_folder.abandoned(folder):
            host_init.remove_tree(str(folder))


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A temp folder for channel copies and base dirs, removed however the job ends; even by SIGKILL
    (the hosts' inits remove it, or the next job's :func:`sweep_scratch`)."""
    sweep_scratch(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{name}-"))
    try:
        with job_folder.locked(root):
            yield root
    finally:
        with stops.deferred():
            host_init.remove_tree(str(root))  # an overlay's work folder too


@dataclass
class HostsRun:
    """How the hosts ended: exited by themselves, or stopped (and why)."""

    stopped_by: str | None = None  # "timeout" or "interrupt"
    graceful: bool = True
    stopped: frozenset[int] = frozenset()  # pids of the hosts still running when the stop began


def supervise(
    hosts: processes.Hosts, max_runtime: float | None, grace: float, report: Callable[[str], None]
) -> HostsRun:
    """Wait for the hosts; on a stop or a timeout, SIGTERM them and give them ``grace`` seconds."""
    run = HostsRun()
    with stops.counting() as stop:
        if stops.take():  # received while the hosts were started
            stop.set()
        if not hosts.wait(max_runtime, stop):
            run.stopped_by = "interrupt" if stop.is_set() else "timeout"
        if hosts.running():  # stopped, or another host failed
            run.stopped = frozenset(p.pid for p in hosts.running())
            if run.stopped_by:
                why = "--max-runtime reached" if run.stopped_by == "timeout" else "stop requested"
                report(f"{why}: SIGTERM sent to the training processes; up to {grace:g} s before SIGKILL (Ctrl-C: now)")
            with stops.counting() as again:  # the next stop forces it
                run.graceful = hosts.stop(grace, again)
    return run


def _lay_out(
    job: LocalJob, runner: Runner, root: Path, report: Callable[[str], None]
) -> tuple[dict[str, Path], dict[str, list[channels.Mount]]]:
    """Each host's base dir and the mounts its namespace gets: the channels (fetched once, given to
    each host without a copy where the runner can), the config files, the restored checkpoints."""
    channel_data, ways = {}, {}
    for channel, given in job.channels.items():
        stops.check()
        channel_data[channel] = channels.stage(given.source, root / "channels" / channel, job.region)
        how = channels.way(channel_data[channel], runner.mounts_data)
        ways[channel] = channels.said(how, f"channel {channel}", report)
    hyperparameters = runner.hyperparameters(job)
    bases = {host: root / host for host in job_config.host_names(job.instance_count)}
    mounts = {}
    for host, base in bases.items():
        stops.check()
        mounts[host] = prepare_base_dir(
            base, job, host, channel_data, hyperparameters, ways, changes=root / "changes" / host
        )
        if job.checkpoint_uri:
            checkpoints.restore(job.checkpoint_uri, checkpoint_dir(base, job), job.region)
    return bases, mounts


def run_job(
    job: LocalJob,
    job_dir: Path,
    runner: Runner | None = None,
    *,
    stop_grace: float = processes.DEFAULT_STOP_GRACE_SECONDS,
    sink: IO[str] = sys.stdout,
    report: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> JobResult:
    """Run ``job`` to its end; artifacts and per-host logs land in ``job_dir``, its output in ``sink``
    (the image's INFO lines only if ``verbose``). The runner defaults to the Docker-free one (its
    environment is made now if this is its first use)."""
    say = report or (lambda line: print(line, file=sys.stderr))
    runner = runner or runners.process_runner(None, say)
    job_dir.mkdir(parents=True, exist_ok=True)
    with stops.interrupting(), scratch_dir(job.name) as root:
        bases, mounts = _lay_out(job, runner, root, say)
        make_host = runner.prepare(job, root, say)
        logs = {host: job_dir / f"{host}.log" for host in bases}
        described = runner.describe()  # which Python or image: first in the output and in each log
        print(described, file=sink, flush=True)
        hosts = processes.Hosts()
        pumps = []
        try:
            for host, base in bases.items():
                process = hosts.start(make_host(host, base, mounts[host]))
                prefix = f"[{host}] " if len(bases) > 1 else ""
                args = (process.stdout, logs[host], prefix, sink, f"[train-local] {described}\n", verbose)
                pumps.append(threading.Thread(target=pump, args=args, daemon=True))
                pumps[-1].start()
            run = supervise(hosts, job.max_runtime_seconds, stop_grace, say)
        finally:
            with stops.counting():  # whatever happened above, no host outlives this block
                hosts.kill()
                hosts.close()
                for thread in pumps:
                    thread.join(timeout=processes.KILL_WAIT_SECONDS)
        return _finish(job, job_dir, bases, logs, hosts, run, say)


def _finish(
    job: LocalJob,
    job_dir: Path,
    bases: Mapping[str, Path],
    logs: Mapping[str, Path],
    hosts: processes.Hosts,
    run: HostsRun,
    report: Callable[[str], None],
) -> JobResult:
    """Checkpoints back, exit code and reason, metrics, artifacts: the platform's part after the job."""
    exit_code, reason = _outcome(job, bases, logs, hosts, run)
    metrics = parse_metrics(logs[next(iter(bases))].read_text(errors="replace"), job.metric_definitions)
    model = output = None
    try:
        if job.checkpoint_uri:
            for base in bases.values():
                count = checkpoints.sync(checkpoint_dir(base, job), job.checkpoint_uri, job.region)
                report(f"checkpoints: {count} file(s) copied to {job.checkpoint_uri}")
        if exit_code == 0:
            leader = bases[next(iter(bases))]
            model = files.pack_dir(leader / "model", job_dir / "model.tar.gz")
            output = files.pack_dir(leader / "output" / "data", job_dir / "output.tar.gz")
    except KeyboardInterrupt:
        exit_code = ExitStatus.INTERRUPTED
        reason = "Stopped: interrupted while copying checkpoints or packing the artifacts; none was kept half-written"
    except OSError as error:  # a full disk, say: the job ran, so it reports; its log and whole artifacts stay
        exit_code = exit_code or ExitStatus.JOB_FAILED
        reason = f"{reason + '; then ' if reason else ''}the platform's part failed: {describe_os_error(error)}"
    return JobResult(exit_code, reason, metrics, model, output, dict(logs))  # the artifacts completed before an error


def _outcome(
    job: LocalJob, bases: Mapping[str, Path], logs: Mapping[str, Path], hosts: processes.Hosts, run: HostsRun
) -> tuple[int, str | None]:
    """Exit code and failure reason, as SageMaker reports them; the host that failed first is the cause."""
    ending = "" if run.graceful else " (the grace period ran out: SIGKILL)"
    if run.stopped_by == "timeout":
        limit = job.max_runtime_seconds or 0
        return ExitStatus.TIMEOUT, f"MaxRuntimeExceeded: the job ran longer than {limit:g} s and was stopped{ending}"
    if run.stopped_by == "interrupt":
        return ExitStatus.INTERRUPTED, f"Stopped: interrupted{ending}"
    failed = [
        (process.pid in run.stopped, host, base, process.returncode)
        for (host, base), process in zip(bases.items(), hosts.processes, strict=True)
        if process.returncode != 0
    ]
    if not failed:
        return 0, None
    # A host that failed by itself is the cause; the others were stopped because of it.
    _, host, base, code = min(failed, key=lambda item: item[0])
    failure_file = base / "output" / "failure"
    text = failure_file.read_text(errors="replace") if failure_file.exists() else None
    why = failure.reason(text, logs[host].read_text(errors="replace"), code)
    return code, (f"{host}: {why}" if len(bases) > 1 else why)  # as SageMaker reports it
