"""A segmentation's identity as a STAC item: ``<product id>-v<model version>``, unique within its collection
(the model). Stated once, for the item records, the CQL2 ``id`` property and the map-file routes."""

from __future__ import annotations

import sqlalchemy as sa

from earthsignature.service.catalog.tables import Product, Segmentation

ITEM_ID_SEPARATOR = "-v"


def item_id(product_id: str, model_version: str) -> str:
    return f"{product_id}{ITEM_ID_SEPARATOR}{model_version}"


def split_item_id(item: str) -> tuple[str, str]:
    """(product id, model version) of an item id; ("", "") when it is not one."""
    product_id, separator, version = item.rpartition(ITEM_ID_SEPARATOR)
    return (product_id, version) if separator and product_id and version else ("", "")


def item_id_sql() -> sa.ColumnElement:
    """``item_id`` in SQL, over the products and segmentations tables."""
    return sa.func.concat(Product.product_id, ITEM_ID_SEPARATOR, Segmentation.model_version)
