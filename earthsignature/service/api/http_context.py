"""What every handler of the HTTP app shares: the caller as the service core sees it (the client certificate
that TLS verified, put into the scope by ``http_server``, authorized once by ``RequireCaller`` or a handler),
and errors as ``google.rpc.Status`` with the HTTP status grpc-gateway gives each code."""

from __future__ import annotations

from starlette.responses import JSONResponse

from earthsignature.service.api.auth import AuthError, Caller, caller_from_pem
from earthsignature.service.api.errors import ApiError, Code, as_api_error

#: grpc-gateway's HTTP status for each code (runtime.HTTPStatusFromCode)
HTTP_STATUS = {
    Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400, Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.PERMISSION_DENIED: 403, Code.UNAUTHENTICATED: 401,
    Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500,
}
#: where ``RequireCaller`` leaves the authorized caller in an ASGI scope
CALLER_KEY = "earthsignature.caller"


def peer_pem(scope: dict) -> bytes | None:
    """The verified client certificate of this request (the ASGI TLS extension's ``client_cert_chain``)."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0].encode() if chain else None


def bearer_token(scope: dict) -> str | None:
    """The access token of ``Authorization: Bearer <token>`` (``access_tokens``), if the request sends one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def credentials(scope: dict) -> tuple[bytes | None, str | None]:
    """What a request authenticates with: its verified client certificate, and its bearer token."""
    return peer_pem(scope), bearer_token(scope)


def scope_caller(scope: dict) -> Caller:
    """The caller ``RequireCaller`` authorized for this request."""
    return scope[CALLER_KEY]


def caller_name(scope: dict) -> str:
    pem = peer_pem(scope)
    if not pem:
        return "anonymous"
    try:
        return caller_from_pem(pem).common_name
    except AuthError:
        return "unverified"


def status(code: Code, message: str) -> dict:
    """A ``google.rpc.Status`` as grpc-gateway writes it."""
    return {"code": code.value, "message": message, "details": []}


def status_response(code: Code, message: str, http_status: int | None = None, headers=None,
                    **extra) -> JSONResponse:
    """``extra``: more members beside the status (the STAC API adds ``description``, its clients' field)."""
    return JSONResponse({**status(code, message), **extra}, status_code=http_status or HTTP_STATUS.get(code, 500),
                        headers=headers)


def error_response(error: BaseException, **extra) -> JSONResponse:
    """Any error as its status, by cause (``errors.as_api_error``)."""
    answer = error if isinstance(error, ApiError) else as_api_error(error)
    return status_response(answer.code, answer.message, answer.http_status, **extra)
