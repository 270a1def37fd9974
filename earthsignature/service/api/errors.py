"""What the API answers when it cannot do what was asked, by cause: the one error mapping of every transport.

The service core raises these with a ``Code`` (google.rpc's canonical codes, the same names and numbers as
gRPC's); the gRPC servicer, the HTTP bindings, the STAC API and the map files turn them into their own
status (``as_api_error`` maps any other exception by its cause). Bad input is
INVALID_ARGUMENT with a short message naming the field (``excerpt`` bounds what is echoed back); an
unreachable catalog is UNAVAILABLE (retryable); INTERNAL is left for genuine bugs, with a reference to the
server's log and nothing of its internals.
"""

from __future__ import annotations

import enum
import logging
import uuid

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


class Code(enum.Enum):
    """google.rpc.Code: what went wrong, whatever the transport (gRPC uses the same numbers)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ApiError(Exception):
    code = Code.INTERNAL
    #: the HTTP status where it differs from grpc-gateway's for the code (``http_context.HTTP_STATUS``)
    http_status: int | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(ApiError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, field: str | None, problem: str):
        """``field`` and what is wrong with it, as a predicate: ("n_results", "must be in 1..100")."""
        super().__init__(f"{field} {problem}" if field else problem)
        self.field = field


class Unauthenticated(ApiError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(ApiError):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(ApiError):
    code = Code.RESOURCE_EXHAUSTED


class Unavailable(ApiError):
    code = Code.UNAVAILABLE


class NotFound(ApiError):
    code = Code.NOT_FOUND


class FailedPrecondition(ApiError):
    """A request the server cannot answer in its configuration (HTTP 400)."""

    code = Code.FAILED_PRECONDITION


class DeadlineExceeded(ApiError):
    """A request over its budget: cancelled, and answered (HTTP 503: retry, or ask less)."""

    code = Code.DEADLINE_EXCEEDED
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
