"""What a pilot counts in a map: each pixel's class under a clear sky, or a cloud, or nothing.

Class maps keep the model's class under clouds, with the cloud mask beside them (both as sent). What pilots
count — class shares, ``fraction:*``, category queries, area statistics — is the *observed* map, one value
per pixel:

* the class value, where the map has a class and the cloud mask says clear (or there is no cloud mask);
* ``cloud``, where the cloud mask says cloud, cloud shadow or cirrus;
* ``nodata``, where the class map or the scene classification has no data.

Ingestion stores it as a COG beside the class map, tiled in cells of ``CELL`` pixels, with the count of each
value per cell (``CellCounts``, a small ``.npz`` file): area statistics add up the cells an area holds whole
and read only the cells its edge crosses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from earthsignature.core.cog import CLOUD_MASK_NODATA

#: Side of a cell, in pixels: the observed COG's tile size and the unit of the stored counts. Small enough
#: that an area's edge reads little (a 10 m map: 1.28 km cells; 128 is the smallest tile a COG takes), large
#: enough that a whole tile is 7,400 cells.
CELL = 128
#: The cloud mask's value for cloud, cloud shadow or cirrus (0 is clear).
CLOUD = 1
#: Rows of pixels counted at once (bounds the memory of counting a whole product).
_BAND_ROWS = 8 * CELL


@dataclass(frozen=True)
class Tallies:
    """Pixels of a map that are clear (a class under a clear sky), clouded, and without data."""

    clear: int
    cloud: int
    nodata: int

    @property
    def total(self) -> int:
        return self.clear + self.cloud + self.nodata

    def fraction(self, part: str) -> float:
        return getattr(self, part) / self.total if self.total else 0.0


@dataclass(frozen=True)
class Observed:
    """The observed map: class values where clear, ``cloud`` and ``nodata`` (values no class may take)."""

    data: np.ndarray  # [H, W] uint8 or uint16
    cloud: int
    nodata: int

    @classmethod
    def markers(cls, dtype: np.dtype) -> tuple[int, int]:
        """(cloud, nodata) for an observed map of this type: its two highest values."""
        top = int(np.iinfo(dtype).max)
        return top - 1, top


def observe(classes: np.ndarray, class_nodata: int | None, cloud_mask: np.ndarray | None) -> Observed:
    """The observed map of a class map (uint8 or uint16) and its cloud mask (1 cloud, 0 clear, 255 no data).

    Raises ValueError when a class takes one of the observed map's marker values (classes must stay below
    them: 254 for Byte maps, 65534 for 16-bit ones)."""
    cloud, nodata = Observed.markers(classes.dtype)
    data = classes.copy()
    missing = classes == class_nodata if class_nodata is not None else np.zeros(classes.shape, dtype=bool)
    if np.any(data[~missing] >= cloud):
        raise ValueError(f"class values must be below {cloud} in a {classes.dtype} map (the observed map "
                         "keeps its two highest values for clouds and no data)")
    if cloud_mask is not None:
        data[cloud_mask == CLOUD] = cloud
        missing |= cloud_mask == CLOUD_MASK_NODATA
    data[missing] = nodata
    return Observed(data, cloud, nodata)


@dataclass(frozen=True)
class CellCounts:
    """How many pixels of each observed value every cell of a map holds.

    ``counts[r, c, k]``: pixels of value ``values[k]`` in the cell of rows ``r*cell..(r+1)*cell`` and columns
    ``c*cell..(c+1)*cell`` (cells at the right and bottom edges may be smaller)."""

    cell: int
    dtype: np.dtype  # the observed map's (its markers: ``Observed.markers``)
    values: np.ndarray  # [K] the observed values present in the map, ascending
    counts: np.ndarray  # [rows, cols, K] uint32

    @classmethod
    def of(cls, observed: np.ndarray, cell: int = CELL) -> CellCounts:
        """Count a whole map, a band of cell rows at a time (bounded memory, 16-bit maps included)."""
        height, width = observed.shape
        rows, cols = -(-height // cell), -(-width // cell)
        size = int(np.iinfo(observed.dtype).max) + 1
        present = np.zeros(size, dtype=bool)
        for top in range(0, height, _BAND_ROWS):
            present |= np.bincount(observed[top:top + _BAND_ROWS].ravel(), minlength=size) > 0
        values = np.flatnonzero(present)
        dense = np.zeros(size, dtype=np.intp)  # observed value -> its position in ``values``
        dense[values] = np.arange(len(values))
        counts = np.zeros((rows, cols, len(values)), dtype=np.uint32)
        column_cell = np.arange(width) // cell
        for top in range(0, height, _BAND_ROWS):
            band = observed[top:top + _BAND_ROWS]
            row_cell = np.arange(band.shape[0]) // cell
            index = (row_cell[:, None] * cols + column_cell[None, :]) * len(values) + dense[band]
            first = top // cell
            counted = np.bincount(index.ravel(), minlength=(row_cell[-1] + 1) * cols * len(values))
            counts[first:first + row_cell[-1] + 1] = counted.reshape(-1, cols, len(values))
        return cls(cell, observed.dtype, values, counts)

    def totals(self) -> dict[int, int]:
        """Pixels of each value in the whole map."""
        summed = self.counts.sum(axis=(0, 1), dtype=np.int64)
        return {int(v): int(n) for v, n in zip(self.values, summed, strict=True)}

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, cell=np.array(self.cell), dtype=np.array(self.dtype.name), values=self.values,
                            counts=self.counts)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> CellCounts:
        with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
            return cls(int(stored["cell"]), np.dtype(str(stored["dtype"])), stored["values"], stored["counts"])


def value_counts(data: np.ndarray) -> dict[int, int]:
    """Pixels of each value in an integer map, counted a band of rows at a time."""
    size = int(np.iinfo(data.dtype).max) + 1
    counted = np.zeros(size, dtype=np.int64)
    for top in range(0, data.shape[0], _BAND_ROWS):
        counted += np.bincount(data[top:top + _BAND_ROWS].ravel(), minlength=size)
    return {int(v): int(counted[v]) for v in np.flatnonzero(counted)}


def tallies(totals: dict[int, int], cloud: int, nodata: int) -> Tallies:
    """Clear, clouded and no-data pixels of an observed map's value totals."""
    clouded, missing = totals.get(cloud, 0), totals.get(nodata, 0)
    return Tallies(sum(totals.values()) - clouded - missing, clouded, missing)


def cells_url(observed_url: str) -> str:
    """Where an observed map's cell counts are stored: beside it, named by it."""
    return f"{observed_url}.cells.npz"
