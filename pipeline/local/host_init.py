"""A host's init process: what a container's PID 1 and its runtime do for a training job, without one.

Run as a script (``python -I -S host_init.py MODE [--term JSON --kill JSON] -- COMMAND...``), standard library only,
so it starts in milliseconds under any interpreter. It runs ``COMMAND`` (the toolkit's
``train``, or an engine's ``run``) as its child, and reads one-word requests on stdin, a
pipe from the CLI:

``term``  the user processes get SIGTERM (the toolkit is kept alive, so it can report how
          its script ended); processes started later get it too.
``kill``  everything is killed now.
EOF       the CLI is gone, even by SIGKILL (a pipe closes with its last holder): as ``kill``,
          then the job's temp folder (``--scratch``) is removed, as the CLI would have.

MODE ``process``: this process is a child subreaper, so descendants that daemonize or start
new sessions are re-parented here instead of to init, and "everything" means every
descendant; when ``COMMAND`` exits the rest are killed, as when a container's PID 1 exits.
MODE ``container``: ``--term`` and ``--kill`` give the engine commands that do the same
inside the container (its processes belong to the engine, not to this tree).
The exit status is ``COMMAND``'s (128 + N when signal N ended it). A stop signal sent to
this process itself counts as ``term``.

``process --opt-ml BASE [--mounts JSON]``: ``COMMAND`` starts in a private user and mount namespace
where ``/opt/ml`` is ``BASE``, entered by its own process between fork and exec (one interpreter
start, not two), so scripts that hard-code SageMaker's paths run unmodified, without root and
without touching the host's ``/opt`` (see :func:`enter`); each of ``--mounts`` (the job's input
data, :func:`mount_data`) is laid over its folder there. ``enter --probe`` only tries it: exit 0
if this machine allows it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000
MS_PRIVATE = 0x40000
OPT = "/opt"
OPT_ML = "/opt/ml"
OPT_ML_CODE = f"{OPT_ML}/code"
TICK_SECONDS = 0.2
KILL_ROUNDS = 50
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc (a process may vanish while it is read)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return parents


def descendants(root: int) -> set[int]:
    """Every process below ``root``; with the subreaper flag, orphans of the tree stay below it."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _quietly(command: list[str]) -> None:
    subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


class Supervisor:
    def __init__(
        self,
        mode: str,
        command: list[str],
        term: list[str] | None,
        kill: list[str] | None,
        opt_ml: str | None = None,
        mounts: Sequence[Mapping[str, str | None]] = (),
    ) -> None:
        self.orphaned = False
        self.mode = mode
        self.term_command = term
        self.kill_command = kill
        # The child gets /dev/null as stdin (not the control pipe) and default stop signals.
        if opt_ml is None:
            self.child = os.posix_spawnp(
                command[0],
                command,
                os.environ,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
                setsigdef=STOP_SIGNALS,
            )
        else:
            self.child = _spawn_entered(command, opt_ml, mounts)
        self.status: int | None = None
        self.terminating = False  # a term request came: keep telling new user processes
        self.told: set[int] = set()

    def _reap(self) -> None:
        """Collect every exited child (orphans re-parented here too), noting the command's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.status = status

    def terminate(self) -> None:
        """SIGTERM to every process below the command (the toolkit), once each."""
        if self.mode == "container":
            if self.term_command and not self.told:
                _quietly(self.term_command)
                self.told.add(self.child)
        else:
            fresh = descendants(self.child) - self.told
            _signal(fresh, signal.SIGTERM)
            self.told |= fresh
        self.terminating = True

    def kill(self) -> None:
        if self.mode == "container":
            if self.kill_command:
                _quietly(self.kill_command)
            _signal({self.child}, signal.SIGKILL)
            return
        for _ in range(KILL_ROUNDS):  # a process forking while it is killed needs another round
            left = descendants(os.getpid())
            if not left:
                return
            _signal(left, signal.SIGKILL)
            time.sleep(0.01)
            self._reap()

    def request_term(self, *_: object) -> None:
        self.terminating = True

    def run(self) -> int:
        selector = selectors.DefaultSelector()
        control = sys.stdin.fileno()
        selector.register(control, selectors.EVENT_READ)
        selector.register(os.pidfd_open(self.child), selectors.EVENT_READ)
        while self.status is None:
            for key, _ in selector.select(TICK_SECONDS):
                if key.fd != control:
                    continue
                request = os.read(control, 64)
                if b"term" in request:
                    self.terminate()
                if b"kill" in request or not request:
                    self.kill()
                if not request:
                    self.orphaned = True
                    selector.unregister(control)
            if self.terminating:
                self.terminate()  # a script started after the request gets it too
            self._reap()
        if self.mode == "process":
            self.kill()  # the job is over: nothing it started lives on
        if os.WIFEXITED(self.status):
            return os.WEXITSTATUS(self.status)
        return 128 + os.WTERMSIG(self.status)


def _spawn_entered(command: list[str], base: str, mounts: Sequence[Mapping[str, str | None]]) -> int:
    """Fork, :func:`enter` in the child (single-threaded, as ``unshare`` of a user namespace needs), exec
    ``command``. A failure there is one line on stderr and exit status 127."""
    pid = os.fork()
    if pid:
        return pid
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        enter(base, mounts)
        os.execvp(command[0], command)
    except BaseException as error:  # the forked child must never return into the init's code
        with contextlib.suppress(OSError):
            os.write(2, f"[train-local] host init: {error}\n".encode())
    finally:
        os._exit(127)


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    encoded = [a.encode() if isinstance(a, str) else a for a in args]
    if getattr(libc, name)(*encoded) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}{tuple(args)}: {os.strerror(error)}")


def _bind(source: str, target: str) -> None:
    _libc_call("mount", source, target, None, MS_BIND | MS_REC, None)


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def mount_data(source: str, target: str, upper: str | None) -> None:
    """``source`` (a folder or a file) seen at ``target`` without a byte copied, and never changed.

    With ``upper`` (a folder of the job's scratch), an overlay: the script may write, append and
    delete as in its own copy (SageMaker's File mode), the changes land in ``upper``. Without it,
    or where this kernel refuses that overlay, a read-only bind: writes fail (EROFS)."""
    if upper is not None:
        for folder in ("upper", "work"):
            os.makedirs(f"{upper}/{folder}", exist_ok=True)
        options = f"userxattr,lowerdir={source},upperdir={upper}/upper,workdir={upper}/work"
        try:
            _libc_call("mount", "overlay", target, "overlay", 0, options)
            return
        except OSError as error:
            print(f"[train-local] {target} is read-only: no overlay here ({error})", file=sys.stderr)
    _libc_call("mount", source, target, None, MS_BIND, None)
    _libc_call("mount", "none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(target), None)


def _locked_flags(path: str) -> int:
    """The flags of the mount holding ``path`` that a user namespace may not drop (nosuid, nodev, noexec,
    atime), which a remount must repeat."""
    flags = os.statvfs(path).f_flag
    kept = flags & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME)
    return kept | (MS_RELATIME if flags & os.ST_RELATIME else 0)  # the only one whose values differ


def remove_tree(path: str) -> None:
    """Remove ``path`` whatever an overlay left in it (its work folder keeps a mode-000 ``work``)."""
    import shutil  # only on this path: the init starts faster without it

    def opened(_: object, failed: str, __: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(failed, 0o700)
            shutil.rmtree(failed, ignore_errors=True)

    shutil.rmtree(path, **({"onexc": opened} if sys.version_info >= (3, 12) else {"onerror": opened}))


def enter(base: str, mounts: Sequence[Mapping[str, str | None]] = ()) -> None:
    """Make ``/opt/ml`` be ``base`` for this process and what it execs, and for nothing else; then
    each of ``mounts`` (``source``, ``target`` under ``/opt/ml``, ``upper``: :func:`mount_data`).

    A new user namespace (the caller's uid and gid mapped to themselves, so its files keep their
    owner) gives the right to mount in a new mount namespace, private to this process tree (root
    needs no user namespace, and its overlays can then copy up anyone's file). If ``/opt/ml`` exists, ``base`` is bound
    over it; otherwise a tmpfs covers ``/opt`` holding ``ml`` (``base``) beside binds of ``/opt``'s
    own entries, reached through a descriptor of the covered folder. The host's ``/opt`` is never written.
    """
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:  # root may mount already: a user namespace would only hide other users' files
        _libc_call("unshare", CLONE_NEWNS)
    else:
        _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNS)
        _write("/proc/self/setgroups", "deny")  # a process may map only its own ids, and groups then stay as they are
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _libc_call("mount", "none", "/", None, MS_REC | MS_PRIVATE, None)
    _lay_over_opt(base)
    if os.path.isdir(OPT_ML_CODE):
        # The toolkit unpacks the code here. In memory, it goes with the namespace when the host
        # ends, instead of being deleted file by file from disk after the job (10,000 files: 1-20 s).
        _libc_call("mount", "tmpfs", OPT_ML_CODE, "tmpfs", 0, "mode=0755")
    for mount in mounts:
        mount_data(str(mount["source"]), str(mount["target"]), mount["upper"])


def _lay_over_opt(base: str) -> None:
    if os.path.isdir(OPT_ML):
        _bind(base, OPT_ML)
        return
    if not os.path.isdir(OPT):
        raise OSError(f"{OPT} does not exist, so {OPT_ML} cannot be laid over it")
    entries = sorted(os.listdir(OPT))
    covered = os.open(OPT, os.O_PATH | os.O_DIRECTORY)
    try:
        _libc_call("mount", "tmpfs", OPT, "tmpfs", 0, "mode=0755")
        for name in entries:
            source, target = f"/proc/self/fd/{covered}/{name}", f"{OPT}/{name}"
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
                continue
            if os.path.isdir(source):
                os.mkdir(target)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            _bind(source, target)
    finally:
        os.close(covered)
    os.mkdir(OPT_ML)
    _bind(base, OPT_ML)


def _probe() -> int:
    """``enter --probe``: exit 0 if this machine lets a process see its own folder at ``/opt/ml``."""
    import tempfile

    with tempfile.TemporaryDirectory() as base:
        try:
            enter(base)
            with open(f"{OPT_ML}/probe", "w"):  # written through to base, not to /opt
                pass
            if not os.path.exists(os.path.join(base, "probe")):
                raise OSError(f"{OPT_ML} is not {base}")
        except OSError as error:
            print(error, file=sys.stderr)
            return 1
    return 0


def main(argv: list[str]) -> int:
    if argv == ["enter", "--probe"]:
        return _probe()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("process", "container"))
    parser.add_argument("--term", type=json.loads, help="container mode: command that SIGTERMs the user processes")
    parser.add_argument("--kill", type=json.loads, help="container mode: command that removes the container")
    parser.add_argument("--scratch", help="the job's temp folder, removed if the CLI dies")
    parser.add_argument("--opt-ml", help="process mode: start the command where /opt/ml is this folder")
    parser.add_argument("--mounts", type=json.loads, default=[], help="with --opt-ml: data laid over its folders")
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("no command after --")
    if args.mode == "process":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    requests: list[int] = []
    for sig in STOP_SIGNALS:  # before the child exists, so none is missed; the child gets the defaults
        signal.signal(sig, lambda sig, _: requests.append(sig))
    if args.opt_ml and args.mode != "process":
        parser.error("--opt-ml is for process mode")
    supervisor = Supervisor(args.mode, command, args.term, args.kill, args.opt_ml, args.mounts)
    for sig in STOP_SIGNALS:
        signal.signal(sig, supervisor.request_term)
    if requests:
        supervisor.request_term()
    status = supervisor.run()
    if supervisor.orphaned and args.scratch:
        remove_tree(args.scratch)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
