"""What ``train-local``'s flags give a job, typed and checked against the contract before anything
is written: hyperparameters, channels, environment and metric definitions.

Only what the user gave and the contract declares reaches the job: declared
hyperparameters carry their defaults (as the pipeline's parameters do), undeclared
ones only when given, and no channel is filled in behind the user's back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.definition import values
from pipeline.definition.contract import CHANNEL_NAME, Channel, Contract, regex_problem
from pipeline.definition.parameters import split_pair
from pipeline.errors import ChannelError, ParameterError

ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}", re.ASCII)  # CreateTrainingJob's key pattern


def _pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` flags as a dict; a name given twice is refused, not silently overwritten."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, raw = split_pair(pair, flag)
        if name in found:
            raise ParameterError(f"{flag} {name} is given twice; give it once")
        found[name] = raw
    return found


def hyperparameters(pairs: Iterable[str], contract: Contract) -> dict[str, str]:
    """``hyperparameters.json`` values: declared ones as the pipeline passes them, others as the SDK would."""
    encoded = {hp.name: values.as_text(hp.type, hp.default) for hp in contract.hyperparameters}
    for name, raw in _pairs(pairs, "--hp").items():
        declared = contract.hyperparameter(name)
        if declared is None:
            encoded[name] = values.literal_hyperparameter(values.decode_literal(raw))
        else:
            encoded[name] = values.as_text(declared.type, values.parse(declared.type, raw, f"hyperparameter {name}"))
    return encoded


def _check_source(name: str, source: str) -> str:
    if not source.strip():
        raise ChannelError(f"--channel {name}= is empty: give a folder or an s3://BUCKET/PREFIX")
    if source.startswith("s3://"):
        if len(source) <= len("s3://") or source[len("s3://")] == "/":
            raise ChannelError(f"--channel {name}={source} names no bucket: use s3://BUCKET/PREFIX")
    elif not Path(source).exists():
        raise ChannelError(f"channel source {source} does not exist: pass an existing folder or an s3:// URI")
    return source


def channels(
    pairs: Iterable[str], content_types: Iterable[str], contract: Contract, shorthands: Mapping[str, str | None]
) -> dict[str, Channel]:
    """Every channel given (``--channel``, or a shorthand such as ``--train``), with its declared settings."""
    given = _pairs(pairs, "--channel")
    for name, source in shorthands.items():
        if source is not None:
            if name in given:
                raise ParameterError(f"channel {name} is given by both --{name} and --channel; give it once")
            given[name] = source
    types = _pairs(content_types, "--content-type")
    stray = sorted(set(types) - set(given))
    if stray:
        raise ParameterError(f"--content-type {stray[0]} names no channel given with --channel")
    found = {}
    for name, source in given.items():
        if not CHANNEL_NAME.fullmatch(name):
            raise ParameterError(f"channel name {name!r}: use letters, digits, '.', '-' and '_', at most 64")
        declared = contract.channel(name) or Channel(name)
        found[name] = dataclasses.replace(
            declared, source=_check_source(name, source), content_type=types.get(name) or declared.content_type
        )
    return found


def environment(pairs: Iterable[str], contract: Contract) -> dict[str, str]:
    """The job's ``Environment``: the contract's, then ``--env`` on top."""
    given = _pairs(pairs, "--env")
    for name in given:
        if not ENVIRONMENT_NAME.fullmatch(name):
            raise ParameterError(f"--env {name}: a variable name is letters, digits and '_', not starting with a digit")
    return {**contract.environment, **given}


def metric_definitions(pairs: Iterable[str], contract: Contract) -> list[dict[str, str]]:
    """The contract's metric definitions, then each ``--metric NAME=REGEX`` (one capture group)."""
    definitions = {m.name: m.regex for m in contract.metrics}
    for name, regex in _pairs(pairs, "--metric").items():
        problem = regex_problem(regex)
        if problem:
            raise ParameterError(f"--metric {name}: the regex {problem}")
        definitions[name] = regex
    return [{"Name": name, "Regex": regex} for name, regex in definitions.items()]
