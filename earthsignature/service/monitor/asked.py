"""Trust no provider's filter: whether a product a search returned is one that was asked for.

A provider may return more than it was asked: EODAG's static-catalog search filters dates on
``start_datetime`` only, so items carrying just ``datetime`` (as Earth Search's do) come back for every day;
a footprint may only touch the area's bounding box; a neighbouring day may slip in through a time zone. Each
product is checked here, from its own metadata, before any work: acquired within the period asked (UTC,
the end excluded) and with a footprint that intersects the area.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Asked:
    start: datetime  # UTC, included
    end: datetime  # UTC, excluded
    area: BaseGeometry  # EPSG:4326

    def problem(self, acquired: datetime, footprint: BaseGeometry | None) -> str | None:
        """Why a product acquired at ``acquired`` over ``footprint`` is not what was asked; None when it is."""
        moment = acquired if acquired.tzinfo else acquired.replace(tzinfo=UTC)
        if not self.start <= moment < self.end:
            return (f"acquired {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, outside "
                    f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC")
        if footprint is None or footprint.is_empty:
            return "no footprint"
        try:
            touches = self.area.intersects(footprint if footprint.is_valid else footprint.buffer(0))
        except ShapelyError:
            return "a footprint that is not a valid geometry"
        return None if touches else "a footprint outside the area"
