"""Code and model archives unpack the same, and refuse the same members, with or without tarfile's
``"data"`` filter (Debian bookworm's Python 3.11.2 has none; the image may run on it)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from custom_framework_training import archives


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


@pytest.fixture(params=["data filter", "fallback"])
def without_filter(request, monkeypatch) -> bool:
    """Each test runs with the interpreter's filter and with the checks made for older Pythons."""
    if request.param == "fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no data filter")
    return request.param == "fallback"


def test_a_normal_archive_unpacks(tmp_path, without_filter):
    archive = _archive(
        tmp_path / "code.tar.gz",
        (_member("train.py"), b"print(1)\n"),
        (_member("pkg", tarfile.DIRTYPE), b""),
        (_member("pkg/util.py"), b"X = 1\n"),
        (_member("pkg/alias.py", tarfile.SYMTYPE, "util.py"), b""),
    )
    archives.extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "train.py").read_text() == "print(1)\n"
    assert (tmp_path / "out" / "pkg" / "alias.py").read_text() == "X = 1\n"


def test_modes_are_the_data_filters_whoever_extracts(tmp_path, without_filter):
    """Checked on the modes, not by reading through them: root reads a folder stored as 0o644, its
    owner does not (the runner's user hit that), so reading alone passes as root whatever the modes."""
    folder = _member("pkg", tarfile.DIRTYPE)  # stored 0o644, as _member makes every member
    script = _member("pkg/run.sh")
    script.mode = 0o4777  # setuid, world-writable
    archive = _archive(tmp_path / "code.tar.gz", (folder, b""), (_member("pkg/util.py"), b"X = 1\n"), (script, b"x"))
    archives.extract(archive, tmp_path / "out")
    out = tmp_path / "out" / "pkg"
    assert out.stat().st_mode & 0o700 == 0o700
    assert (out / "util.py").stat().st_mode & 0o7777 == 0o644
    assert (out / "run.sh").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(
    "member",
    [
        _member("../escape.py"),
        _member("link", tarfile.SYMTYPE, "../../etc/passwd"),
        _member("hard", tarfile.LNKTYPE, "../outside"),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "symlink-out", "hardlink-out", "fifo"],
)
def test_an_escaping_or_special_member_is_refused(tmp_path, without_filter, member):
    archive = _archive(tmp_path / "bad.tar.gz", (member, b"x"))
    with pytest.raises(tarfile.TarError):
        archives.extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.py").exists()


def test_an_absolute_name_never_lands_outside(tmp_path, without_filter):
    """The data filter strips the leading ``/``; the fallback refuses the member."""
    outside = tmp_path / "absolute-escape.py"
    archive = _archive(tmp_path / "abs.tar.gz", (_member(str(outside)), b"x"))
    try:
        archives.extract(archive, tmp_path / "out")
    except tarfile.TarError:
        assert without_filter
    else:
        assert (tmp_path / "out" / str(outside).lstrip("/")).read_bytes() == b"x"
    assert not outside.exists()


def test_the_fallback_writes_nothing_when_a_later_member_escapes(tmp_path, without_filter):
    if not without_filter:
        pytest.skip("the data filter refuses member by member")
    archive = _archive(tmp_path / "bad.tar.gz", (_member("ok.py"), b"1"), (_member("../escape.py"), b"x"))
    with pytest.raises(archives.UnsafeArchive, match="outside"):
        archives.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_archive_the_project_unpacks_goes_through_the_capped_extract():
    """Code, models and inference code from users are unpacked in several places (serving, transform,
    processing, promotion, local runners): all through :func:`archives.extract`, whose size and member
    caps refuse a tar bomb from its headers."""
    root = Path(__file__).resolve().parents[1]
    sources = [*root.glob("pipeline/**/*.py"), *root.glob("framework_image/framework/src/**/*.py")]
    unpacking = sorted(
        str(path.relative_to(root))
        for path in sources
        if "extractall(" in path.read_text() or ".extract(" in path.read_text().replace("archives.extract(", "")
    )
    assert unpacking == ["framework_image/framework/src/custom_framework_training/archives.py"]


def test_a_bomb_is_refused_before_anything_is_written(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(3):
            info = tarfile.TarInfo(f"zeros-{index}")
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert archive.stat().st_size < 20_000  # 3 MB of zeros packs to a few KB
    with pytest.raises(archives.ArchiveTooLarge, match="unpacks to more than"):
        archives.extract(archive, tmp_path / "into", limit=2 << 20)
    assert not (tmp_path / "into").exists()
    with pytest.raises(archives.ArchiveTooLarge, match="holds more than 2 members"):
        archives.unpacked_size(archive, limit=1 << 30, max_members=2)
