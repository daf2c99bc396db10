"""The render cache: cached equals fresh, any key input misses, bounded, safe when shared."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import PROBE_SRC, PROJECT_SRC, source_dir

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
    shutil.copytree(PROJECT_SRC, edited, ignore=shutil.ignore_patterns("__pycache__"))
    (edited / "train.py").write_text((edited / "train.py").read_text() + "\n# edit\n")
    bare = source_dir(tmp_path / "bare", "print('hi')\n")
    return [sourcedir.read(path) for path in (PROJECT_SRC, edited, PROBE_SRC, bare)]


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
    command = [sys.executable, "-c", script, str(PROJECT_SRC)]
    runs = [subprocess.run(command, capture_output=True, text=True, check=True) for _ in range(2)]
    assert [run.stdout.strip().splitlines()[-1] for run in runs] == ["True", "False"]


def test_any_key_input_misses(tmp_path, monkeypatch):
    source = sourcedir.read(PROJECT_SRC)
    base = render_cache.key(OFFLINE, source)
    assert render_cache.key(OFFLINE, source) == base
    other_settings = build_settings({"bucket": "another-bucket"}, offline=True)
    assert render_cache.key(other_settings, source) != base
    changed = tmp_path / "changed"
    shutil.copytree(PROJECT_SRC, changed, ignore=shutil.ignore_patterns("__pycache__"))
    (changed / "training.toml").write_text((changed / "training.toml").read_text().replace("100", "200"))
    assert render_cache.key(OFFLINE, sourcedir.read(changed)) != base
    dag = tmp_path / "dag"
    shutil.copytree(PROJECT_SRC, dag, ignore=shutil.ignore_patterns("__pycache__"))
    (dag / "workflow.py").write_text((dag / "workflow.py").read_text().replace("0.7", "0.8"))
    assert render_cache.key(OFFLINE, sourcedir.read(dag)) != base
    package = tmp_path / "definition"
    shutil.copytree(render_cache.DEFINITION_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "sdk.py").write_text((package / "sdk.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(render_cache, "DEFINITION_PACKAGE", package)
    assert render_cache.key(OFFLINE, source) != base
    monkeypatch.undo()
    monkeypatch.setattr(render_cache, "_sdk_version", lambda: "9.9.9")
    assert render_cache.key(OFFLINE, source) != base


def test_the_cache_is_bounded_and_bypassable(tmp_path, cache_home, monkeypatch):
    monkeypatch.setattr(render_cache, "MAX_ENTRIES", 2)
    source = sourcedir.read(PROJECT_SRC)
    for name in ("one", "two", "three"):
        render_cache.cached_render(build_settings({"pipeline_name": name}, offline=True), source, NO_CHECK)
    assert len(list(cache_home.glob("*.json"))) == 2
    before = sorted(cache_home.iterdir())
    render_cache.cached_render(build_settings({"pipeline_name": "four"}, offline=True), source, NO_CHECK, False)
    assert sorted(cache_home.iterdir()) == before


def test_concurrent_renders_share_the_cache_safely(tmp_path, cache_home):
    source = sourcedir.read(PROJECT_SRC)
    fresh = render(OFFLINE, source)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: render_cache.cached_render(OFFLINE, source, NO_CHECK), range(8)))
    assert all(result == fresh for result in results)
    assert [p.suffix for p in cache_home.iterdir()] == [".json"]  # no temp file left behind


def test_a_definition_that_fails_its_check_is_never_stored(cache_home):
    source = sourcedir.read(PROJECT_SRC)
    with pytest.raises(Refused):
        render_cache.cached_render(OFFLINE, source, refuse)
    assert not cache_home.exists() or list(cache_home.iterdir()) == []
    with pytest.raises(Refused):  # still checked: nothing was cached to skip it
        render_cache.cached_render(OFFLINE, source, refuse)


SCRIPT_DAG = """
from sagemaker.processing import ScriptProcessor
from sagemaker.workflow.steps import ProcessingStep

from helpers import STEP_NAME


def build_pipeline(project):
    processor = ScriptProcessor(
        command=["python3"], image_uri=project.image_uri, role=project.settings.role_arn,
        instance_count=1, instance_type="ml.m5.large", sagemaker_session=project.session,
    )
    step = ProcessingStep(name=STEP_NAME, step_args=processor.run(code=str(project.source_dir / "prep.py")))
    return project.pipeline([project.training_step(), step])
"""


def test_files_the_render_read_are_checked_on_a_hit(tmp_path):
    """A helper module the pipeline module imports, and a script the SDK uploads, are not in the key:
    a hit needs them unchanged, and their change renders afresh (with the new script's upload)."""
    source = source_dir(tmp_path / "src", "print('train')\n")
    (source / "prep.py").write_text("print('prep')\n")
    (source / "helpers.py").write_text("STEP_NAME = 'Prep'\n")
    (source / "workflow.py").write_text(SCRIPT_DAG)
    first = render_cache.cached_render(OFFLINE, sourcedir.read(source), NO_CHECK)
    (script_uri,) = first.uploads
    assert first.uploads[script_uri] == b"print('prep')\n" and script_uri.endswith("/prep.py")
    assert render_cache.cached_render(OFFLINE, sourcedir.read(source), NO_CHECK) == first
    (source / "prep.py").write_text("print('prep, edited')\n")
    edited = render_cache.cached_render(OFFLINE, sourcedir.read(source), NO_CHECK)
    assert list(edited.uploads.values()) == [b"print('prep, edited')\n"]
    assert list(edited.uploads) != [script_uri]  # content-addressed by the SDK
    (source / "helpers.py").write_text("STEP_NAME = 'Prepare'\n")
    renamed = render_cache.cached_render(OFFLINE, sourcedir.read(source), NO_CHECK)
    assert [step["Name"] for step in json.loads(renamed.definition)["Steps"]] == ["Train", "Prepare"]
