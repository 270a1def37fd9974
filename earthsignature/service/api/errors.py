"""What the API answers when it cannot do what was asked, by cause.

Handlers raise these; the gRPC servicer and the HTTP gateway turn them into status codes. Bad input is
INVALID_ARGUMENT with a short message naming the field (``excerpt`` bounds what is echoed back); an
unreachable catalog is UNAVAILABLE (retryable); INTERNAL is left for genuine bugs, with a reference to the
server's log and nothing of its internals.
"""

from __future__ import annotations

import grpc

#: The most characters of a client's value that a message quotes.
EXCERPT_CHARS = 40


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of a client's value, cut to ``limit`` characters, control characters escaped."""
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])
    return f"{shown}… ({len(text)} characters)" if len(text) > limit else shown


class ApiError(Exception):
    code = grpc.StatusCode.INTERNAL

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
