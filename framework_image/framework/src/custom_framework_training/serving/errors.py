"""The errors of the serving contract: what a caller did wrong (4xx) and what stops the server starting.

User handlers raise the :class:`ClientError` subclasses to answer a request with a
4xx and a message; any other exception from a handler is a bug and becomes a 500.
"""

from __future__ import annotations

from typing import ClassVar


class ClientError(Exception):
    """A request the caller must fix; the message is the response body, so it says how."""

    status: ClassVar[int] = 400


class BadRequest(ClientError):
    """The body cannot be parsed, or the model rejects its values or shape."""

    status = 400


class NotAcceptable(ClientError):
    """No response type the handlers can write matches the ``Accept`` header."""

    status = 406


class PayloadTooLarge(ClientError):
    """The body is over ``SAGEMAKER_MAX_PAYLOAD_IN_MB``."""

    status = 413


class UnsupportedContentType(ClientError):
    """The handlers cannot read a body of this ``Content-Type``."""

    status = 415


class StartupError(Exception):
    """The server cannot start (no model, no handlers, a model that does not load): one line, naming the path.

    Raised before the port is bound, so a broken model never answers ``/ping`` with 200.
    """
