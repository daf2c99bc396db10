"""The default request and response formats, and ``Accept`` negotiation, as SageMaker's framework containers.

These are the ``input_fn`` and ``output_fn`` used when the user's module defines none.
The formats are those of the scikit-learn container (``sagemaker_containers`` and
``sagemaker_inference``'s decoder and encoder): ``application/json``, ``text/csv`` and
``application/x-npy`` (the SDK's default ``NumpySerializer``), plus ``application/jsonlines``
(one row per line, the batch-transform shape). As there, a JSON or CSV body becomes a
float32 array and a single row (``[1, 2, 3]``, one CSV line, a 1-D npy) one row of a
2-D array. Unlike there, what a client sent wrong is a 4xx naming the fix, not a 500:
a body that is no rows of numbers, a pickled npy (which would run code), a header row.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from custom_framework_training.serving.errors import BadRequest, NotAcceptable, UnsupportedContentType

if TYPE_CHECKING:
    import numpy as np

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
JSONLINES = "application/jsonlines"
ANY = "*/*"
# Bodies of these types reach input_fn as str (UTF-8), others as bytes, as in the inference toolkit.
TEXT_TYPES = frozenset({JSON, CSV})
DEFAULT_TYPES = (JSON, CSV, NPY, JSONLINES)
# What the scikit-learn container's default input_fn makes of JSON and CSV: float32.
TEXT_DTYPE = "float32"
# numpy's public header readers, by npy format version (3.0 only differs in field-name encoding).
NPY_HEADERS = {(1, 0): "read_array_header_1_0", (2, 0): "read_array_header_2_0"}


def decode(body: str | bytes, content_type: str) -> np.ndarray:
    """A request body as a 2-D array (npy: as sent, a 1-D one as one row); a 4xx naming the problem otherwise."""
    readable(content_type)
    if content_type == NPY:
        return _one_row_as_2d(_npy(body if isinstance(body, bytes) else body.encode()))
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if not text.strip():
        raise BadRequest("the request body is empty: send one or more rows of numbers")
    if content_type == CSV:
        return _csv_rows(text)
    if content_type == JSONLINES:
        return _rows([_json(line, f"line {n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()])
    return json_rows(_json(text, "the body"))


def readable(content_type: str) -> None:
    """415 for a type the default ``input_fn`` cannot read, naming those it can."""
    if content_type not in DEFAULT_TYPES:
        raise UnsupportedContentType(
            f"Content-Type {content_type!r} is not supported: send {' or '.join(DEFAULT_TYPES)}"
        )


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise BadRequest(f"cannot read the {JSON} body: {where} is not valid JSON: {e}") from None


def _csv_rows(text: str) -> np.ndarray:
    import numpy as np  # imported on first use, after the server has sized numpy's thread pools

    try:
        # Read as float64, then cast, as the container does: parsing straight to float32 may round differently.
        rows = np.loadtxt(io.StringIO(text), delimiter=",", dtype=float, ndmin=2, comments=None)
    except ValueError as e:
        raise BadRequest(f"cannot read the {CSV} body as rows of numbers without a header: {e}") from None
    return rows.astype(TEXT_DTYPE)


def _npy(body: bytes) -> np.ndarray:
    """``np.load`` without pickles, after checking that the header's shape fits the body (no huge allocation)."""
    import numpy as np

    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in NPY_HEADERS:
            raise ValueError(f"npy format version {version} is not supported: save with numpy's default (1.0)")
        shape, _, dtype = getattr(np.lib.format, NPY_HEADERS[version])(stream)
        if dtype.hasobject:
            raise ValueError("object arrays need pickle, which is refused")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > len(body):
            raise ValueError(f"its header declares shape {shape} of {dtype}, more than the body holds")
        stream.seek(0)
        return np.load(stream, allow_pickle=False)
    except (ValueError, EOFError, OverflowError) as e:
        raise BadRequest(f"cannot read the {NPY} body: {e}") from None


def json_rows(data: Any) -> np.ndarray:
    """Parsed JSON as a 2-D float32 array: a list of rows, one row (a flat list), or ``{"instances": rows}``;
    for handlers that read other fields of the same body."""
    if isinstance(data, dict):
        if "instances" not in data:
            raise BadRequest('a JSON object body needs an "instances" list of rows')
        data = data["instances"]
    if not isinstance(data, list) or not data:
        raise BadRequest("expected a non-empty list of rows, such as [[1.0, 2.0], [3.0, 4.0]]")
    if not any(isinstance(value, list) for value in data):
        data = [data]  # one row, as the scikit-learn container reads [1, 2, 3]
    return _rows(data)


def _rows(data: list[Any]) -> np.ndarray:
    if not data:
        raise BadRequest("expected one or more rows of numbers")
    if not all(isinstance(row, list) for row in data):
        raise BadRequest("each row must be a list of numbers, such as [[1.0, 2.0], [3.0, 4.0]]")
    widths = sorted({len(row) for row in data})
    if len(widths) > 1:
        raise BadRequest(f"rows have different numbers of values: {widths}")
    import numpy as np

    try:
        return np.asarray(data, dtype=float).astype(TEXT_DTYPE)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"rows must hold numbers only: {e}") from None


def _one_row_as_2d(array: np.ndarray) -> np.ndarray:
    return array.reshape(1, -1) if array.ndim == 1 else array


def encode(prediction: Any, accept: str) -> bytes:
    """A prediction (array, list, scalar, or for JSON any JSON-able structure of them) as ``accept``,
    written as the containers' encoders write it."""
    if accept == JSON:
        return json.dumps(prediction, default=_plain).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(row, default=_plain) + "\n" for row in _as_rows(prediction)).encode()
    if accept == CSV:
        return _csv(prediction)
    if accept == NPY:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(prediction), allow_pickle=False)
        return buffer.getvalue()
    raise NotAcceptable(f"cannot answer with {accept!r}: the default output_fn writes {' or '.join(DEFAULT_TYPES)}")


def _as_rows(prediction: Any) -> Any:
    """A 1-D array as one value per row, a 2-D one as one list per row (CSV and JSON lines)."""
    import numpy as np

    array = np.asarray(prediction)
    if array.ndim > 2:
        raise ValueError(f"a {array.ndim}-D prediction has no rows to write one per line")
    return array.reshape(1, -1) if array.ndim == 0 else array


def _csv(prediction: Any) -> bytes:
    """One line per row, each value as ``str`` of the numpy scalar (``0.1`` for a float32, as the container)."""
    rows = _as_rows(prediction)
    if rows.ndim == 1:
        return "".join(f"{value}\n" for value in rows).encode()
    return "".join(",".join(map(str, row)) + "\n" for row in rows).encode()


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as the lists and numbers ``json`` writes."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` as ``text/csv``: handlers compare bare, lower-case types."""
    return (header or "").split(";", 1)[0].strip().lower()


def request_type(headers: Mapping[str, str]) -> str:
    """The body's type as the containers read it: ``ContentType`` (some AWS services send it), else
    ``Content-Type``, else JSON."""
    return media_type(headers.get("ContentType") or headers.get("Content-Type")) or JSON


def negotiate(header: str | None, offered: Sequence[str] | None, default: str) -> str:
    """The response type for an ``Accept`` header.

    ``default`` (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``) answers a missing header or
    ``*/*``. With ``offered`` (the types the output handler writes) the best match wins,
    or 406; without (a user ``output_fn`` that did not say), the client's preferred type
    is passed on and the handler decides.
    """
    accept = parse_accept_header(header or "", MIMEAccept)
    if not accept or accept.best == ANY:
        return default if offered is None or default in offered else offered[0]
    if offered is None:
        return media_type(accept.best)
    # On equal quality werkzeug prefers the earlier offer, so the default comes first.
    ordered = sorted(offered, key=lambda t: t != default)
    match = accept.best_match(ordered)
    if match is None:
        raise NotAcceptable(f"cannot answer with Accept {header!r}: this model returns {' or '.join(offered)}")
    return match
