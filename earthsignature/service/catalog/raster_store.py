"""Segmentation rasters as Cloud-Optimized GeoTIFFs in a store addressed by URL.

The store root is a local folder by default (``var/rasters``) or any URL GDAL reads and fsspec writes
(``s3://bucket/prefix``, ``gs://...``): production swaps the URL, not code. An S3-compatible store other than
AWS (MinIO, Ceph, a test server) is named by its endpoint, which both fsspec and GDAL are given here;
credentials come from the usual places (``AWS_ACCESS_KEY_ID``... or ``~/.aws``), read by both. An object
store hands out its own pre-signed URLs for the files (``presigned_url``), so pilots read maps from the store,
not through the service. COGs are tiled (256),
deflate-compressed, with nearest-neighbour overviews and the model's color table. Readers ask for the
part of a raster under an area (EPSG:4326) and a pixel budget: only that window is read, from the
overview that matches the asked resolution, and pixels outside the area become nodata.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import re
import shutil
import tempfile
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds
from shapely.geometry import MultiPolygon, box, mapping
from shapely.geometry import shape as shapely_shape
from shapely.geometry.base import BaseGeometry

from earthsignature.core.cog import write_cog
from earthsignature.core.product import gdal_path

_REMOTE = ("s3://", "gs://", "az://", "http://", "https://")
#: What a name in the store may be: a letter or digit first, then letters, digits, '_', '.', '-'. So a
#: client's identifier never becomes '..', a separator or a control character in a path.
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class UnsafePath(ValueError):
    """A name that may not become part of a store path."""


@dataclass(frozen=True)
class RasterWindow:
    """Pixels read from a COG with their georeferencing."""

    data: np.ndarray  # [H, W]
    transform: Affine
    crs: str
    nodata: int | None

    @property
    def geotransform(self) -> list[float]:
        """GDAL order: x0, dx, rx, y0, ry, dy."""
        return list(self.transform.to_gdal())


class RasterStore:
    def __init__(self, root_url: str, endpoint_url: str | None = None):
        """``endpoint_url``: an S3-compatible store's address (``http(s)://host:port``) for an ``s3://`` root;
        None: AWS itself."""
        self.root_url = root_url.rstrip("/")
        self.remote = self.root_url.startswith(_REMOTE)
        self.storage_options: dict = {}
        self.gdal_options: dict[str, str] = {}
        if self.root_url.startswith("s3://"):
            # SigV4: what every AWS region and S3-compatible store takes (botocore may pick the older v2)
            self.storage_options["config_kwargs"] = {"signature_version": "s3v4"}
            # other server processes write to the store too: a listing remembered here would go stale
            self.storage_options["use_listings_cache"] = False
        if endpoint_url:
            endpoint = urllib.parse.urlsplit(endpoint_url)
            if not self.root_url.startswith("s3://") or endpoint.scheme not in ("http", "https") or \
                    not endpoint.netloc:
                raise ValueError(f"a store endpoint is the http(s)://host:port of an s3:// store, not "
                                 f"{endpoint_url!r} for {self.root_url!r}")
            self.storage_options["client_kwargs"] = {"endpoint_url": endpoint_url}
            self.gdal_options = {"AWS_S3_ENDPOINT": endpoint.netloc, "AWS_HTTPS": "YES" if endpoint.scheme ==
                                 "https" else "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}  # bucket in the path

    def filesystem(self, url: str):
        """fsspec's file system for a URL in this store (object storage or a local folder) and the path within
        it."""
        import fsspec

        return fsspec.core.url_to_fs(url, **(self.storage_options if self.remote else {}))

    def gdal_env(self) -> contextlib.AbstractContextManager:
        """GDAL's settings for reading this store's files (its endpoint), around any GDAL open of them."""
        return rasterio.Env(**self.gdal_options) if self.gdal_options else contextlib.nullcontext()

    def presigned_url(self, url: str, lifetime_s: float) -> str | None:
        """The object store's own pre-signed URL of a stored file: it opens without credentials for
        ``lifetime_s`` seconds, served by the store. None for a local folder or a store that cannot sign."""
        if not self.remote:
            return None
        fs, path = self.filesystem(url)
        try:
            return fs.sign(path, expiration=int(lifetime_s))
        except NotImplementedError:  # plain HTTP(S) roots
            return None

    def url_for(self, *parts: str) -> str:
        for part in parts:
            if not SAFE_PART.fullmatch(part):
                raise UnsafePath(f"{part[:40]!r} may not name a file or folder in the raster store")
        return "/".join([self.root_url, *parts])

    def write_cog(self, url: str, data: np.ndarray, crs: str, transform: Affine, nodata: int | None = None,
                  colormap: dict[int, tuple[int, int, int, int]] | None = None, description: str = "",
                  tags: dict[str, str] | None = None, options: dict[str, str] | None = None) -> str:
        """Write ``data`` [H, W] as a COG at ``url`` (atomically for local files); return the URL. The band's
        description, metadata ``tags`` and driver ``options`` as ``core.cog.write_cog`` takes them."""
        with tempfile.TemporaryDirectory() as tmp:
            staged = write_cog(Path(tmp) / "cog.tif", data, crs, transform, nodata, colormap, description, tags,
                               options)
            self._put(staged, url)
        return url

    def write_bytes(self, url: str, payload: bytes) -> str:
        """Store a small file (a quicklook PNG) at ``url``."""
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "file"
            staged.write_bytes(payload)
            self._put(staged, url)
        return url

    def read_bytes(self, url: str) -> bytes:
        if self.remote:
            fs, path = self.filesystem(url)
            return fs.cat_file(path)
        return Path(gdal_path(url)).read_bytes()

    def size(self, url: str) -> int:
        if self.remote:
            fs, path = self.filesystem(url)
            return int(fs.size(path))
        return Path(gdal_path(url)).stat().st_size

    def read_range(self, url: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a stored file (one request to object storage)."""
        if self.remote:
            fs, path = self.filesystem(url)
            return fs.cat_file(path, start=start, end=end)
        with Path(gdal_path(url)).open("rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    def _put(self, local: Path, url: str) -> None:
        if self.remote:  # an object store's upload is whole or nothing
            fs, path = self.filesystem(url)
            fs.put_file(str(local), path)
            return
        destination = Path(gdal_path(url))
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.partial")  # per request
        shutil.copyfile(local, partial)
        partial.replace(destination)

    def exists(self, url: str) -> bool:
        if self.remote:
            fs, path = self.filesystem(url)
            return fs.exists(path)
        return Path(gdal_path(url)).exists()

    def delete(self, url: str) -> None:
        """Remove a file, and the folders it leaves empty up to the store's root (object stores have none)."""
        if self.remote:
            fs, path = self.filesystem(url)
            if fs.exists(path):  # like unlink(missing_ok=True)
                fs.rm(path)
            return
        path = Path(gdal_path(url))
        path.unlink(missing_ok=True)
        root = Path(gdal_path(self.root_url))
        for folder in path.parents:
            if folder == root or root not in folder.parents:
                break
            try:
                folder.rmdir()  # only when empty: a folder still holding files stays
            except OSError:
                break

    def read(self, url: str, area: BaseGeometry | None = None, max_pixels: int = 4_000_000) -> RasterWindow | None:
        """The pixels under ``area`` (EPSG:4326; None: everything), downsampled by a whole factor when
        the window exceeds ``max_pixels``. None when the area misses the raster."""
        dataset = self._open(url)
        crs, nodata = dataset.crs.to_string(), dataset.nodata
        window = Window(0, 0, dataset.width, dataset.height)
        if area is not None:
            # clipped to the map's own extent first: an area spanning the world has no bounds in a UTM zone
            area = area.intersection(_lonlat_extent(crs, tuple(dataset.bounds)))
            if area.is_empty:
                return None
            bounds = transform_bounds("EPSG:4326", dataset.crs, *area.bounds, densify_pts=21)
            if not all(math.isfinite(v) for v in bounds):
                return None
            window = from_bounds(*bounds, transform=dataset.transform).round_offsets().round_lengths()
            try:
                window = window.intersection(Window(0, 0, dataset.width, dataset.height))
            except rasterio.errors.WindowError:
                return None
            if window.width <= 0 or window.height <= 0:
                return None
        factor = max(1, math.ceil(math.sqrt(window.width * window.height / max_pixels)))
        shape = (max(1, int(window.height) // factor), max(1, int(window.width) // factor))
        data = dataset.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)
        transform = dataset.window_transform(window) @ Affine.scale(window.width / shape[1],
                                                                     window.height / shape[0])
        if area is not None and nodata is not None:
            local = transform_geom("EPSG:4326", crs, mapping(area))
            left, top = transform @ (0, 0)
            right, bottom = transform @ (shape[1], shape[0])
            # a window wholly inside the area (a map inside a region asked for) needs no mask
            if not shapely_shape(local).contains(box(min(left, right), min(top, bottom), max(left, right),
                                                     max(top, bottom))):
                outside = geometry_mask([local], shape, transform)
                np.copyto(data, np.asarray(nodata, dtype=data.dtype), where=outside)  # in place: no second copy
        return RasterWindow(data, transform, crs, None if nodata is None else int(nodata))


    def read_pixels(self, url: str, row: int, column: int, rows: int, columns: int) -> np.ndarray:
        """A window of a stored raster's first band at full resolution (pixel offsets on its grid)."""
        return self._open(url).read(1, window=Window(column, row, columns, rows))

    def nodata(self, url: str) -> int | None:
        """A stored raster's no-data value."""
        value = self._open(url).nodata
        return None if value is None else int(value)

    def _open(self, url: str):
        with self.gdal_env():
            return _open(gdal_path(url))


@functools.lru_cache(maxsize=4096)  # by value: a grid's extent never changes, and popular maps are read often
def _lonlat_extent(crs: str, bounds: tuple[float, float, float, float]) -> BaseGeometry:
    """A grid's extent in EPSG:4326, in two parts when it crosses the antimeridian (west > east)."""
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    if west <= east:
        return box(west, south, east, north)
    return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])


#: Maps kept open per thread (a dataset is not shared between threads): opening one costs about as much as
#: reading a window of it, and answers read the same popular maps again and again. Stored files never change
#: (each ingestion writes a folder of its own), so an open dataset never goes stale. More than a page of
#: answers (10 by default): with 8, a page of 10 asked again in the same order missed every time (least
#: recently used, under a cyclic scan). The service reads maps in its work slots, 2 threads a process.
OPEN_PER_THREAD = 64
_open_maps = threading.local()


def _open(path: str):
    cache = getattr(_open_maps, "datasets", None)
    if cache is None:
        cache = _open_maps.datasets = collections.OrderedDict()
    dataset = cache.pop(path, None)
    if dataset is None or dataset.closed:
        dataset = rasterio.open(path)
    cache[path] = dataset
    while len(cache) > OPEN_PER_THREAD:
        cache.popitem(last=False)[1].close()
    return dataset
