"""The user-namespace probe: a success is remembered per boot and setting, a failure never is."""

from __future__ import annotations

import pytest

from pipeline.local import runners


class Probes(list):
    """The real probes the calls made; each answered by ``answers`` in turn (the last one repeats)."""

    answers: list[str | None]


@pytest.fixture
def probes(tmp_path, monkeypatch) -> Probes:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = Probes()
    made.answers = [None]

    def probe() -> str | None:
        made.append(made.answers[min(len(made), len(made.answers) - 1)])
        return made[-1]

    monkeypatch.setattr(runners, "_probe", probe)
    return made


def ask() -> str | None:
    return runners.namespace_problem.__wrapped__()  # past the per-process cache, as a new CLI would be


def test_a_success_is_remembered(probes):
    assert [ask(), ask(), ask()] == [None, None, None]
    assert len(probes) == 1


def test_a_failure_is_probed_again(probes):
    probes.answers[:] = ["unshare: Operation not permitted", None]
    assert ask() == "unshare: Operation not permitted"
    assert ask() is None  # the setting was fixed: seen at once
    assert ask() is None
    assert len(probes) == 2


def test_a_changed_switch_or_init_script_probes_again(probes, monkeypatch):
    ask()
    for key in ("another-boot", "another-setting"):
        monkeypatch.setattr(runners, "_probe_key", lambda key=key: key)
        ask()
        ask()
    assert len(probes) == 3


def test_the_key_follows_the_namespace_switches(monkeypatch, tmp_path):
    before = runners._probe_key()
    switch = tmp_path / "apparmor_restrict_unprivileged_userns"
    switch.write_text("0\n")
    monkeypatch.setattr(runners, "NAMESPACE_SWITCHES", (*runners.NAMESPACE_SWITCHES, str(switch)))
    allowed = runners._probe_key()
    switch.write_text("1\n")
    assert len({before, allowed, runners._probe_key()}) == 3


def test_an_unwritable_cache_only_costs_the_probe(probes, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file where the folder would go
    assert [ask(), ask()] == [None, None]
    assert len(probes) == 2


def test_the_real_probe_answers_as_this_machine_allows():
    """The cached answer and a fresh probe agree (None where user namespaces work, a reason where not)."""
    fresh = runners._probe()
    assert fresh is None or fresh.strip()
    assert runners.namespace_problem() == fresh
