"""The HTTP app: one ASGI application (Starlette) for pilots' tools, beside the gRPC server.

- the appendix's bindings: ``GET /v1/segmentation:list`` and ``GET /v1/segmentation:search`` call the
  service core as gRPC does (through ``wire``, the same translation), with grpc-gateway's conventions: query
  parameters in snake_case or camelCase (``n_results``, ``nResults``; repeated fields repeat), results
  streamed as NDJSON lines ``{"result": SegmentationResponse}`` in camelCase, errors as ``google.rpc.Status``
  with grpc-gateway's HTTP status, and an error after the first result sent in-band as a last line
  ``{"error": Status}`` (a pilot can tell a cut stream from an empty one); ``GET /v1/statistics:area`` and
  ``GET /v1/statistics:change`` answer one AreaStatisticsResponse / AreaChangeResponse as JSON (``:change-pictures``
  the latter with its change maps as pictures, for the map page);
- a segmentation's files, map pictures, XYZ tiles and quicklooks (``map_files``);
- ``GET /v1/token``: a pilot's certificate exchanged for an access token, which every route then takes as
  ``Authorization: Bearer`` in place of the certificate (``access_tokens``), for tools that send no
  certificate;
- the STAC API at ``/stac`` (``stac``) and the map page at ``/map`` (``web/``);
- ``GET /healthz``: whether the catalog is reachable, for callers with a valid, unrevoked certificate and a
  role like every other route (it reports on the catalog; a load balancer presents a certificate of its own).

``http_server`` serves it with mutual TLS; every route checks the caller as gRPC does (or the access token).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles

from earthsignature.pb.snapearth.api.v1 import database_pb2, statistics_pb2
from earthsignature.service.api import wire
from earthsignature.service.api.core import DatabaseCore
from earthsignature.service.api.errors import ApiError, Code, InvalidArgument, as_api_error
from earthsignature.service.api.http_context import (
    CALLER_KEY,
    credentials,
    error_response,
    peer_pem,
    scope_caller,
    status,
    status_response,
)
from earthsignature.service.api.map_files import MapFiles
from earthsignature.service.api.map_render import render_cog_png
from earthsignature.service.api.stac import STAC_DESCRIPTIONS, build_stac_app
from earthsignature.service.api.stac_items import STAC_PREFIX
from earthsignature.service.catalog import change

#: The pilots' map page: map.html, and static/ (our script and style, the web library in static/vendor).
WEB_DIR = Path(__file__).with_name("web")
MAP_PAGE = "/map"
#: a pilot's certificate exchanged for an access token (``access_tokens``)
TOKEN_ROUTE = "/v1/token"

#: path -> (the core's method, the request message, its translation to the core's record)
ROUTES = {"/v1/segmentation:list": ("list_maps", database_pb2.ListSegmentationRequest, wire.list_query),
          "/v1/segmentation:search": ("search_maps", database_pb2.SearchSegmentationRequest, wire.text_query)}
def _as_json(respond):
    """An answer's message as the JSON bindings send it (grpc-gateway's mapping)."""
    return lambda model_name, found: json_format.MessageToDict(respond(model_name, found))


def _change_with_pictures(model_name: str, found) -> dict:
    """The change binding's answer with each change map drawn for the map page: a Web Mercator PNG (base64,
    unchanged pixels transparent: the class maps show through) and its bounds, where the binding sends the
    COG."""
    response = wire.change_response(model_name, found)
    body = json_format.MessageToDict(response)
    for entry, tile_map in zip(body.get("maps", []), response.maps, strict=True):
        picture = render_cog_png(tile_map.map.encoded_data, transparent=(change.UNCHANGED.index,))
        entry["map"] = {"png": base64.b64encode(picture.png).decode(), "bounds3857": picture.bounds_3857}
    return body


#: The unary bindings (one JSON answer each): path -> (the core's method, the request message, its translation,
#: the answer as JSON); the last is the map page's, change maps as pictures.
UNARY_ROUTES = {
    "/v1/statistics:area": ("area_statistics", statistics_pb2.AreaStatisticsRequest, wire.statistics_query,
                            _as_json(wire.statistics_response)),
    "/v1/statistics:change": ("area_change", statistics_pb2.AreaChangeRequest, wire.change_query,
                              _as_json(wire.change_response)),
    "/v1/statistics:change-pictures": ("area_change", statistics_pb2.AreaChangeRequest, wire.change_query,
                                       _change_with_pictures),
}
_END = object()


def request_from_query(items: Iterable[tuple[str, str]], message_type):
    """Query parameters (snake_case or camelCase) -> request message, with the proto's JSON mapping."""
    fields = message_type.DESCRIPTOR.fields_by_name
    by_json_name = {field.json_name: field for field in fields.values()}
    values: dict[str, object] = {}
    for name, value in items:
        field = fields.get(name) or by_json_name.get(name)
        if field is None:
            raise InvalidArgument(None, f"unknown parameter {name[:40]!r}")
        if field.is_repeated:
            values.setdefault(field.name, []).append(value)
        else:
            values[field.name] = value
    try:
        return json_format.ParseDict(values, message_type())
    except json_format.ParseError as error:
        raise InvalidArgument(None, f"bad parameter: {error}") from error


def _line(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def build_app(core: DatabaseCore) -> Starlette:
    async def binding(request: Request) -> Response:
        method, message_type, translate = ROUTES[request.url.path]
        deadline = core.deadline()

        def start():  # in a worker thread: checking an area (WKT up to 100,000 characters) is work
            caller = core.authorize(*credentials(request.scope))
            message = request_from_query(request.query_params.multi_items(), message_type)
            answers = getattr(core, method)(caller, translate(message), deadline)
            stream = wire.responses(answers, message.raster_encoding, core, deadline)
            return stream, next(stream, _END)  # errors surface before the headers go out

        try:
            stream, first = await run_in_threadpool(start)
        except Exception as error:
            return error_response(error)
        return StreamingResponse(_results(stream, first), media_type="application/x-ndjson")

    async def unary(request: Request) -> Response:
        method, message_type, translate, respond = UNARY_ROUTES[request.url.path]
        deadline = core.deadline()

        def answer() -> dict:
            caller = core.authorize(*credentials(request.scope))
            query = translate(request_from_query(request.query_params.multi_items(), message_type))
            return respond(query.model_name, getattr(core, method)(caller, query, deadline))

        try:
            return JSONResponse(await run_in_threadpool(answer))
        except Exception as error:
            return error_response(error)

    async def token(request: Request) -> Response:
        def issue():  # the certificate itself, never a token: a token cannot renew itself
            return core.access_token(core.authorize(peer_pem(request.scope)))

        try:
            issued = await run_in_threadpool(issue)
        except Exception as error:
            return error_response(error)
        expires = datetime.fromtimestamp(issued.expires_at, UTC).isoformat().replace("+00:00", "Z")
        return JSONResponse({"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.lifetime_s,
                             "expires_at": expires}, headers={"Cache-Control": "no-store"})

    async def map_page(request: Request) -> Response:
        if not (WEB_DIR / "static" / "vendor" / "ol.js").exists():
            return status_response(Code.UNAVAILABLE, "the map page's web library is not installed: run `make web` "
                                                     "(needs npm)")
        return FileResponse(WEB_DIR / "map.html", media_type="text/html")

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(core.ping, scope_caller(request.scope))
        except sa.exc.SQLAlchemyError as error:
            return JSONResponse({"status": "NOT_SERVING", "reason": f"catalog unreachable: {type(error).__name__}"},
                                status_code=503)
        return JSONResponse({"status": "SERVING"})

    async def http_error(request: Request, error: HTTPException) -> Response:
        code = {404: Code.NOT_FOUND, 405: Code.UNIMPLEMENTED}.get(error.status_code, Code.INVALID_ARGUMENT)
        message = (f"no route {request.url.path[:80]}; routes: {', '.join([*ROUTES, *UNARY_ROUTES])}, "
                   f"/v1/maps/..., {TOKEN_ROUTE}, /stac/, /map, /healthz"
                   if error.status_code == 404 else f"{request.method} is not allowed here: use GET")
        return JSONResponse(status(code, message), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    routes = [Route(path, binding, methods=["GET"]) for path in ROUTES]
    routes += [Route(path, unary, methods=["GET"]) for path in UNARY_ROUTES]
    routes += MapFiles(core).routes()
    routes.append(Route(TOKEN_ROUTE, token, methods=["GET"]))
    routes.append(Route("/healthz", RequireCaller(healthz, core, endpoint=True), methods=["GET"]))
    routes.append(Route(MAP_PAGE, RequireCaller(map_page, core, endpoint=True), methods=["GET"]))
    routes.append(Mount(f"{MAP_PAGE}/static", app=RequireCaller(StaticFiles(directory=WEB_DIR / "static",
                                                                            check_dir=False), core)))
    # the API's OpenAPI description and its page are public: validators and code generators fetch them
    # without credentials (stac-api-validator sends no Authorization header there), and they hold no data
    routes.append(Mount(STAC_PREFIX, app=RequireCaller(build_stac_app(core), core, public=STAC_DESCRIPTIONS)))
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


class RequireCaller:
    """ASGI guard: the wrapped application answers only callers with a valid certificate and role (the same
    check as gRPC: project CA, role, revocation), and finds the caller in its scope (``scope_caller``).
    ``endpoint``: ``app`` is a Starlette request handler."""

    def __init__(self, app, core: DatabaseCore, endpoint: bool = False, public: frozenset[str] = frozenset()):
        """``public``: paths under the mount point answered without a caller (descriptions that hold no data)."""
        self.app, self.core, self.public = (request_response(app) if endpoint else app), core, public

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].removeprefix(scope.get("root_path", "")) in self.public:
            return await self.app(scope, receive, send)
        try:
            caller = self.core.authorize(*credentials(scope))
        except ApiError as error:
            return await error_response(error)(scope, receive, send)
        started = [False]

        async def watched_send(message) -> None:
            started[0] = started[0] or message["type"] == "http.response.start"
            await send(message)

        # links of the mounted application start at its mount point (Starlette keeps the outer root otherwise)
        inner = {**scope, "app_root_path": scope.get("root_path", ""), CALLER_KEY: caller}
        try:
            await self.app(inner, receive, watched_send)
        except HTTPException:  # a route's own HTTP answer (405 from the static files): the app's handler writes it
            raise
        except Exception as error:  # Starlette re-raises after its error handler answered: logged there already
            if not started[0]:
                await error_response(error)(scope, receive, send)


async def _results(stream, first) -> AsyncIterator[bytes]:
    try:
        item = first
        while item is not _END:
            yield _line({"result": json_format.MessageToDict(item)})
            item = await run_in_threadpool(next, stream, _END)
    except Exception as error:  # mid-stream: a last line says so, as grpc-gateway does
        answer = as_api_error(error)
        yield _line({"error": status(answer.code, answer.message)})
    finally:
        await run_in_threadpool(stream.close)
