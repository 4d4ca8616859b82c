"""Exceptions raised by the Latchkey SDK.

Every HTTP error answer becomes an :class:`APIError` subclass chosen by its status, carrying
the server's stable error ``code`` and human ``message``. Network failures are
:class:`APIConnectionError` (and :class:`APITimeoutError`), which have no status.
No exception ever holds a secret: the server's messages never contain one, and the SDK does
not attach requests or headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

if TYPE_CHECKING:
    from ._models import RateLimitStatus

__all__ = [
    "LatchkeyError",
    "ConfigurationError",
    "APIConnectionError",
    "APITimeoutError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "RateLimitError",
    "RateLimited",
    "ServerError",
]


class LatchkeyError(Exception):
    """Base class of every exception this SDK raises."""


class ConfigurationError(LatchkeyError, ValueError):
    """The client was set up wrongly (e.g. no URL given and ``LATCHKEY_URL`` unset)."""


class APIConnectionError(LatchkeyError):
    """The server could not be reached, or the connection broke before an answer came."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIError(LatchkeyError):
    """The server answered with an error status.

    Attributes:
        status: the HTTP status (e.g. 404).
        code: the server's stable error code (e.g. ``"not_found"``, ``"limit_exceeded"``).
        message: the server's human-readable explanation.
        field: for ``invalid_field`` (422), the offending field's name.
        limit: for ``limit_exceeded`` (409), the setting that was hit.
        retry_after: seconds the server asked to wait (429, 503), when it said.
        rate_limit: for a token over its own ``rate_limit`` (429 ``rate_limited``), its
            ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` headers; ``None`` otherwise.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: Optional[str] = None,
        limit: Optional[str] = None,
        retry_after: Optional[float] = None,
        rate_limit: Optional["RateLimitStatus"] = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.limit = limit
        self.retry_after = retry_after
        self.rate_limit = rate_limit

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class BadRequestError(APIError):
    """400: the request was malformed (e.g. ``malformed_json``)."""


class AuthenticationError(APIError):
    """401: no credentials, or credentials that are not accepted (``unauthenticated``,
    ``invalid_token``)."""


class PermissionDeniedError(APIError):
    """403: authenticated but not allowed (``forbidden``, ``token_type_not_allowed``)."""


class NotFoundError(APIError):
    """404: no such object, or not visible to the caller."""


class ConflictError(APIError):
    """409: a uniqueness or state conflict, or a limit (``limit_exceeded``; see ``.limit``)."""


class ValidationError(APIError):
    """422: a missing or invalid field (``invalid_field``; see ``.field``), or a policy
    refusal such as ``lifetime_exceeds_policy``."""


class RateLimitError(APIError):
    """429 ``rate_limited``: throttled, or the token is over its own ``rate_limit``;
    ``.retry_after`` says how long to wait and ``.rate_limit`` (the ``RateLimit-*``
    headers) where the token stands. Also importable as :class:`RateLimited`."""


#: The same class as :class:`RateLimitError`, named after the error code.
RateLimited = RateLimitError


class ServerError(APIError):
    """5xx: the server failed or is unavailable (``internal``, ``unavailable``)."""


_BY_STATUS: Dict[int, Type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class_for(status: int) -> Type[APIError]:
    """The exception class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
