"""The one application error type, and the one place it (and every other JSON error) becomes
a response: ``{"error": {"code", "message", ...}}`` with its HTTP status.

Each app refuses with a subclass (``ChatError``, ``ExperimentError``, ``QuotaExceeded``,
``UpstreamFault``); a view catches ``AppError`` and answers ``error_response(exc)``.
"""

import math

from django.http import JsonResponse


class AppError(Exception):
    """A refusal or failure a client is told about.

    ``code`` is machine-readable, ``message`` for people, ``status`` the HTTP status,
    ``retryable`` whether the same request may succeed later, ``field`` the request field at
    fault (if one is). Subclasses set their defaults as class attributes."""

    status: int = 400
    code: str = "bad_request"
    retryable: bool = False
    field: str | None = None
    retry_after: float | None = None  # seconds, also sent as ``Retry-After`` (rounded up)

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        if field:
            self.field = field

    def as_json(self) -> dict:
        """The ``error`` member of the answer."""
        body: dict[str, str | bool] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.retryable:
            body["retryable"] = True
        return body


def error_response(exc: AppError) -> JsonResponse:
    """The JSON answer to an ``AppError``, with ``Retry-After`` when it has one."""
    return error_json(exc.status, exc.as_json(), retry_after=exc.retry_after)


def error_json(status: int, error: dict, *, retry_after: float | None = None) -> JsonResponse:
    """``{"error": error}`` with ``status``: the envelope of every JSON error of the site."""
    response = JsonResponse({"error": error}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(math.ceil(retry_after))  # whole seconds (RFC 9110)
    return response
