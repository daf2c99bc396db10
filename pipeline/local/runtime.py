"""The job's Python: the image's package set in a cached virtual environment, never the developer's.

The image installs ``framework_image/requirements.txt`` with ``--no-deps`` plus the framework
package into ``/opt/venv``; here the same set goes into a venv under the user's cache,
named by a hash of what decides its content (that file, the framework's source, the
interpreter), made once and shared by every job. A source dir's ``requirements.txt`` goes
into a layer over it, cached by its own hash. Each job then runs in a throwaway venv of a
few files that sees the layer and the environment: anything the toolkit installs while the
job runs lands there and is deleted with the job, so neither the developer's venv nor a
cached environment ever changes.

Each environment and layer is a few hundred MB, and every change of what decides it makes a new
one: after each build, only the :data:`KEEP_USED` used last are kept, and one a running job uses
(a shared lock on its lock file, held by the CLI until it exits) is never removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.definition import user_cache
from pipeline.errors import UserError
from pipeline.local import stops
from pipeline.local.processes import POLL_SECONDS, HostCommand

FRAMEWORK_IMAGE = Path(__file__).resolve().parents[2] / "framework_image"
# What the image's Python would be (the Dockerfile's default base), if nothing says otherwise.
BASE_PYTHON = re.compile(r"^FROM\s+python:(\d+\.\d+)", re.MULTILINE)
KEY_LENGTH = 16
# Variables that would redirect the installs below away from the environment being made.
PIP_REDIRECTS = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER")
LOCK_POLL_SECONDS = 0.1  # waiting for another job that builds the same environment
KEEP_USED = 4  # environments (and, apart, layers) kept after a build: the ones used last
PIP_SHIM = "#!{python}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n"


class JobEnvironmentError(UserError):
    """The job environment could not be made; the message names the log."""


@dataclass(frozen=True)
class Interpreter:
    """The Python the job environment is made from, and why it was picked (for the job log)."""

    path: Path
    version: str  # major.minor
    why: str


@dataclass(frozen=True)
class JobEnvironment:
    """A ready environment: the cached venv with the image's packages, and an optional requirements layer."""

    root: Path
    version: str
    layer: Path | None = None

    def site_packages(self, venv: Path) -> Path:
        return venv / "lib" / f"python{self.version}" / "site-packages"

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def cache_dir() -> Path:
    """The user's cache folder (:func:`pipeline.definition.user_cache.root`): outside the project and its ``.venv``."""
    return user_cache.root()


def image_python(dockerfile: str) -> str | None:
    """The ``major.minor`` of the image's default base (``FROM python:3.12...``), if it names one."""
    match = BASE_PYTHON.search(dockerfile)
    return match.group(1) if match else None


def _is_binary(path: Path) -> bool:
    """A real interpreter, not a wrapper script such as a pyenv shim (which may fail, and costs 0.3 s)."""
    try:
        with path.open("rb") as head:
            return head.read(2) != b"#!"
    except OSError:
        return False


def choose_interpreter(explicit: str | None, wanted: str | None, search_path: str) -> Interpreter:
    """``--python``, else a ``python<wanted>`` binary on PATH, else the interpreter running this CLI."""
    if explicit:
        path = Path(shutil.which(explicit) or explicit)
        if not path.is_file():
            raise UserError(f"--python {explicit} is not an interpreter: give the path of a python3.X")
        version = _version_of(path)
        return Interpreter(path.resolve(), version, f"--python {explicit}")
    if wanted:
        for folder in search_path.split(os.pathsep):
            candidate = Path(folder or ".") / f"python{wanted}"
            if candidate.is_file() and os.access(candidate, os.X_OK) and _is_binary(candidate):
                return Interpreter(candidate.resolve(), wanted, f"python{wanted} on PATH, as in the image")
    current = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    why = "this CLI's interpreter"
    if wanted and wanted != version:
        why += f"; the image runs Python {wanted}: put a python{wanted} on PATH or pass --python to match it"
    return Interpreter(current, version, why)


def _version_of(path: Path) -> str:
    """Asked only of an interpreter given with --python, whose name may not say."""
    try:
        found = subprocess.run(
            [str(path), "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        raise UserError(f"--python {path} does not run: give the path of a working python3.X") from None
    return found.stdout.strip()


def _framework_files(framework: Path) -> Iterator[Path]:
    """The framework package's source as the image build sees it: no caches or build leftovers."""
    for folder, dirs, names in os.walk(framework):
        dirs[:] = sorted(d for d in dirs if not (d.startswith(".") or d == "__pycache__" or d.endswith(".egg-info")))
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(folder) / name


def environment_key(interpreter: Interpreter, image: Path = FRAMEWORK_IMAGE) -> str:
    """Hash of what decides the environment's content; an upgraded interpreter changes its size or mtime."""
    digest = hashlib.sha256(b"job-environment-v1\0")
    stat = interpreter.path.stat()
    digest.update(f"{interpreter.path}\0{interpreter.version}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    digest.update((image / "requirements.txt").read_bytes())
    framework = image / "framework"
    for path in _framework_files(framework):
        digest.update(f"\0{path.relative_to(framework).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:KEY_LENGTH]


def layer_key(environment: JobEnvironment, requirements: bytes) -> str:
    return hashlib.sha256(f"{environment.root.name}\0".encode() + requirements).hexdigest()[:KEY_LENGTH]


def _pip_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PIP_REDIRECTS}


def _run_logged(command: list[str], log: Path, cwd: Path | None = None, scratch: Path | None = None) -> None:
    """Run a step of the build, appending its output to ``log``; a failure names the log.

    The step runs under a host init (:mod:`host_init`): if the CLI dies, even by SIGKILL, the
    init kills the whole tree (pip's build-backend runners included, which no parent-death
    signal reaches) and removes ``scratch``, the half-made folder. A stop kills it at once.
    """
    init = HostCommand(command, _pip_environment(), cwd or Path.cwd(), scratch=scratch).init_argv()
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(
            init, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    assert process.stdin is not None
    try:
        while process.poll() is None:
            stops.check()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            process.stdin.write(b"kill\n")
            process.stdin.flush()
        process.wait()
        raise
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise JobEnvironmentError(f"{Path(command[0]).name} exited {process.returncode} ({last}); full log: {log}")


def _retarget(folder: Path, final: Path) -> None:
    """Scripts in ``bin/`` name the folder they were built in (shebangs, activate); point them at the final one."""
    old, new = str(folder).encode(), str(final).encode()
    for path in (folder / "bin").iterdir():
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            if old in content:
                path.write_bytes(content.replace(old, new))


# What this process's jobs use: a shared lock on each one's lock file, released when it exits.
_HELD: dict[Path, IO[str]] = {}


def _try_lock(handle: IO[str], kind: int = fcntl.LOCK_EX) -> bool:
    try:
        fcntl.flock(handle, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_of(built: Path) -> Path:
    return built.parent / f".{built.name}.lock"


def hold(built: Path) -> bool:
    """Hold ``built`` for this process, so no prune removes it under a job, and note its use (its
    lock file's mtime); False if it does not exist. Waits (stoppably) while a build or a prune has it."""
    if built in _HELD:
        if built.is_dir():
            return True
        _HELD.pop(built).close()  # removed by hand meanwhile: made again
    built.parent.mkdir(parents=True, exist_ok=True)
    handle = _lock_of(built).open("a")
    while not _try_lock(handle, fcntl.LOCK_SH):
        stops.check()
        time.sleep(LOCK_POLL_SECONDS)
    if not built.is_dir():
        handle.close()
        return False
    os.utime(handle.fileno())
    _HELD[built] = handle
    return True


def _last_used(built: Path) -> float:
    lock = _lock_of(built)
    return (lock if lock.exists() else built).stat().st_mtime


def prune(folder: Path, keep: int = KEEP_USED) -> int:
    """Remove the built folders of ``folder`` beyond the ``keep`` used last, except those a job holds
    or a build is making; returns how many went. Each is renamed away first (under its lock), so a
    removal cut short never leaves a half environment under a name a job would use."""
    built = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_last_used)
    removed = 0
    for old in built[: max(0, len(built) - keep)]:
        with _lock_of(old).open("a") as handle:
            if not _try_lock(handle):
                continue
            doomed = folder / f".{old.name}.tmp-{os.getpid()}"
            old.rename(doomed)
            (folder / f"{old.name}.log").unlink(missing_ok=True)
        shutil.rmtree(doomed, ignore_errors=True)  # what a stop leaves, sweep_stale removes
        removed += 1
    return removed


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[bool]:
    """Hold ``lock``; yields whether another process held it first (it was building the same thing).
    The wait polls, so a stop ends it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        waited = False
        while not _try_lock(handle):
            waited = True
            stops.check()
            time.sleep(LOCK_POLL_SECONDS)
        yield waited


def sweep_stale(folder: Path) -> None:
    """Remove half-made folders (``.NAME.tmp-PID``) that no build holds the lock of: left by a build
    whose CLI was killed before its init could remove them."""
    for stale in folder.glob(".*.tmp-*"):
        name = stale.name[1:].rpartition(".tmp-")[0]
        with (folder / f".{name}.lock").open("w") as handle:
            if _try_lock(handle):
                shutil.rmtree(stale, ignore_errors=True)


def build_once(final: Path, report: Callable[[str], None], what: str, steps: Callable[[Path, Path], None]) -> float:
    """Make ``final`` by ``steps(temp dir, log)`` in a temp dir beside it, then rename: never half-made.

    Concurrent jobs wait on a lock instead of building the same thing twice; a build that
    dies leaves only its temp dir, which the next build removes.
    """
    with _exclusive(final.parent / f".{final.name}.lock") as waited:
        if final.is_dir():
            return 0.0
        if waited:
            report(f"{what}: another job built it meanwhile")
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # ours to remove: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        log = final.parent / f"{final.name}.log"
        log.unlink(missing_ok=True)
        temp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        started = time.monotonic()
        try:
            steps(temp, log)
            seconds = time.monotonic() - started
            (temp / "created.json").write_text(json.dumps({"seconds": round(seconds, 1), "log": str(log)}))
            temp.rename(final)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return seconds


def ensure_environment(
    interpreter: Interpreter, report: Callable[[str], None], image: Path = FRAMEWORK_IMAGE, cache: Path | None = None
) -> JobEnvironment:
    """The cached environment with the image's package set, made now if it does not exist yet."""
    if not (image / "requirements.txt").is_file():
        raise UserError(f"{image}/requirements.txt not found: train-local runs from a checkout of the project")
    root = (cache or cache_dir()) / "envs" / environment_key(interpreter, image)
    environment = JobEnvironment(root, interpreter.version)
    if root.parent.is_dir():
        sweep_stale(root.parent)
    if hold(root):
        return environment

    def steps(temp: Path, log: Path) -> None:
        _run_logged([str(interpreter.path), "-m", "venv", "--without-pip", str(temp)], log, scratch=temp)
        pip = [sys.executable, "-m", "pip", "--python", str(temp / "bin" / "python"), "--disable-pip-version-check"]
        packages = ["-r", str(image / "requirements.txt"), str(image / "framework")]
        _run_logged([*pip, "install", "--no-deps", *packages], log, scratch=temp)
        with contextlib.suppress(JobEnvironmentError):  # the image build runs it too, and fails there
            _run_logged([str(temp / "bin" / "python"), "-m", "pip", "check"], log, scratch=temp)
        _retarget(temp, root)

    report(f"job environment: creating {root} (first use: the image's packages for Python {interpreter.version})")
    seconds = build_once(root, report, "job environment", steps)
    report(f"job environment: created in {seconds:.1f} s")
    hold(root)
    if removed := prune(root.parent):
        report(f"job environment: removed {removed} older one(s) no job uses (the {KEEP_USED} used last are kept)")
    return environment


def _thin_venv(folder: Path, environment: JobEnvironment, bases: list[Path], pip: bool) -> Path:
    """A venv of a few files whose ``site`` also reads ``bases`` (site-packages dirs, first wins).

    ``python`` is a symlink to the environment's interpreter, so ``sys.executable`` and
    ``sys.prefix`` are this folder and pip installs go here; ``pip`` scripts on PATH do the same.
    """
    home = Path(os.path.realpath(environment.python))
    (folder / "bin").mkdir(parents=True)
    site = environment.site_packages(folder)
    site.mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(
        f"home = {home.parent}\ninclude-system-site-packages = false\nversion = {environment.version}\n"
    )
    for name in ("python", "python3", f"python{environment.version}"):
        (folder / "bin" / name).symlink_to(home)
    added = "".join(f"site.addsitedir({str(base)!r}); " for base in bases)
    (site / "_job_environment.pth").write_text(f"import site; {added}\n")
    if pip:
        for name in ("pip", "pip3", f"pip{environment.version}"):
            script = folder / "bin" / name
            script.write_text(PIP_SHIM.format(python=folder / "bin" / "python"))
            script.chmod(0o755)
    return folder / "bin" / "python"


def ensure_layer(
    environment: JobEnvironment, code_dir: Path, report: Callable[[str], None], cache: Path | None = None
) -> JobEnvironment:
    """``environment`` plus the code's ``requirements.txt`` installed in a layer cached by its content.

    If pip fails here, the job runs without the layer: the toolkit then installs the file
    itself, fails as it would on SageMaker, and the job's failure reason says why.
    """
    requirements = (code_dir / "requirements.txt").read_bytes()
    root = (cache or cache_dir()) / "layers" / layer_key(environment, requirements)
    layered = JobEnvironment(environment.root, environment.version, root)
    if root.parent.is_dir():
        sweep_stale(root.parent)
    if hold(root):
        return layered

    def steps(temp: Path, log: Path) -> None:
        python = _thin_venv(temp, environment, [environment.site_packages(environment.root)], pip=False)
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt"]
        _run_logged(command, log, cwd=code_dir, scratch=temp)
        _retarget(temp, root)

    report(f"job environment: installing {code_dir.name}'s requirements.txt into a layer {root}")
    try:
        seconds = build_once(root, report, "requirements layer", steps)
    except JobEnvironmentError as error:
        report(f"job environment: requirements.txt did not install ({error}); the job installs it itself")
        return environment
    report(f"job environment: layer made in {seconds:.1f} s")
    hold(root)
    if removed := prune(root.parent):
        report(f"job environment: removed {removed} older layer(s) no job uses (the {KEEP_USED} used last are kept)")
    return layered


def job_venv(folder: Path, environment: JobEnvironment) -> Path:
    """The throwaway venv one job runs in, over the layer (if any) and the environment; returns its python."""
    bases = [environment.site_packages(environment.root)]
    if environment.layer:
        bases.insert(0, environment.site_packages(environment.layer))
    return _thin_venv(folder, environment, bases, pip=True)
