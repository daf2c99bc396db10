"""The WSGI application of SageMaker's inference contract: ``GET /ping`` and ``POST /invocations``.

It is built around a model already loaded, so ``/ping`` answers 200 only once loading
succeeded. Every rejected request gets one status and one plain-text line saying what to
fix (the SageMaker runtime shows that line to the caller); 5xx means a handler bug, and
its traceback goes to the log, not to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from custom_framework_training.serving import content
from custom_framework_training.serving.errors import BadRequest, ClientError, PayloadTooLarge, UnsupportedContentType
from custom_framework_training.serving.handlers import Handlers

logger = logging.getLogger(__name__)

ROUTES = {"/ping": ("GET", "HEAD"), "/invocations": ("POST",)}
# An over-limit body up to this many times the limit is read and dropped before answering 413.
DRAIN_FACTOR = 4


class HandlerFailed(Exception):
    """A handler raised something other than a client error: a bug, answered with 500."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class InferenceApp:
    def __init__(self, handlers: Handlers, model: Any, *, max_payload_bytes: int, default_accept: str) -> None:
        self.handlers = handlers
        self.model = model
        self.max_payload_bytes = max_payload_bytes
        self.default_accept = default_accept

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.max_payload_bytes
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        methods = ROUTES.get(request.path)
        if methods is None:
            return _text(404, f"no route {request.path}: use GET /ping or POST /invocations")
        if request.method not in methods:
            response = _text(405, f"{request.path} takes {' or '.join(methods)}, not {request.method}")
            response.headers["Allow"] = ", ".join(methods)
            return response
        if request.path == "/ping":
            return Response(b"", 200)
        try:
            body, response_type = self.invoke(request)
        except ClientError as e:
            logger.info("rejected /invocations with %d: %s", e.status, e)
            return _text(e.status, str(e))
        except HandlerFailed as e:
            logger.error("%s failed", e.stage, exc_info=e.__cause__)
            return _text(500, f"{e.stage} raised {type(e.__cause__).__name__}; the traceback is in the server log")
        return Response(body, 200, content_type=response_type)

    def invoke(self, request: Request) -> tuple[bytes, str]:
        """input_fn → predict_fn → output_fn on one request: the response body and its type."""
        content_type = content.media_type(request.headers.get("Content-Type"))
        accept = content.negotiate(request.headers.get("Accept"), self.handlers.output_types, self.default_accept)
        body = self._body(request, content_type)
        data = _call(
            "input_fn", self.handlers.input_fn, body, content_type, bad_input=f"cannot read the {content_type} body: "
        )
        prediction = _call(
            "predict_fn", self.handlers.predict_fn, data, self.model, bad_input="the model rejected the input: "
        )
        result = _call("output_fn", self.handlers.output_fn, prediction, accept)
        output, response_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(output, str):
            return output.encode(), response_type
        if not isinstance(output, bytes):
            raise HandlerFailed("output_fn") from TypeError(
                f"output_fn returned {type(output).__name__}, not bytes or str"
            )
        return output, response_type

    def _body(self, request: Request, content_type: str) -> str | bytes:
        readable = self.handlers.input_types
        if readable is not None and content_type not in readable:
            shown = content_type or "(none)"
            raise UnsupportedContentType(f"Content-Type {shown!r} is not supported: send {' or '.join(readable)}")
        try:
            raw = request.get_data(cache=False)
        except RequestEntityTooLarge:
            size = f"{request.content_length} bytes" if request.content_length is not None else "the body"
            _drain(request.environ["wsgi.input"], request.content_length, DRAIN_FACTOR * self.max_payload_bytes)
            raise PayloadTooLarge(
                f"{size} is over the limit of {self.max_payload_bytes} bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB)"
            ) from None
        if content_type not in content.TEXT_TYPES:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest(f"a {content_type} body must be UTF-8: {e}") from None


def _drain(stream: Any, length: int | None, cap: int) -> None:
    """Read and drop an over-limit body, so the caller, still sending it, can read the 413.

    gunicorn itself drops at most 64 KB and then closes the connection, which a client still
    sending sees as a broken pipe instead of the answer. Bodies over ``cap`` still get that.
    """
    remaining = cap if length is None else length
    if remaining > cap:
        return
    while remaining > 0 and (chunk := stream.read(min(remaining, 2**16))):
        remaining -= len(chunk)


def _call(stage: str, handler: Callable[..., Any], *args: Any, bad_input: str | None = None) -> Any:
    """Run one handler; a ``ValueError`` is the input's fault where ``bad_input`` says so, anything else a bug."""
    try:
        return handler(*args)
    except ClientError:
        raise
    except ValueError as e:
        if bad_input is None:
            raise HandlerFailed(stage) from e
        raise BadRequest(f"{bad_input}{e}") from e
    except Exception as e:
        raise HandlerFailed(stage) from e


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status, content_type="text/plain; charset=utf-8")
