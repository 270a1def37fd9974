"""What every handler of the HTTP app shares: the caller as the service sees it (the client certificate that
TLS verified, put into the scope by ``http_server``), and errors as ``google.rpc.Status`` with the HTTP
status grpc-gateway gives each gRPC code."""

from __future__ import annotations

import grpc
from starlette.responses import JSONResponse

from earthsignature.service.api.auth import AuthError, caller_from_pem

#: grpc-gateway's HTTP status for each gRPC code (runtime.HTTPStatusFromCode)
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500, grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class HttpContext:
    """The part of ``grpc.ServicerContext`` the service uses, for an HTTPS caller."""

    def __init__(self, peer_pem: bytes | None):
        self._peer_pem = peer_pem

    @classmethod
    def of(cls, scope: dict) -> HttpContext:
        return cls(peer_pem(scope))

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._peer_pem]} if self._peer_pem else {}

    def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)


def peer_pem(scope: dict) -> bytes | None:
    """The verified client certificate of this request (the ASGI TLS extension's ``client_cert_chain``)."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0].encode() if chain else None


def caller_name(scope: dict) -> str:
    pem = peer_pem(scope)
    if not pem:
        return "anonymous"
    try:
        return caller_from_pem(pem).common_name
    except AuthError:
        return "unverified"


def status(code: grpc.StatusCode, message: str) -> dict:
    """A ``google.rpc.Status`` as grpc-gateway writes it."""
    return {"code": code.value[0], "message": message, "details": []}


def status_response(code: grpc.StatusCode, message: str, http_status: int | None = None) -> JSONResponse:
    return JSONResponse(status(code, message), status_code=http_status or HTTP_STATUS.get(code, 500))
