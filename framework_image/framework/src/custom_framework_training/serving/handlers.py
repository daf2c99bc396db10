"""The user's inference handlers, found and checked at start as SageMaker's framework containers find them.

The module is ``SAGEMAKER_PROGRAM`` (default ``inference.py``) in the code directory.
It must define ``model_fn(model_dir)``: loading a model is framework-specific (a joblib
file, a torch checkpoint, several files and a vocabulary), and a guessed default would
turn a missing handler into a confusing error at the first request (the containers, too,
have no default). Then either ``transform_fn`` alone, or any of ``input_fn``, ``predict_fn``
and ``output_fn``, the others defaulting to :mod:`.content`'s formats and ``model.predict``;
``execution_parameters_fn`` optionally answers ``GET /execution-parameters``.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from custom_framework_training.serving import content
from custom_framework_training.serving.errors import BadRequest, StartupError

# Each handler's parameters, in the order the server passes them.
PARAMETERS = {
    "model_fn": ("model_dir",),
    "input_fn": ("request_body", "content_type"),
    "predict_fn": ("input_data", "model"),
    "output_fn": ("prediction", "accept"),
    "transform_fn": ("model", "request_body", "content_type", "accept"),
    "execution_parameters_fn": (),
}
STAGES = ("input_fn", "predict_fn", "output_fn")


def default_predict_fn(input_data: Any, model: Any) -> Any:
    """Any model with a scikit-learn style ``predict``; its ``ValueError`` (a wrong number of features) is
    the request's fault, so a 400 saying so, where the container answers 500."""
    try:
        return model.predict(input_data)
    except ValueError as e:
        raise BadRequest(f"the model rejected the input: {e}") from e


@dataclass(frozen=True)
class Handlers:
    module_path: Path
    model_fn: Callable[[str], Any]
    input_fn: Callable[[str | bytes, str], Any]
    predict_fn: Callable[[Any, Any], Any]
    output_fn: Callable[[Any, str], Any]
    # The types the default codecs read and write; None when a user handler decides.
    input_types: tuple[str, ...] | None
    output_types: tuple[str, ...] | None
    # The user's transform_fn, which replaces the three stages above.
    transform_fn: Callable[[Any, str | bytes, str, str], Any] | None = None
    execution_parameters_fn: Callable[[], Any] | None = None


def module_path(code_dir: Path, program: str) -> Path:
    """``code_dir/program``, with ``.py`` added when the name has none (``inference`` or ``inference.py``)."""
    path = code_dir / program
    return path if path.suffix == ".py" else path.with_name(path.name + ".py")


def load(code_dir: Path, program: str) -> Handlers:
    """Import the user's module and check its handlers; every problem is a one-line :class:`StartupError`."""
    path = module_path(code_dir, program)
    if not path.is_file():
        raise StartupError(
            f"no inference handlers: {path} does not exist (SAGEMAKER_PROGRAM names the module; "
            "pack it under code/ in model.tar.gz, or set SAGEMAKER_SUBMIT_DIRECTORY)"
        )
    module = _import(path)
    found = {name: getattr(module, name, None) for name in PARAMETERS}
    if found["model_fn"] is None:
        raise StartupError(f"{path} defines no model_fn(model_dir): this framework has no default way to load a model")
    if found["transform_fn"] is not None and any(found[name] for name in STAGES):
        raise StartupError(
            f"{path}: transform_fn replaces input_fn, predict_fn and output_fn; define one or the others"
        )
    for name, handler in found.items():
        if handler is not None:
            _check_signature(path, name, handler)
    return Handlers(
        module_path=path,
        model_fn=found["model_fn"],
        input_fn=found["input_fn"] or content.decode,
        predict_fn=found["predict_fn"] or default_predict_fn,
        output_fn=found["output_fn"] or content.encode,
        input_types=None if found["input_fn"] or found["transform_fn"] else content.DEFAULT_TYPES,
        output_types=None if found["output_fn"] or found["transform_fn"] else content.DEFAULT_TYPES,
        transform_fn=found["transform_fn"],
        execution_parameters_fn=found["execution_parameters_fn"],
    )


def _import(path: Path) -> ModuleType:
    """Import ``path`` as a top-level module with its folder on ``sys.path``, so it can import its siblings."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        del sys.modules[path.stem]
        raise StartupError(
            f"cannot import {path}: {e}; the image does not have it: list it in a requirements.txt beside "
            f"{path.name} (installed at start, as SageMaker's containers do) or add it to the image"
        ) from e
    except Exception as e:
        del sys.modules[path.stem]
        raise StartupError(f"cannot import {path}: {type(e).__name__}: {e}") from e
    return module


def _check_signature(path: Path, name: str, handler: Any) -> None:
    parameters = PARAMETERS[name]
    if not callable(handler):
        raise StartupError(f"{path}: {name} is not a function")
    try:
        inspect.signature(handler).bind(*parameters)
    except TypeError:
        raise StartupError(f"{path}: {name} must take ({', '.join(parameters)})") from None
    except ValueError:
        pass  # no signature to inspect (a builtin): trust it


def load_model(handlers: Handlers, model_dir: Path) -> Any:
    """The user's model, loaded once before the server listens; a failure names the path."""
    try:
        model = handlers.model_fn(str(model_dir))
    except Exception as e:
        raise StartupError(f"model_fn could not load the model from {model_dir}: {type(e).__name__}: {e}") from e
    if model is None:
        raise StartupError(f"{handlers.module_path}: model_fn returned None for {model_dir}")
    return model
