"""A segmentation's files and its product's quicklook over HTTPS, to the certificates and roles of the gRPC API.

``/v1/maps/<collection>/<item>/<file>``: the COGs (classes, confidence, cloud mask) and the class map's legend
sidecars, with range requests (GDAL's ``/vsicurl/`` and QGIS read windows and overviews), or, from an object
store, a redirect (307) to the store's pre-signed URL of the file (GDAL, curl -L and browsers follow it);
``.../classes.png``: the whole class map in Web Mercator for web pages; ``.../tiles/{z}/{x}/{y}.png``: XYZ tiles
(both with clouds drawn as clouds, ``core.picture_source``) and ``.../tilejson.json`` describing them;
``.../thumbnail.png``: the product's quicklook among the item's files; ``/v1/products/<id>/quicklook.png``: the
RGB quicklook the monitor sent. STAC items and gRPC responses link here (``stac_items``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from rasterio.errors import RasterioError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from earthsignature.core.product import gdal_path
from earthsignature.service.api.core import QUICKLOOK_PATH, DatabaseCore
from earthsignature.service.api.errors import ApiError, Code, InvalidArgument, NotFound, ResourceExhausted
from earthsignature.service.api.http_context import credentials, error_response, status_response
from earthsignature.service.api.map_render import render_png, render_tile
from earthsignature.service.api.records import MapExtent
from earthsignature.service.api.signed_links import PARAMETERS
from earthsignature.service.api.stac_items import MAP_ASSETS, MAP_FILE_PATH, SIGNED_MAP_FILE_PATH, TILEJSON

log = logging.getLogger("earthsignature.http")
#: one byte range; offsets of up to 18 digits (int() refuses strings of over 4,300, and no file is 10^18 bytes)
ONE_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
MAX_RANGE_BYTES = 64 * 1024 * 1024
#: a local file's single byte range up to this size is read in the worker-thread call that finds the file and
#: sent whole (GDAL and QGIS read 16 KiB blocks); larger or several ranges, If-Range and HEAD go to FileResponse
PREREAD_RANGE_BYTES = 4 * 1024 * 1024
MAX_TILE_ZOOM = 22
TILE_NUMBER = re.compile(r"[0-9]{1,8}")  # 2^22 has 7 digits
CACHED = {"Cache-Control": "private, max-age=3600"}
#: store errors that mean "not now": the file system or object store, the catalog, GDAL
UNREADABLE = (OSError, RasterioError, sa.exc.SQLAlchemyError)


@dataclass(frozen=True)
class StoredFile:
    """Where a map file is, and for a local one its stat and, when a small single range was asked, its bytes."""

    url: str
    found: os.stat_result | None = None  # None: in an object store
    span: tuple[int, int] | None = None  # [start, end) of the bytes read
    body: bytes | None = None


class MapFiles:
    """The routes; every handler checks the caller first, as the gRPC API does."""

    def __init__(self, core: DatabaseCore):
        self.core = core

    def routes(self) -> list[Route]:
        routes = [Route(QUICKLOOK_PATH, self.quicklook, methods=["GET"])]
        for maps in (MAP_FILE_PATH, SIGNED_MAP_FILE_PATH):  # with the certificate, or in a signed folder
            routes += [Route(maps.replace("{file_name}", "classes.png"), self.picture, methods=["GET"]),
                       Route(maps.replace("{file_name}", "tiles/{z}/{x}/{y}.png"), self.tile,
                             methods=["GET"]),
                       Route(maps.replace("{file_name}", TILEJSON), self.tilejson, methods=["GET"]),
                       Route(maps, self.file, methods=["GET", "HEAD"])]
        return routes

    async def quicklook(self, request: Request) -> Response:
        product_id = request.path_params["product_id"]

        async def work(caller) -> Response:
            png = await run_in_threadpool(self.core.quicklook, caller, product_id)
            return Response(png, media_type="image/png", headers=CACHED)

        return await self._answer(request, work, "the quicklook")

    async def file(self, request: Request) -> Response:
        """A COG or legend file, with range requests."""
        params = request.path_params

        wanted = request.headers.get("range")
        preread = wanted if request.method == "GET" and "if-range" not in request.headers else None

        async def work(caller) -> Response:
            stored = await run_in_threadpool(self._stored_file, caller, params, preread)
            url = stored.url
            if stored.found is None:
                # the store's own pre-signed URL: the bytes (range requests included) come from the store
                presigned = await run_in_threadpool(self.core.store.presigned_url, url,
                                                    self.core.limits.link_lifetime_s)
                if presigned:
                    return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": "no-store"})
                return await run_in_threadpool(ranged_response, self.core.store, url, wanted)
            media_type = next((m for f, m, *_ in MAP_ASSETS.values() if f == params["file_name"]), None)
            # the stat given, FileResponse does not ask a worker thread for it again; its headers (ETag,
            # Last-Modified) are the ones a range read already made is answered with
            whole = FileResponse(gdal_path(url), media_type=media_type, headers=CACHED, stat_result=stored.found)
            return whole if stored.body is None else part_of(whole, stored.span, stored.body)

        return await self._answer(request, work, "the map")

    def _stored_file(self, caller, params, wanted: str | None) -> StoredFile:
        """A map file's store URL and, in a local store, its stat and the bytes of the one small range
        ``wanted``: one worker-thread call where the lookup and stat, then FileResponse's open, seek, read and
        close took five (each a hand-over between the event loop and a worker thread)."""
        url = self.core.map_file(caller, params["collection"], params["item"], params["file_name"])
        if self.core.store.remote:
            return StoredFile(url)
        stored = local_file(url, wanted)
        if stored is None:
            raise NotFound(f"{params['file_name']} of {params['item'][:120]} is not in the store")
        return stored

    async def picture(self, request: Request) -> Response:
        """The class map as a Web Mercator PNG; its bounds in a header (the page lays it at them)."""
        params = request.path_params

        async def work(caller) -> Response:
            url, clouds = await run_in_threadpool(self.core.picture_source, caller, params["collection"],
                                                  params["item"])
            rendered = await run_in_threadpool(self._drawn, render_png, url, 1024, clouds)
            bounds = ",".join(f"{v:.3f}" for v in rendered.bounds_3857)
            return Response(rendered.png, media_type="image/png", headers={
                "X-Bounds-EPSG-3857": bounds, "Access-Control-Expose-Headers": "X-Bounds-EPSG-3857", **CACHED})

        return await self._answer(request, work, "the map")

    async def tile(self, request: Request) -> Response:
        """XYZ tile z/x/y of a class map (transparent where the map is not)."""
        params = request.path_params

        async def work(caller) -> Response:
            z, x, y = tile_address(params["z"], params["x"], params["y"])
            url, clouds = await run_in_threadpool(self.core.picture_source, caller, params["collection"],
                                                  params["item"])
            return Response(await run_in_threadpool(self._drawn, render_tile, url, z, x, y, 256, clouds),
                            media_type="image/png", headers=CACHED)

        return await self._answer(request, work, "the map")

    async def tilejson(self, request: Request) -> Response:
        """The map's XYZ tiles as TileJSON 3.0.0, their template in the folder asked (a signed one stays signed)."""
        params = request.path_params

        async def work(caller) -> Response:
            extent = await run_in_threadpool(self.core.map_extent, caller, params["collection"], params["item"])
            root = self.core.public_url or str(request.base_url).rstrip("/")
            folder = root + request.url.path.removesuffix(TILEJSON)
            return JSONResponse(tile_json(extent, folder + "tiles/{z}/{x}/{y}.png", params["item"]), headers=CACHED)

        return await self._answer(request, work, "the map")

    def _drawn(self, render: Callable, *args):
        """A picture drawn from the store's maps (GDAL given the store's settings)."""
        with self.core.store.gdal_env():
            return render(*args)

    async def _answer(self, request: Request, work: Callable, what: str) -> Response:
        """The caller checked (the same roles and revocation as gRPC, or a map file's signed link), then
        ``work``; bad input and absence by their codes, a store that cannot be read now UNAVAILABLE."""
        params = request.path_params
        try:
            if "collection" in params:
                signed = {name: params[name] for name in PARAMETERS} if "signature" in params else None
                certificate, token = credentials(request.scope)
                caller = self.core.authorize_map_files(certificate, params["collection"], params["item"], signed,
                                                       token)
            else:
                caller = self.core.authorize(*credentials(request.scope))
            return await work(caller)
        except ApiError as error:
            return error_response(error)
        except UNREADABLE as error:
            log.error("%s %s: %s", what, request.url.path[:200], error)
            return status_response(Code.UNAVAILABLE, f"{what} cannot be read now; retry later")


def tile_address(*texts: str) -> tuple[int, int, int]:
    """z, x, y of a tile's path, checked as text before int() (which raises past 4,300 digits)."""
    if not all(TILE_NUMBER.fullmatch(text) for text in texts):
        raise InvalidArgument("tile", "z, x and y are whole numbers")
    z, x, y = (int(text) for text in texts)
    if not (z <= MAX_TILE_ZOOM and x < 2 ** z and y < 2 ** z):
        raise InvalidArgument("tile", f"z/x/y must have z in 0..{MAX_TILE_ZOOM} and x, y below 2^z")
    return z, x, y


def tile_json(extent: MapExtent, template: str, name: str) -> dict:
    """TileJSON 3.0.0 of a map's XYZ tiles: zooms up to the first at which a tile pixel is finer than a map
    pixel (Web Mercator's scale at the map's middle latitude), bounds and centre from its footprint."""
    west, south, east, north = extent.bounds
    latitude = (south + north) / 2
    ground = 2 * math.pi * 6378137 * math.cos(math.radians(latitude)) / 256  # metres a pixel at zoom 0
    maxzoom = max(0, min(MAX_TILE_ZOOM, math.ceil(math.log2(ground / max(extent.resolution_m, 0.01)))))
    longitude = (west + east) / 2 if west <= east else (west + east + 360) / 2  # across 180°: the middle of it
    longitude = longitude - 360 if longitude > 180 else longitude
    return {"tilejson": "3.0.0", "name": name, "scheme": "xyz", "tiles": [template], "minzoom": 0,
            "maxzoom": maxzoom, "bounds": [west, south, east, north],
            "center": [longitude, latitude, max(0, maxzoom - 4)]}


def local_file(url: str, wanted: str | None) -> StoredFile | None:
    """A local store's file, its stat and, when ``wanted`` is one range of at most PREREAD_RANGE_BYTES, those
    bytes; None when no file is there (nothing, or a folder)."""
    try:  # non-blocking: a FIFO in the store must not hold a worker thread
        handle = os.open(gdal_path(url), os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        found = os.fstat(handle)
        if not stat.S_ISREG(found.st_mode):
            return None
        span = byte_range(wanted, found.st_size) if wanted else None
        if span is None or span[1] - span[0] > PREREAD_RANGE_BYTES:
            return StoredFile(url, found)
        body = os.pread(handle, span[1] - span[0], span[0])
        return StoredFile(url, found, span, body) if len(body) == span[1] - span[0] else StoredFile(url, found)
    finally:
        os.close(handle)


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The [start, end) of a file of ``size`` bytes that a Range header of one range asks for (RFC 9110:
    ``bytes=first-last``, ``bytes=first-``, ``bytes=-suffix``; an end past the file is the file's end), or None
    when it is not one range that the file can satisfy."""
    match = ONE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    start, end = (max(size - int(last), 0), size) if not first else (int(first), min(size, int(last or size - 1) + 1))
    return (start, end) if start < min(end, size) else None


def part_of(whole: FileResponse, span: tuple[int, int], body: bytes) -> Response:
    """The 206 answer to a single range of a file read already: the whole file's headers, its range's length."""
    headers = MutableHeaders(raw=list(whole.raw_headers))
    headers["content-range"] = f"bytes {span[0]}-{span[1] - 1}/{whole.stat_result.st_size}"
    headers["content-length"] = str(len(body))
    return Response(body, status_code=206, headers=headers)


def ranged_response(store, url: str, header: str | None) -> Response:
    """A file of an object store, whole (up to MAX_RANGE_BYTES) or one byte range of it (206)."""
    size = store.size(url)
    span = byte_range(header, size) if header else (0, size)
    if span is None:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span
    if end - start > MAX_RANGE_BYTES:
        raise ResourceExhausted(f"ask for at most {MAX_RANGE_BYTES} bytes at a time (a Range header)")
    headers = {"Accept-Ranges": "bytes", **CACHED}
    if header:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(store.read_range(url, start, end), status_code=206 if header else 200, headers=headers)
