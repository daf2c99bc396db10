"""The WSGI application of SageMaker's inference contract: ``/ping``, ``/invocations``, ``/execution-parameters``.

It is built around a model already loaded, so ``/ping`` answers 200 only once loading
succeeded. Statuses are the framework containers': a user handler's exception is a 500
(as both AWS serving toolkits answer, ``ValueError`` included), and the default handlers
answer 415 or 406 for types they cannot read or write. Where the client sent something
the default handlers cannot read (not rows of numbers, too large) the answer is a 4xx
where the containers give a 500; a handler raises :class:`.errors.ClientError` for the
same. Every rejection is one plain-text line (the SageMaker runtime shows it to the
caller); a 500's traceback goes to the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from custom_framework_training.serving import content
from custom_framework_training.serving.errors import BadRequest, ClientError, PayloadTooLarge
from custom_framework_training.serving.handlers import Handlers

logger = logging.getLogger(__name__)

ROUTES = {"/ping": ("GET", "HEAD"), "/invocations": ("POST",), "/execution-parameters": ("GET",)}
# An over-limit body up to this many times the limit is read and dropped before answering 413.
DRAIN_FACTOR = 4
# A 500's message is cut to this many characters: one line for the caller, the rest in the log.
MESSAGE_LIMIT = 500


class HandlerFailed(Exception):
    """A handler raised something other than a client error: answered with 500, as the toolkits do."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class InferenceApp:
    def __init__(
        self,
        handlers: Handlers,
        model: Any,
        *,
        max_payload_bytes: int,
        default_accept: str,
        execution_parameters: dict[str, Any] | None = None,
    ) -> None:
        self.handlers = handlers
        self.model = model
        self.max_payload_bytes = max_payload_bytes
        self.default_accept = default_accept
        self.execution_parameters = execution_parameters or {}

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
            if request.path == "/execution-parameters":
                return self.parameters()
            return self.invoke(request)
        except ClientError as e:
            logger.info("rejected %s with %d: %s", request.path, e.status, e)
            return _text(e.status, _one_line(str(e)))
        except HandlerFailed as e:
            cause = e.__cause__
            logger.error("%s failed", e.stage, exc_info=cause)
            return _text(500, _one_line(f"{e.stage} raised {type(cause).__name__}: {cause}"))

    def parameters(self) -> Response:
        """What batch transform asks before sending records: the user's ``execution_parameters_fn``, else the
        server's own (``MaxConcurrentTransforms`` = workers, ``MULTI_RECORD``, the payload limit)."""
        if self.handlers.execution_parameters_fn is None:
            return Response(json.dumps(self.execution_parameters), 200, content_type=content.JSON)
        result = _call("execution_parameters_fn", self.handlers.execution_parameters_fn)
        if isinstance(result, Response):
            return result
        body = result if isinstance(result, str | bytes) else json.dumps(result)
        return Response(body, 200, content_type=content.JSON)

    def invoke(self, request: Request) -> Response:
        """input_fn → predict_fn → output_fn (or the user's transform_fn) on one request."""
        content_type = content.request_type(request.headers)
        accept = content.negotiate(request.headers.get("Accept"), self.handlers.output_types, self.default_accept)
        body = self._body(request, content_type)
        handlers = self.handlers
        if handlers.transform_fn is not None:
            result = _call("transform_fn", handlers.transform_fn, self.model, body, content_type, accept)
        else:
            data = _call("input_fn", handlers.input_fn, body, content_type)
            prediction = _call("predict_fn", handlers.predict_fn, data, self.model)
            result = _call("output_fn", handlers.output_fn, prediction, accept)
        return _response(result, accept)

    def _body(self, request: Request, content_type: str) -> str | bytes:
        if self.handlers.input_types is not None:
            content.readable(content_type)  # before reading a body no handler would read
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


def _response(result: Any, accept: str) -> Response:
    """A handler's result as the containers take it: a (Flask/werkzeug) response, ``(body, type)``, or a body
    of type ``accept``."""
    if isinstance(result, Response):
        return result
    output, response_type = result if isinstance(result, tuple) else (result, accept)
    if isinstance(output, str):
        output = output.encode()
    if not isinstance(output, bytes | bytearray):
        raise HandlerFailed("output_fn") from TypeError(
            f"the response must be bytes or str (or a (body, content_type) tuple), not {type(output).__name__}"
        )
    return Response(output, 200, content_type=response_type)


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


def _call(stage: str, handler: Callable[..., Any], *args: Any) -> Any:
    """Run one handler: a :class:`ClientError` keeps its status, anything else is the handler's failure (500)."""
    try:
        return handler(*args)
    except ClientError:
        raise
    except Exception as e:
        raise HandlerFailed(stage) from e


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status, content_type="text/plain; charset=utf-8")
