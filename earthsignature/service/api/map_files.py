"""A segmentation's files and its product's quicklook over HTTPS, to the certificates and roles of the gRPC API.

``/v1/maps/<collection>/<item>/<file>``: the COGs (classes, confidence, cloud mask) and the class map's
legend sidecars, with range requests (GDAL's ``/vsicurl/`` and QGIS read windows and overviews);
``.../classes.png``: the whole class map in Web Mercator for web pages; ``.../tiles/{z}/{x}/{y}.png``: XYZ
tiles; ``/v1/products/<id>/quicklook.png``: the RGB quicklook the monitor sent. STAC items and gRPC
responses link here (``stac_items``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

import grpc
import sqlalchemy as sa
from rasterio.errors import RasterioError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from earthsignature.core.cog import legend_sidecars
from earthsignature.core.product import gdal_path
from earthsignature.service.api import validation
from earthsignature.service.api.errors import ApiError, InvalidArgument, NotFound, ResourceExhausted
from earthsignature.service.api.http_context import HttpContext, status_response
from earthsignature.service.api.map_render import render_png, render_tile
from earthsignature.service.api.servicer import QUICKLOOK_PATH, DatabaseService
from earthsignature.service.api.stac_items import MAP_ASSETS, MAP_FILE_PATH
from earthsignature.service.catalog.stac_filter import ITEM_ID_SEPARATOR

log = logging.getLogger("earthsignature.http")
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_RANGE_BYTES = 64 * 1024 * 1024
MAX_TILE_ZOOM = 22
CACHED = {"Cache-Control": "private, max-age=3600"}
#: store errors that mean "not now": the file system or object store, the catalog, GDAL
UNREADABLE = (OSError, RasterioError, sa.exc.SQLAlchemyError)


class MapFiles:
    """The routes; every handler checks the caller first, as the gRPC API does."""

    def __init__(self, service: DatabaseService):
        self.service = service

    def routes(self) -> list[Route]:
        maps = MAP_FILE_PATH
        return [Route(QUICKLOOK_PATH, self.quicklook, methods=["GET"]),
                Route(maps.replace("{file_name}", "classes.png"), self.picture, methods=["GET"]),
                Route(maps.replace("{file_name}", "tiles/{z:int}/{x:int}/{y:int}.png"), self.tile, methods=["GET"]),
                Route(maps, self.file, methods=["GET", "HEAD"])]

    async def quicklook(self, request: Request) -> Response:
        product_id = request.path_params["product_id"]

        async def work() -> Response:
            validation.identifier("product_id", product_id, validation.MAX_LENGTHS["product_id"], required=True)
            url = await run_in_threadpool(self.service.catalog.product_quicklook, product_id)
            if url is None:
                raise NotFound(f"no quicklook for product {product_id[:80]}")
            return Response(await run_in_threadpool(self.service.store.read_bytes, url), media_type="image/png",
                            headers=CACHED)

        return await self._answer(request, work, "the quicklook")

    async def file(self, request: Request) -> Response:
        """A COG or legend file, with range requests."""
        params = request.path_params

        async def work() -> Response:
            url = await run_in_threadpool(self._url, params["collection"], params["item"], params["file_name"])
            if self.service.store.remote:
                return await run_in_threadpool(ranged_response, self.service.store, url, request.headers.get("range"))
            path = gdal_path(url)
            if not await run_in_threadpool(os.path.isfile, path):
                raise NotFound(f"{params['file_name']} of {params['item'][:120]} is not in the store")
            media_type = next((m for f, m, *_ in MAP_ASSETS.values() if f == params["file_name"]), None)
            return FileResponse(path, media_type=media_type, headers=CACHED)  # ranges, HEAD, If-Range

        return await self._answer(request, work, "the map")

    async def picture(self, request: Request) -> Response:
        """The class map as a Web Mercator PNG; its bounds in a header (the page lays it at them)."""
        params = request.path_params

        async def work() -> Response:
            url = await run_in_threadpool(self._url, params["collection"], params["item"], "classes.tif")
            rendered = await run_in_threadpool(render_png, url)
            bounds = ",".join(f"{v:.3f}" for v in rendered.bounds_3857)
            return Response(rendered.png, media_type="image/png", headers={
                "X-Bounds-EPSG-3857": bounds, "Access-Control-Expose-Headers": "X-Bounds-EPSG-3857", **CACHED})

        return await self._answer(request, work, "the map")

    async def tile(self, request: Request) -> Response:
        """XYZ tile z/x/y of a class map (transparent where the map is not)."""
        params = request.path_params
        z, x, y = params["z"], params["x"], params["y"]

        async def work() -> Response:
            if not (0 <= z <= MAX_TILE_ZOOM and x < 2 ** z and y < 2 ** z):
                raise InvalidArgument("tile", f"z/x/y must have z in 0..{MAX_TILE_ZOOM} and x, y below 2^z")
            url = await run_in_threadpool(self._url, params["collection"], params["item"], "classes.tif")
            return Response(await run_in_threadpool(render_tile, url, z, x, y), media_type="image/png",
                            headers=CACHED)

        return await self._answer(request, work, "the map")

    async def _answer(self, request: Request, work: Callable, what: str) -> Response:
        """The caller checked, then ``work``; bad input and absence by their codes, a store that cannot be
        read now UNAVAILABLE."""
        try:
            self.service.caller(HttpContext.of(request.scope))  # the same roles and revocation as gRPC
            return await work()
        except ApiError as error:
            return status_response(error.code, str(error))
        except UNREADABLE as error:
            log.error("%s %s: %s", what, request.url.path[:200], error)
            return status_response(grpc.StatusCode.UNAVAILABLE, f"{what} cannot be read now; retry later")

    def _url(self, collection: str, item: str, file_name: str) -> str:
        return map_file_url(self.service, collection, item, file_name)


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
