"""What a geometry must be for the catalog to intersect footprints with it: one check for every way an area
arrives (the gRPC API's WKT, a STAC search's bbox or intersects, a CQL2 ``s_intersects`` literal)."""

from __future__ import annotations

import math

import shapely
from shapely.geometry.base import BaseGeometry

MAX_VERTICES = 100_000


def area_problem(geometry: BaseGeometry) -> str | None:
    """Why PostGIS cannot use ``geometry`` as an EPSG:4326 search area (a predicate), or None."""
    if geometry.is_empty:
        return "is empty"
    if shapely.get_num_coordinates(geometry) > MAX_VERTICES:
        return f"has more than {MAX_VERTICES} vertices"
    minx, miny, maxx, maxy = geometry.bounds
    if not all(math.isfinite(v) for v in geometry.bounds) or not (
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return "must be in EPSG:4326 (longitude latitude, within -180..180, -90..90)"
    if not geometry.is_valid:
        return "is not a valid geometry (self-intersecting?)"
    return None
