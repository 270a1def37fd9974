"""The HTTP app served by uvicorn with mutual TLS, in a thread of every server process (one port, shared).

uvicorn verifies the client certificate against the project CA in the TLS handshake (run by the event loop:
an idle or slow client blocks nobody). ``BoundedProtocol``, a small subclass of uvicorn's h11 protocol, closes
connections whose request headers do not arrive within ``api.limits.header_timeout_s``, answers malformed
requests with ``google.rpc.Status`` JSON, and puts the verified client certificate into the scope as the ASGI
TLS extension describes (``scope["extensions"]["tls"]["client_cert_chain"]``; uvicorn 0.54 does not), so
handlers check role and revocation exactly as gRPC does. Around the application: ``BodyLimit`` refuses bodies
over 1 MiB before they are buffered, ``BodyTimeout`` answers 408 to a body that does not arrive within
``api.limits.body_timeout_s``, ``AccessLog`` writes one line per request (caller, address, method, path,
status, duration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time

import h11
import uvicorn
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.core import DatabaseCore
from earthsignature.service.api.errors import Code
from earthsignature.service.api.http_app import build_app
from earthsignature.service.api.http_context import caller_name, status

log = logging.getLogger("earthsignature.http")
MAX_BODY_BYTES = 1024 * 1024  # a STAC search (POST) with its area and filter
DRAIN_BYTES = 16 * 1024 * 1024  # a refused body up to this size is read to its end before the 413
LINGER_S = 2.0  # after refusing a malformed request, the rest of it is dropped this long before closing


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413, RESOURCE_EXHAUSTED) before the application buffers them:
    by their Content-Length, or while they stream in. The rest of a refused body is read and dropped (up to
    ``DRAIN_BYTES``) before the answer, so a client still sending gets the 413 rather than a reset."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            if declared.isdigit() and int(declared) <= DRAIN_BYTES:
                await _drain(receive, 0)
            return await self._refuse(scope, receive, send)
        received, refused = [0], [False]

        async def counting_receive():
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > self.max_bytes and not refused[0]:
                refused[0] = True
                if message.get("more_body"):
                    await _drain(receive, received[0])
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}  # the application stops reading
            return message

        async def guarded_send(message) -> None:
            if not refused[0]:  # once refused, whatever the application answers is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused[0]:
                raise

    async def _refuse(self, scope, receive, send) -> None:
        response = JSONResponse(status(Code.RESOURCE_EXHAUSTED, f"the request body is over "
                                       f"{self.max_bytes} bytes"), status_code=413)
        await response(scope, receive, send)


async def _drain(receive, received: int) -> None:
    """Read and drop the rest of a request body, at most DRAIN_BYTES in all."""
    while received <= DRAIN_BYTES:
        message = await receive()
        received += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return


class AccessLog:
    """One line per request: caller, method, path, status, duration (ASGI middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status_code = time.perf_counter(), [0]

        async def recording_send(message) -> None:
            if message["type"] == "http.response.start":
                status_code[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            log.info("%s %s %s %s %d %.1f ms", caller_name(scope), (scope.get("client") or ("-",))[0],
                     scope["method"], scope["path"][:200], status_code[0], (time.perf_counter() - started) * 1e3)


class BoundedProtocol(H11Protocol):
    """uvicorn's h11 protocol with what an open port needs: a request's headers must arrive within
    ``header_timeout_s`` of the connection (or of the previous response), else the connection is closed (uvicorn
    itself waits forever for a client trickling its headers); malformed requests are answered with
    ``google.rpc.Status`` JSON like every other error; and the TLS-verified client certificate is handed to the
    application as the ASGI TLS extension describes (uvicorn 0.54 does not)."""

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer, self._draining = None, False
        self._arm_header_timer()
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _WithClientCertificate(self.app, ssl.DER_cert_to_PEM_cert(der))

    def handle_events(self) -> None:
        super().handle_events()
        in_progress = self.cycle is not None and not self.cycle.response_complete
        if in_progress and self._header_timer is not None:  # this request's headers are in
            self._header_timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next request's headers are on the clock too
            self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(status(Code.INVALID_ARGUMENT, f"malformed HTTP request: {msg}")).encode()
        event = h11.Response(status_code=400, reason=b"Bad Request", headers=[
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")])
        try:
            for part in (event, h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(part))
        except h11.LocalProtocolError:  # h11 is past the point of answering: just close
            pass
        # a lingering close: what the client is still sending is read and dropped for a moment, so the kernel
        # does not answer it with a reset that would destroy the 400 on its way
        self._draining = True
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._draining:
            super().data_received(data)

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            log.info("closed a connection whose request headers took over %.0f s", self.header_timeout_s)
            self.transport.close()


def bounded_protocol(header_timeout_s: float) -> type[BoundedProtocol]:
    return type("BoundedProtocol", (BoundedProtocol,), {"header_timeout_s": float(header_timeout_s)})


class BodyTimeout:
    """A request body must arrive within ``seconds`` of the request's start (ASGI middleware): a client that
    trickles it is answered 408 and the connection closed, instead of holding a worker thread."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ends = asyncio.get_running_loop().time() + self.seconds
        answered = [False]

        async def timed_receive():
            left = ends - asyncio.get_running_loop().time()
            try:
                return await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                if not answered[0]:
                    answered[0] = True
                    response = JSONResponse(status(Code.DEADLINE_EXCEEDED, f"the request body did not "
                                                   f"arrive within {self.seconds:g} s"), status_code=408,
                                            headers={"connection": "close"})
                    await response(scope, receive, send)
                return {"type": "http.disconnect"}

        async def guarded_send(message) -> None:
            if not answered[0]:
                await send(message)

        await self.app(scope, timed_receive, guarded_send)


class _WithClientCertificate:
    def __init__(self, app, pem: str):
        self.app, self.pem = app, pem

    async def __call__(self, scope, receive, send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {**extensions.get("tls", {}), "client_cert_chain": [self.pem]}
        await self.app({**scope, "extensions": extensions}, receive, send)


class HttpGateway:
    """``build_app`` served by uvicorn in a thread: HTTPS with client certificates, or plain HTTP when ``tls``
    is None (``serve --insecure``)."""

    def __init__(self, core: DatabaseCore, address: tuple[str, int], tls: TlsFiles | None,
                 share_port: bool = False):
        """``share_port``: several server processes listen on this port (SO_REUSEPORT: the kernel spreads the
        connections over them, as for gRPC)."""
        self.host, self.port = address[0], int(address[1])
        options = {}
        if tls is not None:
            options = {"ssl_certfile": str(tls.server_cert), "ssl_keyfile": str(tls.server_key),
                       # a certificate is asked for, not required at the handshake: a signed map link opens without
                       # one (signed_links); every other route answers 401 to a caller without one
                       "ssl_ca_certs": str(tls.ca_cert), "ssl_cert_reqs": ssl.CERT_OPTIONAL}
        limits = core.limits
        app = AccessLog(BodyLimit(BodyTimeout(build_app(core), limits.body_timeout_s)))
        config = uvicorn.Config(app, host=self.host, port=self.port, lifespan="off", log_level="warning",
                                access_log=False, timeout_keep_alive=5, http=bounded_protocol(limits.header_timeout_s),
                                **options)
        self.server = uvicorn.Server(config)
        sockets = [_shared_socket(self.host, self.port)] if share_port else None
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": sockets}, name="http-gateway",
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"the HTTP gateway did not start on {self.host}:{self.port}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_gateway(core: DatabaseCore, address: tuple[str, int], tls: TlsFiles | None,
                  share_port: bool = False) -> HttpGateway:
    return HttpGateway(core, address, tls, share_port)


def _shared_socket(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so (otherwise Nagle's algorithm and
    # delayed ACKs hold every small response about 40 ms)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(False)
    return listener
