"""Python client of the EarthSignature API, for pilots and for the monitor.

    from earthsignature.client import EarthSignatureClient
    with EarthSignatureClient("es.example.org:443", ca="ca.crt", cert="acme.crt", key="acme.key") as api:
        for result in api.list(wkt="POLYGON((...))", start="2021-08-01", end="2021-08-31"):
            result.classes, result.transform, result.crs   # numpy array + georeferencing
            result.save_geotiff("map.tif")

Results decode every raster encoding into numpy arrays with their GDAL geotransform and CRS; errors
are ``grpc.RpcError`` with the server's status code and message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import geobuf
import grpc
import numpy as np
import pandas as pd
from affine import Affine

from earthsignature.client.tables import change_matrix, statistics_frame
from earthsignature.core import raster_codec
from earthsignature.core.classes import ClassShare
from earthsignature.core.cog import LAYER_DESCRIPTIONS, class_tags, gdal_aux_xml, write_cog
from earthsignature.core.manifest import ModelCard
from earthsignature.pb.snapearth.api.v1 import database_pb2, database_pb2_grpc, segmentation_pb2, statistics_pb2

Encoding = segmentation_pb2.RasterEncoding
log = logging.getLogger(__name__)


@dataclass
class Result:
    """One segmentation as a pilot receives it."""

    product_id: str
    tile_id: str
    start: datetime
    end: datetime
    model: str
    footprint: dict  # GeoJSON geometry, EPSG:4326
    classes: np.ndarray | None  # [H, W] class values (None with the polygon encoding)
    transform: Affine
    crs: str
    nodata: int | None
    legend: dict[int, ClassShare]  # pixel value -> its class and share of the map
    cloud_mask: np.ndarray | None = None
    polygons: dict | None = None  # GeoJSON FeatureCollection with the polygon encoding
    cloud_cover: float = 0.0
    page_token: str = ""
    wire_bytes: int = field(default=0, repr=False)
    model_card: ModelCard = field(default_factory=ModelCard)  # what the model was trained and tested on
    quicklook_url: str = ""  # the product's RGB quicklook (HTTPS, the same certificate): client.fetch(url)
    item_url: str = ""  # the map as a STAC item
    map_url: str = ""  # the whole class map as a COG (range reads)

    @classmethod
    def from_message(cls, message: database_pb2.SegmentationResponse) -> Result:
        raster = message.segmentation
        polygons = None
        classes = None
        if message.HasField("segmentation_polygons") and message.segmentation_polygons.ByteSize():
            polygons = geobuf.decode(message.segmentation_polygons.SerializeToString())
        else:
            classes = raster_codec.decode(raster)
        legend = {c.value: raster_codec.class_share(c) for c in message.classes}
        return cls(
            product_id=message.product_id, tile_id=message.tile_id,
            start=message.start_date.ToDatetime(tzinfo=UTC), end=message.end_date.ToDatetime(tzinfo=UTC),
            model=f"{message.model_name}:{message.model_version}",
            footprint=geobuf.decode(message.footprint.SerializeToString()), classes=classes,
            transform=Affine.from_gdal(*raster.geotransform) if len(raster.geotransform) == 6 else Affine.identity(),
            crs=raster.crs, nodata=raster.nodata if raster.HasField("nodata") else None, legend=legend,
            cloud_mask=raster_codec.decode(message.cloud_mask) if message.HasField("cloud_mask") else None,
            polygons=polygons, cloud_cover=message.cloud_cover, page_token=message.page_token,
            wire_bytes=message.ByteSize(), model_card=raster_codec.model_card(message.model_card),
            quicklook_url=message.quicklook, item_url=message.item_url, map_url=message.map_url)

    def summary(self, top: int = 3) -> str:
        """One line: when, where, which model, clouds, the classes covering most of the map; and a warning
        when the model was trained on synthetic data."""
        shares = sorted(self.legend.values(), key=lambda s: -s.fraction)[:top]
        warning = "  [model trained on synthetic data]" if self.model_card.data_kind == "synthetic" else ""
        return (f"{self.start:%Y-%m-%d %H:%M}  {self.tile_id:<6} {self.model:<18} "
                f"cloud {self.cloud_cover:5.1f}%  "
                + ", ".join(f"{s.land_cover.name} {s.fraction:.0%}" for s in shares) + warning)

    def save_geotiff(self, path: Path) -> Path:
        """The class map as a Cloud-Optimized GeoTIFF with the legend's colours and class names (band tags
        ``CLASS_<value>``, GDAL's ``.aux.xml`` beside it with category names and an attribute table)."""
        if self.classes is None:
            raise ValueError("this result carries polygons, not a raster")
        legend = [share.land_cover for share in self.legend.values()]
        colormap = {c.index: (*c.color, 255) for c in legend} if self.classes.dtype == np.uint8 else None
        write_cog(path, self.classes, self.crs, self.transform, self.nodata, colormap, LAYER_DESCRIPTIONS["classes"],
                  class_tags(legend))
        Path(f"{path}.aux.xml").write_text(gdal_aux_xml(legend))
        return Path(path)


def _timestamp(value: str | datetime | None):
    if value is None:
        return None
    from google.protobuf.timestamp_pb2 import Timestamp

    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def _retry_config(retries: int) -> str:
    policy = {"maxAttempts": min(retries + 1, 5), "initialBackoff": "0.2s", "maxBackoff": "2s",
              "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
    service = database_pb2.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name
    return json.dumps({"methodConfig": [{"name": [{"service": service}], "retryPolicy": policy}]})


def fetch_link(url: str, tls: tuple[Path, Path, Path] | None, timeout_s: float = 60.0) -> bytes:
    """GET ``url`` from the HTTP app; ``tls``: (CA, certificate, key) for mutual TLS."""
    import ssl
    import urllib.request

    context = None
    if tls and url.startswith("https:"):
        ca, cert, key = tls
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(cert, key)
    with urllib.request.urlopen(url, context=context, timeout=timeout_s) as response:
        return response.read()


def save_change_maps(response: statistics_pb2.AreaChangeResponse, folder: Path) -> list[Path]:
    """Write an AreaChangeResponse's change maps (COGs with colours and transition names) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tile_map in response.maps:
        path = folder / f"change-{tile_map.tile_id or 'map'}.tif"
        path.write_bytes(tile_map.map.encoded_data)
        written.append(path)
    return written


class EarthSignatureClient:
    def __init__(self, address: str, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 insecure: bool = False, timeout_s: float = 120.0, server_name: str | None = None,
                 retries: int = 3):
        """``retries``: how many times a call answered UNAVAILABLE (the server restarting, its database
        away) is sent again, with exponential backoff from 0.2 s; every call of the API is safe to repeat."""
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 256 * 1024 * 1024)]
        if retries > 0:
            options += [("grpc.enable_retries", 1), ("grpc.service_config", _retry_config(retries))]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if insecure:
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            if not (ca and cert and key):
                raise ValueError("mutual TLS needs ca, cert and key (or insecure=True for a local test server)")
            credentials = grpc.ssl_channel_credentials(Path(ca).read_bytes(), Path(key).read_bytes(),
                                                       Path(cert).read_bytes())
            self.channel = grpc.secure_channel(address, credentials, options=options)
        self.stub = database_pb2_grpc.DatabaseProductServiceStub(self.channel)
        self.timeout_s = timeout_s
        self._tls = None if insecure else (Path(ca), Path(cert), Path(key))

    def fetch(self, url: str) -> bytes:
        """A link of a response (quicklook, map, STAC item) from the server's HTTP app, with this client's
        certificate."""
        return fetch_link(url, self._tls, self.timeout_s)

    def quicklook(self, result: Result) -> bytes | None:
        """The result's RGB quicklook PNG; None when it has none or it cannot be fetched now (logged)."""
        if not result.quicklook_url:
            return None
        try:
            return self.fetch(result.quicklook_url)
        except OSError as error:  # URLError, HTTPError, TLS and socket errors
            log.warning("quicklook of %s not fetched: %s", result.product_id, error)
            return None

    def __enter__(self) -> EarthSignatureClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def create(self, request: database_pb2.CreateProductRequest) -> database_pb2.CreateProductResponse:
        return self.stub.CreateProduct(request, timeout=self.timeout_s)

    def list_messages(self, wkt: str | None = None, start: str | datetime | None = None,
                      end: str | datetime | None = None, product_ids: Iterable[str] = (),
                      categories: Iterable[str] = (), n_results: int | None = None, page_token: str = "",
                      encoding: int = 0, **extra) -> Iterator[database_pb2.SegmentationResponse]:
        request = database_pb2.ListSegmentationRequest(
            product_ids=list(product_ids), categories=list(categories), page_token=page_token,
            raster_encoding=encoding, **extra)
        if wkt is not None:
            request.wkt = wkt
        if n_results is not None:
            request.n_results = n_results
        for name, value in (("start_date", start), ("end_date", end)):
            if value is not None:
                getattr(request, name).CopyFrom(_timestamp(value))
        yield from self.stub.ListSegmentation(request, timeout=self.timeout_s)

    def list(self, **kwargs) -> Iterator[Result]:
        """ListSegmentation; keyword arguments as ``list_messages``."""
        for message in self.list_messages(**kwargs):
            yield Result.from_message(message)

    def search_messages(self, query: str, n_results: int | None = None, page_token: str = "", encoding: int = 0,
                        max_pixels: int = 0) -> Iterator[database_pb2.SegmentationResponse]:
        request = database_pb2.SearchSegmentationRequest(query=query, page_token=page_token,
                                                         raster_encoding=encoding, max_pixels=max_pixels)
        if n_results is not None:
            request.n_results = n_results
        yield from self.stub.SearchSegmentation(request, timeout=self.timeout_s)

    def search(self, query: str, **kwargs) -> Iterator[Result]:
        """SearchSegmentation; keyword arguments as ``search_messages``."""
        for message in self.search_messages(query, **kwargs):
            yield Result.from_message(message)

    def statistics_message(self, wkt: str, model: str, start: str | datetime | None = None,
                           end: str | datetime | None = None, categories: Iterable[str] = ()
                           ) -> statistics_pb2.AreaStatisticsResponse:
        """AreaStatistics: how much of each class the area holds, per acquisition date."""
        request = statistics_pb2.AreaStatisticsRequest(wkt=wkt, model_name=model, categories=list(categories))
        for name, value in (("start_date", start), ("end_date", end)):
            if value is not None:
                getattr(request, name).CopyFrom(_timestamp(value))
        return self.stub.AreaStatistics(request, timeout=self.timeout_s)

    def change_message(self, wkt: str, model: str, before: tuple[str | datetime, str | datetime | None],
                       after: tuple[str | datetime, str | datetime | None], from_categories: Iterable[str] = (),
                       to_categories: Iterable[str] = ()) -> statistics_pb2.AreaChangeResponse:
        """AreaChange: what changed inside the area between two periods, each (start, end); an end of None
        ends the period with its start's day."""
        request = statistics_pb2.AreaChangeRequest(wkt=wkt, model_name=model, from_categories=list(from_categories),
                                                   to_categories=list(to_categories))
        for name, (start, end) in (("before", before), ("after", after)):
            getattr(request, f"{name}_start").CopyFrom(_timestamp(start))
            if end is not None:
                getattr(request, f"{name}_end").CopyFrom(_timestamp(end))
        return self.stub.AreaChange(request, timeout=self.timeout_s)

    def change(self, wkt: str, model: str, before, after, **kwargs) -> pd.DataFrame:
        """``change_message``'s transition matrix as a table: one row per class before, one column per class
        after (hectares compared clear on both sides)."""
        return change_matrix(self.change_message(wkt, model, before, after, **kwargs))

    def statistics(self, wkt: str, model: str, **kwargs) -> pd.DataFrame:
        """``statistics_message`` as a table: one row per date (``date``, ``products``, ``area_ha``,
        ``clear_ha``, ``cloud_ha``, ``nodata_ha``, ``uncovered_ha``), then one column of hectares per class."""
        return statistics_frame(self.statistics_message(wkt, model, **kwargs))
