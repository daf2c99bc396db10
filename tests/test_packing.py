"""The incremental packer: the cache changes how much is read, never the archive's bytes."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pathspec
import pytest
from sagemaker_training import files as toolkit_files
from support import run_cli, source_dir

from pipeline.definition import packing, sourcedir
from pipeline.errors import SettingsError

PAST = 1_000_000_000  # seconds: an mtime long gone


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    """A cache of the test's own, which trusts files changed before the pack (utime moves the ctime)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(packing, "RACY_NS", 0)
    return tmp_path / "cache"


def make_tree(root: Path, count: int) -> Path:
    """``count`` Python files in folders of ten, plus ``train.py``, all dated in the past."""
    source_dir(root, "print('training')\n")
    for i in range(count):
        path = root / f"pkg{i // 10:02}" / f"mod{i:03}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"VALUE = {i}\n")
    age(root)
    return root


def age(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.utime(path, (PAST, PAST))


def read(source: Path, image_python: str | None = None) -> tuple[bytes, packing.Packed]:
    """The archive through the cache, and what the packer did."""
    files, packed = sourcedir._packed(source, "train.py", image_python)
    assert packed.archive == sourcedir.pack_files(source, files)  # always the cold pack's bytes
    return packed.archive, packed


def contents(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_a_warm_pack_reads_nothing_and_an_edit_reads_its_chunk(tmp_path):
    source = make_tree(tmp_path / "src", 300)
    cold, first = read(source)
    assert first.read == 301
    warm, second = read(source)
    assert (warm, second.read) == (cold, 0)
    (source / "pkg07" / "mod070.py").write_text("VALUE = 'edited'\n")
    edited, third = read(source)
    assert 1 <= third.read < 301 / 2  # one chunk, about packing.CHUNK_FILES files
    assert contents(edited)["pkg07/mod070.py"] == b"VALUE = 'edited'\n"
    assert edited != cold


def test_added_and_removed_files_show_in_the_archive(tmp_path):
    source = make_tree(tmp_path / "src", 50)
    read(source)
    (source / "pkg01" / "mod011.py").unlink()
    (source / "new.py").write_text("NEW = 1\n")
    archive, _ = read(source)
    names = contents(archive)
    assert "new.py" in names and "pkg01/mod011.py" not in names


def test_a_rewrite_that_keeps_size_and_mtime_is_still_read(tmp_path):
    """Same size and mtime, new content in place (the ctime moves) or by a rename (a new inode)."""
    source = make_tree(tmp_path / "src", 20)
    read(source)
    target = source / "pkg01" / "mod010.py"
    target.write_text("VALUE = 99\n")  # same length as "VALUE = 10\n"
    os.utime(target, (PAST, PAST))
    assert contents(read(source)[0])["pkg01/mod010.py"] == b"VALUE = 99\n"
    replacement = tmp_path / "replacement.py"
    replacement.write_text("VALUE = 77\n")
    os.utime(replacement, (PAST, PAST))
    os.replace(replacement, target)
    assert contents(read(source)[0])["pkg01/mod010.py"] == b"VALUE = 77\n"


def test_files_changed_just_now_are_not_trusted_from_the_cache(tmp_path, monkeypatch):
    """A write in the same clock tick as the pack could keep its stat: such files are read again
    (here every file is younger than the window: none is cached); older ones are not (the other tests)."""
    monkeypatch.setattr(packing, "RACY_NS", 3600 * 10**9)
    source = make_tree(tmp_path / "src", 20)
    cold, _ = read(source)
    archive, packed = read(source)
    assert (archive, packed.read) == (cold, 21)


def test_an_execute_bit_change_is_packed(tmp_path):
    source = make_tree(tmp_path / "src", 5)
    read(source)
    (source / "train.py").chmod(0o755)
    with tarfile.open(fileobj=io.BytesIO(read(source)[0])) as tar:
        assert tar.getmember("train.py").mode == 0o755


def _edit_index(index: Path, change) -> None:
    entry = json.loads(index.read_text())
    change(entry)
    index.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    "damage",
    [
        lambda index, blob: index.write_text("{not json"),
        lambda index, blob: blob.write_bytes(b"garbage"),
        lambda index, blob: _edit_index(index, lambda e: e.update(chunks=[1, 2])),
        lambda index, blob: _edit_index(index, lambda e: e["files"].update({"train.py": ["x", 1, 2, 3, 4, ""]})),
        lambda index, blob: _edit_index(index, lambda e: e["chunks"].update({k: [0, 10**9, 0] for k in e["chunks"]})),
        lambda index, blob: _edit_index(index, lambda e: e["chunks"].update({k: [0, 1, "2"] for k in e["chunks"]})),
        lambda index, blob: blob.unlink(),
        lambda index, blob: (index.unlink(), index.mkdir()),
    ],
    ids=[
        "bad-json",
        "other-archive",
        "wrong-shape",
        "wrong-file-entry",
        "chunk-outside",
        "chunk-not-a-number",
        "archive-missing",
        "index-a-folder",
    ],
)
def test_a_damaged_cache_is_ignored(tmp_path, cache_home, damage):
    source = make_tree(tmp_path / "src", 30)
    cold, _ = read(source)
    (index,) = cache_home.glob("**/sourcedir/*.json")
    damage(index, index.with_suffix(".tar.gz"))
    archive, packed = read(source)
    assert archive == cold and packed.read == 31


def test_the_cache_is_never_inside_the_source_dir(tmp_path, monkeypatch):
    source = make_tree(tmp_path / "src", 5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(source / ".cache-here"))
    first, _ = read(source)
    second, packed = read(source)
    assert first == second and packed.read == 6
    assert not (source / ".cache-here").exists()


def test_readers_of_tar_gz_read_the_chunked_archive(tmp_path):
    """GNU tar, gzip, and the toolkit's own extraction (what SageMaker runs) see every file."""
    source = make_tree(tmp_path / "src", 200)
    archive, _ = read(source)
    path = tmp_path / "sourcedir.tar.gz"
    path.write_bytes(archive)
    listed = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(contents(archive)) and len(listed) == 201
    assert len(gzip.decompress(archive)) % tarfile.RECORDSIZE == 0
    toolkit_files.download_and_extract(str(path), str(tmp_path / "code"))
    extracted = {p.relative_to(tmp_path / "code"): p.read_bytes() for p in (tmp_path / "code").rglob("*.py")}
    assert extracted == {p.relative_to(source): p.read_bytes() for p in source.rglob("*.py")}


def test_chunk_boundaries_do_not_move_when_a_file_is_added(tmp_path):
    names = [Path(f"f{i:04}.py") for i in range(500)]
    stat = os.stat(__file__)
    before = [[p for p, _ in chunk] for chunk in packing.chunks([(p, stat) for p in names])]
    after = [[p for p, _ in chunk] for chunk in packing.chunks([(p, stat) for p in [*names[:250], *names[251:]]])]
    changed = [chunk for chunk in after if chunk not in before]
    assert len(changed) == 1 and 1 < len(before) < 500


def test_a_large_file_is_a_chunk_of_its_own(tmp_path):
    small, large = os.stat(__file__), os.stat_result((0,) * 6 + (packing.LARGE, 0, 0, 0))
    files = [(Path("a.py"), small), (Path("big.bin"), large), (Path("c.py"), small)]
    assert [Path("big.bin")] in [[p for p, _ in chunk] for chunk in packing.chunks(files)]


@pytest.mark.parametrize(
    "lines",
    [
        sourcedir.DEFAULT_IGNORE,
        sourcedir.SECRET_LOOKING,
        ("data/", "*.csv", "!keep.csv", "/top.txt", "build"),
        ("**/tmp/**", "a/*/b", "*.log"),
    ],
)
def test_the_joined_matcher_agrees_with_pathspec(lines):
    paths = [
        *("train.py", ".env", "a/.env.local", "x/__pycache__/", "workflow.py", "a/workflow.py", "b/c.pyc"),
        *("#x#", "data/", "sub/data/", "a.csv", "keep.csv", "top.txt", "s/top.txt", "build", "build/x"),
        *("q/tmp/z", "a/x/b", "a/x/y/b", "z.log", "certs/server.pem", "aws/credentials", "id_rsa.pub"),
    ]
    reference = pathspec.GitIgnoreSpec.from_lines(lines).match_file
    assert [sourcedir._matcher(tuple(lines))(p) for p in paths] == [reference(p) for p in paths]


# --- the image's Python decides what compiles --------------------------------------------------------

NEWER = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_a_syntax_error_is_refused_when_this_python_is_the_images(tmp_path):
    source = make_tree(tmp_path / "src", 2)
    (source / "broken.py").write_text("x = 1\ndef f(:\n")
    with pytest.raises(SettingsError, match=r"broken\.py:2: .*fix the code"):
        read(source, HERE)


def test_under_an_older_python_newer_syntax_is_a_note_and_stays_one_from_the_cache(tmp_path, monkeypatch):
    """The CLI's Python cannot judge a line using syntax that only the image's newer Python has."""
    monkeypatch.setattr(sourcedir, "NEWER_SYNTAX", {tuple(map(int, NEWER.split("."))): re.compile("NEWSYNTAX")})
    source = make_tree(tmp_path / "src", 2)
    (source / "new_syntax.py").write_text("x = 1\ny = NEWSYNTAX 2\n")
    for _ in range(2):  # the second time from the cache
        archive, packed = read(source, NEWER)
        (note,) = packed.notes
        assert "new_syntax.py:2: " in note and f"the image runs {NEWER}" in note
        assert "new_syntax.py" in contents(archive)
    assert packed.read == 0
    with pytest.raises(SettingsError, match=r"new_syntax\.py:2: .*fix the code"):
        read(source, HERE)  # the image's own version: refused


def test_under_an_older_python_a_plain_syntax_error_is_still_refused(tmp_path):
    source = make_tree(tmp_path / "src", 2)
    (source / "broken.py").write_text("x = 1\ndef f(:\n")
    with pytest.raises(SettingsError, match=r"broken\.py:2: .*fix the code"):
        read(source, NEWER)


def test_python_3_12_syntax_ships_for_the_3_12_image(tmp_path):
    """``type X = int`` (PEP 695) and nested same-quote f-strings (PEP 701): valid in the image's 3.12."""
    source = make_tree(tmp_path / "src", 2)
    (source / "aliases.py").write_text("type Vector = list[float]\n")
    (source / "strings.py").write_text("names = ['a']\nprint(f\"{', '.join(f\"{n}\" for n in names)}\")\n")
    done = run_cli("describe", "--source-dir", str(source))
    assert done.returncode == 0, done.stderr
    if sys.version_info < (3, 12):
        notes = done.stderr.splitlines()
        assert [("aliases.py:1: " in n, "strings.py:2: " in n) for n in notes] == [(True, False), (False, True)]
        assert all("the image runs 3.12" in note for note in notes)
    else:
        assert "aliases.py" not in done.stderr and "strings.py" not in done.stderr


def test_a_cache_that_cannot_be_written_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    source = make_tree(tmp_path / "src", 5)
    first, _ = read(source)
    second, packed = read(source)
    assert first == second and packed.read == 6
    assert blocker.read_text() == "" and not list(tmp_path.glob("**/*.tmp"))


def test_a_link_to_a_folder_is_ignored_by_a_folder_line(tmp_path):
    """``data/`` in the ignore file leaves out a ``data`` link to a folder elsewhere, as a folder."""
    source = make_tree(tmp_path / "src", 2)
    (tmp_path / "elsewhere").mkdir()
    (source / "data").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SettingsError, match="is a symbolic link"):
        read(source)
    (source / ".sagemakerignore").write_text("data/\n")
    assert "data" not in contents(read(source)[0])


def test_a_file_that_cannot_be_read_is_one_error(tmp_path, monkeypatch):
    """As a user without the permission sees it (the tests may run as root, who reads anything)."""
    source = make_tree(tmp_path / "src", 2)
    locked = source / "pkg00" / "mod001.py"
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(SettingsError, match=r"mod001\.py: Permission denied: make it readable, or list it in"):
        read(source)
