"""The catalog's records as STAC: a collection per model, an item per segmentation (a product seen by one
model version), with its maps as assets served by the HTTP app.

Items carry the product's footprint and times, ``eo:cloud_cover``, ``grid:code``, the map's grid
(``proj:code``/``proj:shape``/``proj:transform``), the classification extension on the class map
(``classification:classes``: value, name, title, colour) and the share of each class present as
``fraction:<class slug>`` properties (queryable with CQL2). Asset links point at the HTTP app's
``/v1/maps/<collection>/<item>/<file>`` route, which answers range requests, so GDAL's ``/vsicurl/`` and
QGIS read windows of the COGs without downloading them; with an object store, the stored files' links are the
store's own pre-signed URLs (the pictures and tiles, drawn by the service, stay its routes).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from geoalchemy2.shape import to_shape
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.core.classes import ClassShare
from earthsignature.core.cog import CLASS_NODATA, CLOUD_MASK_NODATA, CONFIDENCE_NODATA, LAYER_DESCRIPTIONS
from earthsignature.service.catalog.catalog import Found, ModelCollection
from earthsignature.service.catalog.items import item_id
from earthsignature.service.catalog.queryables import QUERYABLES, class_slug, fraction, item_properties

STAC_VERSION = "1.1.0"
#: Where the HTTP app mounts the STAC API.
STAC_PREFIX = "/stac"
#: The link relation of a queryables schema (OGC API Features Part 3, which the STAC filter extension uses)
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
EXTENSIONS = {
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "item_assets": "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
    "web_map_links": "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
#: The HTTP app's route to a segmentation's files, and the same files in a signed folder (``signed_links``).
MAP_FILE_PATH = "/v1/maps/{collection}/{item}/{file_name}"
SIGNED_MAP_FILE_PATH = "/v1/maps/{collection}/{item}/signed/{expires}/{key}/{caller}/{signature}/{file_name}"
#: The file name of a map's TileJSON, beside its tiles
TILEJSON = "tilejson.json"
#: The product's quicklook among an item's files (in its signed folder; the store's own name differs)
THUMBNAIL = "thumbnail.png"
#: asset key -> (file name, media type, roles, title)
MAP_ASSETS = {
    "classes": ("classes.tif", COG, ["data"], "Land-cover classes"),
    "confidence": ("confidence.tif", COG, ["data", "quality"], "Confidence of the mapped class"),
    "cloud_mask": ("cloud_mask.tif", COG, ["data", "cloud"], "Clouds, shadows and cirrus (Sentinel-2 SCL)"),
    "visual": ("classes.png", "image/png", ["visual"], "Class map in Web Mercator for web maps (PNG, 1024 px, "
               "clouds white; its bounds in the X-Bounds-EPSG-3857 header)"),
    "style": ("classes.qml", "text/xml", ["style"], "QGIS style: class colours and names"),
    "legend": ("classes.tif.aux.xml", "application/xml", ["metadata"],
               "GDAL sidecar: category names and raster attribute table"),
}
CLOUD_CLASSES = [{"value": 0, "name": "clear", "title": "Clear"},
                 {"value": 1, "name": "cloud", "title": "Cloud, cloud shadow or cirrus"},
                 {"value": CLOUD_MASK_NODATA, "name": "no_data", "title": "No data", "nodata": True}]


def tiles_template(collection: str, item: str, signed: str = "") -> str:
    """The XYZ tile URL template of a map, after the HTTP app's address: ``.../tiles/{z}/{x}/{y}.png``."""
    return map_file_route(collection, item, "tiles", signed) + "/{z}/{x}/{y}.png"


def map_file_route(collection: str, item: str, file_name: str, signed: str = "") -> str:
    """The route of one of an item's files; in the ``signed`` folder when given (``LinkSigner.sign``)."""
    quote = urllib.parse.quote
    return MAP_FILE_PATH.format(collection=quote(collection, safe=""), item=quote(item, safe=""),
                                file_name=f"{signed}/{file_name}" if signed else file_name)


def tilejson_route(collection: str, item: str, signed: str = "") -> str:
    """The route of a map's TileJSON (its XYZ tiles, bounds and zooms for web maps)."""
    return map_file_route(collection, item, TILEJSON, signed)


def map_files_scope(collection: str, item: str) -> str:
    """The path prefix of every file of an item (what a signed link opens: ``signed_links``)."""
    return map_file_route(collection, item, "")


def item_route(collection: str, item: str) -> str:
    quote = urllib.parse.quote
    return f"{STAC_PREFIX}/collections/{quote(collection, safe='')}/items/{quote(item, safe='')}"


def classification(legend: Iterable[ClassShare]) -> list[dict[str, Any]]:
    """The classification extension's classes of a class map, no-data value included."""
    classes = [{"value": s.land_cover.index, "name": class_slug(s.land_cover.name) or f"class_{s.land_cover.code}",
                "title": s.land_cover.name, "description": f"code {s.land_cover.code}",
                "color_hint": s.land_cover.hex_color.removeprefix("#").upper()}
               for s in sorted(legend, key=lambda s: s.land_cover.index)]
    return [*classes, {"value": CLASS_NODATA, "name": "no_data", "title": "No data", "nodata": True}]


def _assets(found: Found, public_url: str, quicklook: str, signed: str = "",
            stored: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    segmentation = found.segmentation
    present = {"classes": True, "confidence": bool(segmentation.confidence_url),
               "cloud_mask": bool(segmentation.cloud_mask_url), "visual": True, "style": True, "legend": True}
    identifier = item_id(segmentation.product.product_id, segmentation.model_name, segmentation.model_version)
    assets = {}
    for key, (file_name, media_type, roles, title) in MAP_ASSETS.items():
        if not present[key]:
            continue
        href = (stored or {}).get(file_name) or public_url + map_file_route(segmentation.model_name, identifier,
                                                                             file_name, signed)
        assets[key] = {"href": href, "type": media_type, "roles": roles, "title": title}
        if key in LAYER_DESCRIPTIONS:
            assets[key]["description"] = LAYER_DESCRIPTIONS[key]
    assets["classes"]["classification:classes"] = classification(c.to_share() for c in segmentation.classes)
    if "confidence" in assets:
        assets["confidence"]["nodata"] = CONFIDENCE_NODATA
    if "cloud_mask" in assets:
        assets["cloud_mask"]["classification:classes"] = CLOUD_CLASSES
    if quicklook:
        assets["thumbnail"] = {"href": quicklook, "type": "image/png", "roles": ["thumbnail", "overview"],
                               "title": "RGB quicklook of the product"}
    return assets


def bbox(footprint: BaseGeometry) -> list[float]:
    """The footprint's bounds; across the antimeridian (parts touching 180 and -180) west > east, as RFC 7946
    and STAC want, not a band around the Earth."""
    west, south, east, north = footprint.bounds
    parts = list(getattr(footprint, "geoms", [footprint]))
    eastern = [p.bounds for p in parts if p.bounds[2] >= 180]
    western = [p.bounds for p in parts if p.bounds[0] <= -180]
    if eastern and western and len(eastern) + len(western) >= len(parts):
        west, east = min(b[0] for b in eastern), max(b[2] for b in western)
    return [west, south, east, north]


def item(found: Found, base_url: str, public_url: str, quicklook: str, signed: str = "",
         stored: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One segmentation as a STAC item; ``base_url``: the STAC API root, ``public_url``: the HTTP app's;
    ``signed``: the signed folder of its map files (``signed_links``), where their links point; ``stored``:
    the object store's pre-signed URLs of its stored files by file name, which their links are instead."""
    segmentation, product = found.segmentation, found.segmentation.product
    footprint = to_shape(product.footprint)
    identifier = item_id(product.product_id, segmentation.model_name, segmentation.model_version)
    gt = segmentation.geotransform
    properties: dict[str, Any] = {
        **item_properties(segmentation), "created": segmentation.created_at.isoformat(),
        "instruments": ["msi"], "proj:code": segmentation.crs, "proj:shape": [segmentation.height, segmentation.width],
        "proj:transform": [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]],
    }
    if segmentation.card:
        properties["earthsignature:model_card"] = segmentation.card.to_dict()
    collection_url = f"{base_url}collections/{urllib.parse.quote(segmentation.model_name, safe='')}"
    return {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": [EXTENSIONS[k] for k in ("classification", "projection", "eo", "grid", "web_map_links")],
        "id": identifier, "collection": segmentation.model_name,
        "geometry": mapping(footprint), "bbox": bbox(footprint), "properties": properties,
        "assets": _assets(found, public_url, quicklook, signed, stored),
        "links": [
            {"rel": "self", "type": "application/geo+json",
             "href": f"{collection_url}/items/{urllib.parse.quote(identifier, safe='')}"},
            {"rel": "parent", "type": "application/json", "href": collection_url},
            {"rel": "collection", "type": "application/json", "href": collection_url},
            {"rel": "root", "type": "application/json", "href": base_url},
            {"rel": "xyz", "type": "image/png", "title": "Class map as XYZ tiles, clouds white (web maps, QGIS XYZ "
                                                        "layers)",
             "href": public_url + tiles_template(segmentation.model_name, identifier, signed)},
            {"rel": "tilejson", "type": "application/json", "title": "The XYZ tiles as TileJSON (bounds, zooms)",
             "href": public_url + tilejson_route(segmentation.model_name, identifier, signed)},
        ],
    }


def collection(summary: ModelCollection, base_url: str) -> dict[str, Any]:
    """One model's maps as a STAC collection."""
    card = f" Newest version {summary.model_card.line()}." if summary.model_card else ""
    url = f"{base_url}collections/{urllib.parse.quote(summary.name, safe='')}"
    return {
        "type": "Collection", "stac_version": STAC_VERSION, "id": summary.name,
        "stac_extensions": [EXTENSIONS["classification"], EXTENSIONS["item_assets"]],
        "title": f"Land-cover maps by {summary.name}",
        "description": f"Sentinel-2 products segmented by the model {summary.name} (versions "
                       f"{', '.join(summary.versions)}).{card}",
        "license": "other", "keywords": ["land cover", "sentinel-2", "segmentation"],
        "extent": {"spatial": {"bbox": [list(summary.bbox)]},
                   "temporal": {"interval": [[summary.start.isoformat(), summary.end.isoformat()]]}},
        "summaries": {"earthsignature:model_version": list(summary.versions), "constellation": ["sentinel-2"]},
        "item_assets": {key: {"type": media_type, "roles": roles, "title": title}
                        for key, (_, media_type, roles, title) in MAP_ASSETS.items()}
        | {"classes": {"type": COG, "roles": ["data"], "title": MAP_ASSETS["classes"][3],
                       "classification:classes": classification(summary.legend)}},
        "links": [
            {"rel": "self", "type": "application/json", "title": summary.name, "href": url},
            {"rel": "items", "type": "application/geo+json", "title": "Maps", "href": f"{url}/items"},
            {"rel": QUERYABLES_REL, "type": "application/schema+json", "title": "Queryables",
             "href": f"{url}/queryables"},
            {"rel": "parent", "type": "application/json", "title": "EarthSignature", "href": base_url},
            {"rel": "root", "type": "application/json", "title": "EarthSignature", "href": base_url},
        ],
    }


def queryables(class_names: Iterable[str], base_url: str, collection_id: str | None = None) -> dict[str, Any]:
    """The JSON schema of the properties a CQL2 filter may use (``queryables``: the fixed ones, and a class
    fraction per class name)."""
    properties: dict[str, Any] = {q.name: q.schema_entry() for q in QUERYABLES}
    for name in sorted(set(class_names)):
        record = fraction(name)
        properties[record.name] = record.schema_entry()
    suffix = f"collections/{urllib.parse.quote(collection_id, safe='')}/queryables" if collection_id else "queryables"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{base_url}{suffix}",
            "type": "object", "title": f"Queryables of {collection_id or 'every collection'}",
            "properties": properties, "additionalProperties": False}
