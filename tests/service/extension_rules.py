"""The rules each STAC extension our items and collections use states in its specification (its README's
field tables: types, required fields, allowed values, where a field may appear), written as JSON Schema.

No package on PyPI or npm ships the extensions' published schemas and tests do not reach the internet, so
these stand in for them: ``test_stac_api`` validates every item and collection with them, and the schema
mirror serves them under the published URLs to stac-api-validator. Each says which specification it follows.
"""

from __future__ import annotations

from typing import Any

from earthsignature.service.api.stac_items import EXTENSIONS

NAME = r"^[0-9A-Za-z\-_]+$"


def _listed(url: str) -> dict[str, Any]:
    """A document using the extension lists its schema URL in ``stac_extensions``."""
    return {"type": "object", "required": ["stac_extensions"],
            "properties": {"stac_extensions": {"type": "array", "contains": {"const": url}}}}


def _on_items_and_assets(url: str, fields: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """Fields allowed in an item's properties and assets (and a collection's assets, item_assets, summaries)."""
    properties_schema = {"type": "object", "properties": fields, **({"required": required} if required else {})}
    field_schema = {"type": "object", "properties": fields}
    assets = {"type": "object", "additionalProperties": field_schema}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": url,
        "oneOf": [
            {"allOf": [_listed(url), {"type": "object", "required": ["type", "properties", "assets"],
                                      "properties": {"type": {"const": "Feature"}, "properties": properties_schema,
                                                     "assets": assets}}]},
            {"allOf": [_listed(url), {"type": "object", "required": ["type"],
                                      "properties": {"type": {"const": "Collection"}, "assets": assets,
                                                     "item_assets": assets}}]},
        ],
    }


# classification v2.0.0: a Class Object has value (integer) and name (letters, digits, - and _) required;
# title and description strings; color_hint six hex digits; nodata a boolean; percentage 0-100; count >= 0.
CLASS_OBJECT = {
    "type": "object", "required": ["value", "name"],
    "properties": {"value": {"type": "integer"}, "name": {"type": "string", "pattern": NAME},
                   "title": {"type": "string"}, "description": {"type": "string"},
                   "color_hint": {"type": "string", "pattern": "^([0-9A-Fa-f]{6})$"},
                   "nodata": {"type": "boolean"}, "percentage": {"type": "number", "minimum": 0, "maximum": 100},
                   "count": {"type": "integer", "minimum": 0}},
}
CLASSIFICATION = {"classification:classes": {"type": "array", "minItems": 1, "uniqueItems": True,
                                             "items": CLASS_OBJECT}}

# projection v2.0.0: proj:code "AUTHORITY:CODE" or null; proj:shape two integers (rows, columns); proj:transform
# six or nine numbers; proj:bbox four or six numbers; proj:centroid lat/lon.
PROJECTION = {
    "proj:code": {"type": ["string", "null"], "pattern": "^[A-Z]+:[0-9A-Za-z.]+$"},
    "proj:wkt2": {"type": ["string", "null"]}, "proj:projjson": {"type": ["object", "null"]},
    "proj:shape": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1}},
    "proj:transform": {"type": "array", "oneOf": [{"minItems": 6, "maxItems": 6}, {"minItems": 9, "maxItems": 9}],
                       "items": {"type": "number"}},
    "proj:bbox": {"type": "array", "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
                  "items": {"type": "number"}},
    "proj:centroid": {"type": "object", "required": ["lat", "lon"],
                      "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                     "lon": {"type": "number", "minimum": -180, "maximum": 180}}},
}

# eo v2.0.0: eo:cloud_cover and eo:snow_cover percentages (0-100); eo:common_name one of the listed names.
EO = {
    "eo:cloud_cover": {"type": "number", "minimum": 0, "maximum": 100},
    "eo:snow_cover": {"type": "number", "minimum": 0, "maximum": 100},
    "eo:common_name": {"enum": ["pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge",
                                "rededge071", "rededge075", "rededge078", "nir", "nir08", "nir09", "cirrus",
                                "swir16", "swir22", "lwir", "lwir11", "lwir12"]},
}

# grid v1.1.0: grid:code "<GRID>-<CODE>" (upper-case grid name, a dash, then the cell's code), in properties.
GRID = {"grid:code": {"type": "string", "pattern": "^[A-Z0-9]+-[-_.A-Za-z0-9]+$"}}

# web-map-links v1.2.0: an "xyz" link's href is a URL template holding {z}, {x} and {y}; a "tilejson" link's
# href is a TileJSON document's URL, of type application/json.
WEB_MAP_LINKS = {
    "$schema": "http://json-schema.org/draft-07/schema#", "$id": EXTENSIONS["web_map_links"],
    "allOf": [_listed(EXTENSIONS["web_map_links"]), {
        "type": "object", "required": ["links"],
        "properties": {"links": {"type": "array", "items": {"allOf": [
            {"if": {"properties": {"rel": {"const": "xyz"}}, "required": ["rel"]},
             "then": {"required": ["href"], "properties": {"href": {
                 "type": "string", "allOf": [{"pattern": r"\{z\}"}, {"pattern": r"\{x\}"}, {"pattern": r"\{y\}"}]}}}},
            {"if": {"properties": {"rel": {"const": "tilejson"}}, "required": ["rel"]},
             "then": {"required": ["href", "type"], "properties": {"href": {"type": "string", "format": "uri"},
                                                                   "type": {"const": "application/json"}}}},
        ]}}},
    }],
}

# item-assets v1.0.0: a collection's item_assets maps keys to asset definitions of at least two fields
# (title, type, roles...), never an href.
ITEM_ASSETS = {
    "$schema": "http://json-schema.org/draft-07/schema#", "$id": EXTENSIONS["item_assets"],
    "allOf": [_listed(EXTENSIONS["item_assets"]), {
        "type": "object", "required": ["type", "item_assets"],
        "properties": {"type": {"const": "Collection"}, "item_assets": {
            "type": "object", "minProperties": 1, "additionalProperties": {
                "type": "object", "minProperties": 2, "not": {"required": ["href"]},
                "properties": {"title": {"type": "string"}, "description": {"type": "string"},
                               "type": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}}}}},
    }],
}

#: schema URL -> the JSON Schema of its extension's stated rules
SCHEMAS: dict[str, dict[str, Any]] = {
    EXTENSIONS["classification"]: _on_items_and_assets(EXTENSIONS["classification"], CLASSIFICATION),
    EXTENSIONS["projection"]: _on_items_and_assets(EXTENSIONS["projection"], PROJECTION),
    EXTENSIONS["eo"]: _on_items_and_assets(EXTENSIONS["eo"], EO),
    EXTENSIONS["grid"]: _on_items_and_assets(EXTENSIONS["grid"], GRID, required=["grid:code"]),
    EXTENSIONS["web_map_links"]: WEB_MAP_LINKS,
    EXTENSIONS["item_assets"]: ITEM_ASSETS,
}
