"""The Sentinel-2 tiling grid: every MGRS 100 km square Sentinel-2 uses, in both hemispheres, with the
corners of ESA's grid.

A tile is named by its UTM zone, latitude band and its MGRS square's column and row letters (``34SGH``).
It lies on the zone's UTM grid (EPSG:326zz in the north, 327zz in the south) and is 109,800 m square
(10,980 pixels of 10 m): the square and 9.8 km of its eastern and southern neighbours. Its upper-left
corner is the square's north-west corner moved out (west, north) to the 60 m grid that all its bands share,
a grid counted from the zone's false origin in x and from the equator in y. So 31TCJ starts at
(300000, 4900020), 11SLT at (300000, 3800040), 46RER at (499980, 3100020) and, south of the equator,
07HFE at (600000, 6500020) in EPSG:32707, as the products' own ``MTD_TL.xml`` say (the tests hold this
rule against the geocoding of real products from both hemispheres).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box

TILE_SIZE_M = 109_800
SQUARE_M = 100_000
#: Every band's pixels (10, 20 and 60 m) share this grid, so tile corners are on it.
_CORNER_GRID_M = 60
_FALSE_NORTHING_SOUTH = 10_000_000
#: MGRS column letters repeat every three zones; row letters every 2,000 km, shifted by 5 in even zones.
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_ROW_CYCLE_M = 2_000_000
#: Latitude bands of 8 degrees from 80 S; X (72..84 N) is 12 degrees.
_BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
#: Zones whose width is not 6 degrees (Norway and Svalbard): (zone, band) -> (west, east) longitudes;
#: None: the zone does not exist in that band.
_SPECIAL_ZONES: dict[tuple[int, str], tuple[float, float] | None] = {
    (31, "V"): (0.0, 3.0), (32, "V"): (3.0, 12.0),
    (31, "X"): (0.0, 9.0), (32, "X"): None, (33, "X"): (9.0, 21.0), (34, "X"): None,
    (35, "X"): (21.0, 33.0), (36, "X"): None, (37, "X"): (33.0, 42.0),
}


@dataclass(frozen=True)
class Tile:
    """A Sentinel-2 tile: its UTM CRS and upper-left corner (see the module's docstring)."""

    tile_id: str
    epsg: int
    ulx: float
    uly: float

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    @property
    def zone(self) -> int:
        return self.epsg % 100

    @property
    def central_meridian(self) -> float:
        return central_meridian(self.zone)

    @property
    def hemisphere(self) -> str:
        """``N`` or ``S``, as ESA names the CRS (``WGS84 / UTM zone 07S``)."""
        return "S" if self.epsg > 32700 else "N"

    def footprint_lonlat(self, width_m: float = TILE_SIZE_M, height_m: float = TILE_SIZE_M,
                         ) -> list[tuple[float, float]]:
        """Corners (lon, lat) of the area ``width_m`` x ``height_m`` from the upper-left corner,
        clockwise from the north-west, closed."""
        to_lonlat = _to_lonlat(self.epsg)
        corners = [(self.ulx, self.uly), (self.ulx + width_m, self.uly),
                   (self.ulx + width_m, self.uly - height_m), (self.ulx, self.uly - height_m)]
        ring = [to_lonlat.transform(x, y) for x, y in corners]
        return [*ring, ring[0]]


def tile(tile_id: str) -> Tile:
    """The tile named ``34SGH`` or ``T01KCV`` (any case). ValueError for a name that is not an MGRS tile,
    or a square that does not reach into its zone and latitude band (such tiles do not exist)."""
    if not tile_id.isascii():  # upper() would turn some letters into ASCII ones (ſ -> S)
        raise ValueError(f"{tile_id!r} is not an MGRS tile id like 34SGH")
    tile_id = tile_id.upper().removeprefix("T")
    match = re.fullmatch(r"([0-9]{2})([A-Z])([A-Z])([A-Z])", tile_id)
    if not match or not 1 <= int(match.group(1)) <= 60 or match.group(2) not in _BAND_LETTERS:
        raise ValueError(f"{tile_id!r} is not an MGRS tile id like 34SGH")
    zone, band, column, row = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    column_set = _COLUMN_SETS[(zone - 1) % 3]
    if column not in column_set or row not in _ROW_LETTERS:
        raise ValueError(f"tile {tile_id}: letters {column}{row} do not exist in UTM zone {zone}")
    west = (column_set.index(column) + 1) * SQUARE_M
    south = _square_south(zone, band, row)
    if south is None or not _square_in_zone(zone, band, west, south):
        raise ValueError(f"tile {tile_id}: square {column}{row} is not in zone {zone}, latitude band {band}")
    north = south + SQUARE_M
    ulx = math.floor(west / _CORNER_GRID_M) * _CORNER_GRID_M
    uly = math.ceil(north / _CORNER_GRID_M) * _CORNER_GRID_M  # from the equator: negative in the south
    southern = band < "N"
    return Tile(tile_id, (32700 if southern else 32600) + zone, float(ulx),
                float(uly + _FALSE_NORTHING_SOUTH if southern else uly))


def central_meridian(zone: int) -> float:
    """The longitude of a UTM zone's central meridian (zone 1: 177 W)."""
    return -183.0 + 6.0 * zone


def _band_latitudes(band: str) -> tuple[float, float]:
    south = -80.0 + 8.0 * _BAND_LETTERS.index(band)
    return south, (84.0 if band == "X" else south + 8.0)


def _zone_longitudes(zone: int, band: str) -> tuple[float, float] | None:
    if (zone, band) in _SPECIAL_ZONES:
        return _SPECIAL_ZONES[(zone, band)]
    west = -180.0 + 6.0 * (zone - 1)
    return west, west + 6.0


@cache
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, "EPSG:4326", always_xy=True)


def _square_south(zone: int, band: str, row: str) -> int | None:
    """The southern northing (from the equator) of the square with this row letter in the band: row
    letters repeat every 2,000 km, and a band spans at most 1,335 km, so at most one square fits."""
    offset = 0 if zone % 2 else 5  # even zones start their row letters at F
    residue = ((_ROW_LETTERS.index(row) - offset) % 20) * SQUARE_M
    low, high = _band_northings(zone, band)
    for cycle in range(-5, 5):
        south = residue + cycle * _ROW_CYCLE_M
        if south < high and south + SQUARE_M > low:
            return south
    return None


@cache
def _band_northings(zone: int, band: str) -> tuple[float, float]:
    """The northings (from the equator) a latitude band spans in a zone: parallels curve towards the pole
    away from the central meridian, so its edges are looked at too."""
    south, north = _band_latitudes(band)
    to_utm = Transformer.from_crs("EPSG:4326", 32600 + zone, always_xy=True)  # northern: y < 0 south
    central = central_meridian(zone)
    ys = [to_utm.transform(central + dlon, lat)[1] for dlon in (-3.0, 0.0, 3.0) for lat in (south, north)]
    return min(ys), max(ys)


def _square_in_zone(zone: int, band: str, west: int, south: int) -> bool:
    """Whether the 100 km square reaches into the zone's longitudes within the band (near the poles a zone
    is narrower than its eight columns). Longitudes are taken from the central meridian, so a square
    across the antimeridian is one piece."""
    longitudes = _zone_longitudes(zone, band)
    if longitudes is None:
        return False
    central = central_meridian(zone)
    lat_south, lat_north = _band_latitudes(band)
    zone_box = box(longitudes[0] - central, lat_south, longitudes[1] - central, lat_north)
    side = [k * SQUARE_M / 16 for k in range(16)]
    ring = ([(west + d, south) for d in side] + [(west + SQUARE_M, south + d) for d in side]
            + [(west + SQUARE_M - d, south + SQUARE_M) for d in side] + [(west, south + SQUARE_M - d) for d in side])
    to_lonlat = _to_lonlat(32600 + zone)
    lonlat = [to_lonlat.transform(x, y) for x, y in ring]
    square = Polygon([((lon - central + 180.0) % 360.0 - 180.0, lat) for lon, lat in lonlat])
    return square.intersection(zone_box).area > 0
