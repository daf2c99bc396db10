"""The default request and response formats: CSV and JSON rows of numbers, and ``Accept`` negotiation.

These are the ``input_fn`` and ``output_fn`` used when the user's module defines none,
as in SageMaker's framework containers: ``text/csv`` is rows of numbers without a
header, ``application/json`` is a list of rows or ``{"instances": [...]}``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from custom_framework_training.serving.errors import BadRequest, NotAcceptable, UnsupportedContentType

if TYPE_CHECKING:
    import numpy as np

JSON = "application/json"
CSV = "text/csv"
ANY = "*/*"
# Bodies of these types reach input_fn as str (UTF-8), others as bytes, as in the inference toolkit.
TEXT_TYPES = frozenset({JSON, CSV})
DEFAULT_TYPES = (JSON, CSV)


def decode(body: str | bytes, content_type: str) -> np.ndarray:
    """Rows of numbers as a 2-D float array; a 4xx naming the problem otherwise."""
    if content_type not in DEFAULT_TYPES:
        raise UnsupportedContentType(
            f"Content-Type {content_type or '(none)'!r} is not supported: send {CSV} or {JSON}"
        )
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if not text.strip():
        raise BadRequest("the request body is empty: send one or more rows of numbers")
    return _csv_rows(text) if content_type == CSV else _json_rows(text)


def _csv_rows(text: str) -> np.ndarray:
    import numpy as np  # imported on first use, after the server has sized numpy's thread pools

    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", dtype=float, ndmin=2, comments=None)
    except ValueError as e:
        raise BadRequest(f"cannot read the {CSV} body as rows of numbers without a header: {e}") from None


def _json_rows(text: str) -> np.ndarray:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadRequest(f"the {JSON} body is not valid JSON: {e}") from None
    return json_rows(data)


def json_rows(data: Any) -> np.ndarray:
    """Parsed JSON (a list of rows, or an object with ``instances``) as a 2-D float array, for handlers that
    read other fields of the same body."""
    if isinstance(data, dict):
        if "instances" not in data:
            raise BadRequest('a JSON object body needs an "instances" list of rows')
        data = data["instances"]
    if not isinstance(data, list) or not data:
        raise BadRequest("expected a non-empty list of rows, such as [[1.0, 2.0], [3.0, 4.0]]")
    if not all(isinstance(row, list) for row in data):
        raise BadRequest("each row must be a list of numbers; wrap a single row in a list: [[1.0, 2.0]]")
    widths = sorted({len(row) for row in data})
    if len(widths) > 1:
        raise BadRequest(f"rows have different numbers of values: {widths}")
    import numpy as np

    try:
        return np.asarray(data, dtype=float)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"rows must hold numbers only: {e}") from None


def encode(prediction: Any, accept: str) -> bytes:
    """A prediction (array, list, scalar, or for JSON any JSON-able structure of them) as ``accept``."""
    if accept == JSON:
        return json.dumps(prediction, default=_plain).encode()
    if accept == CSV:
        import numpy as np

        array = np.asarray(prediction)
        if array.ndim > 2:
            raise ValueError(f"a {array.ndim}-D prediction cannot be written as {CSV}")
        rows = array.reshape(len(array) if array.ndim else 1, -1).tolist()
        return "".join(",".join(str(value) for value in row) + "\n" for row in rows).encode()
    raise NotAcceptable(f"cannot answer with {accept!r}: this model returns {JSON} or {CSV}")


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as the lists and numbers ``json`` writes."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` as ``text/csv``: handlers compare bare, lower-case types."""
    return (header or "").split(";", 1)[0].strip().lower()


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
