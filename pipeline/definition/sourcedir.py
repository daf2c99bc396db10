"""Pack the user's code as ``sourcedir.tar.gz``, byte-for-byte reproducibly.

The pipeline and the local runner both use :func:`read`, so what runs locally is
what SageMaker downloads. The S3 key is the archive's hash: unchanged code keeps
the same key, the definition stays byte-identical, and step caching hits.

What is packed: every file of the source dir except what the ignore rules exclude,
:data:`DEFAULT_IGNORE` (always) and the gitignore-style lines of ``.sagemakerignore``
beside the code. ``.gitignore`` is not read: it describes what git should not track
(build output, data, downloaded models), which is often exactly what a job needs, and
git's own rules span parent folders and global files that a partial reading would
get wrong. A file that the defaults exclude cannot be re-included (``!`` lines only
undo the ignore file's own lines), so a ``.env`` never reaches S3.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from pipeline.definition import contract
from pipeline.definition.contract import Contract
from pipeline.errors import SettingsError

IGNORE_FILE = ".sagemakerignore"
# Never packed: local secrets, version control, editor and OS leftovers, caches. None of them
# is code, and an empty swap file must not change the archive's hash (and the pipeline).
DEFAULT_IGNORE = (
    ".env*",
    *(".git", ".hg", ".svn", ".bzr"),
    *("*.swp", "*.swo", "*~", ".#*", r"\#*#"),  # "\#": a leading "#" starts a comment
    *(".DS_Store", "._*", "Thumbs.db", "desktop.ini"),
    *("__pycache__/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".ipynb_checkpoints/", "*.pyc", "*.pyo"),
    IGNORE_FILE,  # how to pack, not code
    f"/{contract.WORKFLOW_FILE}",  # the DAG, not the jobs' code: editing it keeps step caching
)
# Packed if not ignored, with a warning: names that usually hold keys or credentials.
SECRET_LOOKING = (
    *("*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore"),
    *("id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*"),
    *("credentials*", ".netrc", ".pgpass", "*.tfstate"),
)


@cache
def _matcher(lines: tuple[str, ...]) -> Callable[[str], bool]:
    """Gitignore semantics through ``pathspec``, imported on first use (about 30 ms)."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines).match_file


def ignore_rules(source_dir: Path) -> Callable[[str], bool]:
    """Whether a path relative to ``source_dir`` (POSIX, a folder ending in ``/``) is left out."""
    defaults = _matcher(DEFAULT_IGNORE)
    path = source_dir / IGNORE_FILE
    if not path.is_file():
        return defaults
    try:
        user = _matcher(tuple(path.read_text(encoding="utf-8").splitlines()))
    except UnicodeDecodeError:
        raise SettingsError(f"{path} is not UTF-8 text: save it as UTF-8") from None
    except ValueError as error:  # pathspec's malformed-pattern error
        raise SettingsError(f"{path}: {error}: fix the line (gitignore syntax)") from None
    return lambda relative: defaults(relative) or user(relative)


def _raise(error: OSError) -> None:
    raise error


def included_files(source_dir: Path) -> list[Path]:
    """Files to pack, relative to ``source_dir``, in a stable order: all but the ignored ones.

    An ignored folder is not entered, so nothing below it can be re-included, as in git. A symbolic
    link that is not ignored is refused: following it would ship whatever it points at (a
    credentials file outside the tree, say) under an innocent name.
    """
    ignored = ignore_rules(source_dir)
    files = []
    for folder, dirs, names in os.walk(source_dir, onerror=_raise):
        here = Path(folder).relative_to(source_dir)
        dirs[:] = [d for d in dirs if not ignored(f"{(here / d).as_posix()}/")]
        kept = [n for n in names if not ignored((here / n).as_posix())]
        for name in [*dirs, *kept]:
            _refuse_link(source_dir, Path(folder) / name)
        _refuse_environment(source_dir, Path(folder), kept)
        files += [here / n for n in kept if (Path(folder) / n).is_file()]
    return sorted(files)


def _refuse_link(source_dir: Path, path: Path) -> None:
    if path.is_symlink():
        raise SettingsError(
            f"{path} is a symbolic link (to {os.readlink(path)}): the code archive holds files, and following"
            f" it could ship a file from outside {source_dir}; copy the file in, or list it in {IGNORE_FILE}"
        )


def _refuse_environment(source_dir: Path, folder: Path, names: list[str]) -> None:
    """A virtual environment (or a whole project with its ``.venv``) is refused as soon as the walk
    meets it, before thousands of its files are read and compiled."""
    if "pyvenv.cfg" in names:
        raise SettingsError(
            f"{folder} is a Python virtual environment, not code to ship: pass --source-dir with only your"
            f" code, or list {folder.relative_to(source_dir).as_posix() or '.'}/ in {IGNORE_FILE}"
        )


def secret_looking(files: Iterable[Path]) -> list[Path]:
    """The files whose names suggest keys or credentials, to warn about before they ship."""
    looks_secret = _matcher(SECRET_LOOKING)
    return [f for f in files if looks_secret(f.as_posix())]


def check(source_dir: Path, entry_point: str) -> None:
    """Fail before packing when the folder or its entry point is missing: an empty archive would deploy."""
    if not source_dir.is_dir():
        raise SettingsError(
            f"source dir {source_dir} is not a folder: pass --source-dir with your training code,"
            " or run from the project root"
        )
    if PurePosixPath(entry_point).is_absolute() or ".." in PurePosixPath(entry_point).parts:
        raise SettingsError(
            f"the entry point {entry_point} is outside the source dir {source_dir}: only the source dir ships;"
            " move the script into it (or pass --source-dir with the script's folder) and name it relative to it"
            " (entry_point in training.toml, or --entry-point)"
        )
    problem = contract.entry_point_problem(entry_point)
    if problem:
        raise SettingsError(f"{problem} (entry_point in training.toml, or --entry-point)")
    if not (source_dir / entry_point).is_file():
        raise SettingsError(
            f"source dir {source_dir} has no {entry_point}: add it, or name the script"
            " (entry_point in training.toml, or --entry-point)"
        )


def _check_packed(source_dir: Path, entry_point: str, files: list[Path]) -> None:
    """The entry point and the contract must ship, and every Python file must compile: a syntax
    error found here names its file and line, instead of failing a job on an instance."""
    needed = [Path(entry_point)] + (
        [Path(contract.CONTRACT_FILE)] if (source_dir / contract.CONTRACT_FILE).is_file() else []
    )
    for path in needed:
        if path not in files:
            raise SettingsError(
                f"{source_dir / path} is excluded by the ignore rules: remove its line from {IGNORE_FILE}"
            )
    for relative in files:
        if relative.suffix != ".py":
            continue
        path = source_dir / relative
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as error:
            raise SettingsError(
                f"{path}:{error.lineno}: {error.msg}: fix the code (it would fail on SageMaker)"
            ) from None
        except ValueError as error:  # null bytes
            raise SettingsError(f"{path}: {error}: fix the file, or list it in {IGNORE_FILE}") from None


def pack_files(source_dir: Path, files: Iterable[Path]) -> bytes:
    """A gzipped tar of ``files`` with fixed mtimes, owners and modes: the same files, the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in files:
            data = (source_dir / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(data)
            info.mode = 0o755 if (source_dir / relative).stat().st_mode & 0o100 else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def pack(source_dir: Path, entry_point: str) -> bytes:
    """The archive of ``source_dir``: see :func:`check` and :func:`included_files`."""
    return _packed(source_dir, entry_point)[1]


def _packed(source_dir: Path, entry_point: str) -> tuple[list[Path], bytes]:
    check(source_dir, entry_point)
    files = included_files(source_dir)
    _check_packed(source_dir, entry_point, files)
    return files, pack_files(source_dir, files)


def content_key(archive: bytes) -> str:
    """Short content hash that names the archive's S3 prefix."""
    return hashlib.sha256(archive).hexdigest()[:16]


def s3_uri(code_prefix: str, archive: bytes) -> str:
    """Where an archive lives: ``<code_prefix>/<hash>/sourcedir.tar.gz``."""
    return f"{code_prefix}/{content_key(archive)}/sourcedir.tar.gz"


@dataclass(frozen=True)
class Source:
    """A source dir read once: its contract, the archive that ships it, and what the archive holds."""

    path: Path
    contract: Contract
    archive: bytes
    files: tuple[Path, ...] = ()  # relative to ``path``, as packed


def read(path: Path, entry_point: str | None = None) -> Source:
    """The source dir's contract (``entry_point`` overrides the declared one) and its packed archive."""
    declared = contract.load(path)
    if entry_point:
        declared = dataclasses.replace(declared, entry_point=entry_point)
    files, archive = _packed(path, declared.entry_point)
    return Source(path, declared, archive, tuple(files))
