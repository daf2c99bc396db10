"""A command the CLI prints as a hint runs as printed, with no venv activated."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import ROOT

from pipeline.cli.common import cli_command


@pytest.mark.parametrize("inside", [True, False])
def test_the_printed_command_runs_from_where_it_was_printed_without_an_activated_venv(inside, tmp_path, monkeypatch):
    where = ROOT if inside else tmp_path
    monkeypatch.chdir(where)
    printed = cli_command()
    assert printed.endswith(" -m pipeline") and printed.startswith("/") != inside
    env = {name: value for name, value in os.environ.items() if name not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"  # no venv on PATH: `python -m pipeline` alone would not import
    done = subprocess.run(f"{printed} --help", shell=True, cwd=where, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "definition" in done.stdout, done.stderr


def test_from_a_clones_root_it_is_the_venv_the_readme_makes(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli_command() == f"{os.path.relpath(sys.executable, ROOT)} -m pipeline"
    assert cli_command().startswith(".venv/bin/python")
