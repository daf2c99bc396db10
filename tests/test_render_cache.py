"""The render cache: cached equals fresh, any key input misses, bounded, safe when shared."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import PROBE_SRC, ROOT

from pipeline import render_cache
from pipeline.definition import sourcedir
from pipeline.definition.render import render
from pipeline.definition.settings import build_settings

OFFLINE = build_settings({}, offline=True)


def NO_CHECK(text: str) -> None:
    """Accept every definition."""


class Refused(Exception):
    pass


def refuse(text: str) -> None:
    raise Refused("unusable")


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return render_cache.cache_dir()


def sources(tmp_path: Path) -> list[sourcedir.Source]:
    edited = tmp_path / "edited"
    shutil.copytree(ROOT / "user_src", edited, ignore=shutil.ignore_patterns("__pycache__"))
    (edited / "train.py").write_text((edited / "train.py").read_text() + "\n# edit\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "train.py").write_text("print('hi')\n")
    return [sourcedir.read(path) for path in (ROOT / "user_src", edited, PROBE_SRC, bare)]


def test_cached_equals_fresh_for_every_input(tmp_path, cache_home):
    settings = [OFFLINE, build_settings({"pipeline_name": "other", "tags": "team=ml"}, offline=True)]
    for source in sources(tmp_path):
        for chosen in settings:
            fresh = render(chosen, source)
            assert render_cache.cached_render(chosen, source, NO_CHECK) == fresh  # a miss: renders and stores
            assert render_cache.cached_render(chosen, source, NO_CHECK) == fresh  # a hit
    # user_src and its code-only edit share one entry: only the code URI differs between them
    assert len(list(cache_home.glob("*.json"))) == 3 * len(settings)


def test_a_hit_imports_no_sdk(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline import render_cache\n"
        "from pipeline.definition import sourcedir\n"
        "from pipeline.definition.settings import build_settings\n"
        "source = sourcedir.read(Path(sys.argv[1]))\n"
        "render_cache.cached_render(build_settings({}, offline=True), source, lambda text: None)\n"
        "print('sagemaker' in sys.modules)\n"
    )
    command = [sys.executable, "-c", script, str(ROOT / "user_src")]
    runs = [subprocess.run(command, capture_output=True, text=True, check=True) for _ in range(2)]
    assert [run.stdout.strip().splitlines()[-1] for run in runs] == ["True", "False"]


def test_any_key_input_misses(tmp_path, monkeypatch):
    source = sourcedir.read(ROOT / "user_src")
    base = render_cache.key(OFFLINE, source)
    assert render_cache.key(OFFLINE, source) == base
    other_settings = build_settings({"bucket": "another-bucket"}, offline=True)
    assert render_cache.key(other_settings, source) != base
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "user_src", changed, ignore=shutil.ignore_patterns("__pycache__"))
    (changed / "training.toml").write_text((changed / "training.toml").read_text().replace("0.7", "0.8"))
    assert render_cache.key(OFFLINE, sourcedir.read(changed)) != base
    package = tmp_path / "definition"
    shutil.copytree(render_cache.DEFINITION_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "sdk.py").write_text((package / "sdk.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(render_cache, "DEFINITION_PACKAGE", package)
    assert render_cache.key(OFFLINE, source) != base
    monkeypatch.undo()
    monkeypatch.setattr(render_cache.importlib.metadata, "version", lambda name: "9.9.9")
    assert render_cache.key(OFFLINE, source) != base


def test_the_cache_is_bounded_and_bypassable(tmp_path, cache_home, monkeypatch):
    monkeypatch.setattr(render_cache, "MAX_ENTRIES", 2)
    source = sourcedir.read(ROOT / "user_src")
    for name in ("one", "two", "three"):
        render_cache.cached_render(build_settings({"pipeline_name": name}, offline=True), source, NO_CHECK)
    assert len(list(cache_home.glob("*.json"))) == 2
    before = sorted(cache_home.iterdir())
    render_cache.cached_render(build_settings({"pipeline_name": "four"}, offline=True), source, NO_CHECK, False)
    assert sorted(cache_home.iterdir()) == before


def test_concurrent_renders_share_the_cache_safely(tmp_path, cache_home):
    source = sourcedir.read(ROOT / "user_src")
    fresh = render(OFFLINE, source)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: render_cache.cached_render(OFFLINE, source, NO_CHECK), range(8)))
    assert all(result == fresh for result in results)
    assert [p.suffix for p in cache_home.iterdir()] == [".json"]  # no temp file left behind


def test_a_definition_that_fails_its_check_is_never_stored(cache_home):
    source = sourcedir.read(ROOT / "user_src")
    with pytest.raises(Refused):
        render_cache.cached_render(OFFLINE, source, refuse)
    assert not cache_home.exists() or list(cache_home.iterdir()) == []
    with pytest.raises(Refused):  # still checked: nothing was cached to skip it
        render_cache.cached_render(OFFLINE, source, refuse)
