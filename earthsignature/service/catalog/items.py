"""A segmentation's identity as a STAC item: ``<product id>-<model>-v<model version>``, unique in the whole
catalog (the same product seen by three models is three items with three ids) and readable: what was seen,
by which model, which version. Stated once, for the item records, the CQL2 ``id`` property, id searches and
the map-file routes.

Product ids and model names may both hold ``-`` (and a version ``-v``), so an id is read back as the few
(product, model, version) keys it can name; the catalog looks them all up at once by its unique keys.
"""

from __future__ import annotations

import sqlalchemy as sa

from earthsignature.service.catalog.tables import Product, Segmentation

SEPARATOR, VERSION_SEPARATOR = "-", "-v"
#: The most keys one id is read as (ids with dozens of '-' are not ours).
MAX_KEYS = 64


def item_id(product_id: str, model_name: str, model_version: str) -> str:
    return f"{product_id}{SEPARATOR}{model_name}{VERSION_SEPARATOR}{model_version}"


def item_keys(item: str, collection: str | None = None) -> list[tuple[str, str, str]]:
    """The (product id, model name, model version) keys ``item`` may name, each non-empty; only those of
    ``collection`` (a model name) when it is known. Empty when the id is none of ours."""
    keys = []
    for version_at in _positions(item, VERSION_SEPARATOR):
        rest, version = item[:version_at], item[version_at + len(VERSION_SEPARATOR):]
        for model_at in _positions(rest, SEPARATOR):
            product_id, model = rest[:model_at], rest[model_at + 1:]
            if product_id and model and version and (collection is None or model == collection):
                keys.append((product_id, model, version))
    return keys[:MAX_KEYS]


def _positions(text: str, separator: str) -> list[int]:
    found, at = [], text.find(separator)
    while at != -1:
        found.append(at)
        at = text.find(separator, at + 1)
    return found


def item_id_sql() -> sa.ColumnElement:
    """``item_id`` in SQL, over the products and segmentations tables."""
    return sa.func.concat(Product.product_id, SEPARATOR, Segmentation.model_name, VERSION_SEPARATOR,
                          Segmentation.model_version)
