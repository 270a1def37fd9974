"""The appendix's HTTP bindings as an ASGI application on uvicorn, beside the gRPC server.

``GET /v1/segmentation:list`` and ``GET /v1/segmentation:search`` call the same service code as gRPC, with
grpc-gateway's conventions: query parameters in snake_case or camelCase (``n_results``, ``nResults``;
repeated fields repeat), results streamed as NDJSON lines ``{"result": SegmentationResponse}`` in
camelCase, errors as ``google.rpc.Status`` (``{"code": 3, "message": …, "details": []}``) with the HTTP
status grpc-gateway gives that code, and an error after the first result sent in-band as a last line
``{"error": Status}`` (a pilot can tell a cut stream from an empty one). ``GET /healthz`` answers
whether the catalog is reachable. Every request leaves one access-log line: caller, method, path,
status, duration.

Beside them, for pilots' tools: the STAC API at ``/stac`` (``stac.py``); each map's files at
``/v1/maps/<collection>/<item>/<file>`` with range requests (COGs, legend sidecars), as a Web Mercator
PNG (``classes.png``) and as XYZ tiles (``tiles/{z}/{x}/{y}.png``); the product quicklooks; and the map page
at ``/map``.

Mutual TLS: uvicorn verifies the client certificate against the project CA in the TLS handshake (run by
the event loop: an idle or slow client blocks nobody). uvicorn 0.54 does not hand the verified
certificate to the application (the ASGI TLS extension is not released), so a small subclass of its h11
protocol puts it into the scope as that extension describes (``scope["extensions"]["tls"]
["client_cert_chain"]``); the service then checks role and revocation exactly as for gRPC.
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import grpc
import sqlalchemy as sa
import uvicorn
from google.protobuf import json_format
from rasterio.errors import RasterioError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http.h11_impl import H11Protocol

from earthsignature.core.cog import legend_sidecars
from earthsignature.core.product import gdal_path
from earthsignature.pb.snapearth.api.v1 import database_pb2
from earthsignature.service.api import validation
from earthsignature.service.api.auth import AuthError, TlsFiles, caller_from_pem
from earthsignature.service.api.errors import ApiError, InvalidArgument, NotFound, ResourceExhausted
from earthsignature.service.api.map_render import render_png, render_tile
from earthsignature.service.api.servicer import QUICKLOOK_PATH, DatabaseService
from earthsignature.service.api.stac import build_stac_app
from earthsignature.service.api.stac_items import MAP_ASSETS, MAP_FILE_PATH, STAC_PREFIX
from earthsignature.service.catalog.stac_filter import ITEM_ID_SEPARATOR

log = logging.getLogger("earthsignature.http")
#: The pilots' map page: map.html, and static/ (our script and style, the web library in static/vendor).
WEB_DIR = Path(__file__).with_name("web")
MAP_PAGE = "/map"
MAX_BODY_BYTES = 1024 * 1024
MAX_TILE_ZOOM = 22  # a STAC search (POST) with its area and filter

ROUTES = {"/v1/segmentation:list": ("ListSegmentation", database_pb2.ListSegmentationRequest),
          "/v1/segmentation:search": ("SearchSegmentation", database_pb2.SearchSegmentationRequest)}
#: grpc-gateway's HTTP status for each gRPC code (runtime.HTTPStatusFromCode)
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500, grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}
_END = object()


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


def status(code: grpc.StatusCode, message: str) -> dict:
    """A ``google.rpc.Status`` as grpc-gateway writes it."""
    return {"code": code.value[0], "message": message, "details": []}


def _status_response(code: grpc.StatusCode, message: str) -> JSONResponse:
    return JSONResponse(status(code, message), status_code=HTTP_STATUS.get(code, 500))


def request_from_query(items: Iterable[tuple[str, str]], message_type):
    """Query parameters (snake_case or camelCase) -> request message, with the proto's JSON mapping."""
    fields = message_type.DESCRIPTOR.fields_by_name
    by_json_name = {field.json_name: field for field in fields.values()}
    values: dict[str, object] = {}
    for name, value in items:
        field = fields.get(name) or by_json_name.get(name)
        if field is None:
            raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"unknown parameter {name[:40]!r}")
        if field.is_repeated:
            values.setdefault(field.name, []).append(value)
        else:
            values[field.name] = value
    try:
        return json_format.ParseDict(values, message_type())
    except json_format.ParseError as error:
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"bad parameter: {error}") from error


def peer_pem(scope: dict) -> bytes | None:
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0].encode() if chain else None


def _line(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def build_app(service: DatabaseService) -> Starlette:
    async def binding(request: Request) -> Response:
        method, message_type = ROUTES[request.url.path]
        try:
            message = request_from_query(request.query_params.multi_items(), message_type)
            stream = getattr(service, method)(message, HttpContext(peer_pem(request.scope)))
            first = await run_in_threadpool(next, stream, _END)  # errors surface before the headers go out
        except Aborted as error:
            return _status_response(error.code, error.details)
        return StreamingResponse(_results(stream, first), media_type="application/x-ndjson")

    async def quicklook(request: Request) -> Response:
        product_id = request.path_params["product_id"]
        try:
            service.caller(HttpContext(peer_pem(request.scope)))  # the same roles and revocation as gRPC
            validation.identifier("product_id", product_id, validation.MAX_LENGTHS["product_id"], required=True)
            url = await run_in_threadpool(service.catalog.product_quicklook, product_id)
            if url is None:
                return _status_response(grpc.StatusCode.NOT_FOUND, f"no quicklook for product {product_id[:80]}")
            png = await run_in_threadpool(service.store.read_bytes, url)
        except ApiError as error:
            return _status_response(error.code, str(error))
        except (OSError, sa.exc.SQLAlchemyError) as error:
            log.error("quicklook of %s: %s", product_id, error)
            return _status_response(grpc.StatusCode.UNAVAILABLE, "the quicklook cannot be read now; retry later")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def map_file(request: Request) -> Response:
        """A segmentation's COG or legend file, with range requests (GDAL /vsicurl/, QGIS read windows)."""
        params = request.path_params
        try:
            service.caller(HttpContext(peer_pem(request.scope)))
            url = await run_in_threadpool(map_file_url, service, params["collection"], params["item"],
                                          params["file_name"])
            if service.store.remote:
                return await run_in_threadpool(ranged_response, service.store, url, request.headers.get("range"))
            path = gdal_path(url)
            if not await run_in_threadpool(os.path.isfile, path):
                raise NotFound(f"{params['file_name']} of {params['item'][:120]} is not in the store")
        except ApiError as error:
            return _status_response(error.code, str(error))
        except (OSError, sa.exc.SQLAlchemyError) as error:
            log.error("map file %s: %s", request.url.path[:200], error)
            return _status_response(grpc.StatusCode.UNAVAILABLE, "the map cannot be read now; retry later")
        media_type = next((m for f, m, *_ in MAP_ASSETS.values() if f == params["file_name"]), None)
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    async def map_picture(request: Request) -> Response:
        """The class map as a Web Mercator PNG for web maps; its bounds in a header."""
        params = request.path_params
        try:
            service.caller(HttpContext(peer_pem(request.scope)))
            url = await run_in_threadpool(map_file_url, service, params["collection"], params["item"], "classes.tif")
            rendered = await run_in_threadpool(render_png, url)
        except ApiError as error:
            return _status_response(error.code, str(error))
        except (OSError, RasterioError, sa.exc.SQLAlchemyError) as error:
            log.error("map picture %s: %s", request.url.path[:200], error)
            return _status_response(grpc.StatusCode.UNAVAILABLE, "the map cannot be read now; retry later")
        bounds = ",".join(f"{v:.3f}" for v in rendered.bounds_3857)
        return Response(rendered.png, media_type="image/png",
                        headers={"X-Bounds-EPSG-3857": bounds, "Access-Control-Expose-Headers": "X-Bounds-EPSG-3857",
                                 "Cache-Control": "private, max-age=3600"})

    async def map_tile(request: Request) -> Response:
        """XYZ tile z/x/y of a class map (transparent where the map is not)."""
        params = request.path_params
        z, x, y = params["z"], params["x"], params["y"]
        try:
            service.caller(HttpContext(peer_pem(request.scope)))
            if not (0 <= z <= MAX_TILE_ZOOM and x < 2 ** z and y < 2 ** z):
                raise InvalidArgument("tile", f"z/x/y must have z in 0..{MAX_TILE_ZOOM} and x, y below 2^z")
            url = await run_in_threadpool(map_file_url, service, params["collection"], params["item"], "classes.tif")
            png = await run_in_threadpool(render_tile, url, z, x, y)
        except ApiError as error:
            return _status_response(error.code, str(error))
        except (OSError, RasterioError, sa.exc.SQLAlchemyError) as error:
            log.error("map tile %s: %s", request.url.path[:200], error)
            return _status_response(grpc.StatusCode.UNAVAILABLE, "the map cannot be read now; retry later")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def map_page(request: Request) -> Response:
        if not (WEB_DIR / "static" / "vendor" / "ol.js").exists():
            return _status_response(grpc.StatusCode.UNAVAILABLE, "the map page's web library is not installed: "
                                                                 "run `make web` (needs npm)")
        return FileResponse(WEB_DIR / "map.html", media_type="text/html")

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(_ping, service)
        except sa.exc.SQLAlchemyError as error:
            return JSONResponse({"status": "NOT_SERVING", "reason": f"catalog unreachable: {type(error).__name__}"},
                                status_code=503)
        return JSONResponse({"status": "SERVING"})

    async def http_error(request: Request, error: HTTPException) -> Response:
        code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(error.status_code,
                                                                                   grpc.StatusCode.UNKNOWN)
        message = (f"no route {request.url.path[:80]}; routes: {', '.join(ROUTES)}, /healthz"
                   if error.status_code == 404 else f"{request.method} is not allowed here: use GET")
        return JSONResponse(status(code, message), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    routes = [Route(path, binding, methods=["GET"]) for path in ROUTES]
    routes.append(Route(QUICKLOOK_PATH, quicklook, methods=["GET"]))
    routes.append(Route(MAP_FILE_PATH.replace("{file_name}", "classes.png"), map_picture, methods=["GET"]))
    routes.append(Route(MAP_FILE_PATH.replace("{file_name}", "tiles/{z:int}/{x:int}/{y:int}.png"), map_tile,
                        methods=["GET"]))
    routes.append(Route(MAP_FILE_PATH, map_file, methods=["GET", "HEAD"]))
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes.append(Route(MAP_PAGE, RequireCaller(map_page, service, endpoint=True), methods=["GET"]))
    routes.append(Mount(f"{MAP_PAGE}/static", app=RequireCaller(StaticFiles(directory=WEB_DIR / "static",
                                                                            check_dir=False), service)))
    routes.append(Mount(STAC_PREFIX, app=RequireCaller(build_stac_app(service), service)))
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def map_file_url(service: DatabaseService, collection: str, item: str, file_name: str) -> str:
    """The store URL of one of a segmentation's files, or ``NotFound``/``InvalidArgument``."""
    for name, value in (("collection", collection), ("item", item)):
        validation.identifier(name, value, 256, required=True)
    product_id, _, version = item.rpartition(ITEM_ID_SEPARATOR)
    segmentation = service.catalog.find_segmentation(product_id, collection, version) if product_id else None
    if segmentation is None:
        raise NotFound(f"no item {item[:120]} in collection {collection[:80]}")
    aux, style = legend_sidecars(segmentation.raster_url)
    urls = {"classes.tif": segmentation.raster_url, "confidence.tif": segmentation.confidence_url,
            "cloud_mask.tif": segmentation.cloud_mask_url, "classes.tif.aux.xml": aux, "classes.qml": style}
    if not urls.get(file_name):
        raise NotFound(f"{item[:120]} has no file {file_name[:40]!r}; files: "
                       f"{', '.join(name for name, url in urls.items() if url)}")
    return urls[file_name]


RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_RANGE_BYTES = 64 * 1024 * 1024


def ranged_response(store, url: str, header: str | None) -> Response:
    """A file of an object store, whole (up to MAX_RANGE_BYTES) or one byte range of it (206)."""
    size = store.size(url)
    match = RANGE.fullmatch(header.strip()) if header else None
    if header and (match is None or match.groups() == ("", "")):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = 0, size
    if match:
        first, last = match.groups()
        start, end = (size - int(last), size) if not first else (int(first), min(size, int(last or size - 1) + 1))
        if start >= size or start >= end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if end - start > MAX_RANGE_BYTES:
        raise ResourceExhausted(f"ask for at most {MAX_RANGE_BYTES} bytes at a time (a Range header)")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    if match:
        headers["Content-Range"] = f"bytes {max(start, 0)}-{end - 1}/{size}"
    return Response(store.read_range(url, max(start, 0), end), status_code=206 if match else 200, headers=headers)


class RequireCaller:
    """ASGI guard: the mounted application answers only callers with a valid certificate and role (the
    same check as gRPC: project CA, role, revocation). ``endpoint``: ``app`` is a Starlette request handler."""

    def __init__(self, app, service: DatabaseService, endpoint: bool = False):
        self.app, self.service = (request_response(app) if endpoint else app), service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            try:
                self.service.caller(HttpContext(peer_pem(scope)))
            except ApiError as error:
                return await _status_response(error.code, str(error))(scope, receive, send)
        # links of the mounted application start at its mount point (Starlette keeps the outer root otherwise)
        await self.app({**scope, "app_root_path": scope.get("root_path", "")}, receive, send)


async def _results(stream, first) -> AsyncIterator[bytes]:
    try:
        item = first
        while item is not _END:
            yield _line({"result": json_format.MessageToDict(item)})
            item = await run_in_threadpool(next, stream, _END)
    except Aborted as error:  # mid-stream: a last line says so, as grpc-gateway does
        yield _line({"error": status(error.code, error.details)})
    finally:
        await run_in_threadpool(stream.close)


def _ping(service: DatabaseService) -> None:
    with service.catalog.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413, RESOURCE_EXHAUSTED) before the application buffers them:
    by their Content-Length, or while they stream in."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        received, refused = [0], [False]

        async def counting_receive():
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > self.max_bytes and not refused[0]:
                refused[0] = True
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
        response = JSONResponse(status(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the request body is over "
                                       f"{self.max_bytes} bytes"), status_code=413)
        await response(scope, receive, send)


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
            log.info("%s %s %s %s %d %.1f ms", _caller_name(scope), (scope.get("client") or ("-",))[0],
                     scope["method"], scope["path"][:200], status_code[0], (time.perf_counter() - started) * 1e3)


def _caller_name(scope: dict) -> str:
    pem = peer_pem(scope)
    if not pem:
        return "anonymous"
    try:
        return caller_from_pem(pem).common_name
    except AuthError:
        return "unverified"


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol that hands the TLS-verified client certificate to the application."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _WithClientCertificate(self.app, ssl.DER_cert_to_PEM_cert(der))


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

    def __init__(self, service: DatabaseService, address: tuple[str, int], tls: TlsFiles | None):
        self.host, self.port = address[0], int(address[1])
        options = {}
        if tls is not None:
            options = {"ssl_certfile": str(tls.server_cert), "ssl_keyfile": str(tls.server_key),
                       "ssl_ca_certs": str(tls.ca_cert), "ssl_cert_reqs": ssl.CERT_REQUIRED,
                       "http": ClientCertificateProtocol}
        app = AccessLog(BodyLimit(build_app(service)))
        config = uvicorn.Config(app, host=self.host, port=self.port, lifespan="off", log_level="warning",
                                access_log=False, timeout_keep_alive=5, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="http-gateway", daemon=True)
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


def start_gateway(service: DatabaseService, address: tuple[str, int], tls: TlsFiles | None) -> HttpGateway:
    return HttpGateway(service, address, tls)
