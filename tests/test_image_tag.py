"""The framework image's tag is a hash of framework_image/'s content (framework_image/image-tag.sh),
the one definition that build-local.sh and the deploy share; and the build it names is pinned.

Commits that leave framework_image/ alone keep the tag, so the deploy reuses the image and the
pipeline definition stays byte-identical (no UpdatePipeline). Shown in throwaway git repositories.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
from support import REGION, run_cli

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "framework_image"
DOCKERFILE = IMAGE_DIR / "Dockerfile"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-framework"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", message)


def make_repo(tmp_path: Path) -> Path:
    """A repository holding this project's framework_image/ (what git would commit of it) and docs."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=IMAGE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = IMAGE_DIR / name
        if source.is_file():
            (repo / "framework_image" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / "framework_image" / name)
    (repo / ".gitignore").write_text("__pycache__/\n*.egg-info/\n")
    (repo / "README.md").write_text("# docs\n")
    commit(repo, "image and docs")
    return repo


def image_tag(repo: Path) -> str:
    done = subprocess.run(
        [str(repo / "framework_image" / "image-tag.sh")],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_docs_only_commits_keep_the_tag_and_an_image_change_does_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = image_tag(repo)
    assert first == git(repo, "rev-parse", "HEAD:framework_image")
    assert re.fullmatch(r"[0-9a-f]{40}", first)

    for n in (1, 2):
        (repo / "README.md").write_text(f"# docs, edit {n}\n")
        (repo / "docs.md").write_text(f"more docs {n}\n")
        commit(repo, f"docs {n}")
        assert image_tag(repo) == first

    dockerfile = repo / "framework_image" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# a change to the image\n")
    commit(repo, "image change")
    assert image_tag(repo) not in ("", first)


def test_uncommitted_changes_give_the_tag_of_their_future_commit_plus_dirty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    clean = image_tag(repo)
    objects_before = git(repo, "count-objects", "-v")
    index_before = (repo / ".git" / "index").read_bytes()

    cache = repo / "framework_image" / "framework" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "stale.cpython-311.pyc").write_bytes(b"ignored by git, and so by the tag and the build context")
    assert image_tag(repo) == clean

    (repo / "framework_image" / "new-file.txt").write_text("untracked, not ignored\n")
    dirty = image_tag(repo)
    assert dirty.endswith("-dirty") and dirty != f"{clean}-dirty"
    assert git(repo, "count-objects", "-v") == objects_before, "image-tag.sh must not write objects"
    assert (repo / ".git" / "index").read_bytes() == index_before, "image-tag.sh must not touch the index"

    commit(repo, "add the file")
    assert image_tag(repo) == dirty.removesuffix("-dirty")


def test_two_docs_only_commits_upsert_a_byte_identical_definition(aws_env, tmp_path: Path) -> None:
    """IMAGE_URI from the tag of each commit, through the CLI: the second upsert changes nothing."""
    repo = make_repo(tmp_path)
    sagemaker = boto3.client("sagemaker", region_name=REGION)

    first = run_cli("upsert", env={"IMAGE_URI": f"{ECR}:{image_tag(repo)}"})
    assert first.returncode == 0, first.stderr
    described = sagemaker.describe_pipeline(PipelineName="test-pipeline")

    (repo / "README.md").write_text("# docs, rewritten\n")
    commit(repo, "docs only")
    second = run_cli("upsert", env={"IMAGE_URI": f"{ECR}:{image_tag(repo)}"})
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout
    again = sagemaker.describe_pipeline(PipelineName="test-pipeline")
    assert again["PipelineDefinition"] == described["PipelineDefinition"]
    assert again["LastModifiedTime"] == described["LastModifiedTime"], "UpdatePipeline was called"

    # The same path does update when the image changed.
    (repo / "framework_image" / "Dockerfile").write_text("FROM scratch\n")
    commit(repo, "image change")
    third = run_cli("upsert", env={"IMAGE_URI": f"{ECR}:{image_tag(repo)}"})
    assert third.returncode == 0, third.stderr
    assert "~ Parameters[ImageUri].DefaultValue" in third.stdout


def test_build_local_tags_with_image_tag_sh_and_builds_only_what_the_tag_covers(tmp_path: Path) -> None:
    """build-local.sh under a stand-in docker that records its arguments and build context."""
    repo = make_repo(tmp_path)
    (repo / "framework_image" / "framework" / "__pycache__").mkdir(parents=True)
    (repo / "framework_image" / "framework" / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    (repo / "framework_image" / "untracked.txt").write_text("part of the content, so of the context\n")
    record = tmp_path / "docker-args"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > "{record}"\n'
        f'(cd "${{@: -1}}" && find . -type f | sort) > "{record}.context"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, **GIT_ENV, "ENGINE": "docker", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("IMAGE_TAG", None)
    env.pop("IMAGE_NAME", None)
    done = subprocess.run(
        [str(repo / "framework_image" / "build-local.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    tag = image_tag(repo)
    assert done.stdout.strip().splitlines()[-1] == f"custom-framework:{tag}"
    assert f"custom-framework:{tag}" in record.read_text().splitlines()
    context = record.with_suffix(".context").read_text().split()
    wanted = git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "--", "framework_image").split()
    assert context == sorted(f"./{name.removeprefix('framework_image/')}" for name in wanted)
    assert "./untracked.txt" in context and not any("__pycache__" in name for name in context)


def test_the_deploy_and_build_local_share_image_tag_sh() -> None:
    """One definition of the tag: neither script computes one of its own."""
    for script in (IMAGE_DIR / "build-local.sh", ROOT / ".github" / "scripts" / "deploy.sh"):
        text = script.read_text()
        assert "image-tag.sh" in text, script
        assert "rev-parse" not in text.replace("rev-parse --verify --quiet HEAD", ""), script


# --- what the tag names: a pinned build -------------------------------------------------------


def build_tools_install() -> str:
    """The Dockerfile's RUN that makes the build-tools venv, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if "/opt/build-tools/bin/pip install" in line]
    return line


def test_the_build_tools_are_pinned_with_their_dependencies_and_checked() -> None:
    line = build_tools_install()
    install = line.split("/opt/build-tools/bin/pip install", 1)[1].split("&&")[0].split()
    assert "--no-deps" in install, "without --no-deps an unpinned dependency can arrive"
    packages = [word for word in install if not word.startswith("-")]
    assert packages and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*", p) for p in packages), packages
    names = {p.split("==")[0].lower() for p in packages}
    # hatchling 1.33.0 requires packaging, pathspec, pluggy, tomlkit and trove-classifiers.
    assert {"hatchling", "packaging", "pathspec", "pluggy", "tomlkit", "trove-classifiers"} <= names
    assert "/opt/build-tools/bin/pip check" in line


def test_the_base_image_is_on_a_from_line_dependabot_can_bump() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and line[0] != "#"]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms[0].startswith("FROM python:") and froms[0].endswith(" AS default-base")
    assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-\w+ AS default-base", froms[0])
    assert "ARG BASE_IMAGE=default-base" in lines[: lines.index(froms[0])]
    assert froms[1:] == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]
