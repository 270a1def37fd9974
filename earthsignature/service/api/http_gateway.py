"""The appendix's HTTP bindings, ``GET /v1/segmentation:list`` and ``GET /v1/segmentation:search``.

A small HTTPS server in the gRPC server's process that calls the same service code: query parameters
become the request message (field names as in the .proto; repeated fields repeat: ``categories=a&
categories=b``; timestamps in RFC 3339), the caller's TLS client certificate goes through the same
authorization, and the response streams one JSON object per line (``application/x-ndjson``,
``{"result": SegmentationResponse}``), as grpc-gateway does. gRPC status codes map to HTTP ones.
"""

from __future__ import annotations

import json
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import grpc
from google.protobuf import json_format

from earthsignature.pb.snapearth.api.v1 import database_pb2
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.servicer import DatabaseService

ROUTES = {"/v1/segmentation:list": ("ListSegmentation", database_pb2.ListSegmentationRequest),
          "/v1/segmentation:search": ("SearchSegmentation", database_pb2.SearchSegmentationRequest)}
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST, grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN, grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class HttpContext:
    """The part of ``grpc.ServicerContext`` the service uses, for an HTTPS caller."""

    def __init__(self, peer_pem: bytes | None):
        self._peer_pem = peer_pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._peer_pem]} if self._peer_pem else {}

    def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)


def request_from_query(query: str, message_type):
    """Query parameters -> request message, with the proto's own JSON mapping."""
    values: dict[str, object] = {}
    fields = message_type.DESCRIPTOR.fields_by_name
    for name, items in parse_qs(query, keep_blank_values=False).items():
        if name not in fields:
            raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"unknown parameter {name!r}")
        values[name] = items if fields[name].is_repeated else items[-1]
    try:
        return json_format.ParseDict(values, message_type())
    except json_format.ParseError as error:
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"bad parameter: {error}") from error


def make_handler(service: DatabaseService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EarthSignature"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            route = ROUTES.get(url.path)
            if route is None:
                self._error(HTTPStatus.NOT_FOUND, f"no route {url.path}; routes: {', '.join(ROUTES)}")
                return
            method, message_type = route
            peer = self.connection.getpeercert(binary_form=True) if hasattr(self.connection, "getpeercert") else None
            context = HttpContext(ssl.DER_cert_to_PEM_cert(peer).encode() if peer else None)
            try:
                request = request_from_query(url.query, message_type)
                stream = getattr(service, method)(request, context)
                first = next(stream, None)  # errors surface before the headers go out
            except Aborted as error:
                self._error(HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), error.details,
                            error.code.name)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            try:
                for message in ([first] if first is not None else []) + list(stream):
                    line = {"result": json_format.MessageToDict(message, preserving_proto_field_name=True)}
                    self.wfile.write(json.dumps(line).encode() + b"\n")
            except Aborted as error:  # mid-stream: report in-band, as grpc-gateway does
                self.wfile.write(json.dumps({"error": {"code": error.code.name, "message": error.details}}).encode())

        def _error(self, status: HTTPStatus, message: str, code: str = "") -> None:
            body = json.dumps({"error": {"code": code or status.phrase, "message": message}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: the gRPC server logs requests
            return

    return Handler


def start_gateway(service: DatabaseService, address: tuple[str, int], tls: TlsFiles | None) -> ThreadingHTTPServer:
    """Serve the bindings on ``address`` (HTTPS with client certificates unless ``tls`` is None) in a thread."""
    server = ThreadingHTTPServer(address, make_handler(service))
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.server_cert, tls.server_key)
        context.load_verify_locations(tls.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="http-gateway", daemon=True).start()
    return server
