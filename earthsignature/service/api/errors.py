"""What the API answers when it cannot do what was asked, by cause.

Handlers raise these; the gRPC servicer and the HTTP gateway turn them into status codes. Bad input is
INVALID_ARGUMENT with a short message naming the field (``excerpt`` bounds what is echoed back); an
unreachable catalog is UNAVAILABLE (retryable); INTERNAL is left for genuine bugs, with a reference to the
server's log and nothing of its internals.
"""

from __future__ import annotations

import logging
import uuid

import grpc
import psycopg
from sqlalchemy import exc as sa_exc

from earthsignature.service.catalog.catalog import over_budget

log = logging.getLogger(__name__)
#: Errors that mean the catalog database cannot be reached now (retryable).
DATABASE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError,
                 psycopg.OperationalError)

#: The most characters of a client's value that a message quotes.
EXCERPT_CHARS = 40


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of a client's value, cut to ``limit`` characters, control characters escaped."""
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])
    return f"{shown}… ({len(text)} characters)" if len(text) > limit else shown


class ApiError(Exception):
    code = grpc.StatusCode.INTERNAL
    #: the HTTP status where it differs from grpc-gateway's for the code (``http_context.HTTP_STATUS``)
    http_status: int | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str | None, problem: str):
        """``field`` and what is wrong with it, as a predicate: ("n_results", "must be in 1..100")."""
        super().__init__(f"{field} {problem}" if field else problem)
        self.field = field


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class DeadlineExceeded(ApiError):
    """A request over its budget: cancelled, and answered (HTTP 503: retry, or ask less)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 503


class InternalError(ApiError):
    """A real fault of the server: logged with a reference that the answer quotes, nothing else revealed."""

    def __init__(self, error: BaseException):
        self.reference = uuid.uuid4().hex[:12]
        log.error("internal error %s", self.reference, exc_info=error)
        super().__init__(f"internal error (reference {self.reference} in the server's log)")


def as_api_error(error: BaseException) -> ApiError:
    """Any exception as what the client is told, by cause: the one error mapping of every transport."""
    if isinstance(error, ApiError):
        return error
    budget = over_budget(error)
    if budget == "statement":
        return DeadlineExceeded("the catalog query ran over its time budget (api.limits.statement_timeout_ms): "
                                "narrow the search (area, dates, collections) or simplify the filter")
    if budget == "lock":
        return Unavailable("the catalog is busy (a lock wait ran over api.limits.lock_timeout_ms); retry")
    if isinstance(error, DATABASE_DOWN):
        log.warning("catalog database unavailable: %s", str(error).splitlines()[0] if str(error) else error)
        return Unavailable("the catalog database is unavailable; retry later")
    return InternalError(error)
